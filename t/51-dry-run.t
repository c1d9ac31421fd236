#!/usr/bin/perl

# tavus_dry_run (docs/directives.md, docs/decisions.md, "Checks run in a
# fixed order"): every check runs (validation, nginx's
# own authentication, hard-delete policy, key selection), no upstream
# call is made, the client gets 200 {"replica_id":...,"deleted":false,
# "dry_run":true,"hard":...}; $tavus_outcome is dry_run and the metrics
# count it as its own outcome.  A raw mock upstream counts connections.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use Digest::SHA qw(sha256_hex);
use TavusTest qw(delete_location server_block);
use TavusProm;

my $t = TavusTest->new->require_module;

my $gw = $t->port('gw');
my $gw2 = $t->port('gw2');
$t->refused_port('closed');
my $true = JSON::PP::true;
my $false = JSON::PP::false;

my $m = $t->raw_mock(port => $t->port('up'), script => [ [
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    . "Content-Length: 2\r\n\r\n{}"
] ]);

my $DRY = 'tavus_dry_run on;';
my $LOG = 'access_log %%PREFIX%%/dry.access.log dry;';

my $http = <<'HTTP';
    tavus_metrics_zone tavus 1m;

    log_format dry 'uri=$uri outcome=$tavus_outcome hard=$tavus_hard '
                   'id=$tavus_replica_id key=$tavus_api_key_fingerprint '
                   'status=$status upstream=$upstream_addr';

    map $http_x_tenant $tenant_key {
        alpha     dry-Alpha_1;
        tab       "dry\tTab";
        default   "";
    }

    # both servers
    tavus_pass http://127.0.0.1:%%PORT_up%%;
    tavus_api_key dry-Static_1;

HTTP

my $auth = <<'HTTP';
        location = /auth {
            internal;
            if ($http_x_auth = letmein) {
                return 204;
            }
            return 401;
        }
HTTP

$t->run($http
    . server_block('gw', $LOG, 'tavus_metrics_label dry;',
        'location = /metrics { tavus_metrics; }',
        $auth,
        delete_location('dry', $DRY,
                        'tavus_allow_hard_delete $http_x_allow_hard;'),
        delete_location('tenant', $DRY, 'tavus_api_key $tenant_key;'),
        delete_location('authz', 'auth_request /auth;', $DRY),
        delete_location('refused', $DRY,
                        'tavus_pass http://127.0.0.1:%%PORT_closed%%;'),
        delete_location('switch', 'tavus_dry_run $arg_dry;',
                        'tavus_metrics_label switch;'))
    . server_block('gw2', $LOG, 'tavus_metrics_label inherit;', $DRY,
        delete_location('inherited'),
        delete_location('off', 'tavus_dry_run off;')));

my %count;            # label => outcome => hard => n, as sent

