#!/usr/bin/perl

# Per-tenant keys (docs/recipes.md, "Per-tenant keys") and
# $tavus_api_key_fingerprint in an audit log ("Audit log"): `tavus_api_key
# $tenant_key` with a map on $remote_user (auth_basic) and on a header; a key
# that evaluates empty or with a control byte at run time is a 500
# gateway_misconfigured, an error-log line naming the problem and not the key,
# and no upstream connection; the fingerprint is the first 16 hex digits of
# SHA-256 of the key actually used, and the access log never holds a key.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use TavusTest;
use TavusAuth qw(:all);

my $t = TavusTest->new->require_module;

my $true = JSON::PP::true;

my %key = (
    alice  => 'key-alice-1',
    bob    => 'key-bob-2',
    static => 'key-static-3',
    hdr_a  => 'key-hdrA-4',
    hdr_b  => 'key-hdrB-5',
);

# keys of tenants whose key is broken: nginx's config parser turns \t, \r
# and \n inside a quoted string into the bytes, so a map can hold them
my %broken = (
    dave  => "key-dave\t6",
    erin  => "key-erin-7\r\nX-Injected: 1",
    frank => "key-frank-8\x7f",
);

my $m = $t->raw_mock(port => $t->port('up'), script => [ [
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    . "Content-Length: 2\r\n\r\n{}"
] ]);
my $up = $t->port('up');

# named once the mock is up: its control port, chosen by the kernel,
# could otherwise take a port named but not yet bound by nginx
my $gw = $t->port('gw');

htpasswd($t, 'htpasswd', map { [ $_, "$_-Pass", 'apr1' ] }
                         qw(alice bob carol dave erin frank));

$t->run(<<"HTTP");
    log_format audit escape=json '{"user":"\$remote_user",'
        '"replica":"\$tavus_replica_id","hard":"\$tavus_hard",'
        '"outcome":"\$tavus_outcome","upstream_status":"\$upstream_status",'
        '"key":"\$tavus_api_key_fingerprint"}';

    map \$remote_user \$tenant_key {
        alice   $key{alice};
        bob     $key{bob};
        dave    "key-dave\\t6";
        erin    "key-erin-7\\r\\nX-Injected: 1";
        frank   "key-frank-8\x7f";
    }

    map \$http_x_tenant \$header_tenant_key {
        a       $key{hdr_a};
        b       $key{hdr_b};
    }

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        access_log %%PREFIX%%/audit.log audit;
        tavus_pass http://127.0.0.1:%%PORT_up%%;

        location ~ ^/user/replicas/(?<replica>[^/]*)\$ {
            auth_basic "tenants";
            auth_basic_user_file %%PREFIX%%/htpasswd;
            tavus_delete_replica \$replica;
            tavus_api_key \$tenant_key;
        }

        location ~ ^/tenant/replicas/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_api_key \$header_tenant_key;
        }

        location ~ ^/header-key/replicas/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_api_key \$http_x_k;
        }

        location ~ ^/static/replicas/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_api_key $key{static};
        }

        location /plain {
            return 204;
        }
    }
HTTP

sub upstream_request {
    my ($id, $key) = @_;
    return "DELETE /v2/replicas/$id HTTP/1.1\r\nHost: 127.0.0.1:$up\r\n"
           . "x-api-key: $key\r\n\r\n";
}

###############################################################################
# two tenants, two keys, from $remote_user and from a header

my @good = (
    [ 'alice', '/user/replicas/ra1', 'ra1', $key{alice},
      [ Authorization => basic('alice', 'alice-Pass') ] ],
    [ 'bob', '/user/replicas/rb1', 'rb1', $key{bob},
      [ Authorization => basic('bob', 'bob-Pass') ] ],
    [ 'header tenant a', '/tenant/replicas/rc1', 'rc1', $key{hdr_a},
      [ 'X-Tenant' => 'a' ] ],
    [ 'header tenant b', '/tenant/replicas/rd1', 'rd1', $key{hdr_b},
      [ 'X-Tenant' => 'b' ] ],
    [ 'static key', '/static/replicas/re1', 're1', $key{static}, [] ],
);

