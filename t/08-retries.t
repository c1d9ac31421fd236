#!/usr/bin/perl

# Retries (docs/directives.md, tavus_next_upstream*; docs/decisions.md,
# "Retries"; docs/responses.md, "Retried and repeated deletes"): an
# upstream{} group of raw mocks a case.  A delete that may have reached a
# server (any byte sent) is not re-sent unless "non_idempotent" is listed;
# a refused connection (nothing sent) is retried without it; http_500,
# http_503, http_429 retry with non_idempotent; tavus_next_upstream_tries
# and _timeout and "off" stop retries.  A retried request's answer carries
# nothing of the first answer (reinit_request).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use TavusTest qw(reply chunked delete_location server_block upstream_group);

my $t = TavusTest->new->require_module;

my $KEY = 'retry-Key_1';
my $true = JSON::PP::true;
my $false = JSON::PP::false;

my $CT = 'Content-Type';
my $JT = 'application/json';

my $ok = [ reply('200 OK', '{"message":"Replica deleted successfully"}',
                 $CT => $JT) ];
my $ok_chunked = [ chunked('200 OK', [ '{"me',
                           'ssage":"Replica deleted successfully"}' ]) ];
my $e500 = [ reply('500 Internal Server Error',
                   '{"error":"first server failed"}', $CT => $JT,
                   'X-First' => 'yes') ];
my $e502 = [ reply('502 Bad Gateway', '<html>bad gateway</html>',
                   $CT => 'text/html') ];
my $e503 = [ reply('503 Service Unavailable', '<html>maintenance</html>',
                   $CT => 'text/html', 'Retry-After' => 30) ];
my $e429 = [ reply('429 Too Many Requests', '{"message":"first: slow down"}',
                   $CT => $JT, 'Retry-After' => 7) ];
my $e400_second = [ reply('400 Bad Request', '{"error":"second says no"}',
                          $CT => $JT) ];
my $e404_second = [ reply('404 Not Found', '{"message":"second: no such"}',
                          $CT => $JT) ];
my $e400_chunked_second = [ chunked('400 Bad Request', [ '{"error":',
                                    '"second chunk"', '}' ]) ];

# the first server reads the request, then fails in its way

my $reset = [ { reset => 1 } ];
my $close = [ { close => 1 } ];
my $hang = [ { hang => 1 } ];
my $garbage = [ "garbage\r\n\r\n", { close => 1 } ];
my $partial_headers = [ "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 9\r\n"
                        . "Content-Le", { reset => 1 } ];
my $partial_body = [ "HTTP/1.1 400 Bad Request\r\nContent-Type: $JT\r\n"
                     . "Content-Length: 60\r\n\r\n{\"error\":\"fir",
                     { close => 1 } ];
my $partial_status = [ "HTTP/1.1 20", { reset => 1 } ];
my $partial_chunked = [ "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 9\r\n"
                        . "Transfer-Encoding: chunked\r\n\r\n"
                        . "20\r\n{\"message\":\"fir", { reset => 1 } ];
my $e429_bare = [ reply('429 Too Many Requests', '') ];

my $deleted = [ 200, { replica_id => 'r1', deleted => $true, hard => $false },
                [qw(replica_id deleted hard)] ];

# an error answer: [ status, fields (the code, the replica and MORE),
# keys ]
sub failure {
    my ($status, $code, %more) = @_;
    return [ $status, { code => $code, replica_id => 'r1', %more },
             [qw(error code replica_id)] ];
}

my $error = failure(502, 'upstream_error', error => qr/\S/);
my $invalid = failure(502, 'upstream_invalid_response');
my $timeout = failure(504, 'upstream_timeout');
my $rate_limited = failure(429, 'rate_limited');
my $not_found_second = failure(404, 'not_found', error => 'second: no such');
my $second_chunk = failure(400, 'upstream_client_error',
                           error => 'second chunk');

my $NI = 'tavus_next_upstream error timeout non_idempotent;';

# only where a server hangs is the read timeout short: answers of the
# other servers must not time out on a loaded machine
my $RT = 'tavus_read_timeout 500ms;';

# name => { servers (script entry, or 'refused'), conf, answer [ status,
# fields, keys ], got (requests each server received), status
# ($upstream_status), check (more checks) }

