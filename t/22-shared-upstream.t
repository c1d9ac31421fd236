#!/usr/bin/perl

# An upstream{} group shared with proxy_pass, or with another delete
# location that trusts other CAs.  nginx keeps kept-alive connections per
# group and TLS sessions per server of a group, for every module that uses
# the group: the key must still travel only over a connection whose
# handshake this location's own SSL context made and verified.
#
#   1. keepalive: a connection that proxy_pass opened (verification off,
#      nginx's default) is never used for a delete: it is closed, and a
#      new connection is verified by the delete location itself; the
#      location's own connections are reused as before
#   2. sessions, TLSv1.2 and TLSv1.3: a session that proxy_pass verified
#      against another CA is never resumed for a delete; the location's
#      own sessions are resumed as before
#   3. two delete locations with different tavus_ssl_* settings on one
#      group: each uses only its own connections and sessions
#   4. one SSL context, two names: two groups of the same server, named
#      after two hosts, whose delete locations share a context; a session
#      is resumed only for the name it was verified for; and
#      tavus_ssl_name takes no variables
#   5. a plain http:// group: what an operator gets (no verification to
#      keep; connections are shared with proxy_pass)
#
# The mocks are nginx servers of the test's own nginx that log whether the
# key they received was the right one (key=ok), never the key.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use TavusTest qw(delete_location server_block upstream_group);
use TavusTLS;

my $t = TavusTest->new->require_module;

my $KEY = 'shared-Key_0815';
my $true = JSON::PP::true;
my $gw = $t->port('gw');
my $p = $t->prefix;

$t->key_file('api.key', $KEY);

###############################################################################
# the PKI: the delete locations trust "root"; proxy_pass trusts "proxyca"

my $pki = TavusTLS->new($t);

$pki->ca('root');
$pki->ca('proxyca');
$pki->ca('other');
$pki->leaf('api', issuer => 'root', names => ['tavusapi.test']);
$pki->leaf('papi', issuer => 'proxyca', names => ['tavusapi.test']);
$pki->leaf('both', issuer => 'root', names => ['tavusapi.test', 'other.test']);

my $root = $pki->crt('root');

# mock => [ certificate, key, protocols, keepalive ]
my %mocks = (
    # proxy_pass with verification off opens the connection first
    ka_rogue   => [ $pki->crt('papi'), $pki->key('papi'), undef, 1 ],
    # the delete location's own connections, and proxy_pass's
    ka_good    => [ $pki->crt('api'), $pki->key('api'), undef, 1 ],
    # sessions only: the mock closes every connection after its answer
    s12_rogue  => [ $pki->crt('papi'), $pki->key('papi'), 'TLSv1.2', 0 ],
    s13_rogue  => [ $pki->crt('papi'), $pki->key('papi'), 'TLSv1.3', 0 ],
    s12_good   => [ $pki->crt('api'), $pki->key('api'), 'TLSv1.2', 0 ],
    s13_good   => [ $pki->crt('api'), $pki->key('api'), 'TLSv1.3', 0 ],
    mixed      => [ $pki->crt('api'), $pki->key('api'), undef, 1 ],
    mixed_s    => [ $pki->crt('api'), $pki->key('api'), 'TLSv1.2', 0 ],
    names      => [ $pki->crt('both'), $pki->key('both'), undef, 0 ],
);

my $conf = '';

for my $name (sort keys %mocks) {
    my ($cert, $key, $protocols, $ka) = @{ $mocks{$name} };

    my $text = TavusTLS::mock_tavus_tls($t, name => $name, key => $KEY,
                                        cert => $cert, cert_key => $key,
                                        protocols => $protocols);

    # no keepalive: every handshake is a new one, resumed or not
    $text =~ s/^(\s*keepalive_requests\s+\d+;)$/$1\n    keepalive_timeout 0;/m
        or die 'no keepalive_requests in the mock'
        unless $ka;

    $conf .= $text;
}

$conf .= $t->mock_tavus(name => 'plain', key => $KEY);

for my $name (sort keys %mocks) {
    $conf .= upstream_group("g_$name", [ "127.0.0.1:%%PORT_$name%%" ],
                            $mocks{$name}[3] ? 'keepalive 4;' : '');
}

# two groups of the one server of both names
$conf .= upstream_group('tavusapi.test', [ '127.0.0.1:%%PORT_names%%' ])
         . upstream_group('other.test', [ '127.0.0.1:%%PORT_names%%' ])
         . upstream_group('g_plain', [ '127.0.0.1:%%PORT_plain%%' ],
                          'keepalive 4;');

$conf .= "\n    log_format gw 'outcome=\$tavus_outcome uri=\$uri "
         . "status=\$status';\n\n";

# a delete location as the operator writes it: tavus_pass PASS, the key
# file, and what else it sets

sub location_on {
    my ($path, $pass, @directives) = @_;
    return delete_location($path, "tavus_pass $pass;",
                           "tavus_api_key_file $p/api.key;", @directives);
}

