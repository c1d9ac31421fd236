package TavusTLS;

# Certificates made at test time with the `openssl` command, and TLS
# flavours of the nginx mock of Tavus, for the TLS tests.
#
#     use lib 't/lib';
#     use TavusTest;
#     use TavusTLS;
#
#     my $t = TavusTest->new->require_module;
#     my $pki = TavusTLS->new($t);           # files in <prefix>/pki
#
#     $pki->ca('root');                      # a self-signed root CA
#     $pki->ca('inter', issuer => 'root');   # an intermediate CA
#     $pki->leaf('api', issuer => 'inter', names => ['tavusapi.test']);
#     $pki->leaf('old', issuer => 'inter', names => ['tavusapi.test'],
#                expired => 1);             # valid in 2020 only
#     $pki->leaf('me', issuer => 'root', client => 1);
#
#     $pki->crt('root')                      # path of a certificate
#     $pki->key('api')                       # path of its private key
#     $pki->chain('api', 'inter')            # path of leaf + intermediate
#
#     $t->run(TavusTLS::mock_tavus_tls($t, name => 'up', key => 'K',
#                 cert => $pki->chain('api', 'inter'),
#                 cert_key => $pki->key('api'),
#                 client_ca => $pki->crt('root')) . ...);
#
#     TavusTLS::tls_log($t, 'up')            # what the mock saw of TLS
#
# Keys are P-256 EC keys: quick to make.

use strict;
use warnings;

use File::Path ();
use POSIX ();

my $serial = int(rand(1 << 20)) * 1000;

