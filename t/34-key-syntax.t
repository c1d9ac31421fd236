#!/usr/bin/perl

# How a key is written: tavus_api_key takes a literal key without "$", or
# one variable alone ($name or ${name}); anything else is refused by
# nginx -t with a message that names the directive and its place, never a
# part of the key.  A mistyped or undefined variable is refused the same
# way, before nginx would report it by its name.  A key that holds "$"
# goes in tavus_api_key_file, whose bytes are taken as they are.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use TavusTest qw(reply gateway);

my $t = TavusTest->new->require_module;

my $gw = $t->port('gw');

my $conf = sub {
    my ($key, $extra) = @_;
    $extra //= '';
    return <<"HTTP";
    map \$http_x_tenant \$tenant_key {
        default  Tenant-Key_1;
    }

    server {
        listen 127.0.0.1:%%PORT_gw%%;
$extra
        location ~ ^/replicas/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_pass http://127.0.0.1:%%PORT_up%%;
            tavus_api_key $key;
        }
    }
HTTP
};

# refused: the message says what to do, and holds no part of the key

for my $case (
    [ q~'Zq8$HiddenPart'~, 'a literal part, then a variable' ],
    [ q~'Zq8$1abc'~, 'a regex capture inside a key' ],
    [ q~'$1'~, 'a regex capture alone' ],
    [ q~'HiddenPart$'~, 'a "$" at the end' ],
    [ q~'$Hidden$Part'~, 'two variables' ],
    [ q~'${HiddenPart'~, 'an unclosed "${"' ],
    [ q~'$Hidden-Part'~, 'a "-" in a variable name' ],
    [ q~'$HiddenPart'~, 'an undefined variable' ],
    [ q~'${HiddenPart}'~, 'an undefined variable in braces' ],
    [ q~'$tenant_kye'~, 'a mistyped variable' ],
)
{
    my ($key, $name) = @$case;

    my ($ok, $out) = $t->nginx_t($conf->($key));
    ok(!$ok, "$name: nginx -t fails");
    like($out, qr/\[emerg\] "tavus_api_key" (?:takes a key without "\$"|(?#
                  )names a variable that is not defined).*(?#
                  )"tavus_api_key_file" in \S+\.conf:\d+/,
         "$name: the message says where and what to do");

    (my $secret = $key) =~ s/^'|'$//g;
    for my $part (grep { length >= 3 } split /[\$\{\}]/, $secret) {
        unlike($out, qr/\Q$part\E/i, "$name: \"$part\" is not printed");
    }
    unlike($out, qr/unknown ".*" variable/, "$name: not nginx's own message");
}

# the line is the directive's own

my ($ok, $out) = $t->nginx_t($conf->(q{'$HiddenPart'}));
my ($file, $line) = $out =~ /in (\S+\.conf):(\d+)/;
my @lines = split /\n/, $t->read_file($file);
like($lines[$line - 1] // '', qr/^\s*tavus_api_key '\$HiddenPart';$/,
     'an undefined variable: the line named is the directive\'s');

# accepted: a literal key, a variable alone, in braces, a prefix variable

for my $case (
    [ 'Literal-Key_1', 'a literal key' ],
    [ '$tenant_key', 'a variable' ],
    [ '${tenant_key}', 'a variable in braces' ],
    [ '$http_x_tenant_key', 'a prefix variable ($http_)' ],
    [ '$named', 'a named regex capture',
      "        location ~ ^/(?<named>k.*)\$ { return 204; }\n" ],
    [ '$set_key', 'a variable made with set',
      "        set \$set_key Set-Key_1;\n" ],
)
{
    my ($key, $name, $extra) = @$case;
    my ($ok, $out) = $t->nginx_t($conf->($key, $extra));
    ok($ok, "$name: nginx -t passes") or diag($out);
}

# tavus_api_key_file: a key with "$", "{" and "}" is sent as it is

my $KEY = 'Zq8$Hidden{Part}';
$t->key_file('dollar.key', "$KEY");

my $up = $t->raw_mock(port => $t->port('up'),
                      script => [ [ reply('200 OK', '{}') ] ]);

$t->run(gateway('tavus_pass http://127.0.0.1:%%PORT_up%%;',
                'tavus_api_key_file %%PREFIX%%/dollar.key;'));

my $r = $t->http(port => $gw, method => 'DELETE', path => '/replicas/r1');
$t->answer($r, 200, { replica_id => 'r1' }, 'a key file with "$"');

my ($req) = $up->requests;
like($req // '', qr/\r\nx-api-key: \Q$KEY\E\r\n/,
     'a key file with "$": the key is sent as written');
ok(index($t->error_log, 'Hidden') < 0, 'a key file with "$": not logged');

$t->stop;

done_testing;
