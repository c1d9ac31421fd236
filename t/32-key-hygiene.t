#!/usr/bin/perl

# Key hygiene (docs/security.md, "Where the key does not appear"): one run
# that drives every outcome of the module (success, each error of
# docs/responses.md, "Every situation", timeouts, TLS failures,
# per-tenant keys from a map, a key file, a dry run) with the error log at
# debug level (Debian's nginx is built --with-debug; the harness sets
# `error_log ... debug`), then checks that no answer (status line, headers,
# body) and no file nginx wrote for the gateway (error log, access logs)
# holds any key.  Upstreams that echo the x-api-key they received, in
# every way an answer can carry text, must not get it to the client.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use TavusTest qw(chunked delete_location);
use TavusAuth qw(:all);

my $t = TavusTest->new->require_module;

my $true = JSON::PP::true;

# distinctive keys: "sk-HYGIENE-" then 24 letters that are not hex digits,
# so that no request id or fingerprint can look like a piece of them

sub new_key {
    my @letters = ('g' .. 'z', 'G' .. 'Z');
    return 'sk-HYGIENE-' . join '', map { $letters[rand @letters] } 1 .. 24;
}

my %K = map { ($_ => new_key()) } qw(static file tenant_a tenant_b wrong);
my @KEYS = values %K;

$t->write_file('api.key', "$K{file}\n");
chmod 0600, $t->prefix . '/api.key';

my $pki = make_pki($t);

# the harness's reply(), always with a JSON type

sub reply {
    my ($status, $body, @headers) = @_;
    return TavusTest::reply($status, $body,
                            'Content-Type' => 'application/json', @headers);
}

# what an upstream that echoes the request headers says: the raw mock
# replays a fixed script, so the key it will receive is written into its
# answer beforehand; the test checks below that the mock did receive
# exactly that key, which makes this the same as an echo

sub echo { my ($key) = @_; return "got x-api-key: $key" }

my $ok = reply('200 OK', '{}');

# name => [ script entry (undef: no mock, nothing listens), key, path
#           suffix, method, expected status, expected fields ]

my @cases;

sub case { push @cases, [ @_ ] }

my $gen400 = 'the upstream rejected the request';
my $genkey = 'the upstream rejected the gateway\'s API key';
my $invalid = [ 502, { code => 'upstream_invalid_response' } ];

case(ok => [ $ok ], 'static', 'r1', 'DELETE',
     200, { deleted => $true, replica_id => 'r1' });
case(ok_file => [ $ok ], 'file', 'r1', 'DELETE',
     200, { deleted => $true });
case(invalid_id => [ $ok ], 'static', 'a.b', 'DELETE',
     400, { code => 'invalid_replica_id' });
case(invalid_hard => [ $ok ], 'static', 'r1?hard=maybe', 'DELETE',
     400, { code => 'invalid_hard' });
case(hard_denied => [ $ok ], 'static', 'r1?hard=true', 'DELETE',
     403, { code => 'hard_delete_denied' });
case(get => [ $ok ], 'static', 'r1', 'GET',
     405, { code => 'method_not_allowed' });

# a delete of r1 whose upstream answers STATUS with the key it received
# (that of the location of KEY) in the JSON FIELD of its body, and what
# the client must get instead