sub new {
    my ($class, $t, %o) = @_;

    my $dir = $t->prefix . '/' . ($o{dir} // 'pki');
    File::Path::make_path($dir);

    my $self = bless { t => $t, dir => $dir, issuers => {} }, $class;

    # our own minimal openssl.cnf: nothing from the system's
    $self->_write('openssl.cnf', <<'CNF');
[ req ]
distinguished_name = dn
prompt = no

[ dn ]
CN = unused

[ ca ]
default_ca = tca

[ tca ]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = policy
unique_subject = no
copy_extensions = none

[ policy ]
commonName = supplied
CNF

    $self->_write('index.txt', '');
    $self->_write('serial', "1000\n");

    return $self;
}

sub dir { $_[0]{dir} }
sub crt { "$_[0]{dir}/$_[1].crt" }
sub key { "$_[0]{dir}/$_[1].key" }

# a CA: self-signed (no issuer) or signed by an issuer

sub ca {
    my ($self, $name, %o) = @_;

    my $ext = "basicConstraints = critical, CA:TRUE"
              . (defined $o{pathlen} ? ", pathlen:$o{pathlen}" : '') . "\n"
              . "keyUsage = critical, keyCertSign, cRLSign\n"
              . "subjectKeyIdentifier = hash\n";

    return $self->_make($name, subject => "/O=tavus tests/CN=$name CA",
                        issuer => $o{issuer}, ext => $ext, days => 30);
}

# a leaf: server (names => [...], a subjectAltName DNS entry each) or
# client (client => 1); expired => 1 makes it valid in January 2020 only

sub leaf {
    my ($self, $name, %o) = @_;

    my @names = @{ $o{names} // [] };
    my $cn = $names[0] // $name;

    my $ext = "basicConstraints = critical, CA:FALSE\n"
              . "keyUsage = critical, digitalSignature\n"
              . "extendedKeyUsage = "
              . ($o{client} ? 'clientAuth' : 'serverAuth') . "\n"
              . "subjectKeyIdentifier = hash\n"
              . "authorityKeyIdentifier = keyid\n";

    $ext .= 'subjectAltName = ' . join(', ', map { "DNS:$_" } @names) . "\n"
        if @names;

    return $self->_make($name, subject => "/O=tavus tests/CN=$cn",
                        issuer => $o{issuer} // die("leaf: no issuer"),
                        ext => $ext, expired => $o{expired}, days => 30);
}

# a file with the certificate and then the ones named (its chain)

sub chain {
    my ($self, $name, @more) = @_;

    my $path = "$self->{dir}/$name+" . join('+', @more) . '.pem';

    return $path if -e $path;

    my $pem = join '', map { $self->{t}->read_file($self->crt($_)) }
                       $name, @more;
    $self->_write("$name+" . join('+', @more) . '.pem', $pem);

    return $path;
}

sub _make {
    my ($self, $name, %o) = @_;

    my $d = $self->{dir};
    my $crt = $self->crt($name);
    my $key = $self->key($name);

    $self->_write("$name.ext", "[ ext ]\n$o{ext}");

    $self->_openssl('req', '-config', "$d/openssl.cnf", '-new',
                    '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                    '-nodes', '-keyout', $key, '-subj', $o{subject},
                    '-out', "$d/$name.csr");

    if (!$o{issuer}) {
        $self->_openssl('x509', '-req', '-in', "$d/$name.csr",
                        '-signkey', $key, '-days', $o{days},
                        '-set_serial', ++$serial, '-sha256',
                        '-extfile', "$d/$name.ext", '-extensions', 'ext',
                        '-out', $crt);

    } elsif ($o{expired}) {
        # x509 -req in OpenSSL 3.0 has no -not_before/-not_after; `ca`
        # takes explicit dates
        $self->_openssl('ca', '-batch', '-config', "$d/openssl.cnf",
                        '-cert', $self->crt($o{issuer}),
                        '-keyfile', $self->key($o{issuer}),
                        '-in', "$d/$name.csr", '-notext',
                        '-startdate', '20200101000000Z',
                        '-enddate', '20200131000000Z',
                        '-extfile', "$d/$name.ext", '-extensions', 'ext',
                        '-out', $crt);

    } else {
        $self->_openssl('x509', '-req', '-in', "$d/$name.csr",
                        '-CA', $self->crt($o{issuer}),
                        '-CAkey', $self->key($o{issuer}),
                        '-days', $o{days}, '-set_serial', ++$serial,
                        '-sha256',
                        '-extfile', "$d/$name.ext", '-extensions', 'ext',
                        '-out', $crt);
    }

    return $crt;
}

sub _openssl {
    my ($self, @args) = @_;

    my $log = "$self->{dir}/openssl.log";

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        chdir $self->{dir};
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        exec 'openssl', @args or POSIX::_exit(127);
    }

    waitpid($pid, 0);

    die "openssl @args failed (status $?):\n"
        . $self->{t}->read_file($log) if $?;
}

sub _write {
    my ($self, $name, $content) = @_;
    return $self->{t}->write_file("$self->{dir}/$name", $content);
}

# the nginx mock of Tavus (t/lib/mock-tavus.conf) listening with TLS:
#
#   name, port, key         as TavusTest::mock_tavus
#   cert, cert_key          the server certificate (a chain file) and key
#   client_ca               a client certificate is required, from this CA
#   protocols               ssl_protocols (default TLSv1.2 TLSv1.3: nginx
#                           1.22's own default has no TLSv1.3)
#
# Besides its usual access log, <name>_tls.access.log has a line a request:
#     conn= reqs= sni=$ssl_server_name reused=$ssl_session_reused
#     proto=$ssl_protocol client=$ssl_client_verify

sub mock_tavus_tls {
    my ($t, %a) = @_;

    my $name = $a{name} // 'tavus';
    my $text = $t->mock_tavus(name => $name, port => $a{port},
                              key => $a{key});

    my $tls = '    ssl_protocols ' . ($a{protocols} // 'TLSv1.2 TLSv1.3')
              . ";\n"
              . "    ssl_certificate $a{cert};\n"
              . "    ssl_certificate_key $a{cert_key};\n"
              . "    access_log ${name}_tls.access.log mock_tls_$name;\n";

    $tls .= "    ssl_verify_client on;\n"
            . "    ssl_client_certificate $a{client_ca};\n"
        if $a{client_ca};

    $text =~ s/^(\s*listen\s+127\.0\.0\.1:\d+)\s*;\s*$/$1 ssl;\n$tls/m
        or die "mock_tavus_tls: no 'listen 127.0.0.1:PORT;' line in"
               . " t/lib/mock-tavus.conf";

    return "log_format mock_tls_$name 'conn=\$connection"
           . " reqs=\$connection_requests sni=\$ssl_server_name"
           . " reused=\$ssl_session_reused proto=\$ssl_protocol"
           . " client=\$ssl_client_verify';\n\n" . $text;
}

# its TLS access log: a list of hashes

sub tls_log {
    my ($t, $name) = @_;

    return map { +{ /(\w+)=(\S*)/g } }
           split /\n/, $t->read_file("${name}_tls.access.log");
}

1;
