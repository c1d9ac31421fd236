#!/usr/bin/perl

# tavus_api_key with a variable: per-tenant keys through a map, and keys
# that evaluate empty or with control bytes at run time (500
# gateway_misconfigured, no upstream connection).  A literal part next to
# a variable is refused at load (t/34-key-syntax.t).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use TavusTest;

my $t = TavusTest->new->require_module;

my $gw = $t->port('gw');

my $m = $t->raw_mock(port => $t->port('up'), script => [ [
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    . "Content-Length: 2\r\n\r\n{}"
] ]);
my $up = $t->port('up');

$t->run(<<'HTTP');
    map $http_x_tenant $tenant_key {
        alpha     key-Alpha_1;
        beta      key-Beta_2;
        spaced    "key Spaced";
        default   "";
    }

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        tavus_pass http://127.0.0.1:%%PORT_up%%;

        location ~ ^/tenant/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
            tavus_api_key $tenant_key;
        }

        location ~ ^/header/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
            tavus_api_key $http_x_tenant_key;
        }
    }
HTTP

sub expected {
    my ($id, $key) = @_;
    return "DELETE /v2/replicas/$id HTTP/1.1\r\nHost: 127.0.0.1:$up\r\n"
           . "x-api-key: $key\r\n\r\n";
}

# keys from the map

for my $tenant (qw(alpha beta)) {
    my $key = $tenant eq 'alpha' ? 'key-Alpha_1' : 'key-Beta_2';
    my $n = $m->connections;

    my $r = $t->http(port => $gw, method => 'DELETE', path => "/tenant/r$n",
                     headers => [ 'X-Tenant' => $tenant ]);
    $t->answer($r, 200, { replica_id => "r$n", deleted => JSON::PP::true },
               "tenant $tenant");

    is($t->printable(($m->requests)[-1] // ''),
       $t->printable(expected("r$n", $key)), "tenant $tenant: its key sent");
    is($m->connections, $n + 1, "tenant $tenant: one connection");
}

# keys from a client header (the operator's choice)

my $r = $t->http(port => $gw, method => 'DELETE', path => '/header/r1',
                 headers => [ 'X-Tenant-Key' => 'hdr-Key_3' ]);
$t->answer($r, 200, { replica_id => 'r1', deleted => JSON::PP::true },
           'key from a header');
is($t->printable(($m->requests)[-1] // ''),
   $t->printable(expected('r1', 'hdr-Key_3')), 'key from a header: sent');

# keys that are not usable at run time

my $connections = $m->connections;

my @bad = (
    [ 'unknown tenant: empty key', '/tenant/r1', [ 'X-Tenant' => 'gamma' ] ],
    [ 'no tenant header: empty key', '/tenant/r1', [] ],
    [ 'no key header: empty key', '/header/r1', [] ],
    [ 'empty key header', '/header/r1', [ 'X-Tenant-Key' => '' ] ],
    [ 'key header with a tab', '/header/r1',
      [ 'X-Tenant-Key' => "bad\tKey_5" ] ],
    [ 'key header with a DEL', '/header/r1',
      [ 'X-Tenant-Key' => "bad\x7fKey_6" ] ],
);

for my $case (@bad) {
    my ($name, $path, $headers) = @$case;

    $r = $t->http(port => $gw, method => 'DELETE', path => $path,
                  headers => $headers);

    $t->answer($r, 500, { code => 'gateway_misconfigured', replica_id => 'r1',
                          error => qr/\S/ }, $name);
    unlike($r->{raw}, qr/Key_[56]/, "$name: the key is not shown");
    is($m->connections, $connections, "$name: no upstream connection");
}

# a space inside a key is not a control byte

$r = $t->http(port => $gw, method => 'DELETE', path => '/tenant/r9',
              headers => [ 'X-Tenant' => 'spaced' ]);
$t->answer($r, 200, { replica_id => 'r9' }, 'key with a space inside');
is($t->printable(($m->requests)[-1] // ''),
   $t->printable(expected('r9', 'key Spaced')), 'key with a space: sent');

# an invalid id is refused before the key is evaluated or not

$r = $t->http(port => $gw, method => 'DELETE', path => '/tenant/a.b');
ok($r->{status} == 400 || $r->{status} == 500,
   'invalid id and an empty key: 400 or 500')
    or diag("status $r->{status}");

# keys the client did not send itself must not be logged, debug included
# (nginx logs the client's own headers at debug level, so hdr-Key_3 may be)

my $log = $t->error_log;
my @seen = grep { index($log, $_) >= 0 } qw(key-Alpha_1 key-Beta_2);
ok(!@seen, 'no key in the error log') or diag("seen: @seen");
diag(join "\n", grep { /key-Alpha_1|key-Beta_2/ } split /\n/, $log)
    if @seen;

$t->stop;

done_testing;