my @cases = (

    # nothing sent: retried without non_idempotent

    { name => 'refused, default', servers => [ 'refused', $ok ],
      answer => $deleted, got => [ 0, 1 ], status => '502, 200' },
    { name => 'refused, error timeout', servers => [ 'refused', $ok ],
      conf => 'tavus_next_upstream error timeout;',
      answer => $deleted, got => [ 0, 1 ], status => '502, 200' },
    { name => 'refused, error', servers => [ 'refused', $ok ],
      conf => 'tavus_next_upstream error;',
      answer => $deleted, got => [ 0, 1 ], status => '502, 200' },
    { name => 'refused twice', servers => [ 'refused', 'refused', $ok ],
      answer => $deleted, got => [ 0, 0, 1 ], status => '502, 502, 200' },
    { name => 'refused, timeout only', servers => [ 'refused', $ok ],
      conf => 'tavus_next_upstream timeout;',
      answer => $error, got => [ 0, 0 ], status => '502' },
    { name => 'refused, off', servers => [ 'refused', $ok ],
      conf => 'tavus_next_upstream off;',
      answer => $error, got => [ 0, 0 ], status => '502' },
    { name => 'refused, tries 1', servers => [ 'refused', $ok ],
      conf => 'tavus_next_upstream_tries 1;',
      answer => $error, got => [ 0, 0 ], status => '502' },
    { name => 'refused twice, tries 2',
      servers => [ 'refused', 'refused', $ok ],
      conf => 'tavus_next_upstream_tries 2;',
      answer => $error, got => [ 0, 0, 0 ], status => '502, 502' },

    # the request was sent: not re-sent without non_idempotent

    { name => 'reset, default', servers => [ $reset, $ok ],
      answer => $error, got => [ 1, 0 ], status => '502' },
    { name => 'reset, non_idempotent', servers => [ $reset, $ok ],
      conf => $NI, answer => $deleted, got => [ 1, 1 ],
      status => '502, 200' },
    { name => 'close, default', servers => [ $close, $ok ],
      answer => $error, got => [ 1, 0 ], status => '502' },
    { name => 'close, non_idempotent', servers => [ $close, $ok ],
      conf => $NI, answer => $deleted, got => [ 1, 1 ],
      status => '502, 200' },
    { name => 'reset, non_idempotent, off', servers => [ $reset, $ok ],
      conf => 'tavus_next_upstream off;',
      answer => $error, got => [ 1, 0 ], status => '502' },
    { name => 'reset, non_idempotent, tries 1', servers => [ $reset, $ok ],
      conf => "$NI tavus_next_upstream_tries 1;",
      answer => $error, got => [ 1, 0 ], status => '502' },
    { name => 'hang, default', servers => [ $hang, $ok ], conf => $RT,
      answer => $timeout, got => [ 1, 0 ], status => '504' },
    { name => 'hang, error non_idempotent', servers => [ $hang, $ok ],
      conf => "tavus_next_upstream error non_idempotent; $RT",
      answer => $timeout, got => [ 1, 0 ], status => '504' },
    { name => 'hang, non_idempotent', servers => [ $hang, $ok ],
      conf => "$NI $RT", answer => $deleted, got => [ 1, 1 ],
      status => '504, 200' },
    { name => 'hang, non_idempotent, next_upstream_timeout',
      servers => [ $hang, $ok ],
      conf => "$NI $RT tavus_next_upstream_timeout 100ms;",
      answer => $timeout, got => [ 1, 0 ], status => '504' },
    { name => 'garbage, invalid_header non_idempotent',
      servers => [ $garbage, $ok ],
      conf => 'tavus_next_upstream error timeout invalid_header '
              . 'non_idempotent;',
      answer => $deleted, got => [ 1, 1 ], status => '502, 200' },
    { name => 'garbage, invalid_response, not non_idempotent',
      servers => [ $garbage, $ok ],
      conf => 'tavus_next_upstream error timeout invalid_response;',
      answer => $invalid, got => [ 1, 0 ], status => '502' },

    # upstream statuses

    { name => '500, http_500 non_idempotent', servers => [ $e500, $ok ],
      conf => 'tavus_next_upstream error timeout http_500 non_idempotent;',
      answer => $deleted, got => [ 1, 1 ], status => '500, 200' },
    { name => '500, without http_500', servers => [ $e500, $ok ],
      conf => $NI, answer => $error, got => [ 1, 0 ], status => '500' },
    { name => '500, http_500 without non_idempotent',
      servers => [ $e500, $ok ],
      conf => 'tavus_next_upstream error timeout http_500;',
      answer => $error, got => [ 1, 0 ], status => '500' },
    { name => '500, http_500 non_idempotent, tries 1',
      servers => [ $e500, $ok ],
      conf => 'tavus_next_upstream http_500 non_idempotent; '
              . 'tavus_next_upstream_tries 1;',
      answer => $error, got => [ 1, 0 ], status => '500' },
    { name => '500 twice, http_500 non_idempotent',
      servers => [ $e500, $e500 ],
      conf => 'tavus_next_upstream http_500 non_idempotent;',
      answer => $error, got => [ 1, 1 ], status => '500, 500' },
    { name => '502, http_502 non_idempotent', servers => [ $e502, $ok ],
      conf => 'tavus_next_upstream http_502 non_idempotent;',
      answer => $deleted, got => [ 1, 1 ], status => '502, 200' },
    { name => '503, http_503 non_idempotent', servers => [ $e503, $ok ],
      conf => 'tavus_next_upstream http_503 non_idempotent;',
      answer => $deleted, got => [ 1, 1 ], status => '503, 200' },
    { name => '503, without http_503', servers => [ $e503, $ok ],
      conf => 'tavus_next_upstream http_500 non_idempotent;',
      answer => $error, got => [ 1, 0 ], status => '503' },
    { name => '429, http_429 non_idempotent', servers => [ $e429, $ok ],
      conf => 'tavus_next_upstream http_429 non_idempotent;',
      answer => $deleted, got => [ 1, 1 ], status => '429, 200' },
    { name => '429, without http_429', servers => [ $e429, $ok ],
      conf => $NI, answer => $rate_limited,
      got => [ 1, 0 ], status => '429', retry_after => '7' },

    # reinit: nothing of the first answer in the second

    { name => 'reinit: half the headers, then a 404',
      servers => [ $partial_headers, $e404_second ], conf => $NI,
      answer => $not_found_second, got => [ 1, 1 ], status => '502, 404' },
    { name => 'reinit: half a status line, then a 200',
      servers => [ $partial_status, $ok_chunked ], conf => $NI,
      answer => $deleted, got => [ 1, 1 ], status => '502, 200' },
    { name => 'reinit: half a body, then a chunked 400',
      servers => [ $partial_body, $e400_chunked_second ], conf => $NI,
      answer => $second_chunk, got => [ 1, 1 ], status => '502, 400' },
    { name => 'reinit: a whole 500, then a chunked 200',
      servers => [ $e500, $ok_chunked ],
      conf => 'tavus_next_upstream http_500 non_idempotent;',
      answer => $deleted, got => [ 1, 1 ], status => '500, 200' },
    { name => 'reinit: a whole 429, then a 400',
      servers => [ $e429, $e400_second ],
      conf => 'tavus_next_upstream http_429 non_idempotent;',
      answer => failure(400, 'upstream_client_error',
                        error => 'second says no'),
      got => [ 1, 1 ], status => '429, 400' },
    { name => 'reinit: half a chunked 429, then a chunked 400',
      servers => [ $partial_chunked, $e400_chunked_second ], conf => $NI,
      answer => $second_chunk, got => [ 1, 1 ], status => '502, 400' },
    { name => 'reinit: a 429 with Retry-After, then one without',
      servers => [ $e429, $e429_bare ],
      conf => 'tavus_next_upstream http_429 non_idempotent;',
      answer => $rate_limited, got => [ 1, 1 ], status => '429, 429' },
    { name => 'reinit: a whole 503, then a 404',
      servers => [ $e503, $e404_second ],
      conf => 'tavus_next_upstream http_503 non_idempotent;',
      answer => $not_found_second, got => [ 1, 1 ], status => '503, 404' },

    # the last try decides the answer

    { name => 'reset, then hang', servers => [ $reset, $hang ],
      conf => "$NI $RT",
      answer => $timeout, got => [ 1, 1 ], status => '502, 504' },
    { name => 'hang, then reset', servers => [ $hang, $reset ],
      conf => "$NI $RT",
      answer => $error, got => [ 1, 1 ], status => '504, 502' },
    { name => 'half the headers, then refused',
      servers => [ $partial_headers, 'refused' ], conf => $NI,
      answer => $error, got => [ 1 ], status => '502, 502' },
    { name => 'half the headers, then reset',
      servers => [ $partial_headers, $reset ], conf => $NI,
      answer => $error, got => [ 1, 1 ], status => '502, 502' },

    # a part of an answer and no retry: a truncated answer

    { name => 'half the headers, no retry',
      servers => [ $partial_headers, $ok ],
      answer => $invalid, got => [ 1, 0 ], status => '502' },
);

