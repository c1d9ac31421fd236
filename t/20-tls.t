#!/usr/bin/perl

# TLS to the upstream (docs/decisions.md, "TLS"): verification on by default
# and failing closed (no byte of HTTP, so no key, reaches a server that cannot
# prove its name), SNI, chains with an intermediate, keepalive and session
# reuse over TLS, client certificates, handshake timeouts, a plaintext server.
#
# Certificates are made now with the openssl command (t/lib/TavusTLS.pm);
# the mock upstreams are nginx `listen ... ssl` servers in the test's own
# nginx (t/lib/mock-tavus.conf), one a case.  nginx 1.22 keeps SSL
# sessions and kept-alive connections per upstream{} group, so each case
# has its own group: a session made by one location cannot be resumed by
# another with other trust settings.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use Time::HiRes ();
use TavusTest;
use TavusTLS;

my $t = TavusTest->new->require_module;

my $KEY = 'tls-Key_4711';
my $gw = $t->port('gw');
my $true = JSON::PP::true;

$t->write_file('api.key', "$KEY\n");

###############################################################################
# the PKI

my $pki = TavusTLS->new($t);

$pki->ca('root');
$pki->ca('inter', issuer => 'root', pathlen => 0);
$pki->leaf('api', issuer => 'inter', names => ['tavusapi.test']);
$pki->leaf('other', issuer => 'inter', names => ['other.test']);
$pki->leaf('wrong', issuer => 'inter', names => ['wrong.test']);
$pki->leaf('expired', issuer => 'inter', names => ['tavusapi.test'],
           expired => 1);

# an unknown CA: its leaf has the right name and a complete chain
$pki->ca('rogue');
$pki->leaf('rogue_api', issuer => 'rogue', names => ['tavusapi.test']);

# client certificates: one from the CA the mock trusts, one from another
$pki->ca('clients');
$pki->leaf('client', issuer => 'clients', client => 1);
$pki->leaf('rogue_client', issuer => 'rogue', client => 1);

my $api = $pki->chain('api', 'inter');

# name => [ certificate file, key file, client CA ]
my %mocks = (
    good        => [ $api, $pki->key('api') ],
    system      => [ $api, $pki->key('api') ],
    nointer     => [ $pki->crt('api'), $pki->key('api') ],
    rogue       => [ $pki->chain('rogue_api', 'rogue'), $pki->key('rogue_api') ],
    wrongname   => [ $pki->chain('wrong', 'inter'), $pki->key('wrong') ],
    expired     => [ $pki->chain('expired', 'inter'), $pki->key('expired') ],
    other       => [ $pki->chain('other', 'inter'), $pki->key('other') ],
    nosni       => [ $api, $pki->key('api') ],
    reuse       => [ $api, $pki->key('api') ],
    noreuse     => [ $api, $pki->key('api') ],
    mtls        => [ $api, $pki->key('api'), $pki->crt('clients') ],
    tls12       => [ $api, $pki->key('api'), undef, 'TLSv1.2' ],
);

my $mock_conf = '';

for my $name (sort keys %mocks) {
    my ($cert, $key, $ca, $protocols) = @{ $mocks{$name} };
    $mock_conf .= TavusTLS::mock_tavus_tls($t, name => $name, key => $KEY,
                                           cert => $cert, cert_key => $key,
                                           client_ca => $ca,
                                           protocols => $protocols);
}

# a plaintext Tavus on the port the gateway talks TLS to
$mock_conf .= $t->mock_tavus(name => 'plain', key => $KEY);

# a TCP server that accepts and never answers the ClientHello
my $hang = $t->raw_mock(port => $t->port('hang'), script => [ [ { hang => 1 } ] ]);

###############################################################################

my $root = $pki->crt('root');
my $p = $t->prefix;

# one location and one upstream group a case; the common part
my $common = <<"C";
            tavus_api_key_file $p/api.key;
            tavus_ssl_trusted_certificate $root;
