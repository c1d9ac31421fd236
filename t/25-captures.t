#!/usr/bin/perl

# What is deleted, whether a hard delete is asked or allowed, and where
# the key goes never come from a numbered capture, "$1" to "$9": those
# hold the captures of the last regular expression that matched in the
# request, and an "if" or a "map" with captures evaluated after the
# location's regex replaces them with what it matched, a client's header
# as well.  nginx -t refuses them in tavus_delete_replica, tavus_hard,
# tavus_allow_hard_delete, tavus_dry_run and tavus_pass, naming the
# directive and its place; named captures are kept, whatever regex runs
# later.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use TavusTest qw(reply);

my $t = TavusTest->new->require_module;

my $gw = $t->port('gw');

$t->key_file('api.key', 'captures-Key_1');

my $conf = sub {
    my (@lines) = @_;
    my $body = join '', map { "            $_\n" } @lines;
    return <<"HTTP";
    server {
        listen 127.0.0.1:%%PORT_gw%%;

        location ~ ^/v2/replicas/(?<replica_id>[^/]+)/(x|y)\$ {
$body            tavus_api_key_file %%PREFIX%%/api.key;
        }
    }
HTTP
};

my $pass = 'tavus_pass http://127.0.0.1:%%PORT_up%%;';
my $id = 'tavus_delete_replica $replica_id;';

# refused: each directive, each way of writing a numbered capture

for my $case (
    [ 'tavus_delete_replica', [ 'tavus_delete_replica $1;', $pass ], '1' ],
    [ 'tavus_delete_replica', [ 'tavus_delete_replica r-$2;', $pass ], '2' ],
    [ 'tavus_delete_replica', [ 'tavus_delete_replica ${replica_id}$9;',
                                $pass ], '9' ],
    [ 'tavus_hard', [ $id, $pass, 'tavus_hard $2;' ], '2' ],
    [ 'tavus_allow_hard_delete', [ $id, $pass,
                                   'tavus_allow_hard_delete $1;' ], '1' ],
    [ 'tavus_dry_run', [ $id, $pass, 'tavus_dry_run $2;' ], '2' ],
    [ 'tavus_pass', [ $id, 'tavus_pass http://$2;' ], '2' ],
)
{
    my ($directive, $lines, $n) = @$case;
    my $name = "$directive with \"\$$n\"";

    my ($ok, $out) = $t->nginx_t($conf->(@$lines));
    ok(!$ok, "$name: nginx -t fails");
    my $why = "\"$directive\" cannot use the numbered capture \"\$$n\": a"
              . ' later regular expression can replace it; use a named'
              . ' capture, (?<name>...) in ';
    like($out, qr/\[emerg\] \Q$why\E\S+\.conf:\d+/,
         "$name: why, what to do instead, and the place");
}

# not a capture: "$10abc" is "$1" and a literal to nginx, refused too;
# named captures, other variables and "$" in a literal id pass

for my $case (
    [ 'a named capture', [ $id, $pass ] ],
    [ 'named captures everywhere',
      [ $id, $pass, 'tavus_hard $arg_hard;',
        'tavus_allow_hard_delete off;', 'tavus_dry_run $http_x_dry;' ] ],
    [ 'a variable with digits', [ 'tavus_delete_replica $arg_r1;', $pass ] ],
)
{
    my ($name, $lines) = @$case;
    my ($ok, $out) = $t->nginx_t($conf->(@$lines));
    ok($ok, "$name: nginx -t passes") or diag($out);
}

{
    my ($ok, $out) = $t->nginx_t($conf->('tavus_delete_replica $10abc;',
                                         $pass));
    ok(!$ok && $out =~ /numbered capture "\$1"/,
       '"$10abc": nginx reads "$1" then "0abc": refused');
}

# the named capture holds, whatever regex matches after the location's:
# an "if" that captures from a client header, and a "map" with captures
# that tavus_hard evaluates before the id

my $up = $t->raw_mock(port => $t->port('up'),
                      script => [ [ reply('200 OK', '{}') ],
                                  [ reply('200 OK', '{}') ] ]);

$t->run(<<"HTTP");
    map \$http_x_mode \$mode_hard {
        ~^(?:soft|hard)-(h)(a)(r)(d)\$  '';
        default                         '';
    }

    server {
        listen 127.0.0.1:%%PORT_gw%%;

        location ~ ^/v2/replicas/(?<replica_id>[^/]+)/cors\$ {
            if (\$http_origin ~* ^https://([a-z0-9-]+)\\.example\\.com\$) {
                add_header Access-Control-Allow-Origin \$http_origin;
            }

            tavus_hard \$mode_hard;
            tavus_delete_replica \$replica_id;
            tavus_pass http://127.0.0.1:%%PORT_up%%;
            tavus_api_key_file %%PREFIX%%/api.key;
        }
    }
HTTP

my $r = $t->http(port => $gw, method => 'DELETE',
                 path => '/v2/replicas/r-mine/cors',
                 headers => [ Origin => 'https://r-victim.example.com' ]);
$t->answer($r, 200, { replica_id => 'r-mine', deleted => JSON::PP::true },
           'an "if" captured from Origin: the location\'s id is deleted');
is(($r->{headers}{'access-control-allow-origin'} // ''),
   'https://r-victim.example.com', 'the "if" did match');

$r = $t->http(port => $gw, method => 'DELETE',
              path => '/v2/replicas/r-mine/cors',
              headers => [ 'X-Mode' => 'soft-hard' ]);
$t->answer($r, 200, { replica_id => 'r-mine', hard => JSON::PP::false },
           'a "map" with captures evaluated first: the location\'s id');

is(join(' ', map { m{^DELETE (\S+) } ? $1 : '?' } $up->requests),
   '/v2/replicas/r-mine /v2/replicas/r-mine',
   'the upstream was asked to delete r-mine, twice, and nothing else');

$t->stop;

done_testing;