sub echo_case {
    my ($name, $status, $field, $key, $want, @headers) = @_;
    case($name => [ reply($status, qq({"$field":") . echo($K{$key}) . '"}',
                          @headers) ],
         $key, 'r1', 'DELETE', @$want);
}

my $client_error = [ 400, { code => 'upstream_client_error',
                            error => $gen400 } ];
my $rejected_key = [ 502, { code => 'upstream_rejected_key',
                            error => $genkey } ];

echo_case(echo_400 => '400 Bad Request', error => 'static', $client_error);
echo_case(echo_400_file => '400 Bad Request', error => 'file', $client_error);

# the key as JSON escapes: cJSON decodes them, the check must come after
(my $escaped = $K{static}) =~ s/([A-Z])/sprintf('\\u%04x', ord $1)/ge;
case(echo_400_escaped => [ reply('400 Bad Request',
                                 '{"error":"got x-api-key: ' . $escaped
                                 . '"}') ],
     'static', 'r1', 'DELETE', @$client_error);

# the key past the 512 bytes a message is cut to: cutting must not leave
# a piece of it
case(echo_400_long => [ reply('400 Bad Request',
                              '{"error":"' . ('x' x 500) . ' '
                              . echo($K{static}) . '"}') ],
     'static', 'r1', 'DELETE', @$client_error);

# the key split across two chunks
my $half = int(length($K{static}) / 2);
my $body = '{"error":"' . echo($K{static}) . '"}';
my $cut = index($body, $K{static}) + $half;
case(echo_400_chunked => [ chunked('400 Bad Request',
                                   [ substr($body, 0, $cut),
                                     substr($body, $cut) ]) ],
     'static', 'r1', 'DELETE', @$client_error);

echo_case(echo_401 => '401 Unauthorized', message => 'static', $rejected_key);
echo_case(echo_403 => '403 Forbidden', message => 'file', $rejected_key);
echo_case(echo_404 => '404 Not Found', error => 'static',
          [ 404, { code => 'not_found', error => 'replica not found' } ]);
echo_case(echo_418 => "418 I'm a teapot", message => 'static',
          [ 418, { code => 'upstream_client_error', error => $gen400 } ]);
echo_case(echo_429 => '429 Too Many Requests', error => 'static',
          [ 429, { code => 'rate_limited',
                   error => 'rate limited by the upstream' } ],
          'Retry-After' => 7, 'X-Echo' => echo($K{static}));
echo_case(echo_500 => '500 Internal Server Error', error => 'static',
          [ 502, { code => 'upstream_error',
                   error => 'the upstream failed' } ]);

case(echo_503_text => [ reply('503 Service Unavailable',
                              echo($K{static})) ],
     'static', 'r1', 'DELETE',
     502, { code => 'upstream_error' });

# the only upstream header passed on to the client: Retry-After
case(echo_retry_after => [ reply('429 Too Many Requests', '{}',
                                 'Retry-After' => $K{static}) ],
     'static', 'r1', 'DELETE',
     429, { code => 'rate_limited' });

case(garbage => [ echo($K{static}) . "\r\n\r\n", { close => 1 } ],
     'static', 'r1', 'DELETE', @$invalid);
case(truncated => [ "HTTP/1.1 400 Bad Request\r\nContent-Length: 300\r\n\r\n"
                    . '{"error":"' . echo($K{static}), { close => 1 } ],
     'static', 'r1', 'DELETE', @$invalid);
case(two_lengths => [ "HTTP/1.1 400 Bad Request\r\nContent-Length: 60\r\n"
                      . "Content-Length: 60\r\n\r\n"
                      . '{"error":"' . echo($K{static}) . '"}' ],
     'static', 'r1', 'DELETE', @$invalid);
case(too_big => [ reply('400 Bad Request', '{"error":"' . echo($K{static})
                        . ('y' x 9000) . '"}') ],
     'static', 'r1', 'DELETE', @$invalid);
case(refused => undef, 'static', 'r1', 'DELETE',
     502, { code => 'upstream_error' });
case(timeout => [ { hang => 1 } ], 'static', 'r1', 'DELETE',
     504, { code => 'upstream_timeout' });

my (%mock, @locations);

for my $case (@cases) {
    my ($name, $entry, $key) = @$case;

    $mock{$name} = $t->raw_mock(port => $t->port($name), script => [ $entry ])
        if $entry;

    my $key_line = $key eq 'file' ? 'tavus_api_key_file %%PREFIX%%/api.key;'
                                  : "tavus_api_key $K{$key};";

    push @locations, delete_location("$name/replicas",
                                     "tavus_pass http://127.0.0.1:%%PORT_$name%%;",
                                     $key_line);
}

# per-tenant keys from a map, a dry run: their own mocks

my $tenant_ok = $t->raw_mock(port => $t->port('tenant_ok'),
                             script => [ [ $ok ] ]);
my $tenant_echo = $t->raw_mock(port => $t->port('tenant_echo'), script => [
    [ reply('401 Unauthorized', '{"message":"' . echo($K{tenant_a}) . '"}') ]
]);
my $dry = $t->raw_mock(port => $t->port('dry'), script => [ [ $ok ] ]);

# ports that nginx itself listens on are named after the raw mocks have
# bound theirs (each mock also binds a control port chosen by the kernel,
# which could otherwise be a port named here but not yet bound)
my $gw = $t->port('gw');

# the mock's own logs: see below
my $mock_tavus = $t->mock_tavus(name => 'tavus', key => $K{static});

# TLS upstreams: location => [ the mock's port, tavus_ssl_name, the CA
# trusted ]

my @tls_locations = map {
    my ($name, $port, $sni, $ca) = @$_;
    delete_location("$name/replicas",
                    "tavus_pass https://127.0.0.1:%%PORT_$port%%;",
                    $sni ? "tavus_ssl_name $sni;" : '',
                    "tavus_ssl_trusted_certificate $pki->{$ca};",
                    "tavus_api_key $K{static};");
} [ tls_ok => 'tlsmock_ok', 'tavusapi.com', 'ca.crt' ],
  [ tls_untrusted => 'tlsmock_untrusted', 'tavusapi.com', 'rogue-ca.crt' ],
  [ tls_wrong_name => 'tlsmock_name', 'wrong.example', 'ca.crt' ],
  [ tls_plain => 'plainmock', undef, 'ca.crt' ];

# the nginx mock with the right key and a wrong one; per-tenant keys from
# a map; a dry run

my @more_locations = (
    delete_location('tavus/replicas',
                    'tavus_pass http://127.0.0.1:%%PORT_tavus%%;',
                    "tavus_api_key $K{static};"),
    delete_location('tavus_wrong/replicas',
                    'tavus_pass http://127.0.0.1:%%PORT_tavus%%;',
                    "tavus_api_key $K{wrong};"),
    (map { delete_location("$_/replicas",
                           "tavus_pass http://127.0.0.1:%%PORT_$_%%;",
                           'tavus_api_key $tenant_key;',
                           $_ eq 'dry' ? 'tavus_dry_run on;' : '') }
         qw(tenant_ok tenant_echo dry)),
);

$t->run($mock_tavus . <<"HTTP");
    log_format audit escape=json '{"uri":"\$request_uri",'
        '"status":"\$status","user":"\$remote_user",'
        '"tenant":"\$http_x_tenant","replica":"\$tavus_replica_id",'
        '"hard":"\$tavus_hard","outcome":"\$tavus_outcome",'
        '"upstream":"\$upstream_addr","upstream_status":"\$upstream_status",'
        '"retry_after":"\$sent_http_retry_after",'
        '"key":"\$tavus_api_key_fingerprint"}';

    map \$http_x_tenant \$tenant_key {
        a   $K{tenant_a};
        b   $K{tenant_b};
    }

    # stand-ins for Tavus over TLS, and a plain HTTP server that a TLS
    # client cannot talk to.  Like the mock's, their own error log, not at
    # debug level: nginx debug-logs the request headers it receives,
    # x-api-key included, and that log is the mock's, not the gateway's

    # one port a location: locations whose tavus_pass names the same
    # host:port share nginx's implicit upstream, its failed-peer state and
    # its cached TLS session, which a location trusting another CA would
    # then resume (stock proxy_pass does the same)

    server {
        listen 127.0.0.1:%%PORT_tlsmock_ok%% ssl;
        listen 127.0.0.1:%%PORT_tlsmock_untrusted%% ssl;
        listen 127.0.0.1:%%PORT_tlsmock_name%% ssl;
        error_log %%PREFIX%%/tlsmock.error.log info;
        access_log %%PREFIX%%/tlsmock.access.log;
        ssl_certificate $pki->{'server.crt'};
        ssl_certificate_key $pki->{'server.key'};

        location / {
            return 200 '{"message":"Replica deleted successfully"}';
        }
    }

    server {
        listen 127.0.0.1:%%PORT_plainmock%%;
        error_log %%PREFIX%%/plainmock.error.log info;
        access_log %%PREFIX%%/plainmock.access.log;
        return 200 '{}';
    }

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        access_log %%PREFIX%%/audit.log audit;

        tavus_connect_timeout 1s;
        tavus_read_timeout 300ms;
        tavus_buffer_size 4k;

@locations

@more_locations
@tls_locations
    }