C

my %loc = (
    # the group is named after the API host: SNI and name from it
    good => "tavus_pass https://tavusapi.test;\n$common",

    # no tavus_ssl_trusted_certificate: the system store, still verifying
    system => "tavus_pass https://g_system;\n"
              . "tavus_ssl_name tavusapi.test;\n"
              . "tavus_api_key_file $p/api.key;\n",

    nointer => "tavus_pass https://g_nointer;\n"
               . "tavus_ssl_name tavusapi.test;\n$common",
    rogue => "tavus_pass https://g_rogue;\n"
             . "tavus_ssl_name tavusapi.test;\n$common",
    wrongname => "tavus_pass https://g_wrongname;\n"
                 . "tavus_ssl_name tavusapi.test;\n$common",
    expired => "tavus_pass https://g_expired;\n"
               . "tavus_ssl_name tavusapi.test;\n$common",

    # the unknown CA's server, verification off
    verify_off => "tavus_pass https://g_rogue_off;\n"
                  . "tavus_ssl_verify off;\n"
                  . "tavus_api_key_file $p/api.key;\n",

    # tavus_ssl_name sets SNI and the name checked
    other => "tavus_pass https://g_other;\n"
             . "tavus_ssl_name other.test;\n$common",
    # the default name is the group's name, which other.test's
    # certificate does not have
    other_default => "tavus_pass https://g_other_default;\n$common",

    nosni => "tavus_pass https://g_nosni;\n"
             . "tavus_ssl_name tavusapi.test;\n"
             . "tavus_ssl_server_name off;\n$common",

    reuse => "tavus_pass https://g_reuse;\n"
             . "tavus_ssl_name tavusapi.test;\n$common",
    noreuse => "tavus_pass https://g_noreuse;\n"
               . "tavus_ssl_name tavusapi.test;\n"
               . "tavus_ssl_session_reuse off;\n$common",

    # a TLSv1.2 server: accepted by default, refused when only TLSv1.3 is
    tls12 => "tavus_pass https://g_tls12;\n"
             . "tavus_ssl_name tavusapi.test;\n$common",
    tls13 => "tavus_pass https://g_tls13;\n"
             . "tavus_ssl_name tavusapi.test;\n"
             . "tavus_ssl_protocols TLSv1.3;\n$common",

    hang => "tavus_pass https://127.0.0.1:%%PORT_hang%%;\n"
            . "tavus_ssl_name tavusapi.test;\n"
            . "tavus_connect_timeout 500ms;\n"
            . "tavus_send_timeout 10s;\n"
            . "tavus_read_timeout 10s;\n$common",

    plain => "tavus_pass https://127.0.0.1:%%PORT_plain%%;\n"
             . "tavus_ssl_name tavusapi.test;\n$common",

    mtls => "tavus_pass https://g_mtls;\n"
            . "tavus_ssl_name tavusapi.test;\n"
            . 'tavus_ssl_certificate ' . $pki->crt('client') . ";\n"
            . 'tavus_ssl_certificate_key ' . $pki->key('client') . ";\n"
            . $common,
    mtls_none => "tavus_pass https://g_mtls_none;\n"
                 . "tavus_ssl_name tavusapi.test;\n$common",
    mtls_rogue => "tavus_pass https://g_mtls_rogue;\n"
                  . "tavus_ssl_name tavusapi.test;\n"
                  . 'tavus_ssl_certificate ' . $pki->crt('rogue_client')
                  . ";\n"
                  . 'tavus_ssl_certificate_key ' . $pki->key('rogue_client')
                  . ";\n$common",
);

# group => mock
my %groups = (
    'tavusapi.test' => 'good', g_system => 'system', g_nointer => 'nointer',
    g_rogue => 'rogue', g_wrongname => 'wrongname', g_expired => 'expired',
    g_rogue_off => 'rogue', g_other => 'other',
    g_other_default => 'other', g_nosni => 'nosni', g_reuse => 'reuse',
    g_noreuse => 'noreuse', g_mtls => 'mtls', g_mtls_none => 'mtls',
    g_mtls_rogue => 'mtls', g_tls12 => 'tls12', g_tls13 => 'tls12',
);

