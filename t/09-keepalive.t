#!/usr/bin/perl

# Keepalive to the upstream: with an upstream{} group that has keepalive
# N, consecutive deletes reuse one connection, whatever the framing
# (Content-Length, chunked, no body, 1-byte packets) and the status of
# well-formed answers; no reuse after Connection: close, a framing error,
# a timeout, stray bytes after the answer, or an HTTP/1.0 answer.  Without
# "keepalive", connections are kept since nginx 1.29.7 and not before: the
# counts and the fate of a delete on a stale connection are checked for
# the nginx under test.  Raw mocks count connections and requests; the
# nginx mock of Tavus logs $connection and $connection_requests.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use TavusTest qw(reply chunked delete_location upstream_group);

my $t = TavusTest->new->require_module;

# nginx 1.29.7 made "keepalive" the default of an upstream{} block
my $KEPT = $t->nginx_version >= 1029007;

my $KEY = 'ka-Key_1';
my $true = JSON::PP::true;

my $JT = 'application/json';

my $ok = reply('200 OK', '{"message":"Replica deleted successfully"}',
               'Content-Type' => $JT);
my $ok_chunked = chunked('200 OK', [ '{"message":',
                                     '"Replica deleted successfully"}' ]);
my $no_content = "HTTP/1.1 204 No Content\r\n\r\n";
my $e400 = reply('400 Bad Request', '{"error":"Invalid replica_id"}',
                 'Content-Type' => $JT);
my $e404 = chunked('404 Not Found', [ '{"message":"gone"}' ]);
my $e429 = reply('429 Too Many Requests', '{"message":"slow"}',
                 'Retry-After' => 3);
my $e500 = reply('500 Internal Server Error', '{"error":"oops"}');

# name => [ script, the statuses the client gets, connections, conf ]

