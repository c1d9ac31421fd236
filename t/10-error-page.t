#!/usr/bin/perl

# nginx's own 502 (refused, invalid answer) and 504 (timeout) for a tavus
# location are the module's JSON unless the operator set error_page for that
# status: then the operator's page wins (docs/responses.md, "error_page";
# docs/decisions.md, "Errors are always JSON, except where the operator chose
# otherwise").  Answers translated from a Tavus answer, and the module's own
# refusals, stay the module's JSON whatever error_page says: error_page
# applies only to nginx's own failures.  Also checks the harness's assertion
# that every application/json body is valid JSON.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Test2::API qw(intercept);
use JSON::PP;
use TavusTest qw(reply delete_location);

my $t = TavusTest->new->require_module;

my $KEY = 'ep-Key_1';

my %answer = (
    a404 => reply('404 Not Found', '{"message":"no such replica"}'),
    a400 => reply('400 Bad Request', '{"error":"Invalid replica_id"}'),
    a401 => reply('401 Unauthorized', '{"message":"Invalid access token"}'),
    a429 => reply('429 Too Many Requests', '{"message":"slow"}',
                  'Retry-After' => 11),
    a500 => reply('500 Internal Server Error', '{"error":"oops"}'),
    garbage => "garbage\r\n\r\n",
);

my %mock;

for my $name (sort keys %answer) {
    $mock{$name} = $t->raw_mock(port => $t->port($name),
                                script => [ [ $answer{$name}, { close => 1 } ] ]);
}

$mock{hang} = $t->raw_mock(port => $t->port('hang'),
                           script => [ [ { hang => 1 } ] ]);

# the operator's pages

mkdir $t->prefix . '/errors' or die "mkdir: $!";

my $PAGE502 = qq({"operator":"502 page"}\n);
my $PAGE404 = qq({"operator":"404 page"}\n);
my $PAGE_ANY = qq({"operator":"any page"}\n);
my $HTML = "<html><body>operator's gateway page</body></html>\n";

$t->write_file('errors/502.json', $PAGE502);
$t->write_file('errors/404.json', $PAGE404);
$t->write_file('errors/any.json', $PAGE_ANY);
$t->write_file('errors/gateway.html', $HTML);

# location name => [ upstream (a mock name, or refused), directives ]

my %loc = (
    plain_refused     => [ 'refused', '' ],
    plain_timeout     => [ 'hang', '' ],
    plain_invalid     => [ 'garbage', '' ],

    page_refused      => [ 'refused', 'error_page 502 /errors/502.json;' ],
    page_invalid      => [ 'garbage', 'error_page 502 /errors/502.json;' ],
    page_timeout      => [ 'hang', 'error_page 502 504 /errors/gateway.html;' ],
    named_refused     => [ 'refused', 'error_page 502 = @fallback;' ],
    code_refused      => [ 'refused', 'error_page 502 =200 /errors/502.json;' ],
    only502_timeout   => [ 'hang', 'error_page 502 /errors/502.json;' ],
    only504_refused   => [ 'refused', 'error_page 504 /errors/gateway.html;' ],

    translated_404    => [ 'a404', 'error_page 404 /errors/404.json;' ],
    translated_400    => [ 'a400', 'error_page 400 /errors/any.json;' ],
    translated_401    => [ 'a401', 'error_page 502 /errors/502.json;' ],
    translated_429    => [ 'a429', 'error_page 429 /errors/any.json;' ],
    translated_500    => [ 'a500', 'error_page 502 /errors/502.json;' ],
    translated_named  => [ 'a404', 'error_page 404 = @fallback;' ],

    local_errors      => [ 'a404', 'error_page 400 403 405 /errors/any.json;' ],
);

my $locations = '';

for my $name (sort keys %loc) {
    my ($up, $conf) = @{ $loc{$name} };

    $locations .= delete_location($name,
                                  "tavus_pass http://127.0.0.1:%%PORT_$up%%;",
                                  $conf,
                                  # a short read timeout where it hangs only
                                  $up eq 'hang' ? 'tavus_read_timeout 300ms;'
                                                : '');
}

$t->run(<<"HTTP");
    log_format ep '\$http_x_test_id|\$request_id|\$status|\$tavus_outcome|'
                  '\$tavus_replica_id|\$upstream_status';

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        access_log %%PREFIX%%/ep.log ep;

        tavus_api_key $KEY;
        tavus_connect_timeout 2s;
        tavus_read_timeout 5s;