my $conf = $mock_conf;

for my $g (sort keys %groups) {
    # keepalive where connections are counted; not where sessions are
    # (nginx 1.29.7 made keepalive the default of an upstream{} block:
    # "keepalive 0" turns it off there, and is refused before)
    my $ka = $g !~ /reuse/ ? "        keepalive 4;\n"
             : $t->nginx_version >= 1029007 ? "        keepalive 0;\n" : '';
    $conf .= "    upstream $g {\n"
             . "        server 127.0.0.1:%%PORT_$groups{$g}%%;\n$ka    }\n\n";
}

$conf .= <<'HTTP';
    log_format gw 'outcome=$tavus_outcome upstream=$upstream_addr';

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        access_log %%PREFIX%%/gw.access.log gw;

HTTP

for my $l (sort keys %loc) {
    (my $body = $loc{$l}) =~ s/^\s*/            /mg;
    $conf .= "        location ~ ^/$l/(?<replica>[^/]*)\$ {\n"
             . "            tavus_delete_replica \$replica;\n"
             . "$body        }\n\n";
}

$conf .= "    }\n";

$t->run($conf);

###############################################################################
# helpers

# the gateway's error log since the last call, without debug lines

sub new_errors { return scalar $t->new_errors }

sub del {
    my ($loc, $id, %o) = @_;
    new_errors();
    return $t->http(port => $gw, method => 'DELETE', path => "/$loc/$id", %o);
}

sub no_key {
    my ($what, $text) = @_;
    ok(index($text, $KEY) < 0, "no key in $what");
}

# a verification failure: 502 upstream_error, the reason logged, and the
# mock (whose certificate the gateway received and refused) saw no request

sub fails_closed {
    my ($loc, $mock, $why, $name) = @_;

    my $r = del($loc, 'r1');
    $t->answer($r, 502, { code => 'upstream_error', replica_id => 'r1' },
               $name);
    no_key("$name: the answer", $r->{raw});

    my $log = new_errors();
    like($log, $why, "$name: the error log says why");
    no_key("$name: the error log", $log);

    is(scalar($t->mock_log($mock)), 0, "$name: no HTTP request reached"
                                       . " the server");
    is(scalar(TavusTLS::tls_log($t, $mock)), 0,
       "$name: no request in its TLS log either");
}

sub tls_last {
    my ($mock) = @_;
    return (TavusTLS::tls_log($t, $mock))[-1] // {};
}

###############################################################################
# a valid chain: the root trusted, the intermediate served by the server

my $r = del('good', 'r1');
$t->answer($r, 200, { replica_id => 'r1', deleted => $true }, 'valid chain');

my @log = $t->mock_log('good');
is(scalar @log, 1, 'valid chain: the mock saw one request');
is($log[0]{key}, 'ok', 'valid chain: with the key');
is($log[0]{uri}, '/v2/replicas/r1', 'valid chain: the URI');

my $tls = tls_last('good');
is($tls->{sni}, 'tavusapi.test',
   'SNI: the upstream group name by default');
is($tls->{proto}, 'TLSv1.3', 'TLSv1.3 with a server that has it');

# keepalive over TLS: the next deletes use the same connection

for my $id (qw(r2 r3 r4)) {
    $r = del('good', $id);
    $t->answer($r, 200, { replica_id => $id, deleted => $true },
               "keepalive $id");
}

@log = $t->mock_log('good');
is(join(' ', map { $_->{uri} } @log),
   join(' ', map { "/v2/replicas/$_" } qw(r1 r2 r3 r4)),
   'keepalive: the mock saw 4 deletes');
is(join(' ', map { $_->{reqs} } @log), '1 2 3 4',
   'keepalive: requests 1 to 4 on a connection');