HTTP

my @answers;

sub request {
    my ($name, %a) = @_;
    my $r = $t->http(port => $gw, %a);
    push @answers, [ $name, $r ];
    return $r;
}

###############################################################################
# every outcome

for my $case (@cases) {
    my ($name, $entry, $key, $suffix, $method, $status, $fields) = @$case;

    my $r = request($name, method => $method,
                    path => "/$name/replicas/$suffix");
    $t->answer($r, $status, $fields, $name);
}

# the echoes were true echoes: each mock received the key it sent back

for my $case (grep { $_->[0] =~ /^echo_|^garbage|^truncated|^two_|^too_/ }
              @cases)
{
    my ($name, $entry, $key) = @$case;
    like(($mock{$name}->requests)[0] // '', qr/^x-api-key: \Q$K{$key}\E\r$/m,
         "$name: the mock received the key it echoes");
}

is($mock{$_}->connections, 0, "$_: no upstream connection")
    for qw(invalid_id invalid_hard hard_denied get);

my $r = request('tavus', method => 'DELETE', path => '/tavus/replicas/r0abc');
$t->answer($r, 200, { deleted => $true }, 'nginx mock');
$r = request('tavus_wrong', method => 'DELETE',
             path => '/tavus_wrong/replicas/r0abc');
$t->answer($r, 502, { code => 'upstream_rejected_key' }, 'nginx mock, wrong key');
is(join(' ', map { $_->{key} } $t->mock_log('tavus')), 'ok bad',
   'nginx mock: the right key, then the wrong one');

