#!/usr/bin/perl

# "if" and "limit_except" inside a tavus_delete_replica location: each is a
# location of its own in nginx, and the delete must work the same in it.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use TavusTest qw(reply upstream_group);

my $t = TavusTest->new->require_module;

my $KEY = 'iflim-Key_1';

my $m = $t->raw_mock(port => $t->port('up'),
                     script => [ [ reply('200 OK', '{}') ] ]);

$t->run(upstream_group('tavus', [ '127.0.0.1:%%PORT_up%%' ], 'keepalive 4;')
        . <<"HTTP");

    log_format outcome '\$request_uri \$tavus_outcome \$tavus_replica_id';

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        access_log %%PREFIX%%/outcome.log outcome;

        tavus_pass http://tavus;
        tavus_api_key $KEY;

        location ~ ^/if/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;

            if (\$http_x_flag) {
                set \$flagged 1;
            }
        }

        location ~ ^/if-hard/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;

            if (\$http_x_allow) {
                set \$allow on;
            }

            tavus_allow_hard_delete \$allow;
        }

        location ~ ^/limit/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;

            limit_except DELETE {
                deny all;
            }
        }

        location ~ ^/limit-deny/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;

            limit_except GET {
                allow 192.0.2.1;
                deny all;
            }
        }
    }
HTTP

my $gw = $t->port('gw');
my $true = JSON::PP::true;

sub delete_ok {
    my ($path, $id, $n, $name, @headers) = @_;

    my $r = $t->http(port => $gw, method => 'DELETE', path => $path,
                     headers => [ @headers ]);
    $t->answer($r, 200, { replica_id => $id, deleted => $true }, $name);

    my @req = $m->requests;
    is(scalar @req, $n, "$name: upstream request $n");
    like($req[-1] // '', qr{^DELETE /v2/replicas/\Q$id\E[ ?]},
         "$name: the delete went upstream");
}

delete_ok('/if/r1', 'r1', 1, 'if, not taken');
delete_ok('/if/r2', 'r2', 2, 'if, taken', 'X-Flag' => 'yes');

my $r = $t->http(port => $gw, method => 'GET', path => '/if/r3',
                 headers => [ 'X-Flag' => 'yes' ]);
$t->answer($r, 405, { code => 'method_not_allowed' }, 'if, taken, GET');
is(scalar $m->requests, 2, 'if, taken, GET: nothing upstream');

$r = $t->http(port => $gw, method => 'DELETE', path => '/if-hard/r4?hard=true');
$t->answer($r, 403, { code => 'hard_delete_denied' }, 'if: hard denied');

$r = $t->http(port => $gw, method => 'DELETE', path => '/if-hard/r5?hard=true',
              headers => [ 'X-Allow' => '1' ]);
$t->answer($r, 200, { replica_id => 'r5', deleted => $true, hard => $true },
           'if: hard allowed inside the if');
like(($m->requests)[-1] // '', qr{^DELETE /v2/replicas/r5\?hard=true },
     'if: hard allowed: ?hard=true upstream');

delete_ok('/limit/r6', 'r6', 4, 'limit_except DELETE: a DELETE');

$r = $t->http(port => $gw, method => 'GET', path => '/limit/r7');
is($r->{status}, 403, 'limit_except DELETE: a GET is refused by nginx');
is(scalar $m->requests, 4, 'limit_except DELETE: GET: nothing upstream');

$r = $t->http(port => $gw, method => 'DELETE', path => '/limit-deny/r8');
is($r->{status}, 403, 'limit_except GET with deny: a DELETE is refused');
is(scalar $m->requests, 4, 'limit_except GET with deny: nothing upstream');

$r = $t->http(port => $gw, method => 'GET', path => '/limit-deny/r9');
$t->answer($r, 405, { code => 'method_not_allowed' },
           'limit_except GET: a GET reaches the module, which refuses it');

# the outcome reaches the log in the if block too

like($t->wait_log('outcome.log', qr{^/if/r2 }) // '',
     qr{^/if/r2 deleted r2$}, 'if, taken: outcome and id logged');

unlike($t->error_log, qr/signal|\[alert\]/, 'no worker crashed, no alert');

$t->stop;

done_testing;