for my $case (@good) {
    my ($name, $path, $id, $key, $headers) = @$case;
    my $n = $m->connections;

    my $r = $t->http(port => $gw, method => 'DELETE', path => $path,
                     headers => $headers);
    $t->answer($r, 200, { replica_id => $id, deleted => $true }, $name);
    is($m->connections, $n + 1, "$name: one upstream connection");
    is($t->printable(($m->requests)[-1] // ''),
       $t->printable(upstream_request($id, $key)),
       "$name: the upstream request carries its key");
}

my @sent = map { /^x-api-key: (.*)\r$/m ? $1 : '' } $m->requests;
is(join(' ', @sent), join(' ', map { $_->[3] } @good),
   'the mock received each tenant\'s own key, in order');

###############################################################################
# keys that cannot be used: 500, a log line, no upstream connection

my $connections = $m->connections;

my @bad = (
    [ 'unknown user (empty key)', '/user/replicas/rf1',
      [ Authorization => basic('carol', 'carol-Pass') ], qr/empty key/ ],
    [ 'key with a tab from the map', '/user/replicas/rf2',
      [ Authorization => basic('dave', 'dave-Pass') ], qr/control character/ ],
    [ 'key with CR LF from the map', '/user/replicas/rf3',
      [ Authorization => basic('erin', 'erin-Pass') ], qr/control character/ ],
    [ 'key with a DEL from the map', '/user/replicas/rf4',
      [ Authorization => basic('frank', 'frank-Pass') ],
      qr/control character/ ],
    [ 'unknown header tenant (empty key)', '/tenant/replicas/rf5',
      [ 'X-Tenant' => 'z' ], qr/empty key/ ],
    [ 'no tenant header (empty key)', '/tenant/replicas/rf6', [],
      qr/empty key/ ],
    [ 'key header with a tab', '/header-key/replicas/rf7',
      [ 'X-K' => "a\tb-Secret_9" ], qr/control character/ ],
);

for my $case (@bad) {
    my ($name, $path, $headers, $why) = @$case;
    my ($id) = $path =~ m{/([^/]+)\z};

    my $r = $t->http(port => $gw, method => 'DELETE', path => $path,
                     headers => $headers);
    $t->answer($r, 500, { code => 'gateway_misconfigured', replica_id => $id,
                          error => 'the gateway is misconfigured' }, $name,
               keys => [qw(error code replica_id)]);
    ok(!leaks($r->{raw}, values %key, values %broken, 'b-Secret_9'),
       "$name: no key in the answer");
    is($m->connections, $connections, "$name: no upstream connection");

    my @lines = grep { /\Q$path\E/ && /\[error\]/ } split /\n/, $t->error_log;
    is(scalar @lines, 1, "$name: one error-log line for the request");
    like($lines[0] // '', qr/"tavus_api_key" evaluated to .*$why/,
         "$name: the line names the problem");
    ok(!leaks($lines[0] // '', values %key, values %broken, 'b-Secret_9'),
       "$name: the line does not name the key");
}

###############################################################################
# the audit log: fingerprints of the keys used, never a key

my $r = $t->http(port => $gw, method => 'GET', path => '/plain');
is($r->{status}, 204, 'a request outside the module');

my @audit = json_lines($t, 'audit.log');
is(scalar @audit, @good + @bad + 1, 'one audit line a request');

my %by_replica = map { ($_->{replica} || 'none') => $_ } @audit;

my %fp;

for my $case (@good) {
    my ($name, $path, $id, $key) = @$case;
    my $a = $by_replica{$id} // {};

    is($a->{key}, fingerprint($key),
       "audit, $name: the fingerprint is sha256(key)[0..16]");
    like($a->{key} // '', qr/^[0-9a-f]{16}\z/,
         "audit, $name: 16 lowercase hex digits");
    is($a->{outcome}, 'deleted', "audit, $name: outcome");
    is($a->{upstream_status}, '200', "audit, $name: upstream status");
    is($a->{hard}, 'false', "audit, $name: hard flag");
    $fp{$a->{key} // ''}++;
}

is(scalar keys %fp, scalar @good, 'audit: every key has its own fingerprint');
is($by_replica{ra1}{user}, 'alice', 'audit: alice is named');
is($by_replica{rb1}{user}, 'bob', 'audit: bob is named');
isnt($by_replica{ra1}{key}, $by_replica{rb1}{key},
     'audit: alice\'s and bob\'s fingerprints differ');

for my $case (@bad) {
    my ($name, $path) = @$case;
    my ($id) = $path =~ m{/([^/]+)\z};
    my $a = $by_replica{$id} // {};

    is($a->{outcome}, 'gateway_misconfigured', "audit, $name: outcome");
    is($a->{key}, '', "audit, $name: no fingerprint of an unusable key");
    is($a->{upstream_status}, '', "audit, $name: no upstream status");
}

is($by_replica{none}{key}, '', 'audit, outside the module: no fingerprint');

my $log = $t->read_file('audit.log');
my @seen = leaks($log, values %key, values %broken, 'b-Secret_9');
ok(!@seen, 'the access log holds no key') or diag("seen: @seen");

# keys the client did not send itself are in no log; the header key is
# left out because nginx itself debug-logs the client's request headers

@seen = leaks($t->error_log, values %key, values %broken);
ok(!@seen, 'the error log (debug) holds no key') or diag("seen: @seen");

$t->stop;

done_testing;
