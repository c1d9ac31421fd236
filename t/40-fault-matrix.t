#!/usr/bin/perl

# The upstream fault matrix (docs/reliability.md): answers split to
# single bytes, at and around tavus_buffer_size, with impossible lengths,
# broken chunked framing, truncated, in HTML, after 1xx interim answers,
# reset in the middle, never sent; and a client that goes away while the
# upstream is slow.  Each case expects a defined JSON answer, and the
# harness fails the run on any [alert], [crit] or [emerg] in the error log.
#
# Every case has its own upstream{} group with keepalive and a raw mock
# whose second answer is a good one: the second request must get it, on
# the same connection when the first answer was well-formed and complete,
# on a new one when it was not (a broken answer's connection is never
# kept, or the next delete would read its leftovers).
#
# Where the boundary of tavus_buffer_size falls: the whole answer, status
# line, headers and body, is read into one buffer of exactly that size.
# An answer of exactly tavus_buffer_size bytes fits; one byte more is
# "an answer larger than tavus_buffer_size", a 502.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use IO::Socket::INET ();
use Time::HiRes ();
use TavusTest qw(reply delete_location upstream_group);

my $t = TavusTest->new->require_module;

my $KEY = 'fm-Key_0123456789';
my $BUFFER = 1024;
my $true = JSON::PP::true;

my $SLOW = $t->slow;

# an answer of exactly $total bytes: the X-Pad header takes up the rest

sub sized {
    my ($total, $status, $body) = @_;

    $body //= '';
    my $head = "HTTP/1.1 $status\r\nContent-Length: " . length($body)
               . "\r\nX-Pad: ";
    my $tail = "\r\n\r\n$body";
    my $pad = $total - length($head) - length($tail);
    die "sized: $total is too small" if $pad < 1;

    my $a = $head . ('p' x $pad) . $tail;
    die "sized: got " . length($a) unless length($a) == $total;

    return $a;
}

my $JT = 'application/json';
my $ok = reply('200 OK', '{"message":"Replica deleted successfully"}',
               'Content-Type' => $JT);
my $e400 = reply('400 Bad Request', '{"error":"Invalid replica_id"}',
                 'Content-Type' => $JT);
my $html = '<html><head><title>502 Bad Gateway</title></head><body>'
           . '<center><h1>502 Bad Gateway</h1></center></body></html>';
my $chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

my $deleted = [ 200, { deleted => $true } ];
my $invalid = [ 502, { code => 'upstream_invalid_response' } ];
my $upstream_error = [ 502, { code => 'upstream_error',
                              error => 'the upstream failed' } ];
my $timeout = [ 504, { code => 'upstream_timeout' } ];

# name => [ first answer (a raw mock script entry), expected answer,
#           connections after a second request, location settings ]
#
# connections: 1 when the first answer's connection is kept, 2 when not