$locations

        location /errors/ {
            internal;
            root %%PREFIX%%;
            types {
                application/json  json;
                text/html         html;
            }
        }

        location \@fallback {
            default_type application/json;
            add_header X-Fallback yes always;
            return 503 '{"operator":"fallback"}';
        }

        # not a tavus location: nginx's own pages stay nginx's

        location /proxied/ {
            proxy_pass http://127.0.0.1:%%PORT_refused%%;
        }

        # for the harness's check

        location = /not-json {
            default_type application/json;
            return 200 '{"a":';
        }

        location = /json {
            default_type application/json;
            return 200 '{"a":[1,"\\u00e9"]}';
        }

        location = /html {
            default_type text/html;
            return 200 '{"a":';
        }
    }
HTTP

my $gw = $t->port('gw');
$t->refused_port('refused');

# the access log line of a request, by the X-Test-Id it was sent with

sub log_entry {
    my ($id) = @_;
    return $t->log_entry('ep.log',
                         [qw(test request_id status outcome replica_id us)],
                         test => $id);
}

my $seq = 0;

# a request with a unique X-Test-Id (in $r->{test_id})

sub del {
    my ($path, %o) = @_;

    my $id = 't' . ++$seq;
    my $r = $t->http(port => $gw, method => $o{method} // 'DELETE',
                     path => $path, headers => [ 'X-Test-Id' => $id ]);
    $r->{test_id} = $id;

    return $r;
}

# the module's JSON answer: status, type, no-store, request_id (the one
# logged), exactly these fields, nothing of nginx's HTML page, a
# Content-Length that is the body's, one Content-Type

sub module_json {
    my ($name, $r, $status, $code, %o) = @_;

    my $j = $t->answer($r, $status, { code => $code, replica_id => 'r1',
                                      error => qr/\S/ }, $name,
                       keys => [qw(error code replica_id)]);

    unlike($r->{body}, qr/<html|nginx|operator/i,
           "$name: nothing of an error page");
    is($r->{headers}{'content-length'}, length $r->{body},
       "$name: Content-Length is the body's");
    is(scalar(grep { lc $_->[0] eq 'content-type' } @{ $r->{header_list} }),
       1, "$name: one Content-Type");
    ok(!exists $r->{headers}{'x-fallback'}, "$name: not the named location");

    my $log = log_entry($r->{test_id});
    is($log->{request_id}, $j->{request_id}, "$name: request_id is logged");
    is($log->{status}, $status, "$name: logged status");
    is($log->{outcome}, $code, "$name: \$tavus_outcome");
    is($log->{replica_id}, 'r1', "$name: \$tavus_replica_id");

    return $j;
}

###############################################################################
# no error_page: nginx's own 502 and 504 are the module's JSON

my $r = del('/plain_refused/r1');
module_json('refused, no error_page', $r, 502, 'upstream_error');

$r = del('/plain_timeout/r1');
module_json('timeout, no error_page', $r, 504, 'upstream_timeout');

$r = del('/plain_invalid/r1');
module_json('invalid answer, no error_page', $r, 502,
            'upstream_invalid_response');

# not a tavus location: nginx's HTML page, untouched

$r = $t->http(port => $gw, method => 'DELETE', path => '/proxied/r1');
is($r->{status}, 502, 'proxy_pass location: 502');
like($r->{headers}{'content-type'} // '', qr{^text/html},
     'proxy_pass location: nginx\'s HTML page');
ok(!defined $r->{headers}{'cache-control'},
   'proxy_pass location: no Cache-Control added');

###############################################################################
# error_page for the status: the operator's page wins

# and the access log still tells what happened: the failure's outcome
# and replica id, as without error_page

sub operator_page {
    my ($name, $r, $status, $type, $body, $outcome, $us) = @_;

    is($r->{status}, $status, "$name: status $status")
        or diag($t->printable($r->{raw}));
    like($r->{headers}{'content-type'} // '', qr{^\Q$type\E(?:;|\z)},
         "$name: the operator's type");
    is($r->{body}, $body, "$name: the operator's page, exactly");

    my $log = log_entry($r->{test_id});
    is($log->{status}, $status, "$name: logged status");
    is($log->{us}, $us, "$name: \$upstream_status");
    is($log->{outcome}, $outcome, "$name: \$tavus_outcome survives error_page");
    is($log->{replica_id}, 'r1',
       "$name: \$tavus_replica_id survives error_page");
}

$r = del('/page_refused/r1');
operator_page('refused, error_page 502 uri', $r, 502, 'application/json',
              $PAGE502, 'upstream_error', 502);

$r = del('/page_invalid/r1');
operator_page('invalid answer, error_page 502 uri', $r, 502,
              'application/json', $PAGE502, 'upstream_invalid_response', 502);

$r = del('/page_timeout/r1');
operator_page('timeout, error_page 504 html', $r, 504, 'text/html', $HTML,
              'upstream_timeout', 504);

$r = del('/named_refused/r1');
operator_page('refused, error_page 502 = @named', $r, 503, 'application/json',
              '{"operator":"fallback"}', 'upstream_error', 502);
is($r->{headers}{'x-fallback'}, 'yes', 'refused, @named: its headers');