is(scalar(keys %{{ map { $_->{conn} => 1 } @log }}), 1,
   'keepalive: one TLS connection');

###############################################################################
# verification failures: 502, nothing sent

fails_closed('system', 'system',
             qr/upstream SSL certificate verify error: \(20:unable to get (?#
                )local issuer certificate\)/,
             'system CA store, private root');

fails_closed('nointer', 'nointer',
             qr/upstream SSL certificate verify error: \(21:unable to (?#
                )verify the first certificate\)/,
             'intermediate not served');

fails_closed('rogue', 'rogue',
             qr/upstream SSL certificate verify error: \(19:self[- ]signed (?#
                )certificate in certificate chain\)/,
             'unknown CA');

fails_closed('wrongname', 'wrongname',
             qr/upstream SSL certificate does not match "tavusapi\.test"/,
             'wrong host name');

fails_closed('expired', 'expired',
             qr/upstream SSL certificate verify error: \(10:certificate (?#
                )has expired\)/,
             'expired leaf');

fails_closed('other_default', 'other',
             qr/upstream SSL certificate does not match "g_other_default"/,
             'default name: the group name');

###############################################################################
# tavus_ssl_verify off: the unknown CA's server is accepted

$r = del('verify_off', 'r5');
$t->answer($r, 200, { replica_id => 'r5', deleted => $true },
           'tavus_ssl_verify off');
@log = $t->mock_log('rogue');
is(scalar @log, 1, 'verify off: the unknown CA\'s server saw one request');
is($log[0]{key} // '', 'ok', 'verify off: with the key');

###############################################################################
# SNI and the name checked: tavus_ssl_name, tavus_ssl_server_name

$r = del('other', 'r6');
$t->answer($r, 200, { replica_id => 'r6', deleted => $true },
           'tavus_ssl_name other.test');
is(tls_last('other')->{sni}, 'other.test', 'SNI: tavus_ssl_name');
is(scalar($t->mock_log('other')), 1,
   'tavus_ssl_name: one request reached the server');

$r = del('nosni', 'r7');
$t->answer($r, 200, { replica_id => 'r7', deleted => $true },
           'tavus_ssl_server_name off');
$tls = tls_last('nosni');
is($tls->{sni}, '-', 'tavus_ssl_server_name off: no SNI sent (logged as -)');

###############################################################################
# tavus_ssl_protocols: TLSv1.2 and TLSv1.3 by default

$r = del('tls12', 'r7');
$t->answer($r, 200, { replica_id => 'r7', deleted => $true },
           'a TLSv1.2 server');
is(tls_last('tls12')->{proto}, 'TLSv1.2', 'TLSv1.2 by default');

$r = del('tls13', 'r1');
$t->answer($r, 502, { code => 'upstream_error', replica_id => 'r1' },
           'tavus_ssl_protocols TLSv1.3, a TLSv1.2 server');
like(new_errors(), qr/\[error\] .*SSL_do_handshake\(\) failed .*protocol (?#
                     )version.* while SSL handshaking to upstream/,
     'tavus_ssl_protocols TLSv1.3: the error log says why');
is(scalar($t->mock_log('tls12')), 1,
   'tavus_ssl_protocols TLSv1.3: no request reached the TLSv1.2 server');

###############################################################################
# session reuse, without keepalive (none by default before nginx 1.29.7,
# "keepalive 0" since): the second connection resumes the first one's
# session, unless tavus_ssl_session_reuse is off

for my $case (qw(reuse noreuse)) {
    for my $id (qw(r8 r9)) {
        $r = del($case, $id);
        $t->answer($r, 200, { replica_id => $id, deleted => $true },
                   "$case $id");
    }
}

my @reuse = TavusTLS::tls_log($t, 'reuse');
is(join(' ', map { $_->{reused} } @reuse), '. r',
   'session reuse: the second connection resumes the session');
is(scalar(keys %{{ map { $_->{conn} => 1 } @reuse }}), 2,
   'session reuse: two connections');

my @noreuse = TavusTLS::tls_log($t, 'noreuse');
is(join(' ', map { $_->{reused} } @noreuse), '. .',
   'tavus_ssl_session_reuse off: full handshakes');

###############################################################################
# a server that accepts and never completes the handshake:
# tavus_connect_timeout bounds connect and handshake

my $t0 = Time::HiRes::time();
$r = del('hang', 'r1', timeout => 10);
my $took = Time::HiRes::time() - $t0;

$t->answer($r, 504, { code => 'upstream_timeout', replica_id => 'r1' },
           'handshake never completes');
ok($took >= 0.4 && $took < 4,
   'handshake timeout: after tavus_connect_timeout (500ms), not the 10s'
   . ' read timeout') or diag("took $took s");

my $log = new_errors();
like($log, qr/upstream timed out \(\d+: [^)]*\) while SSL handshaking/,
     'handshake timeout: the error log says why');