# a proxy_pass location on the group of a mock
sub proxy_location {
    my ($name, $scheme, @directives) = @_;
    return "        location /proxy/$name/ {\n"
           . "            proxy_pass $scheme://g_$name/v2/replicas/;\n"
           . join('', map { "            $_\n" } @directives)
           . "        }\n";
}

my $ssl_name = 'tavus_ssl_name tavusapi.test;';
my $trust_root = "tavus_ssl_trusted_certificate $root;";
my $trust_other = 'tavus_ssl_trusted_certificate ' . $pki->crt('other') . ';';

# a delete location per group, and the other delete location of the
# mixed groups, which trusts another CA

my @locations = (
    (map { location_on($_, "https://g_$_", $ssl_name, $trust_root) }
         sort keys %mocks),
    (map { location_on("${_}_other", "https://g_$_", $ssl_name, $trust_other) }
         qw(mixed mixed_s)),
    location_on('name_a', 'https://tavusapi.test', $trust_root),
    location_on('name_b', 'https://other.test', $trust_root),
    location_on('plain', 'http://g_plain'),
);

# proxy_pass locations on the same groups: kept-alive connections with
# verification off (nginx's default), sessions verified against proxyca

my @keepalive = ('proxy_http_version 1.1;', 'proxy_set_header Connection "";');

push @locations, proxy_location('plain', 'http', @keepalive),
                 map { proxy_location($_, 'https', @keepalive) }
                     qw(ka_rogue ka_good);

for my $name (qw(s12_rogue s13_rogue s12_good s13_good mixed_s)) {
    my $ca = $name =~ /rogue/ ? $pki->crt('proxyca') : $root;
    push @locations, proxy_location($name, 'https',
        'proxy_ssl_verify on;',
        "proxy_ssl_trusted_certificate $ca;",
        'proxy_ssl_name tavusapi.test;',
        'proxy_ssl_server_name on;',
        'proxy_ssl_session_reuse on;',
        'proxy_ssl_protocols TLSv1.2 TLSv1.3;');
}

$conf .= server_block('gw', 'access_log %%PREFIX%%/gw.access.log gw;',
                      @locations);

$t->run($conf);

###############################################################################
# helpers

sub del {
    my ($loc, $id) = @_;
    $t->new_errors;
    return $t->http(port => $gw, method => 'DELETE', path => "/$loc/$id");
}

sub proxy_get {
    my ($name) = @_;
    return $t->http(port => $gw, path => "/proxy/$name/rproxied");
}

# what reached a mock: its requests and the key check of each

sub seen {
    my ($mock) = @_;
    return [ map { "$_->{method} $_->{uri} key=$_->{key}" }
             $t->mock_log($mock) ];
}

sub deleted_ok {
    my ($loc, $id, $name) = @_;
    my $r = del($loc, $id);
    $t->answer($r, 200, { replica_id => $id, deleted => $true }, $name);
}

sub refused {
    my ($loc, $id, $name) = @_;

    my $r = del($loc, $id);
    $t->answer($r, 502, { code => 'upstream_error', replica_id => $id },
               $name);
    like(scalar $t->new_errors, qr/upstream SSL certificate verify error/,
         "$name: a handshake of its own, which verification refused");
}

###############################################################################
# 1. keepalive: proxy_pass opens, with verification off, a connection to
# a server the delete location does not trust

refused('ka_rogue', 'r1', 'keepalive, untrusted server: first delete');

my $r = proxy_get('ka_rogue');
is($r->{status}, 405, 'keepalive: proxy_pass reaches the untrusted server'
                      . ' (verification off)');

refused('ka_rogue', 'r2', 'keepalive, after proxy_pass opened a connection');

is_deeply(seen('ka_rogue'), [ 'GET /v2/replicas/rproxied key=bad' ],
          'keepalive: the untrusted server saw proxy_pass\'s request only,'
          . ' no delete, no key');

# a server the delete location trusts: proxy_pass's connection is not
# used, the delete location's own is, again and again

$r = proxy_get('ka_good');
is($r->{status}, 405, 'keepalive, trusted server: proxy_pass first');

deleted_ok('ka_good', 'r3', 'keepalive: delete after proxy_pass');
deleted_ok('ka_good', 'r4', 'keepalive: the next delete');

my @log = $t->mock_log('ka_good');
is(scalar @log, 3, 'keepalive: three requests reached the server');
isnt($log[1]{conn}, $log[0]{conn},
     'keepalive: the delete did not use proxy_pass\'s connection');
is($log[2]{conn}, $log[1]{conn},
   'keepalive: the next delete used the delete location\'s own connection');
is($log[2]{reqs}, 2, 'keepalive: its second request');

my @tls = TavusTLS::tls_log($t, 'ka_good');
is($tls[1]{reused}, '.', 'keepalive: the delete\'s connection is a full'
                         . ' handshake, not proxy_pass\'s session');

###############################################################################
# 2. sessions: proxy_pass verifies the server against its own CA and
# saves the session; the delete location must not resume it

