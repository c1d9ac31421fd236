#!/usr/bin/perl

# Upstream answers that are split, chunked, broken, late or missing, from
# raw mocks: only a well-formed HTTP/1.x answer counts (docs/responses.md,
# "What counts as an invalid answer"); nginx's own 502/504 are JSON too; a
# broken answer's connection is not kept; a DELETE that reached a server
# is not re-sent.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use TavusTest qw(delete_location upstream_group);

my $t = TavusTest->new->require_module;

my $KEY = 'brk-Key_1';
my $true = JSON::PP::true;

my $ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
         . "Content-Length: 2\r\n\r\n{}";
my $bad400 = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
             . "Content-Length: 30\r\n\r\n{\"error\":\"Invalid replica_id\"}";

my $deleted = [ 200, { replica_id => 'r1', deleted => $true } ];
my $refused_id = [ 400, { code => 'upstream_client_error',
                          error => 'Invalid replica_id' } ];
my $invalid = [ 502, { code => 'upstream_invalid_response',
                       replica_id => 'r1' } ];
my $error = [ 502, { code => 'upstream_error', replica_id => 'r1' } ];

# name => [ script entry, [ status, fields ] ]

my @cases = (
    [ chunked => [ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   . "1\r\n{\r\n1\r\n}\r\n0\r\n\r\n" ], $deleted ],
    [ chunked_400 => [ "HTTP/1.1 400 Bad Request\r\n"
                       . "Transfer-Encoding: chunked\r\n\r\n"
                       . "a\r\n{\"error\":\"\r\n"
                       . "14;ext=1\r\nInvalid replica_id\"}\r\n"
                       . "0\r\nTrailer: x\r\n\r\n" ], $refused_id ],
    [ bytewise => [ { bytewise => 1 }, $ok ], $deleted ],
    [ bytewise_400 => [ { bytewise => 1 }, $bad400 ], $refused_id ],
    [ late_body => [ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
                     { sleep => 0.2 }, '{}' ], $deleted ],
    [ http10 => [ "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}" ],
      $deleted ],

    [ garbage => [ "garbage\r\n\r\n", { close => 1 } ], $invalid ],
    [ http09 => [ '{"replica_id":"r1","deleted":true}', { close => 1 } ],
      $invalid ],
    [ bad_status => [ "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n" ],
      $invalid ],
    [ http2_status => [ "HTTP/2 200\r\nContent-Length: 0\r\n\r\n" ],
      $invalid ],
    [ truncated_body => [ "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{",
                          { close => 1 } ], $invalid ],
    [ truncated_headers => [ "HTTP/1.1 200 OK\r\nContent-Le",
                             { close => 1 } ], $invalid ],
    [ truncated_chunked => [ "HTTP/1.1 200 OK\r\n"
                             . "Transfer-Encoding: chunked\r\n\r\n"
                             . "2\r\n{}\r\n", { close => 1 } ], $invalid ],
    [ two_lengths => [ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                       . "Content-Length: 2\r\n\r\n{}" ], $invalid ],
    [ length_and_chunked => [ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                              . "Transfer-Encoding: chunked\r\n\r\n"
                              . "2\r\n{}\r\n0\r\n\r\n" ], $invalid ],
    [ bad_chunk_size => [ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                          . "\r\n\r\nzz\r\n{}\r\n0\r\n\r\n" ], $invalid ],
    [ bad_length => [ "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n{}" ],
      $invalid ],
    [ too_big => [ "HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n"
                   . ('x' x 20000) ], $invalid ],
    [ too_big_headers => [ "HTTP/1.1 200 OK\r\n"
                           . ("X-Pad: " . ('y' x 100) . "\r\n") x 100
                           . "Content-Length: 2\r\n\r\n{}" ], $invalid ],

    [ reset => [ { reset => 1 } ], $error ],
    [ closed => [ { close => 1 } ],
      [ 502, { code => qr/^upstream_(?:error|invalid_response)\z/ } ] ],
    [ hang => [ { hang => 1 } ],
      [ 504, { code => 'upstream_timeout', replica_id => 'r1' } ] ],
);

my (@locations, %mock);

