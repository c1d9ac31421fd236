#!/usr/bin/perl

# With tavus_next_upstream, the last try decides what the client, the
# $tavus_outcome variable and the metrics say, whatever an earlier try
# received: a well-formed 503 or an invalid answer from the first server
# and a refused connection to the next is an upstream_error, not an
# invalid response; a refused first server and a truncated answer from
# the next is an invalid response; a refused first server and a next one
# that never answers is a timeout.
#
# The second server of each group is a backup, so that the order of the
# tries is always the same.  A refused server is marked failed
# (max_fails=1, nginx's default) where it comes second: the first
# request tries it and is refused; the next one finds no live server
# left to try after the first, which nginx reports at once, before a
# new try begins.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use TavusTest qw(reply);

my $t = TavusTest->new->require_module;

my $KEY = 'last-Key_7';
my $gw = $t->port('gw');

$t->key_file('api.key', $KEY);

$t->refused_port('closed');

my $e503 = $t->raw_mock(port => $t->port('e503'), script => [
    [ reply('503 Service Unavailable', '{"error":"busy"}') ] ]);
my $junk = $t->raw_mock(port => $t->port('junk'), script => [
    [ "HTTP/1.1 2x0 Nonsense\r\n\r\n", { close => 1 } ] ]);
my $cut = $t->raw_mock(port => $t->port('cut'), script => [
    [ "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", { close => 1 } ] ]);
my $hang = $t->raw_mock(port => $t->port('hang'), script => [
    [ { hang => 1 } ] ]);

$t->run(<<'HTTP');
    tavus_metrics_zone tavus 1m;

    log_format gw '$uri outcome=$tavus_outcome status=$status '
                  'upstream=$upstream_status';

    upstream e503_closed {
        server 127.0.0.1:%%PORT_e503%% max_fails=0;
        server 127.0.0.1:%%PORT_closed%% backup;
    }

    upstream junk_closed {
        server 127.0.0.1:%%PORT_junk%% max_fails=0;
        server 127.0.0.1:%%PORT_closed%% backup;
    }

    upstream closed_cut {
        server 127.0.0.1:%%PORT_closed%% max_fails=0;
        server 127.0.0.1:%%PORT_cut%% backup max_fails=0;
    }

    upstream closed_hang {
        server 127.0.0.1:%%PORT_closed%% max_fails=0;
        server 127.0.0.1:%%PORT_hang%% backup max_fails=0;
    }

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        access_log %%PREFIX%%/gw.access.log gw;

        tavus_api_key_file %%PREFIX%%/api.key;
        tavus_next_upstream error timeout invalid_response http_503
                            non_idempotent;
        tavus_read_timeout 500ms;

        location ~ ^/(?<group>\w+)/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
            tavus_pass http://$group;
        }

        location /metrics {
            tavus_metrics;
        }
    }
HTTP

my %total;

my $refused = qr/connect\(\) failed \(111: Connection refused\)/;
my $nolive = qr/no live upstreams/;

for my $case (
    [ 'e503_closed', 502, 'upstream_error',
      [ '503, 502', '503, 502' ], [ $refused, $nolive ],
      qr/upstream answered 503, message: "busy"/,
      'a 503, then a refused server' ],
    [ 'junk_closed', 502, 'upstream_error',
      [ '502, 502', '502, 502' ], [ $refused, $nolive ],
      qr/upstream sent no valid HTTP\/1\.x status line/,
      'an invalid answer, then a refused server' ],
    [ 'closed_cut', 502, 'upstream_invalid_response',
      [ '502, 502', '502, 502' ], [ $refused, $refused ],
      qr/upstream prematurely closed connection/,
      'a refused server, then a truncated answer' ],
    [ 'closed_hang', 504, 'upstream_timeout',
      [ '502, 504', '502, 504' ], [ $refused, $refused ],
      qr/upstream timed out/,
      'a refused server, then no answer' ],
)
{
    my ($group, $status, $outcome, $upstream, $why, $logged, $name)
        = @$case;

    for my $n (1 .. 2) {
        $t->new_errors;

        my $r = $t->http(port => $gw, method => 'DELETE',
                         path => "/$group/r$n");
        $t->answer($r, $status, { code => $outcome, replica_id => "r$n" },
                   "$name ($n)");

        my $log = scalar $t->new_errors;
        like($log, $why->[$n - 1], "$name ($n): the refusal is logged");
        like($log, $logged, "$name ($n): the other try is logged");
        unlike($log, qr/upstream sent/, "$name ($n): no other complaint")
            unless $outcome eq 'upstream_invalid_response'
                   || $group eq 'junk_closed';

        my $line = (split /\n/, $t->read_file('gw.access.log'))[-1];
        is($line, "/$group/r$n outcome=$outcome status=$status"
                  . " upstream=$upstream->[$n - 1]",
           "$name ($n): \$tavus_outcome");

        $total{$outcome}++;
    }
}

my $m = $t->http(port => $gw, path => '/metrics')->{body};

for my $outcome (sort keys %total) {
    like($m, qr/^tavus_requests_total\{label="",outcome="$outcome",(?#
                )hard="false"\} $total{$outcome}$/m,
         "metrics: $total{$outcome} $outcome");
}

like($m, qr/^tavus_requests_total\{label="",outcome="upstream_invalid_(?#
            )response",hard="false"\} 2$/m,
     'metrics: only the truncated answers are invalid responses');

# the answers counted by class are those of the last tries: the two
# truncated 200s, not the 503 of a first try

my %class = $m =~ /^tavus_upstream_responses_total\{label="",(?#
                    )class="(\dxx)"\} (\d+)$/mg;
is(join(' ', map { "$_=$class{$_}" } sort keys %class),
   '1xx=0 2xx=2 3xx=0 4xx=0 5xx=0',
   'metrics: upstream answers by class, of the last tries');

$t->stop;

done_testing;