my (@upstreams, @locations, %mock);
my $i = 0;

for my $case (@cases) {
    my $g = 'g' . ++$i;
    $case->{group} = $g;

    my @servers;
    my $s = 0;

    for my $spec (@{ $case->{servers} }) {
        my $port = $spec eq 'refused' ? $t->refused_port("${g}_" . ++$s)
                                      : $t->port("${g}_" . ++$s);

        if (ref $spec) {
            $mock{"${g}_$s"} = $t->raw_mock(port => $port, script => [ $spec ]);
        }

        push @servers, "127.0.0.1:$port";
    }

    push @upstreams, upstream_group($g, \@servers);
    push @locations, delete_location($g, "tavus_pass http://$g;",
                                     $case->{conf} // '');
}

$t->run("    log_format retry '\$request_id|\$tavus_outcome|\$upstream_status|'"
        . " '\$upstream_addr';\n\n"
        . join('', @upstreams)
        . server_block('gw', 'access_log %%PREFIX%%/retry.log retry;',
                       "tavus_api_key $KEY;", 'tavus_connect_timeout 2s;',
                       'tavus_read_timeout 5s;', @locations));

my $gw = $t->port('gw');

# the access log line of a request, by its request_id

sub log_entry {
    my ($id) = @_;
    return $t->log_entry('retry.log', [qw(rid outcome us ua)], rid => $id);
}

# no field twice in the raw body, one Content-Type and Cache-Control, a
# Content-Length that is the body's

sub single {
    my ($name, $r, $j) = @_;

    for my $k (sort keys %$j) {
        my $count = () = $r->{body} =~ /"\Q$k\E"\s*:/g;
        is($count, 1, "$name: field $k once in the body");
    }

    is(scalar(() = $r->{body} =~ /\{/g), 1, "$name: one JSON object")
        or diag($t->printable($r->{body}));

    for my $h ('content-type', 'cache-control') {
        is(scalar(grep { lc $_->[0] eq $h } @{ $r->{header_list} }), 1,
           "$name: one $h header");
    }

    is($r->{headers}{'content-length'}, length $r->{body},
       "$name: Content-Length is the body's");
}

for my $case (@cases) {
    my ($name, $g) = @$case{qw(name group)};
    my ($status, $fields, $keys) = @{ $case->{answer} };

    my $r = $t->http(port => $gw, method => 'DELETE', path => "/$g/r1");
    my $j = $t->answer($r, $status, $fields, $name, keys => $keys);

    single($name, $r, $j);

    # what each server received: exactly this many DELETEs, nothing else

    my $s = 0;
    for my $spec (@{ $case->{servers} }) {
        $s++;
        next unless ref $spec;

        my $m = $mock{"${g}_$s"};
        my $want = $case->{got}[ $s - 1 ];
        my @req = $m->requests;

        is(scalar @req, $want, "$name: server $s got $want request(s)");
        is($m->connections, $want, "$name: server $s: $want connection(s)");
        is(scalar(grep { $_ eq "DELETE /v2/replicas/r1 HTTP/1.1\r\n"
                               . "Host: $g\r\nx-api-key: $KEY\r\n\r\n" } @req),
           $want, "$name: server $s: the DELETE, exactly");
    }

    my $log = log_entry($j->{request_id});
    is($log->{us}, $case->{status}, "$name: \$upstream_status");
    is(scalar(split /, /, $log->{ua} // ''),
       scalar(split /, /, $case->{status}),
       "$name: one \$upstream_addr a try");
    is($log->{outcome}, $fields->{code} // 'deleted', "$name: \$tavus_outcome");

    # nothing of a first answer

    is($r->{headers}{'retry-after'}, $case->{retry_after},
       "$name: Retry-After " . ($case->{retry_after} // 'absent'));
    ok(!exists $r->{headers}{'x-first'}, "$name: no upstream header");
    if ($case->{status} =~ /,/) {
        unlike($r->{body}, qr/fir|maintenance|html/,
               "$name: nothing of the first answer in the body")
            or diag($t->printable($r->{body}));
    }
    unlike($r->{raw}, qr/\Q$KEY\E/, "$name: no key in the answer");
}

unlike($t->error_log, qr/\Q$KEY\E/, 'no key in the error log');

$t->stop;

done_testing;
