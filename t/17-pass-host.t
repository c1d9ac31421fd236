#!/usr/bin/perl

# One rule for the host[:port] of tavus_pass, as written and as evaluated
# per request: letters, digits, ".", "-", "_", ":", "[" and "]" only, a
# lone trailing "/" accepted, no path, query or fragment.  A literal that
# breaks it fails nginx -t; a value with variables that breaks it is a
# 500 gateway_misconfigured, with no upstream connection and a log line
# that does not echo the value (it may come from a client).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use TavusTest qw(reply);

my $t = TavusTest->new->require_module;

my $gw = $t->port('gw');

$t->key_file('api.key', "host-Key_1");

my $conf = sub {
    my ($pass) = @_;
    return <<"HTTP";
    upstream my_group-2 {
        server 127.0.0.1:%%PORT_up%%;
    }

    server {
        listen 127.0.0.1:%%PORT_gw%%;

        location ~ ^/replicas/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_pass $pass;
            tavus_api_key_file %%PREFIX%%/api.key;
        }
    }
HTTP
};

for my $case ([ 'http://127.0.0.1:%%PORT_up%%', 'an address and a port' ],
              [ 'http://127.0.0.1:%%PORT_up%%/', 'a trailing /' ],
              [ 'http://my_group-2', 'a group name with _ and -' ],
              [ 'http://[::1]:%%PORT_up%%', 'an IPv6 address' ],
              [ 'http://$http_x_host', 'variables' ])
{
    my ($pass, $name) = @$case;
    my ($ok, $out) = $t->nginx_t($conf->($pass));
    ok($ok, "tavus_pass $name: nginx -t passes") or diag($out);
}

for my $case ([ 'http://127.0.0.1:1/v2', qr/must not have a path/,
                'a path' ],
              [ 'http://h?x', qr/must not have a path/, 'a query' ],
              [ 'http://', qr/has no valid host/, 'no host' ],
              [ q{'http://exa"mple'}, qr/has no valid host/, 'a quote' ],
              [ q{'http://ex ample'}, qr/has no valid host/, 'a space' ],
              [ 'http://tavus~api', qr/has no valid host/, 'a ~' ])
{
    my ($pass, $why, $name) = @$case;
    my ($ok, $out) = $t->nginx_t($conf->($pass));
    ok(!$ok, "tavus_pass $name: nginx -t fails");
    like($out, qr/\[emerg\] "tavus_pass" URL $why.* in \S+\.conf:\d+/,
         "tavus_pass $name: the reason and the place");
}

# the rule per request

my $up = $t->raw_mock(port => $t->port('up'),
                      script => [ [ reply('200 OK', '{}') ] ]);

$t->run($conf->('http://$http_x_host'));

my $r = $t->http(port => $gw, method => 'DELETE', path => '/replicas/r1',
                 headers => [ 'X-Host' => "127.0.0.1:" . $t->port('up') ]);
$t->answer($r, 200, { replica_id => 'r1' }, 'a valid host');

$r = $t->http(port => $gw, method => 'DELETE', path => '/replicas/r2',
              headers => [ 'X-Host' => 'my_group-2' ]);
$t->answer($r, 200, { replica_id => 'r2' }, 'a group name');

for my $case ([ "exa\"mple", 'a quote' ],
              [ "exa\xc2\x9bmple", 'a C1 control in UTF-8' ],
              [ "exa\xe2\x80\xaemple", 'a right-to-left override' ],
              [ 'a/b', 'a path' ],
              [ 'x@y', 'an @' ])
{
    my ($host, $name) = @$case;
    my $n = $up->connections;
    my $log = length $t->error_log;

    $r = $t->http(port => $gw, method => 'DELETE', path => '/replicas/r3',
                  headers => [ 'X-Host' => $host ]);
    $t->answer($r, 500, { code => 'gateway_misconfigured' }, $name);
    is($up->connections, $n, "$name: no upstream connection");

    # nginx's own debug lines show the client's headers: the module's
    # lines are those above debug level
    my $new = join "\n", grep { /^\S+ \S+ \[(?!debug)/ }
                         split /\n/, substr($t->error_log, $log);
    like($new, qr/"tavus_pass" evaluated to no valid host\[:port\]/,
         "$name: logged");
    ok(index($new, 'exa') < 0 && index($new, 'x@y') < 0,
       "$name: the value is not echoed");
}

$t->stop;

done_testing;