for my $case (@cases) {
    my ($name, $entry) = @$case;

    $mock{$name} = $t->raw_mock(port => $t->port($name), script => [ $entry ]);

    push @locations, delete_location($name,
                                     "tavus_pass http://127.0.0.1:%%PORT_$name%%;");
}

# a second server for retries; the first upstream of each group below
# fails in its own way

my $second = $t->raw_mock(port => $t->port('second'), script => [ [ $ok ] ]);
my $first_reset = $t->raw_mock(port => $t->port('first_reset'),
                               script => [ [ { reset => 1 } ] ]);
my $first_garbage = $t->raw_mock(port => $t->port('first_garbage'),
                                 script => [ [ "garbage\r\n\r\n",
                                               { close => 1 } ] ]);

# a group with keepalive, its answers in order: broken, good, good, good
# with stray bytes after the body, good

my $kept = $t->raw_mock(port => $t->port('kept'), script => [
    [ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}" ],
    [ $ok ],
    [ $ok ],
    [ "$ok!!" ],
    [ $ok ],
]);

# the groups: name => [ [ the servers' ports ], more of the upstream{} ]

my %groups = (
    retry_after_reset   => [ [qw(first_reset second)] ],
    retry_after_garbage => [ [qw(first_garbage second)] ],
    retry_after_refused => [ [qw(refused second)] ],
    kept                => [ [qw(kept)], 'keepalive 4;' ],
);

my (@upstreams, @groups);

for my $g (sort keys %groups) {
    my ($ports, @more) = @{ $groups{$g} };
    push @upstreams, upstream_group($g, [ map { "127.0.0.1:%%PORT_$_%%" }
                                          @$ports ], @more);
    push @groups, delete_location($g, "tavus_pass http://$g;");
}

$t->run(<<"HTTP");
@upstreams

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        tavus_api_key $KEY;
        tavus_connect_timeout 1s;
        tavus_read_timeout 1s;
        tavus_buffer_size 4k;

        location ~ ^/refused/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_pass http://127.0.0.1:%%PORT_refused%%;
        }

@groups

@locations
    }
HTTP

my $gw = $t->port('gw');
$t->refused_port('refused');

for my $case (@cases) {
    my ($name, $entry, $expect) = @$case;

    my $r = $t->http(port => $gw, method => 'DELETE', path => "/$name/r1");
    $t->answer($r, @$expect, $name);
    unlike($r->{raw}, qr/\Q$KEY\E/, "$name: no key in the answer");
    is($mock{$name}->connections, 1, "$name: one upstream connection");
}

# refused: nginx's own 502, as JSON

my $r = $t->http(port => $gw, method => 'DELETE', path => '/refused/r1');
$t->answer($r, @$error, 'refused');

# retries: not after the request may have reached a server, yes before

$r = $t->http(port => $gw, method => 'DELETE', path => '/retry_after_refused/r1');
$t->answer($r, @$deleted, 'refused, then the next server');
is($second->connections, 1, 'refused: the request went to the next server');

$r = $t->http(port => $gw, method => 'DELETE', path => '/retry_after_reset/r1');
$t->answer($r, @$error, 'reset after the request was sent');
is($first_reset->connections, 1, 'reset: the first server had the request');
is($second->connections, 1, 'reset: the DELETE is not re-sent');

$r = $t->http(port => $gw, method => 'DELETE',
              path => '/retry_after_garbage/r1');
$t->answer($r, @$invalid, 'garbage after the request was sent');
is($second->connections, 1, 'garbage: the DELETE is not re-sent');

# keepalive: a broken answer's connection is not kept, a good one's is

my @status;

for my $n (1 .. 5) {
    $r = $t->http(port => $gw, method => 'DELETE', path => "/kept/r$n");
    push @status, $r->{status};
    $t->json($r, "kept $n");
}

is($status[0], 502, 'kept: a broken answer is a 502');
is("@status[1 .. 2]", '200 200', 'kept: then good answers');
is($status[4], 200, 'kept: the last good answer');
is($kept->connections, 3,
   'kept: new connections after the broken and the stray bytes only');

unlike($t->error_log, qr/\Q$KEY\E/, 'no key in the error log');

$t->stop;

done_testing;