my @cases = (

    # one byte at a time

    [ bytewise => [ { bytewise => 1 }, $ok ], $deleted, 1 ],
    [ bytewise_400 => [ { bytewise => 1 }, $e400 ],
      [ 400, { code => 'upstream_client_error',
               error => 'Invalid replica_id' } ], 1 ],
    [ bytewise_chunked => [ { bytewise => 1 }, $chunked
                            . "1\r\n{\r\n1;x=y\r\n}\r\n0\r\n\r\n" ],
      $deleted, 1 ],

    # the buffer boundary, headers alone and headers with a body

    [ headers_size_minus_1 => [ sized($BUFFER - 1, '200 OK') ], $deleted, 1 ],
    [ headers_size => [ sized($BUFFER, '200 OK') ], $deleted, 1 ],
    [ headers_size_plus_1 => [ sized($BUFFER + 1, '200 OK') ], $invalid, 2 ],
    [ answer_size_with_body => [ sized($BUFFER, '400 Bad Request',
                                       '{"error":"at the edge"}') ],
      [ 400, { code => 'upstream_client_error', error => 'at the edge' } ],
      1 ],
    [ answer_size_plus_1_with_body => [ sized($BUFFER + 1, '400 Bad Request',
                                              '{"error":"past the edge"}') ],
      $invalid, 2 ],
    [ chunked_size => [ do {
          my $body = "5\r\n{\"a\":\r\n3\r\n\"b\"\r\n1\r\n}\r\n0\r\n\r\n";
          my $head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                     . 'X-Pad: ';
          $head . ('p' x ($BUFFER - length($head) - 4 - length $body))
          . "\r\n\r\n$body";
      } ], $deleted, 1 ],
    [ one_long_header => [ "HTTP/1.1 200 OK\r\nX-Long: " . ('l' x 4000)
                           . "\r\nContent-Length: 0\r\n\r\n" ],
      $invalid, 2 ],

    # lengths

    [ length_10e12 => [ "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000"
                        . "\r\n\r\n{}" ], $invalid, 2 ],
    [ length_2e63 => [ "HTTP/1.1 200 OK\r\nContent-Length: "
                       . "9223372036854775808\r\n\r\n{}" ], $invalid, 2 ],
    [ length_foo => [ "HTTP/1.1 200 OK\r\nContent-Length: foo\r\n\r\n{}" ],
      $invalid, 2 ],
    [ length_empty => [ "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n" ],
      $invalid, 2 ],
    [ length_plus => [ "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}" ],
      $invalid, 2 ],

    # chunked framing

    [ chunk_size_2e64 => [ $chunked . "10000000000000000\r\n{}\r\n0\r\n\r\n" ],
      $invalid, 2 ],
    [ chunk_size_ffffffffffffffff0 => [ $chunked . "ffffffffffffffff0\r\n"
                                        . "{}\r\n0\r\n\r\n" ], $invalid, 2 ],
    [ chunk_size_max_off_t => [ $chunked . "7fffffffffffffff\r\n{}\r\n"
                                . "0\r\n\r\n" ], $invalid, 2 ],
    [ chunk_missing_crlf => [ $chunked . "2\r\n{}0\r\n\r\n" ], $invalid, 2 ],
    [ chunk_missing_last_crlf => [ $chunked . "2\r\n{}\r\n0\r\n",
                                   { close => 1 } ], $invalid, 2 ],
    [ chunk_data_short => [ $chunked . "10\r\n{}\r\n0\r\n\r\n",
                            { close => 1 } ], $invalid, 2 ],

    # lines ended by a bare LF: nginx 1.29.4's chunked parser refuses
    # them; before, it took LF for CRLF

    [ chunk_bare_lf => [ $chunked . "2\n{}\n0\n\n" ],
      $t->nginx_version >= 1029004 ? ($invalid, 2) : ($deleted, 1) ],
    [ chunk_bare_lf_after_data => [ $chunked . "2\r\n{}\n0\r\n\r\n" ],
      $t->nginx_version >= 1029004 ? ($invalid, 2) : ($deleted, 1) ],

    # truncated: a close after 20 of 100 announced bytes

    [ close_after_20_of_100 => [ "HTTP/1.1 200 OK\r\nContent-Length: 100"
                                 . "\r\n\r\n" . ('x' x 20), { close => 1 } ],
      $invalid, 2 ],
    [ close_after_20_of_100_400 => [ "HTTP/1.1 400 Bad Request\r\n"
                                     . "Content-Length: 100\r\n\r\n"
                                     . '{"error":"' . ('x' x 10),
                                     { close => 1 } ], $invalid, 2 ],

    # HTML where JSON was expected: the status decides, the message is
    # the module's own

    [ html_502 => [ reply('502 Bad Gateway', $html,
                          'Content-Type' => 'text/html') ],
      $upstream_error, 1 ],
    [ html_400 => [ reply('400 Bad Request', $html,
                          'Content-Type' => 'text/html') ],
      [ 400, { code => 'upstream_client_error',
               error => 'the upstream rejected the request' } ], 1 ],
    [ html_404 => [ reply('404 Not Found', $html,
                          'Content-Type' => 'text/html') ],
      [ 404, { code => 'not_found', error => 'replica not found' } ], 1 ],
    [ html_200 => [ reply('200 OK', $html, 'Content-Type' => 'text/html') ],
      $deleted, 1 ],

    # 1xx interim answers before the final one

    [ continue_then_200 => [ "HTTP/1.1 100 Continue\r\n\r\n$ok" ],
      $deleted, 1 ],
    [ continue_late_200 => [ "HTTP/1.1 100 Continue\r\n\r\n",
                             { sleep => 0.2 }, $ok ], $deleted, 1 ],
    [ two_interim_then_404 => [ "HTTP/1.1 100 Continue\r\n\r\n"
                                . "HTTP/1.1 103 Early Hints\r\n"
                                . "Link: </a>; rel=preload\r\n\r\n"
                                . reply('404 Not Found',
                                        '{"message":"gone"}') ],
      [ 404, { code => 'not_found', error => 'gone' } ], 1 ],
    [ interim_only => [ "HTTP/1.1 100 Continue\r\n\r\n", { close => 1 } ],
      $invalid, 2 ],
    [ switching_protocols => [ "HTTP/1.1 101 Switching Protocols\r\n"
                               . "Upgrade: h2c\r\n\r\n" ], $invalid, 2 ],

    # a reset in the middle of the headers, once nginx has read them

    [ reset_in_headers => [ "HTTP/1.1 200 OK\r\nContent-Le",
                            { sleep => 0.5 * $SLOW }, { reset => 1 } ],
      $invalid, 2 ],

    # a NUL in a header line

    [ nul_in_header => [ "HTTP/1.1 200 OK\r\nX-A: a\0b\r\n"
                         . "Content-Length: 0\r\n\r\n" ], $invalid, 2 ],

    # never answered: a read timeout, whole or after the status line

    [ never_answers => [ { hang => 1 } ], $timeout, 2,
      'tavus_read_timeout 500ms;' ],
    [ stalls_after_status => [ "HTTP/1.1 200 OK\r\n", { hang => 1 } ],
      $timeout, 2, 'tavus_read_timeout 500ms;' ],
);