for my $proto (qw(12 13)) {
    my $rogue = "s${proto}_rogue";
    my $good = "s${proto}_good";
    my $v = $proto eq "12" ? "TLSv1.2" : "TLSv1.3";

    $r = proxy_get($rogue);
    is($r->{status}, 405, "$v: proxy_pass verified the server against"
                          . ' its CA');
    $r = proxy_get($rogue);
    is((TavusTLS::tls_log($t, $rogue))[-1]{reused}, 'r',
       "$v: proxy_pass resumes its own session");

    refused($rogue, 'r5', "$v: delete after proxy_pass saved a session");

    is_deeply(seen($rogue), [ ('GET /v2/replicas/rproxied key=bad') x 2 ],
              "$v: the server the delete location does not trust saw no"
              . ' delete, no key');

    # a server the delete location trusts: its own sessions are resumed,
    # proxy_pass's are not

    deleted_ok($good, 'r6', "$v: first delete");
    deleted_ok($good, 'r7', "$v: second delete");

    $r = proxy_get($good);
    is($r->{status}, 405, "$v: proxy_pass, after the deletes");
    $r = proxy_get($good);
    is($r->{status}, 405, "$v: proxy_pass again");

    deleted_ok($good, 'r8', "$v: delete after proxy_pass");
    deleted_ok($good, 'r9', "$v: the next delete");

    # the deletes resume their own session, proxy_pass its own: neither
    # is handed the other's

    is(join(' ', map { "$_->{reused}" } TavusTLS::tls_log($t, $good)),
       '. r . r r r', "$v: sessions resumed by their own maker only");

    is_deeply(seen($good), [ (map { "DELETE /v2/replicas/$_ key=ok" }
                              qw(r6 r7)),
                             ('GET /v2/replicas/rproxied key=bad') x 2,
                             map { "DELETE /v2/replicas/$_ key=ok" }
                             qw(r8 r9) ],
              "$v: what the trusted server saw");
}

###############################################################################
# 3. two delete locations with different tavus_ssl_* settings on one
# group: nginx -t accepts it, and neither uses the other's connections or
# sessions

for my $case ([ mixed => 'keepalive' ], [ mixed_s => 'sessions' ]) {
    my ($name, $what) = @$case;

    deleted_ok($name, 'r10', "two locations, $what: the trusting one");
    refused("${name}_other", 'r11',
            "two locations, $what: the other, after the first");
    deleted_ok($name, 'r12', "two locations, $what: the trusting one again");
    refused("${name}_other", 'r13',
            "two locations, $what: the other again");

    is_deeply(seen($name), [ map { "DELETE /v2/replicas/$_ key=ok" }
                             qw(r10 r12) ],
              "two locations, $what: only the trusting location's deletes"
              . ' reached the server');
}

# the other location cannot use the trusting one's idle connection, and
# closes it: sharing a group costs connections, never verification

@log = $t->mock_log('mixed');
is(join(' ', map { $_->{reqs} } @log), '1 1',
   'two locations, keepalive: a new connection after the other location'
   . ' closed the idle one');

is(join(' ', map { $_->{reused} } TavusTLS::tls_log($t, 'mixed_s')), '. r',
   'two locations, sessions: the trusting location resumed its own session');

###############################################################################
# 4. one context, two names: a session verified for one is not offered for
# the other, though the server address is the same

deleted_ok('name_a', 'r20', 'two names: tavusapi.test');
deleted_ok('name_b', 'r21', 'two names: other.test');
deleted_ok('name_a', 'r22', 'two names: tavusapi.test again');
deleted_ok('name_b', 'r23', 'two names: other.test again');

is(join(' ', map { "$_->{sni}:$_->{reused}" } TavusTLS::tls_log($t, 'names')),
   'tavusapi.test:. other.test:. tavusapi.test:r other.test:r',
   'two names: each resumes only its own name\'s session');

{
    my ($ok, $out) = $t->nginx_t(<<'HTTP');
    server {
        listen 127.0.0.1:%%PORT_gw%%;

        location ~ ^/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
            tavus_pass https://127.0.0.1:1;
            tavus_api_key K-1;
            tavus_ssl_name $host;
        }
    }
HTTP

    ok(!$ok, 'tavus_ssl_name with variables: nginx -t fails');
    like($out, qr/"tavus_ssl_name" directive cannot have variables: a (?#
                  )delete's connections and sessions are verified for one (?#
                  )name in \S+:\d+/,
         'tavus_ssl_name with variables: the reason and the place');
}

###############################################################################
# 5. plain http://: there is nothing to verify, and a group's kept-alive
# connections are shared with proxy_pass, as nginx shares them

$r = $t->http(port => $gw, path => '/proxy/plain/rproxied');
is($r->{status}, 405, 'plain: proxy_pass first');

deleted_ok('plain', 'r14', 'plain: a delete');

@log = $t->mock_log('plain');
is($log[1]{conn}, $log[0]{conn},
   'plain: the delete used the kept-alive connection proxy_pass opened');
is($log[1]{key}, 'ok', 'plain: with the key');

###############################################################################

my $all = $t->error_log . $t->read_file('gw.access.log');
ok(index($all, $KEY) < 0, 'no key in the logs');

$t->stop;

done_testing;