$r = del('/code_refused/r1');
operator_page('refused, error_page 502 =200 uri', $r, 200, 'application/json',
              $PAGE502, 'upstream_error', 502);

# an error_page for another status changes nothing

$r = del('/only502_timeout/r1');
module_json('timeout, error_page 502 only', $r, 504, 'upstream_timeout');

$r = del('/only504_refused/r1');
module_json('refused, error_page 504 only', $r, 502, 'upstream_error');

###############################################################################
# answers translated from Tavus's stay the module's JSON

$r = del('/translated_404/r1');
module_json('Tavus 404, error_page 404', $r, 404, 'not_found');

$r = del('/translated_named/r1');
module_json('Tavus 404, error_page 404 = @named', $r, 404, 'not_found');

$r = del('/translated_400/r1');
my $j = module_json('Tavus 400, error_page 400', $r, 400,
                    'upstream_client_error');
is($j->{error}, 'Invalid replica_id', 'Tavus 400, error_page 400: message');

$r = del('/translated_401/r1');
module_json('Tavus 401, error_page 502', $r, 502, 'upstream_rejected_key');

$r = del('/translated_429/r1');
module_json('Tavus 429, error_page 429', $r, 429, 'rate_limited');
is($r->{headers}{'retry-after'}, '11', 'Tavus 429, error_page 429: Retry-After');

$r = del('/translated_500/r1');
module_json('Tavus 500, error_page 502', $r, 502, 'upstream_error');

for my $name (qw(a404 a400 a401 a429 a500)) {
    my $want = $name eq 'a404' ? 2 : 1;
    is(scalar(() = $mock{$name}->requests), $want,
       "$name: the upstream had $want request(s)");
}

# the module's own refusals too

my $before = $mock{a404}->connections;

$r = del('/local_errors/r.1');
$t->answer($r, 400, { code => 'invalid_replica_id' },
           'invalid id, error_page 400');

$r = del('/local_errors/r1?hard=true');
$t->answer($r, 403, { code => 'hard_delete_denied' },
           'hard denied, error_page 403');

$r = del('/local_errors/r1?hard=yes');
$t->answer($r, 400, { code => 'invalid_hard' },
           'invalid hard, error_page 400');

$r = del('/local_errors/r1', method => 'GET');
$t->answer($r, 405, { code => 'method_not_allowed' },
           'GET, error_page 405');
is($r->{headers}{allow}, 'DELETE', 'GET, error_page 405: Allow');

unlike(join('', map { $_->{body} } $r), qr/operator/,
       'local refusals: not the operator\'s page');
is($mock{a404}->connections, $before, 'local refusals: no upstream connection');

###############################################################################
# the harness: every application/json body must be valid JSON

{
    my $got;
    my $events = intercept {
        $got = $t->http(port => $gw, path => '/not-json');
    };
    my @fail = grep { $_->causes_fail } @$events;

    is($got->{status}, 200, 'harness: invalid JSON served');
    is(scalar @fail, 1, 'harness: an invalid application/json body fails')
        or diag(explain([ map { ref $_ } @$events ]));
    ok($got->{json_checked}, 'harness: the body was checked');

    $events = intercept {
        $got = $t->http(port => $gw, path => '/not-json', no_json_check => 1);
    };
    is(scalar(grep { $_->causes_fail } @$events), 0,
       'harness: no_json_check turns the check off');

    $events = intercept {
        $got = $t->http(port => $gw, path => '/json');
    };
    is(scalar(grep { $_->causes_fail } @$events), 0,
       'harness: a valid JSON body passes');
    ok($got->{json_checked}, 'harness: the valid body was checked');

    $events = intercept {
        $got = $t->http(port => $gw, path => '/html');
    };
    is(scalar(grep { $_->causes_fail } @$events), 0,
       'harness: a body of another type is not checked');
    ok(!$got->{json_checked}, 'harness: the html body was not checked');

    $events = intercept {
        $got = $t->http(port => $gw, method => 'HEAD', path => '/not-json');
    };
    is(scalar(grep { $_->causes_fail } @$events), 0,
       'harness: HEAD has no body to check');

    is($t->json_body_error({ status => 200, request => "GET / HTTP/1.1\r\n",
                             headers => { 'content-type' => 'application/json' },
                             body => qq({"a":"\xff"}) }) ? 1 : 0, 1,
       'harness: invalid UTF-8 in a JSON body is an error');
    is($t->json_body_error({ status => 200, request => "GET / HTTP/1.1\r\n",
                             headers => { 'content-type' =>
                                          'application/json; charset=utf-8' },
                             body => '' }) ? 1 : 0, 1,
       'harness: an empty JSON body is an error');
}

unlike($t->error_log, qr/\Q$KEY\E/, 'no key in the error log');

$t->stop;

done_testing;
