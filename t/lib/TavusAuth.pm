package TavusAuth;

# Helpers for the authentication and key-hygiene tests (t/30-auth.t,
# t/31-tenants.t, t/32-key-hygiene.t), on top of TavusTest (whose client,
# $t->http and $t->https, they use).  Core Perl only, plus the openssl
# command (Debian package openssl, in scripts/deps.sh).
#
#     use TavusAuth qw(:all);
#
#   openssl_cmd($t, ARGS...)          runs openssl in the prefix; dies with
#                                     its output if it fails
#   make_pki($t)                      a CA, a server certificate (localhost,
#                                     127.0.0.1, tavusapi.com), a client
#                                     certificate (CN=alice) and one from
#                                     another CA (CN=mallory): { name => path }
#   htpasswd($t, FILE, [USER, PASSWORD, SCHEME], ...)
#                                     an auth_basic_user_file made with
#                                     `openssl passwd -SCHEME` (apr1, 5, 6)
#   basic(USER, PASSWORD)             an Authorization header value
#   json_lines($t, FILE)              a JSON-lines log as a list of hashes
#   fingerprint(KEY)                  first 16 hex digits of SHA-256
#   files_under($t)                   every file in the prefix, relative
#   leaks(TEXT, SECRETS)              the secrets (or 8-byte pieces of their
#                                     secret part) found in TEXT

use strict;
use warnings;

use Exporter 'import';
use Test::More ();
use File::Find ();
use Digest::SHA ();
use MIME::Base64 ();
use JSON::PP ();
use POSIX ();

use TavusTest ();

our @EXPORT_OK = qw(openssl_cmd make_pki htpasswd basic json_lines
                    fingerprint files_under leaks);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

# runs a command with stdin from /dev/null; returns (exit status, output)

sub _run {
    my ($dir, @cmd) = @_;

    my $pid = open(my $fh, '-|') // die "fork: $!";

    if ($pid == 0) {
        chdir $dir or POSIX::_exit(126);
        open STDIN, '<', '/dev/null';
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }

    local $/;
    my $out = <$fh> // '';
    close $fh;

    return ($?, $out);
}

sub openssl_cmd {
    my ($t, @args) = @_;

    my ($status, $out) = _run($t->prefix, 'openssl', @args);
    die "openssl @args: exit status $status:\n$out" if $status;

    return $out;
}

# certificates for the TLS tests; EC keys, quick to make

sub make_pki {
    my ($t) = @_;

    my $p = $t->prefix;
    my @ec = ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
              '-nodes');

    $t->write_file('server.ext', "subjectAltName=DNS:localhost,"
                   . "DNS:tavusapi.com,IP:127.0.0.1\n"
                   . "extendedKeyUsage=serverAuth\n");
    $t->write_file('client.ext', "extendedKeyUsage=clientAuth\n");

    for my $ca (qw(ca rogue-ca)) {
        openssl_cmd($t, 'req', '-x509', @ec, '-keyout', "$ca.key",
                    '-out', "$ca.crt", '-days', '2',
                    '-subj', "/CN=Tavus test $ca");
    }

    my @certs = (
        [ 'server', 'ca', '/CN=localhost', 'server.ext' ],
        [ 'client', 'ca', '/O=Tenants/CN=alice', 'client.ext' ],
        [ 'rogue', 'rogue-ca', '/O=Tenants/CN=mallory', 'client.ext' ],
    );

    for my $c (@certs) {
        my ($name, $ca, $subj, $ext) = @$c;

        openssl_cmd($t, 'req', '-new', @ec, '-keyout', "$name.key",
                    '-out', "$name.csr", '-subj', $subj);
        openssl_cmd($t, 'x509', '-req', '-in', "$name.csr", '-CA', "$ca.crt",
                    '-CAkey', "$ca.key", '-set_serial',
                    int(rand(1e9)) + 1, '-days', '2', '-extfile', $ext,
                    '-out', "$name.crt");
    }

    return { map { ($_ => "$p/$_") }
             qw(ca.crt ca.key rogue-ca.crt server.crt server.key client.crt
                client.key rogue.crt rogue.key) };
}

# an htpasswd file: [ user, password, scheme ] with scheme apr1 (nginx's
# own MD5), 5 or 6 (SHA-crypt through crypt(3))

sub htpasswd {
    my ($t, $file, @users) = @_;

    my $text = '';

    for my $u (@users) {
        my ($user, $password, $scheme) = @$u;
        my $hash = openssl_cmd($t, 'passwd', "-$scheme", $password);
        chomp $hash;
        die "openssl passwd -$scheme: unexpected '$hash'"
            unless $hash =~ /^\$(?:apr1|5|6)\$/;
        $text .= "$user:$hash\n";
    }

    return $t->write_file($file, $text);
}

sub basic {
    my ($user, $password) = @_;
    return 'Basic ' . MIME::Base64::encode_base64("$user:$password", '');
}

# an access log written with escape=json, one object a line

sub json_lines {
    my ($t, $file) = @_;

    my $json = JSON::PP->new->utf8;
    my @lines;

    for my $line (split /\n/, $t->read_file($file)) {
        my $j = eval { $json->decode($line) };
        Test::More::diag("$file: not JSON: $line") unless ref $j eq 'HASH';
        push @lines, $j // {};
    }

    return @lines;
}

sub fingerprint {
    my ($key) = @_;
    return substr(Digest::SHA::sha256_hex($key), 0, 16);
}

sub files_under {
    my ($t) = @_;

    my $p = $t->prefix;
    my @files;

    File::Find::find({ no_chdir => 1, wanted => sub {
        push @files, substr($File::Find::name, length($p) + 1) if -f $_;
    } }, $p);

    return sort @files;
}

# secrets found in a text: each secret whole, and each 8-byte piece of
# the part after its last "-" (a cut key leaks as much as a whole one)

sub leaks {
    my ($text, @secrets) = @_;

    my @found;

    for my $s (@secrets) {
        if (index($text, $s) >= 0) {
            push @found, $s;
            next;
        }

        my ($secret) = $s =~ /([^-]+)\z/;
        next unless defined $secret && length $secret >= 8;

        for my $i (0 .. length($secret) - 8) {
            my $piece = substr($secret, $i, 8);
            if (index($text, $piece) >= 0) {
                push @found, "$s (the piece $piece)";
                last;
            }
        }
    }

    return @found;
}

1;