for my $tenant (qw(a b)) {
    $r = request("tenant $tenant", method => 'DELETE',
                 path => '/tenant_ok/replicas/r1',
                 headers => [ 'X-Tenant' => $tenant ]);
    $t->answer($r, 200, { deleted => $true }, "tenant $tenant");
}
is(join(' ', map { /^x-api-key: (.*)\r$/m ? $1 : '' } $tenant_ok->requests),
   "$K{tenant_a} $K{tenant_b}", 'tenants: their own keys upstream');

$r = request('tenant echo', method => 'DELETE',
             path => '/tenant_echo/replicas/r1',
             headers => [ 'X-Tenant' => 'a' ]);
$t->answer($r, 502, { code => 'upstream_rejected_key', error => $genkey },
           'tenant a, echoed key');

$r = request('tenant unknown', method => 'DELETE',
             path => '/tenant_ok/replicas/r1',
             headers => [ 'X-Tenant' => 'nobody' ]);
$t->answer($r, 500, { code => 'gateway_misconfigured' }, 'unknown tenant');

$r = request('dry run', method => 'DELETE', path => '/dry/replicas/r1',
             headers => [ 'X-Tenant' => 'b' ]);
$t->answer($r, 200, { replica_id => 'r1', dry_run => $true }, 'dry run');
is($dry->connections, 0, 'dry run: no upstream connection');

for my $name (qw(tls_untrusted tls_wrong_name tls_plain)) {
    $r = request($name, method => 'DELETE', path => "/$name/replicas/r1");
    $t->answer($r, 502, { code => 'upstream_error' }, $name);
}

