#!/usr/bin/perl

# Every load-time error of the module names the place that is wrong: the
# file and line of the directive or location at fault, and for a location
# its name, as nginx's own "in /etc/nginx/sites-enabled/x:12" messages do.
# The configuration is split over included files, as an operator's is: a
# site in sites/a.conf that is right, the case in sites/b.conf, and the
# http{} block that includes them in the main file, whose closing brace
# nginx's merge of locations would otherwise point at.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use TavusTest;

my $t = TavusTest->new->require_module;

my $p = $t->prefix;

mkdir "$p/sites";

$t->key_file('api.key', "place-Key_1");

$t->write_file('sites/a.conf', <<'CONF');
server {
    listen 127.0.0.1:%%PORT_a%%;

    location ~ ^/a/(?<replica>[^/]*)$ {
        tavus_delete_replica $replica;
        tavus_pass http://127.0.0.1:1;
        tavus_api_key_file %%PREFIX%%/api.key;
    }
}
CONF

# the server{} of sites/b.conf, on its own port, around LINES

sub site {
    my ($lines) = @_;
    return "server {\n    listen 127.0.0.1:%%PORT_b%%;\n$lines}\n";
}

# [ name, the site of sites/b.conf (the line at fault ends with "# here"),
#   the message ]

my @cases = (
    [ 'no tavus_pass', site(<<'CONF'),
    tavus_api_key_file %%PREFIX%%/api.key;

    location /b/ {
        tavus_delete_replica $uri; # here
    }
CONF
      qr{"tavus_delete_replica" in location "/b/" requires "tavus_pass"} ],

    [ 'no key', site(<<'CONF'),

    location ~ ^/b/(?<replica>[^/]*)$ {
        tavus_pass http://127.0.0.1:1;
        tavus_delete_replica $replica; # here
    }
CONF
      qr{"tavus_delete_replica" in location "\^/b/\(\?<replica>\[\^/\]\*\)\$" (?#
         )requires "tavus_api_key" or "tavus_api_key_file"} ],

    [ 'no key, one in a sibling location', site(<<'CONF'),
    tavus_pass http://127.0.0.1:1;

    location /with-key/ {
        tavus_delete_replica $uri;
        tavus_api_key K-1;
    }

    location /b/ {
        tavus_delete_replica $uri; # here
    }
CONF
      qr{"tavus_delete_replica" in location "/b/" requires "tavus_api_key"} ],

    [ 'a trusted certificate file that is missing', site(<<'CONF'),

    location /b/ {
        tavus_delete_replica $uri; # here
        tavus_pass https://127.0.0.1:1;
        tavus_api_key_file %%PREFIX%%/api.key;
        tavus_ssl_trusted_certificate %%PREFIX%%/no-such.pem;
    }
CONF
      qr{TLS of location "/b/" cannot be set up \(the reason is above\)} ],

    [ 'a client certificate without its key', site(<<'CONF'),

    location /b/ {
        tavus_delete_replica $uri; # here
        tavus_pass https://127.0.0.1:1;
        tavus_api_key_file %%PREFIX%%/api.key;
        tavus_ssl_certificate %%PREFIX%%/api.key;
    }
CONF
      qr{TLS of location "/b/" cannot be set up} ],

    [ 'an undefined key variable', site(<<'CONF'),

    location /b/ {
        tavus_delete_replica $uri;
        tavus_pass http://127.0.0.1:1;
        tavus_api_key $no_such_key; # here
    }
CONF
      qr{"tavus_api_key" names a variable that is not defined} ],

    [ 'a key file that is missing', site(<<'CONF'),
    tavus_api_key_file %%PREFIX%%/no-such.key; # here
CONF
      qr{open\(\) ".*/no-such\.key" failed} ],

    [ 'a URL with a path', site(<<'CONF'),
    tavus_pass https://tavusapi.com/v2; # here
CONF
      qr{"tavus_pass" URL must not have a path} ],

    [ 'tavus_ssl_name with variables', site(<<'CONF'),
    tavus_ssl_name $host; # here
CONF
      qr{"tavus_ssl_name" directive cannot have variables} ],

    [ 'a metrics location without a zone', site(<<'CONF'),

    location /metrics {
        tavus_metrics; # here
    }
CONF
      qr{"tavus_metrics" directive requires "tavus_metrics_zone"} ],
);

for my $case (@cases) {
    my ($name, $site, $want) = @$case;

    $t->write_file('sites/b.conf', $t->expand($site));
    $t->write_file('sites/a.conf', $t->expand($t->read_file('sites/a.conf')));

    my $line = 0;
    for (split /\n/, $site) {
        $line++;
        last if /# here$/;
    }

    my ($ok, $out) = $t->nginx_t("    include $p/sites/*.conf;\n");

    ok(!$ok, "$name: nginx -t fails");
    like($out, qr{\[emerg\] .*$want.* in \Q$p\E/sites/b\.conf:$line\n},
         "$name: the message names sites/b.conf:$line");
    unlike($out, qr{\[emerg\] [^\n]* in \Q$p\E/t\d+\.conf:}, "$name: not the"
                                                              . ' main file');
}

done_testing;
