#!/usr/bin/perl

# nginx -t: what the module rejects at configuration load, what it accepts,
# and that no output ever shows a key.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use TavusTest;

my $t = TavusTest->new->require_module;

# keys: distinctive parts that must never show in any output

my %file = (
    'good.key'    => "Good0Secret-Key\n",
    'bare.key'    => "Bare0Secret-Key",
    'tab.key'     => "Tab0Secret\tPart2\n",
    'cr.key'      => "Cr0Secret\rPart2\n",
    'lf.key'      => "Lf0Secret\nPart2\n",
    'nul.key'     => "Nul0Secret\0Part2\n",
    'empty.key'   => '',
    'newline.key' => "\n",
);

$t->write_file($_, $file{$_}) for keys %file;

my @secrets = qw(Good0Secret Bare0Secret Tab0Secret Cr0Secret Lf0Secret
                 Nul0Secret Inl1neSecret Inl2neSecret Var0Secret);

# a location, with a given tail of directives, in a server

sub conf {
    my ($location, %a) = @_;

    my $server = $a{server} // '';
    my $http = $a{http} // '';

    return <<"HTTP";
    $http
    server {
        listen 127.0.0.1:%%PORT_gw%%;
        $server

        location ~ ^/replicas/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            $location
        }

        location /other/ {
            return 204;
        }
    }
HTTP
}

my $pass = 'tavus_pass http://127.0.0.1:1;';
my $keyfile = 'tavus_api_key_file %%PREFIX%%/good.key;';

sub passes {
    my ($name, $conf) = @_;

    my ($ok, $out) = $t->nginx_t($conf);

    ok($ok, "passes: $name") or diag($out);
    no_secret($name, $out);
}

sub fails {
    my ($name, $conf, $re) = @_;

    my ($ok, $out) = $t->nginx_t($conf);

    ok(!$ok, "fails: $name");
    like($out, qr/\[emerg\]/, "fails: $name: an [emerg] line");
    unlike($out, qr/unknown directive "tavus_|dlopen|load_module/,
           "fails: $name: not for want of the module")
        or diag($out);
    like($out, $re, "fails: $name: the reason") if $re;
    no_secret($name, $out);
}

sub no_secret {
    my ($name, $out) = @_;

    my @seen = grep { index($out, $_) >= 0 } @secrets;
    ok(!@seen, "$name: no key in the output") or diag("seen: @seen\n$out");
}

# accepted

passes('pass and key file', conf("$pass $keyfile"));

passes('key file without a trailing newline',
       conf("$pass tavus_api_key_file %%PREFIX%%/bare.key;"));

passes('inline key', conf("$pass tavus_api_key Inl2neSecret-Key;"));

passes('key from a variable',
       conf("$pass tavus_api_key \$tenant_key;",
            http => 'map $http_x_tenant $tenant_key { a Var0Secret-A;'
                    . ' default ""; }'));

# tavus_pass URLs, with the key file

for my $c ([ 'http://127.0.0.1:1/', 'lone trailing slash' ],
           [ 'http://localhost:1', 'host name and port' ],
           [ 'https://127.0.0.1:1', 'https' ])
{
    my ($url, $name) = @$c;
    passes($name, conf("tavus_pass $url; $keyfile"));
}

passes('upstream group',
       conf("tavus_pass http://tavusapi.com; $keyfile",
            http => 'upstream tavusapi.com { server 127.0.0.1:1;'
                    . ' keepalive 4; }'));

passes('pass and key inherited from http and server',
       conf('', http => $pass, server => $keyfile));

passes('key directives at two levels: the inner one wins',
       conf($pass, server => 'tavus_api_key Inl2neSecret-Key;')
       =~ s/(tavus_delete_replica \$replica;)/$1 $keyfile/r);

passes('timeouts and buffer size',
       conf("$pass $keyfile tavus_connect_timeout 1s;"
            . ' tavus_send_timeout 2s; tavus_read_timeout 3s;'
            . ' tavus_buffer_size 8k;'));

passes('a key file in a location without tavus_delete_replica',
       conf("$pass $keyfile", server => '')
       =~ s{return 204;}{tavus_api_key_file %%PREFIX%%/good.key; return 204;}r);

# rejected

fails('no tavus_pass in scope', conf($keyfile));

fails('no key in scope', conf($pass));

fails('key only in a sibling location',
      conf($pass) =~ s{return 204;}{$keyfile return 204;}r);

for my $c ([ 'http://127.0.0.1:1/v2', 'with a path' ],
           [ 'http://127.0.0.1:1/v2/replicas/', 'with a longer path' ],
           [ 'ftp://127.0.0.1:1', 'with an unknown scheme' ],
           [ '127.0.0.1:1', 'without a scheme' ])
{
    my ($url, $name) = @$c;
    fails("tavus_pass $name", conf("tavus_pass $url; $keyfile"));
}

fails('empty inline key', conf("$pass tavus_api_key \"\";"));

fails('inline key with a tab', conf("$pass tavus_api_key \"Inl1neSecret\\tX\";"));

# key files that are refused (made above), and one that is missing

for my $c ([ 'tab.key', 'key file with a tab inside' ],
           [ 'cr.key', 'key file with a CR inside' ],
           [ 'lf.key', 'key file with a LF inside' ],
           [ 'nul.key', 'key file with a NUL inside' ],
           [ 'empty.key', 'empty key file' ],
           [ 'newline.key', 'key file of a lone newline' ],
           [ 'no-such.key', 'missing key file' ])
{
    my ($file, $name) = @$c;
    fails($name, conf("$pass tavus_api_key_file %%PREFIX%%/$file;"));
}

fails('tavus_api_key and tavus_api_key_file at one level',
      conf("$pass tavus_api_key Inl2neSecret-Key; $keyfile"));

fails('tavus_api_key and tavus_api_key_file at server level',
      conf($pass, server => "tavus_api_key Inl2neSecret-Key; $keyfile"));

fails('tavus_delete_replica without an argument',
      conf("$pass $keyfile") =~ s/tavus_delete_replica \$replica;/tavus_delete_replica;/r);

# one upstream, two trust settings: each location keeps its own TLS
# connections and sessions (t/22-shared-upstream.t), so both are accepted

my $tls = 'tavus_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;';

passes('https: two locations, one upstream, the same TLS settings',
       conf("tavus_pass https://127.0.0.1:1; $keyfile $tls")
       =~ s{return 204;}{tavus_delete_replica \$uri; return 204;}r
       =~ s{(location /other/ \{)}{$1 tavus_pass https://127.0.0.1:1;
                                        $keyfile $tls}r);

passes('https: two locations, one upstream, different TLS settings',
       conf("tavus_pass https://127.0.0.1:1; $keyfile $tls")
       =~ s{(location /other/ \{)}{$1 tavus_pass https://127.0.0.1:1;
                                        $keyfile tavus_delete_replica \$uri;
                                        tavus_ssl_verify off;}r);

fails('tavus_delete_replica outside a location',
      conf("$pass $keyfile", server => 'tavus_delete_replica $uri;'));

done_testing;