my (@upstreams, @locations, %mock);

for my $case (@cases) {
    my ($name, $entry, undef, undef, $settings) = @$case;

    $mock{$name} = $t->raw_mock(port => $t->port($name),
                                script => [ $entry, [ $ok ] ]);

    push @upstreams, upstream_group("fm_$name", [ "127.0.0.1:%%PORT_$name%%" ],
                                    'keepalive 2;');
    push @locations, delete_location($name, "tavus_pass http://fm_$name;",
                                     $settings // '');
}

# the slow upstream of the client-abort cases: answers after 3 seconds,
# and records when nginx closes the connection before that (event eof)

my $delay = 3 * $SLOW;
my $slow = $t->raw_mock(port => $t->port('slow'),
                        script => [ [ { wait => $delay }, $ok ] ]);
my $slow_timeout = int($delay + 10);

push @upstreams, upstream_group('fm_slow', [ '127.0.0.1:%%PORT_slow%%' ],
                                'keepalive 2;');

$t->run(<<"HTTP");
    log_format fault '\$request_uri \$status outcome=\$tavus_outcome'
                     ' upstream=\$upstream_status';

@upstreams

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        access_log %%PREFIX%%/fault.access.log fault;

        tavus_api_key $KEY;
        tavus_connect_timeout 2s;
        tavus_read_timeout 10s;
        tavus_buffer_size $BUFFER;

        location ~ ^/slow/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_pass http://fm_slow;
            tavus_read_timeout ${slow_timeout}s;
        }

@locations
    }
HTTP

my $gw = $t->port('gw');

for my $case (@cases) {
    my ($name, undef, $expect, $connections) = @$case;

    my $r = $t->http(port => $gw, method => 'DELETE', path => "/$name/r1");
    my ($status, $fields) = @$expect;
    $t->answer($r, $status, { %$fields, replica_id => 'r1' }, $name);
    unlike($r->{raw}, qr/\Q$KEY\E/, "$name: no key in the answer");

    # the next delete gets the next (good) answer, on a kept connection
    # only when the first answer was complete and well-formed

    $r = $t->http(port => $gw, method => 'DELETE', path => "/$name/r2");
    $t->answer($r, 200, { replica_id => 'r2', deleted => $true },
               "$name, then a good answer");

    is($mock{$name}->connections, $connections,
       "$name: $connections upstream connection"
       . ($connections == 1 ? ' (kept)' : 's (the first not kept)'));

    my @requests = $mock{$name}->requests;
    is(scalar @requests, 2, "$name: each delete sent once");
    like($requests[0] // '', qr{^DELETE /v2/replicas/r1 HTTP/1\.1\r\n},
         "$name: the first request");
}

# a client that goes away while the upstream is slow: nginx closes the
# upstream connection at once (the mock sees EOF long before it would
# answer), does not retry, logs 499 and no alert

for my $n (1 .. 2) {
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $gw,
                                  Proto => 'tcp')
        or die "connect: $!";
    syswrite $c, "DELETE /slow/a$n HTTP/1.1\r\nHost: localhost\r\n"
                 . "Connection: close\r\n\r\n";

    ok($slow->wait_for(request => $n, 5 * $SLOW),
       "client abort $n: the request reached the upstream");

    Time::HiRes::sleep(0.2);
    close $c;
}

for my $n (1 .. 2) {
    my $eof = $slow->wait_for(eof => $n, 2 * $SLOW);
    ok($eof, "client abort $n: nginx closed the upstream connection")
        or diag('slow mock: ' . $slow->events);
    ok(!$slow->seen(answered => $n),
       "client abort $n: before the upstream answered");
}

# the upstream group is still usable, through a new connection

my $r = $t->http(port => $gw, method => 'DELETE', path => '/slow/after',
                 timeout => $delay + 10 * $SLOW);
$t->answer($r, 200, { replica_id => 'after', deleted => $true },
           'after the aborts: a delete through the slow upstream');
is($slow->connections, 3, 'after the aborts: a new upstream connection'
                          . ' (the aborted ones were not kept)');

$t->stop;

my @log = split /\n/, $t->read_file('fault.access.log');
is(scalar(grep { m{^/slow/a\d 499 } } @log), 2,
   'client aborts: logged as 499');
is(scalar(grep { m{^/slow/} } @log), 3, 'client aborts: no retry');

unlike($t->error_log, qr/\Q$KEY\E/, 'no key in the error log');

done_testing;

