#!/usr/bin/perl

# What the module refuses before any upstream call: invalid replica ids
# (400 invalid_replica_id) and methods other than DELETE (405).  A raw mock
# upstream counts connections: none may be opened.

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

# the capture takes anything, so that the module, not the location, decides

$t->run(<<'HTTP');
    server {
        listen 127.0.0.1:%%PORT_gw%%;

        location ~ ^/replicas/(?<replica>.*)$ {
            tavus_delete_replica $replica;
            tavus_pass http://127.0.0.1:%%PORT_up%%;
            tavus_api_key val-Key_1;
        }
    }
HTTP

# invalid ids: what the client sends after /replicas/, and the id nginx
# decodes from it (checked with a plain nginx: all reach the location)

my @invalid = (
    [ 'empty',             '' ],
    [ '129 bytes',         'a' x 129 ],
    [ '200 bytes',         'r' . ('0' x 199) ],
    [ 'dot',               'a.b' ],
    [ 'lone dot',          'r1.' ],
    [ 'encoded slash',     'a%2Fb' ],
    [ 'encoded dot',       'a%2Eb' ],
    [ 'encoded space',     'a%20b' ],
    [ 'encoded tab',       'a%09b' ],
    [ 'encoded CR',        'a%0Db' ],
    [ 'encoded DEL',       'a%7Fb' ],
    [ 'encoded percent',   'a%25b' ],
    [ 'encoded question',  'a%3Fb' ],
    [ 'encoded hash',      'a%23b' ],
    [ 'encoded quote',     'a%22b' ],
    [ 'encoded backslash', 'a%5Cb' ],
    [ 'quote',             'a"b' ],
    [ 'backslash',         'a\\b' ],
    [ 'plus',              'a+b' ],
    [ 'colon',             'a:b' ],
    [ 'semicolon',         'a;b' ],
    [ 'tilde',             'a~b' ],
    [ 'unicode, encoded',  'r%C3%A9' ],
    [ 'unicode, raw',      "r\xc3\xa9" ],
    [ 'invalid UTF-8',     "r\xff" ],
    [ 'encoded high byte', 'r%FE' ],
);

for my $case (@invalid) {
    my ($name, $id) = @$case;

    my $r = $t->http(port => $gw,
                     raw => "DELETE /replicas/$id HTTP/1.1\r\n"
                            . "Host: localhost\r\nConnection: close\r\n\r\n");

    $t->answer($r, 400, { code => 'invalid_replica_id', replica_id => undef,
                          error => qr/\S/ }, "invalid id: $name",
               keys => [qw(error code replica_id)]);

    is($m->connections, 0, "invalid id: $name: no upstream connection");
}

# the limits: 128 bytes and every allowed character pass

my @valid = ('a' x 128, 'AZaz09_-', '-', '_', '0');

for my $id (@valid) {
    my $before = $m->connections;

    my $r = $t->http(port => $gw, method => 'DELETE', path => "/replicas/$id");

    $t->answer($r, 200, { replica_id => $id, deleted => JSON::PP::true },
               'valid id of ' . length($id) . ' bytes');

    is($m->connections, $before + 1, "valid id '$id': one connection");
    like(($m->requests)[-1] // '', qr{^DELETE /v2/replicas/\Q$id\E HTTP/1\.1\r\n},
         "valid id '$id': sent upstream");
}

my $connections = $m->connections;

# methods other than DELETE

for my $method (qw(GET POST PUT PATCH OPTIONS)) {
    my $r = $t->http(port => $gw, method => $method, path => '/replicas/r1',
                     $method =~ /^P/ ? (body => '{"replica_id":"r2"}') : ());

    $t->answer($r, 405, { code => 'method_not_allowed', error => qr/\S/ },
               "$method");
    is($r->{headers}{allow}, 'DELETE', "$method: Allow: DELETE");
    is($m->connections, $connections, "$method: no upstream connection");
}

# HEAD: no body, but the status and Allow

my $r = $t->http(port => $gw, method => 'HEAD', path => '/replicas/r1');
is($r->{status}, 405, 'HEAD: 405');
is($r->{headers}{allow}, 'DELETE', 'HEAD: Allow: DELETE');
is($r->{body}, '', 'HEAD: no body');
is($m->connections, $connections, 'HEAD: no upstream connection');

# the method is checked whatever the id

$r = $t->http(port => $gw, method => 'GET', path => '/replicas/a.b');
ok($r->{status} == 405 || $r->{status} == 400,
   'GET of an invalid id: 405 or 400') or diag("status $r->{status}");
is($m->connections, $connections, 'GET of an invalid id: no connection');

is(scalar($m->requests), $connections, 'the upstream saw only valid DELETEs');
unlike($t->error_log, qr/val-Key_1/, 'no key in the error log');

$t->stop;

done_testing;
