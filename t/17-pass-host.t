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
use TavusTest qw(reply gateway upstream_group);

my $t = TavusTest->new->require_module;

my $gw = $t->port('gw');

$t->key_file('api.key', "host-Key_1");

my $conf = sub {
    my ($pass) = @_;
    return upstream_group('my_group-2', [ '127.0.0.1:%%PORT_up%%' ])
           . gateway("tavus_pass $pass;",
                     'tavus_api_key_file %%PREFIX%%/api.key;');
};

# the rule as written: [ tavus_pass, name, why nginx -t fails (undef: it
# passes) ]

for my $case ([ 'http://127.0.0.1:%%PORT_up%%', 'an address and a port' ],
              [ 'http://127.0.0.1:%%PORT_up%%/', 'a trailing /' ],
              [ 'http://my_group-2', 'a group name with _ and -' ],
              [ 'http://[::1]:%%PORT_up%%', 'an IPv6 address' ],
              [ 'http://$http_x_host', 'variables' ],
              [ 'http://127.0.0.1:1/v2', 'a path', qr/must not have a path/ ],
              [ 'http://h?x', 'a query', qr/must not have a path/ ],
              [ 'http://', 'no host', qr/has no valid host/ ],
              [ q{'http://exa"mple'}, 'a quote', qr/has no valid host/ ],
              [ q{'http://ex ample'}, 'a space', qr/has no valid host/ ],
              [ 'http://tavus~api', 'a ~', qr/has no valid host/ ])
{
    my ($pass, $name, $why) = @$case;
    my ($ok, $out) = $t->nginx_t($conf->($pass));

    if (!$why) {
        ok($ok, "tavus_pass $name: nginx -t passes") or diag($out);
        next;
    }

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
    $t->new_errors;

    $r = $t->http(port => $gw, method => 'DELETE', path => '/replicas/r3',
                  headers => [ 'X-Host' => $host ]);
    $t->answer($r, 500, { code => 'gateway_misconfigured' }, $name);
    is($up->connections, $n, "$name: no upstream connection");

    # nginx's own debug lines show the client's headers: the module's
    # lines are those above debug level
    my $new = $t->new_errors;
    like($new, qr/"tavus_pass" evaluated to no valid host\[:port\]/,
         "$name: logged");
    ok(index($new, 'exa') < 0 && index($new, 'x@y') < 0,
       "$name: the value is not echoed");
}

$t->stop;

done_testing;