sub dry_answer {
    my ($r, $id, $hard, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return $t->answer($r, 200, { replica_id => $id, deleted => $false,
                                 dry_run => $true,
                                 hard => $hard ? $true : $false }, $name,
                      keys => [qw(replica_id deleted dry_run hard)]);
}

sub req {
    my ($port, $path, %o) = @_;
    return $t->http(port => $port, method => $o{method} // 'DELETE',
                    path => $path, headers => $o{headers} // []);
}

# the server of each label
my %port = (dry => $gw, switch => $gw, inherit => $gw2);

# a request to LABEL's server that must be a dry run of ID: its answer,
# counted as sent
sub dry_run {
    my ($label, $path, $id, $hard, $name, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = req($port{$label}, $path, %o);
    dry_answer($r, $id, $hard, $name);
    $count{$label}{dry_run}{$hard}++;
    return $r;
}

# a request to LABEL's server that must delete ID for real: its answer,
# counted as sent
sub real_delete {
    my ($label, $path, $id, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = req($port{$label}, $path);
    $t->answer($r, 200, { replica_id => $id, deleted => $true },
               "$name: a real delete");
    unlike($r->{body}, qr/dry_run/, "$name: no dry_run field");
    $count{$label}{deleted}{0}++;
    return $r;
}

# a request the module refuses: its answer (STATUS, FIELDS with the
# code), counted as sent, as a hard delete when it asked for one
sub refusal {
    my ($label, $path, $status, $fields, $name, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = req($port{$label}, $path, %o);
    $t->answer($r, $status, $fields, $name);
    $count{$label}{ $fields->{code} }{ $path =~ /[?&]hard=true\b/ ? 1 : 0 }++;
    return $r;
}

###############################################################################
# tavus_dry_run on: a dry-run answer, nothing upstream

dry_run(dry => '/dry/rf3073f2dcc1', 'rf3073f2dcc1', 0, 'dry run');
dry_run(dry => '/dry/r2?hard=false', 'r2', 0, 'dry run, hard=false');
dry_run(dry => '/dry/r3?hard=true', 'r3', 1, 'dry run, hard allowed',
        headers => [ 'X-Allow-Hard' => 'on' ]);

# the checks all still apply

my $invalid_id = { code => 'invalid_replica_id' };
my $denied = { code => 'hard_delete_denied' };
my $misconfigured = { code => 'gateway_misconfigured' };

refusal(dry => '/dry/bad.id', 400, $invalid_id, 'dry run: invalid id');
refusal(dry => '/dry/' . ('a' x 129), 400, $invalid_id, 'dry run: 129 bytes');
refusal(dry => '/dry/r4?hard=maybe', 400, { code => 'invalid_hard' },
        'dry run: invalid hard');
refusal(dry => '/dry/r5?hard=true', 403, { %$denied, replica_id => 'r5' },
        'dry run: hard denied');
refusal(dry => '/dry/r6?hard=true', 403, $denied,
        'dry run: hard denied ("yes" is not "on")',
        headers => [ 'X-Allow-Hard' => 'yes' ]);

my $r = refusal(dry => '/dry/r7', 405, { code => 'method_not_allowed' },
                'dry run: GET', method => 'GET');
is($r->{headers}{allow}, 'DELETE', 'dry run: GET: Allow: DELETE');

# key selection: a map, a missing key and a key with a control byte

dry_run(dry => '/tenant/r8', 'r8', 0, 'dry run: tenant key',
        headers => [ 'X-Tenant' => 'alpha' ]);
refusal(dry => '/tenant/r9', 500, $misconfigured, 'dry run: empty key');
refusal(dry => '/tenant/r10', 500, $misconfigured, 'dry run: key with a tab',
        headers => [ 'X-Tenant' => 'tab' ]);

# nginx's own authentication first: its answer, the module never runs

$r = req($gw, '/authz/r11');
is($r->{status}, 401, 'dry run: auth_request denies: 401');
unlike($r->{body}, qr/dry_run/, 'dry run: auth_request denies: no dry run');

dry_run(dry => '/authz/r12', 'r12', 0, 'dry run: auth_request allows',
        headers => [ 'X-Auth' => 'letmein' ]);

# even with the upstream down: no connection is tried

dry_run(dry => '/refused/r13', 'r13', 0, 'dry run: upstream down');

# inherited from the server, and turned off in a location

dry_run(inherit => '/inherited/r14', 'r14', 0,
        'dry run inherited from server{}');

is($m->connections, 0, 'dry runs and refusals: no upstream connection');
is(scalar($m->requests), 0, 'dry runs and refusals: no upstream request');
unlike($t->error_log, qr/connect\(\) failed|upstream/,
       'dry runs: nothing about an upstream in the error log');

real_delete(inherit => '/off/r15', 'r15', 'tavus_dry_run off in a location');

is($m->connections, 1, 'tavus_dry_run off: one upstream connection');

###############################################################################
# tavus_dry_run $arg_dry: per request

my @switch = (
    [ 'dry=1',     1 ], [ 'dry=on',    1 ], [ 'dry=true',  1 ],
    [ 'dry=0',     0 ], [ 'dry=off',   0 ], [ 'dry=false', 0 ],
    [ 'dry=',      0 ], [ '',          0 ],
);

my @real;
my $n = 0;

for my $s (@switch) {
    my ($query, $dry) = @$s;
    my $id = 'r5' . $n++;
    my $before = $m->connections;

    my $path = "/switch/$id" . ($query ne '' ? "?$query" : '');

    if ($dry) {
        dry_run(switch => $path, $id, 0, "switch \"$query\": dry run");
        is($m->connections, $before, "switch \"$query\": no connection");
    } else {
        real_delete(switch => $path, $id, "switch \"$query\"");
        is($m->connections, $before + 1, "switch \"$query\": a connection");
        push @real, $id;
    }
}

# a dry run with hard=true through the switch

refusal(switch => '/switch/r60?dry=1&hard=true', 403, $denied,
        'switch: a dry run is still denied hard');

is(join(' ', map { m{^DELETE /v2/replicas/(\S+) } ? $1 : '?' }
             $m->requests),
   join(' ', 'r15', @real), 'upstream saw exactly the real deletes');

###############################################################################
# $tavus_outcome, $tavus_hard, the replica id and the key fingerprint in
# the access log

my @log = $t->log_entries('dry.access.log');

my %by_uri = map { $_->{uri} => $_ } @log;

sub logged {
    my ($uri, $field) = @_;
    return $by_uri{$uri} ? $by_uri{$uri}{$field} : 'no log line';
}

is(logged('/dry/rf3073f2dcc1', 'outcome'), 'dry_run', 'log: outcome dry_run');
is(logged('/dry/rf3073f2dcc1', 'id'), 'rf3073f2dcc1', 'log: replica id');
is(logged('/dry/rf3073f2dcc1', 'upstream'), '-', 'log: no upstream address');
is(logged('/dry/r3', 'hard'), 'true', 'log: dry run, hard true');
is(logged('/dry/r3', 'outcome'), 'dry_run', 'log: dry run, hard: outcome');
is(logged('/dry/r5', 'outcome'), 'hard_delete_denied', 'log: denied');
is(logged('/tenant/r8', 'key'), substr(sha256_hex('dry-Alpha_1'), 0, 16),
   'log: the tenant key was selected (its fingerprint)');
is(logged('/dry/r2', 'key'), substr(sha256_hex('dry-Static_1'), 0, 16),
   'log: the static key fingerprint');
is(logged('/authz/r11', 'outcome'), '-', 'log: auth denied, no outcome');
is(logged('/off/r15', 'outcome'), 'deleted', 'log: tavus_dry_run off: deleted');
is(logged('/switch/r50', 'outcome'), 'dry_run', 'log: switch on: dry_run');
is(logged('/switch/r53', 'outcome'), 'deleted', 'log: switch off: deleted');

is(scalar(grep { $_->{outcome} eq 'dry_run' } @log),
   (sum_of('dry_run')), 'log: as many dry_run lines as dry runs sent');

sub sum_of {
    my ($outcome) = @_;
    my $s = 0;
    for my $l (values %count) {
        $s += $_ for values %{ $l->{$outcome} // {} };
    }
    return $s;
}

###############################################################################
# metrics: dry_run is its own outcome, with no upstream class or time

my $scrape = $t->http(port => $gw, path => '/metrics');
my ($p, @errors) = TavusProm::parse($scrape->{body});
is(join("\n", @errors), '', 'metrics parse');

my @wrong;

for my $s (grep { $_->{name} eq 'tavus_requests_total' }
           @{ $p->{samples} }) {
    my $l = $s->{labels};
    my $h = $l->{hard} eq 'true' ? 1 : 0;
    my $want = exists $count{ $l->{label} }
               && exists $count{ $l->{label} }{ $l->{outcome} }
               ? $count{ $l->{label} }{ $l->{outcome} }{$h} // 0 : 0;
    push @wrong, "$l->{label}/$l->{outcome}/$l->{hard}: $s->{text},"
                 . " want $want" if $s->{value} != $want;
}

is(join(' ', TavusProm::label_values($p, 'tavus_requests_total', 'label')),
   join(' ', sort keys %count), 'metrics: the labels used');
is(join("\n", @wrong), '', 'metrics: every count exact');
is(TavusProm::value($p, 'tavus_requests_total',
                    { label => 'dry', outcome => 'dry_run', hard => 'false' }),
   5, 'metrics: dry dry_run false is 5');
is(TavusProm::value($p, 'tavus_requests_total',
                    { label => 'switch', outcome => 'dry_run',
                      hard => 'false' }), 3,
   'metrics: switch dry_run false is 3');

for my $label (qw(dry switch inherit)) {
    my $real = $count{$label}{deleted}{0} // 0;
    is(join(' ', map { TavusProm::value($p, 'tavus_upstream_responses_total',
                                        { label => $label, class => $_ })
                       // 'missing' } qw(1xx 2xx 3xx 4xx 5xx)),
       "0 $real 0 0 0", "metrics $label: upstream classes only for real"
                         . ' deletes');
    is(TavusProm::value($p, 'tavus_upstream_response_seconds_count',
                        { label => $label }), $real,
       "metrics $label: response times only for real deletes");
}

$t->stop;

###############################################################################
# a static value other than on/off: nginx's own flags refuse it at load;
# whatever the module does, it must never mean a real delete

for my $value (qw(yes ON)) {
    my $conf = server_block('gw',
        delete_location('static', 'tavus_pass http://127.0.0.1:%%PORT_up2%%;',
                        'tavus_api_key dry-Static_1;',
                        "tavus_dry_run $value;"));

    my ($ok, $out) = $t->nginx_t($conf);

    if (!$ok) {
        like($out, qr/tavus_dry_run/, "tavus_dry_run $value: refused at load");
        next;
    }

    my $m2 = $t->raw_mock(port => $t->port('up2'), script => [ [
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}" ] ]);
    $t->run($conf);
    $r = req($gw, '/static/r70');
    is($m2->connections, 0,
       "tavus_dry_run $value: accepted at load, so no real delete")
        or diag("answer: $r->{status} $r->{body}");
    $t->stop;
}

done_testing;