my @cases = (
    [ kept => [ [ $ok ], [ $ok_chunked ], [ $no_content ], [ $e400 ],
                [ $e404 ], [ $e429 ], [ $e500 ], [ $ok ] ],
      [ 200, 200, 200, 400, 404, 429, 502, 200 ], 1 ],
    [ kept_bytewise => [ [ { bytewise => 1 }, $ok ],
                         [ { bytewise => 1 }, $ok_chunked ],
                         [ { bytewise => 1 }, $e400 ] ],
      [ 200, 200, 400 ], 1 ],
    [ kept_split => [ [ "HTTP/1.1 200 OK\r\nContent-", { sleep => 0.05 },
                        "Length: 2\r\n\r\n{", { sleep => 0.05 }, '}' ],
                      [ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        . "2\r\n{}", { sleep => 0.05 }, "\r\n0\r\n",
                        { sleep => 0.05 }, "\r\n" ],
                      [ $ok ] ],
      [ 200, 200, 200 ], 1 ],

    # closed by the upstream's answer

    [ connection_close => [ [ reply('200 OK', '{}', Connection => 'close') ],
                            [ $ok ], [ $ok ] ],
      [ 200, 200, 200 ], 2 ],
    [ connection_close_upper => [ [ reply('200 OK', '{}',
                                          Connection => 'Close') ],
                                  [ $ok ], [ $ok ] ],
      [ 200, 200, 200 ], 2 ],
    [ connection_close_chunked => [ [ chunked('404 Not Found', [ '{}' ],
                                              Connection => 'close') ],
                                    [ $ok ], [ $ok ] ],
      [ 404, 200, 200 ], 2 ],
    [ http10 => [ [ "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}" ],
                  [ $ok ], [ $ok ] ],
      [ 200, 200, 200 ], 2 ],
    [ http10_keep_alive => [ [ "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                               . "Content-Length: 2\r\n\r\n{}" ],
                             [ $ok ], [ $ok ] ],
      [ 200, 200, 200 ], 2 ],

    # framing errors

    [ two_lengths => [ [ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                         . "Content-Length: 2\r\n\r\n{}" ], [ $ok ], [ $ok ] ],
      [ 502, 200, 200 ], 2 ],
    [ length_and_chunked => [ [ "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n"
                                . "Transfer-Encoding: chunked\r\n\r\n"
                                . "2\r\n{}\r\n0\r\n\r\n" ], [ $ok ], [ $ok ] ],
      [ 502, 200, 200 ], 2 ],
    [ bad_chunk => [ [ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       . "zz\r\n{}\r\n0\r\n\r\n" ], [ $ok ], [ $ok ] ],
      [ 502, 200, 200 ], 2 ],
    [ bad_header => [ [ "HTTP/1.1 200 OK\r\nBad Header\r\n"
                        . "Content-Length: 2\r\n\r\n{}" ], [ $ok ], [ $ok ] ],
      [ 502, 200, 200 ], 2 ],
    [ no_length => [ [ "HTTP/1.1 200 OK\r\n\r\n{}" ], [ $ok ], [ $ok ] ],
      [ 502, 200, 200 ], 2 ],
    [ garbage => [ [ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}" ],
                   [ "no status line\r\n\r\n" ], [ $ok ], [ $ok ] ],
      [ 200, 502, 200, 200 ], 2 ],

    # a timeout: the late answer must not be read as the next one's

    [ timeout => [ [ { sleep => 0.6 }, $ok ], [ $ok ], [ $ok ] ],
      [ 504, 200, 200 ], 2 ],

    # stray bytes after the answer

    [ stray => [ [ "$ok!!" ], [ $ok ], [ $ok ] ],
      [ 200, 200, 200 ], 2 ],
    [ stray_chunked => [ [ "${ok_chunked}HTTP/1.1 200 OK\r\n\r\n" ],
                         [ $ok ], [ $ok ] ],
      [ 200, 200, 200 ], 2 ],
    [ stray_no_content => [ [ "${no_content}{}" ], [ $ok ], [ $ok ] ],
      [ 200, 200, 200 ], 2 ],

    # nginx's own limit still applies

    [ keepalive_requests => [ [ $ok ] ], [ 200, 200, 200, 200, 200 ], 2,
      'keepalive_requests 3;' ],

    # an upstream{} block without "keepalive": since nginx 1.29.7 its
    # connections are kept alive by default, for the location that made
    # them; before, every delete has a connection of its own

    [ default => [ [ $ok ] ], [ 200, 200, 200 ], $KEPT ? 1 : 3, undef,
      { keepalive => 0 } ],

    # a kept connection that the API closes when the next delete comes:
    # that delete fails and is not re-sent, as on a new connection

    [ default_stale => [ [ $ok ], [ { close => 1 } ], [ $ok ] ],
      [ 200, 502, 200 ], $KEPT ? 2 : 3, undef, { keepalive => 0 } ],

    # with non_idempotent, nginx re-sends a request that failed on a kept
    # connection, once, outside tavus_next_upstream_tries (since 1.29.7
    # without "keepalive"); on a new connection it is not retried, the
    # only server having been tried

    [ default_stale_ni => [ [ $ok ], [ { close => 1 } ], [ $ok ] ],
      $KEPT ? [ 200, 200 ] : [ 200, 502 ], 2, undef,
      { keepalive => 0,
        location => 'tavus_next_upstream error timeout non_idempotent;',
        sent => $KEPT ? [ qw(r1 r2 r2) ] : [ qw(r1 r2) ] } ],
);

my (@upstreams, @locations, %mock);

for my $case (@cases) {
    my ($name, $script, $statuses, $conns, $conf, $o) = @$case;

    $mock{$name} = $t->raw_mock(port => $t->port($name), script => $script);

    my $keepalive = ($o->{keepalive} // 1) ? 'keepalive 4;' : '';

    push @upstreams, upstream_group($name, [ "127.0.0.1:%%PORT_$name%%" ],
                                    $keepalive, $conf // '');

    # only the timeout case has a short read timeout: a whole answer must
    # be read within it, bytewise ones too, on a loaded machine as well
    my $timeout = $name eq 'timeout' ? 'tavus_read_timeout 250ms;' : '';

    push @locations, delete_location($name, "tavus_pass http://$name;",
                                     $timeout, $o->{location} // '');
}

$t->run($t->mock_tavus(name => 'tavus', key => $KEY) . <<"HTTP");
@upstreams

    upstream tavusapi.com {
        server 127.0.0.1:%%PORT_tavus%%;
        keepalive 2;
    }

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        tavus_api_key $KEY;
        tavus_read_timeout 5s;

@locations

        location ~ ^/tavus/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_pass http://tavusapi.com;
        }

        location ~ ^/tavus-wrong-key/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_pass http://tavusapi.com;
            tavus_api_key wrong-Key_2;
        }
    }
HTTP

my $gw = $t->port('gw');

###############################################################################
# raw mocks: connections and requests counted

for my $case (@cases) {
    my ($name, $script, $statuses, $conns, undef, $o) = @$case;

    my @got;
    my @ids;

    for my $n (1 .. @$statuses) {
        my $id = "r$n";
        push @ids, $id;

        my $r = $t->http(port => $gw, method => 'DELETE',
                         path => "/$name/$id");
        push @got, $r->{status};

        my $j = $t->json($r, "$name $n");
        is($j->{replica_id}, $id, "$name $n: its own answer")
            or diag($t->printable($r->{raw}));
    }

    my $m = $mock{$name};
    my @req = $m->requests;

    my @sent = @{ $o->{sent} // \@ids };

    is("@got", "@$statuses", "$name: statuses");
    is($m->connections, $conns, "$name: $conns upstream connection(s)");
    is(scalar @req, scalar @sent, "$name: every request received");

    my $expect = join '', map {
        "DELETE /v2/replicas/$_ HTTP/1.1\r\nHost: $name\r\n"
        . "x-api-key: $KEY\r\n\r\n"
    } @sent;

    is($t->printable($m->received), $t->printable($expect),
       "$name: exactly the requests, in order, nothing else sent");
}

###############################################################################
# the nginx mock of Tavus: one $connection, $connection_requests 1..N, for
# deletes, refused ids and a rejected key alike

my @seq = (
    [ '/tavus/r1',           200, { deleted => $true } ],
    [ '/tavus/r2',           200, { deleted => $true } ],
    [ '/tavus/not-hex',      400, { code => 'upstream_client_error' } ],
    [ '/tavus-wrong-key/r3', 502, { code => 'upstream_rejected_key' } ],
    [ '/tavus/r4',           200, { deleted => $true } ],
    [ '/tavus/r5',           200, { deleted => $true } ],
);

for my $s (@seq) {
    my ($path, $status, $fields) = @$s;
    my $r = $t->http(port => $gw, method => 'DELETE', path => $path);
    $t->answer($r, $status, $fields, "nginx mock $path");
}

my @log = $t->mock_log('tavus');

is(scalar @log, scalar @seq, 'nginx mock: every request received');
is(join(' ', map { $_->{status} } @log), '200 200 400 401 200 200',
   'nginx mock: its answers');
is(join(' ', map { $_->{reqs} } @log), join(' ', 1 .. @seq),
   'nginx mock: $connection_requests 1..N');
is(scalar(keys %{{ map { $_->{conn} => 1 } @log }}), 1,
   'nginx mock: one $connection');
is(join(' ', map { $_->{key} } @log), 'ok ok ok bad ok ok',
   'nginx mock: keys on one connection');

unlike($t->error_log, qr/\Q$KEY\E|wrong-Key_2/, 'no key in the error log');

$t->stop;

done_testing;