$r = request('tls ok', method => 'DELETE', path => '/tls_ok/replicas/r1');
$t->answer($r, 200, { deleted => $true }, 'TLS upstream');

my $tls_log = $t->read_file('tlsmock.access.log');
is(scalar(() = $tls_log =~ /"DELETE /g), 1,
   'TLS: only the verified connection sent the request');

# every outcome word was reached

my @audit = json_lines($t, 'audit.log');
my %outcomes = map { ($_->{outcome} => 1) } @audit;

for my $outcome (qw(deleted invalid_replica_id invalid_hard hard_delete_denied
                    method_not_allowed not_found rate_limited
                    upstream_rejected_key upstream_client_error upstream_error
                    upstream_timeout upstream_invalid_response
                    gateway_misconfigured dry_run))
{
    ok($outcomes{$outcome}, "outcome $outcome was driven");
}

# what the operator is told instead of the upstream's text

my $log = $t->error_log;

like($log, qr/upstream rejected the API key with fingerprint \Q@{[
              fingerprint($K{static}) ]}\E: 401, message: "\(withheld/,
     'error log: the rejected key by its fingerprint, the message withheld');
like($log, qr/upstream rejected the API key with fingerprint \Q@{[
              fingerprint($K{tenant_a}) ]}\E: 401/,
     'error log: a tenant\'s rejected key by its fingerprint');
like($log, qr/upstream answered 500, message: "\(withheld/,
     'error log: a server error\'s message withheld');

$t->stop;

###############################################################################
# the checks: no key anywhere the gateway writes or answers

# debug logging was on, in the module's code paths too, or the checks
# below would prove nothing
my @debug = grep { /\[debug\]/ } split /\n/, $log;
cmp_ok(scalar @debug, '>', 1000, 'the error log is at debug level');
ok((grep { /tavus request: DELETE/ } @debug),
   'the module\'s own debug lines are there');
ok((grep { /http upstream/ } @debug), 'the upstream\'s debug lines are there');
ok((grep { /SSL/ } @debug), 'the TLS debug lines are there');

# the search itself finds what it looks for: the config holds the static
# keys and the map, the raw mocks received the keys
ok(leaks($t->read_file('nginx.conf'), $K{static}),
   'the search finds a key where one is');
ok(leaks(join('', map { $_->received } values %mock), $K{static}),
   'the search finds the key in what the upstreams received');

for my $answer (@answers) {
    my ($name, $r) = @$answer;
    my @seen = leaks($r->{raw}, @KEYS);
    ok(!@seen, "$name: no key in the answer (status line, headers, body)")
        or diag("seen: @seen\n" . $t->printable($r->{raw}));
}

# every file in the prefix, but the test's own inputs and those that hold
# a key by design:
#
#   *.crt, *.key, ...     certificates, keys and the module copy, made
#                         before nginx ran
#   nginx.conf, api.key   the configuration (why tavus_api_key_file is the
#                         recommended form: nginx -T prints the config)
#   mock-*/               what the raw mocks received, as the real Tavus
#                         receives the key
#   tavus.*, tlsmock.*,   the logs of the nginx server blocks standing in
#   plainmock.*           for Tavus: they are the upstream, which holds the
#                         key; they log at info level anyway, since at
#                         debug nginx would log the x-api-key they receive

my $excluded = qr{^(?:[^/]+\.(?:crt|csr|ext|key|so)|nginx\.conf|mock-\d+/.*
                    |(?:tavus|tlsmock|plainmock)\..*)\z}x;

my @checked;

for my $file (files_under($t)) {
    next if $file =~ $excluded;
    push @checked, $file;

    my @seen = leaks($t->read_file($file), @KEYS);
    ok(!@seen, "$file: no key") or diag("seen: @seen");
}

ok((grep { $_ eq 'error.log' } @checked), 'the error log was checked');
ok((grep { $_ eq 'audit.log' } @checked), 'the access log was checked');

done_testing;
