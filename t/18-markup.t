#!/usr/bin/perl

# Upstream text in an answer cannot become markup: the JSON strings the
# module writes escape "<", ">" and "&" (\u003c, \u003e, \u0026), so an
# operator's SSI on the delete location (ssi_types with application/json)
# does not run an SSI command that the upstream's message carries, which
# could echo the key's variable or the client's cookies into the answer.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use TavusTest qw(reply);

my $t = TavusTest->new->require_module;

my $gw = $t->port('gw');

my $message = q{oops <!--#echo var='tenant_key' --> <!--#echo }
              . q{var='http_cookie' --> & <b>bold</b>};

my $up = $t->raw_mock(port => $t->port('up'), script => [
    [ reply('404 Not Found', qq{{"message":"$message"}}) ] ]);

$t->run(<<'HTTP');
    map $http_x_tenant $tenant_key {
        default  SeCrEt-Key_123;
    }

    server {
        listen 127.0.0.1:%%PORT_gw%%;

        ssi on;
        ssi_types application/json;

        location ~ ^/replicas/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
            tavus_pass http://127.0.0.1:%%PORT_up%%;
            tavus_api_key $tenant_key;
        }
    }
HTTP

my $r = $t->http(port => $gw, method => 'DELETE', path => '/replicas/r1',
                 headers => [ Cookie => 'session=abc123' ]);

my $j = $t->answer($r, 404, { code => 'not_found', replica_id => 'r1' },
                   'an upstream message with SSI commands');

is($j->{error}, $message, 'the message arrives as the upstream wrote it');
like($r->{body}, qr/oops \\u003c!--#echo var='tenant_key' --\\u003e (?#
                    ).* \\u0026 \\u003cb\\u003ebold\\u003c\/b\\u003e/,
     'with "<", ">" and "&" escaped in the JSON text');
unlike($r->{body}, qr/SeCrEt|abc123/, 'no key, no cookie in the answer');

$t->stop;

done_testing;