no_key('handshake timeout: the error log', $log);

my $bytes = $hang->received;
like($bytes, qr/^\x16\x03/, 'handshake timeout: the server got a ClientHello');
unlike($bytes, qr/DELETE|x-api-key|\Q$KEY\E/i,
       'handshake timeout: and no HTTP');

###############################################################################
# a plaintext HTTP server on the TLS port

$r = del('plain', 'r1');
$t->answer($r, 502, { code => 'upstream_error', replica_id => 'r1' },
           'plaintext server');
$log = new_errors();
like($log, qr/\[error\] .*SSL_do_handshake\(\) failed \(SSL: .*wrong (?#
              )version number\) while SSL handshaking to upstream/,
     'plaintext server: the error log says why');
no_key('plaintext server: the error log', $log);
is(scalar(grep { ($_->{method} // '') eq 'DELETE' } $t->mock_log('plain')),
   0, 'plaintext server: no DELETE reached it');

###############################################################################
# client certificates: the mock requires one from its CA

$r = del('mtls', 'r10');
$t->answer($r, 200, { replica_id => 'r10', deleted => $true },
           'client certificate');
is(tls_last('mtls')->{client}, 'SUCCESS',
   'client certificate: verified by the server');
is(($t->mock_log('mtls'))[-1]{uri}, '/v2/replicas/r10',
   'client certificate: the server saw the delete');

# without one, or with one from another CA, nginx's TLS handshake
# succeeds and its HTTP layer answers 400 with an HTML page (the request,
# key included, was sent: the client certificate is the server's check,
# not the gateway's); the module passes a 400 on as upstream_client_error

for my $case ([ mtls_none => 'NONE', 'no client certificate' ],
              [ mtls_rogue => qr/^FAILED:/, 'client certificate of'
                                            . ' another CA' ])
{
    my ($loc, $verify, $name) = @$case;

    $r = del($loc, 'r11');
    $t->answer($r, 400, { code => 'upstream_client_error',
                          replica_id => 'r11',
                          error => 'the upstream rejected the request' },
               $name,
               keys => [qw(code replica_id error)]);
    no_key("$name: the answer", $r->{raw});

    my $last = ($t->mock_log('mtls'))[-1];
    is($last->{status}, 400, "$name: the server answered 400");
    if (ref $verify) {
        like(tls_last('mtls')->{client}, $verify, "$name: \$ssl_client_verify");
    } else {
        is(tls_last('mtls')->{client}, $verify, "$name: \$ssl_client_verify");
    }
}

###############################################################################

my @gw = split /\n/, $t->read_file('gw.access.log');
is(scalar(grep { /outcome=upstream_error/ } @gw), 8,
   '$tavus_outcome: upstream_error for the 6 failed verifications, the'
   . ' protocol mismatch and the plaintext server');

no_key('the whole error log', $t->error_log);
no_key('the gateway access log', $t->read_file('gw.access.log'));

$t->stop;

done_testing;
