#!/usr/bin/perl

# Behind nginx's own authentication (docs/recipes.md): auth_request,
# auth_basic, allow/deny with satisfy any and all, client certificates, an
# internal location reached by X-Accel-Redirect.  Each gates the module: a
# denied request is nginx's own answer and opens no upstream connection
# (each mechanism has its own raw mock, whose connections are counted).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use TavusTest qw(delete_location);
use TavusAuth qw(:all);

my $t = TavusTest->new->require_module;

my $KEY = 'auth-Key_1';
my $true = JSON::PP::true;
my $ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
         . "Content-Length: 2\r\n\r\n{}";

my %up;
for my $name (qw(authreq basic addr any all cert xaccel public)) {
    $up{$name} = $t->raw_mock(port => $t->port("up_$name"),
                              script => [ [ $ok ] ]);
}

# ports nginx listens on are named once the mocks are up: a mock's
# control port, chosen by the kernel, could take one named but not bound
my $gw = $t->port('gw');
my $tls = $t->port('tls');

my $pki = make_pki($t);

htpasswd($t, 'htpasswd', [ 'alice', 'alice-Pass_1', 'apr1' ],
                         [ 'bob', 'bob-Pass_2', '5' ]);

my @locations;

sub tavus_location {
    my ($prefix, $mock, @lines) = @_;
    return delete_location("$prefix/replicas", @lines,
                           "tavus_pass http://127.0.0.1:%%PORT_up_$mock%%;");
}

my $gw_locations = join '',
    tavus_location('authreq', 'authreq', 'auth_request /_auth;'),
    tavus_location('basic', 'basic', 'auth_basic "tavus";',
                   'auth_basic_user_file %%PREFIX%%/htpasswd;'),
    tavus_location('addr', 'addr', 'allow 127.0.0.1;', 'deny all;'),
    tavus_location('any', 'any', 'satisfy any;', 'allow 127.0.0.2;',
                   'deny all;', 'auth_basic "tavus";',
                   'auth_basic_user_file %%PREFIX%%/htpasswd;'),
    tavus_location('all', 'all', 'satisfy all;', 'allow 127.0.0.1;',
                   'deny all;', 'auth_basic "tavus";',
                   'auth_basic_user_file %%PREFIX%%/htpasswd;'),
    tavus_location('public', 'public');

$t->run(<<"HTTP");
    log_format audit escape=json '{"user":"\$remote_user",'
        '"cert":"\$ssl_client_s_dn","uri":"\$request_uri",'
        '"method":"\$request_method",'
        '"replica":"\$tavus_replica_id","outcome":"\$tavus_outcome",'
        '"upstream_status":"\$upstream_status",'
        '"key":"\$tavus_api_key_fingerprint"}';

    log_format authsrv '\$request_method \$request_uri \$http_x_token '
                       '\$http_x_tavus_replica_id \$status';

    # the auth backend of auth_request: 200, 401 or 403 on X-Token

    server {
        listen 127.0.0.1:%%PORT_authsrv%%;
        access_log %%PREFIX%%/authsrv.access.log authsrv;

        location / {
            add_header WWW-Authenticate 'Bearer realm="gw"' always;

            if (\$http_x_token = good) {
                return 200;
            }

            if (\$http_x_token = forbidden) {
                return 403;
            }

            if (\$http_x_token = broken) {
                return 500;
            }

            return 401;
        }
    }

    # the application: it authenticates the caller (X-Session) and lets
    # nginx do the delete through X-Accel-Redirect

    server {
        listen 127.0.0.1:%%PORT_app%%;

        location ~ ^/app/replicas/(?<id>[^/]*)\$ {
            if (\$http_x_session != good) {
                return 403 '{"error":"not your replica"}';
            }

            add_header X-Accel-Redirect /internal/replicas/\$id;
            add_header Cache-Control "public, max-age=60";
            add_header Expires "Thu, 01 Jan 2099 00:00:00 GMT";
            return 200 'app body, never seen by the client';
        }
    }

    # the gateway

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        access_log %%PREFIX%%/audit.log audit;
        tavus_api_key $KEY;

        location = /_auth {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_authsrv%%/check;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Tavus-Replica-Id \$replica;
        }

        location /app/ {
            proxy_pass http://127.0.0.1:%%PORT_app%%;
        }

        location ~ ^/internal/replicas/(?<id>.*)\$ {
            internal;
            tavus_delete_replica \$id;
            tavus_pass http://127.0.0.1:%%PORT_up_xaccel%%;
        }

$gw_locations
    }

    # client certificates

    server {
        listen 127.0.0.1:%%PORT_tls%% ssl;
        access_log %%PREFIX%%/audit.log audit;
        tavus_api_key $KEY;

        ssl_certificate $pki->{'server.crt'};
        ssl_certificate_key $pki->{'server.key'};
        ssl_client_certificate $pki->{'ca.crt'};
        ssl_verify_client on;

        location ~ ^/replicas/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_pass http://127.0.0.1:%%PORT_up_cert%%;
        }
    }
HTTP

# a delete that went through: the module's 200 and one exact upstream
# request with the configured key

sub deleted {
    my ($r, $mock, $id, $n, $name) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    $t->answer($r, 200, { replica_id => $id, deleted => $true }, $name);
    is($mock->connections, $n, "$name: upstream connection $n");

    my $port = $mock->port;
    is($t->printable(($mock->requests)[-1] // ''),
       $t->printable("DELETE /v2/replicas/$id HTTP/1.1\r\n"
                     . "Host: 127.0.0.1:$port\r\nx-api-key: $KEY\r\n\r\n"),
       "$name: exact upstream DELETE");
}

# a denial by nginx itself: its status, not the module's JSON, and no
# upstream connection

sub denied {
    my ($r, $status, $mock, $n, $name) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    is($r->{status}, $status, "$name: $status")
        or diag('answer: ' . $t->printable($r->{raw} // ''));
    unlike($r->{headers}{'content-type'} // '', qr{json},
           "$name: nginx's own answer, not the module's");
    unlike($r->{body} // '', qr/"code"|\Q$KEY\E/, "$name: no module body");
    is($mock->connections, $n, "$name: no new upstream connection");
}

# a refusal by the module: its JSON answer, and no new upstream connection

sub refused {
    my ($r, $status, $code, $mock, $n, $name) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    $t->answer($r, $status, { code => $code }, $name);
    is($mock->connections, $n, "$name: no new upstream connection");
}

# a request to the gateway, with these headers

sub gw {
    my ($method, $path, @headers) = @_;
    return $t->http(port => $gw, method => $method, path => $path,
                    headers => [ @headers ]);
}

# a request over TLS, with the client certificate NAME if one is given

sub tls {
    my ($method, $path, $name) = @_;
    return $t->https(port => $tls, method => $method, path => $path,
                     cacert => $pki->{'ca.crt'},
                     $name ? (cert => $pki->{"$name.crt"},
                              key => $pki->{"$name.key"}) : ());
}

###############################################################################
# auth_request

my $m = $up{authreq};

my $r = gw(DELETE => '/authreq/replicas/r1');
denied($r, 401, $m, 0, 'auth_request, no token');
like($r->{headers}{'www-authenticate'} // '', qr/^Bearer realm="gw"/,
     'auth_request 401: the backend\'s WWW-Authenticate passed on');

$r = gw(DELETE => '/authreq/replicas/r1', 'X-Token' => 'forbidden');
denied($r, 403, $m, 0, 'auth_request, forbidden token');

$r = gw(DELETE => '/authreq/replicas/r1', 'X-Token' => 'broken');
denied($r, 500, $m, 0, 'auth_request, backend error');

$r = gw(DELETE => '/authreq/replicas/r1', 'X-Token' => 'good');
deleted($r, $m, 'r1', 1, 'auth_request, good token');

# allowed by auth_request is not enough: a client still needs DELETE

$r = gw(GET => '/authreq/replicas/r2', 'X-Token' => 'good');
refused($r, 405, 'method_not_allowed', $m, 1, 'auth_request, good token, GET');

my @auth = split /\n/, $t->read_file('authsrv.access.log');
is(scalar @auth, 5, 'the auth backend was asked once a request');
is(join('|', map { (split / /)[4] } @auth), '401|403|500|200|200',
   'the auth backend answered 401, 403, 500, 200, 200');
like($auth[0] // '', qr{^\S+ /check - r1 },
     'the auth backend saw the replica id');

###############################################################################
# auth_basic, with an apr1 (nginx's own) and a SHA-crypt ($5$) password

$m = $up{basic};

$r = gw(DELETE => '/basic/replicas/r1');
denied($r, 401, $m, 0, 'auth_basic, no credentials');
is($r->{headers}{'www-authenticate'}, 'Basic realm="tavus"',
   'auth_basic: nginx asks for credentials');

$r = gw(DELETE => '/basic/replicas/r1',
        Authorization => basic('alice', 'wrong'));
denied($r, 401, $m, 0, 'auth_basic, wrong password');

$r = gw(DELETE => '/basic/replicas/r1',
        Authorization => basic('carol', 'alice-Pass_1'));
denied($r, 401, $m, 0, 'auth_basic, unknown user');

$r = gw(DELETE => '/basic/replicas/r1',
        Authorization => basic('alice', 'alice-Pass_1'));
deleted($r, $m, 'r1', 1, 'auth_basic, alice (apr1)');

$r = gw(DELETE => '/basic/replicas/r2',
        Authorization => basic('bob', 'bob-Pass_2'));
deleted($r, $m, 'r2', 2, 'auth_basic, bob ($5$)');

###############################################################################
# allow/deny, from 127.0.0.1 and from 127.0.0.2; with satisfy any, the
# address or the password, with satisfy all, both
#
# [ location, from, credentials (none: undef), nginx's status (undef: the
#   delete goes through), replica, upstream connections after, name ]

my $alice_pw = [ 'alice', 'alice-Pass_1' ];

my @by_address = (
    [ addr => '127.0.0.2', undef, 403, 'r1', 0, 'deny all, from 127.0.0.2' ],
    [ addr => '127.0.0.1', undef, undef, 'r1', 1,
      'allow 127.0.0.1, from 127.0.0.1' ],

    [ any => '127.0.0.1', undef, 401, 'r1', 0,
      'satisfy any, address denied, no credentials' ],
    [ any => '127.0.0.1', [ 'alice', 'nope' ], 401, 'r1', 0,
      'satisfy any, address denied, wrong password' ],
    [ any => '127.0.0.1', $alice_pw, undef, 'r1', 1,
      'satisfy any, address denied, right password' ],
    [ any => '127.0.0.2', undef, undef, 'r2', 2,
      'satisfy any, address allowed, no credentials' ],

    [ all => '127.0.0.2', $alice_pw, 403, 'r1', 0,
      'satisfy all, address denied, right password' ],
    [ all => '127.0.0.1', undef, 401, 'r1', 0,
      'satisfy all, address allowed, no credentials' ],
    [ all => '127.0.0.1', $alice_pw, undef, 'r1', 1,
      'satisfy all, address allowed, right password' ],
);

for my $c (@by_address) {
    my ($loc, $from, $user, $status, $id, $n, $name) = @$c;

    my $r = $t->http(from => $from, port => $gw, method => 'DELETE',
                     path => "/$loc/replicas/$id",
                     headers => $user ? [ Authorization => basic(@$user) ]
                                      : []);

    if ($status) {
        denied($r, $status, $up{$loc}, $n, $name);
    } else {
        deleted($r, $up{$loc}, $id, $n, $name);
    }
}

###############################################################################
# client certificates

$m = $up{cert};

$r = tls(DELETE => '/replicas/r1');
is($r->{curl_exit}, 0, 'TLS, no client certificate: an HTTP answer')
    or diag($r->{error});
denied($r, 400, $m, 0, 'TLS, no client certificate');
like($r->{body}, qr/No required SSL certificate/,
     'TLS, no client certificate: nginx says why');

$r = tls(DELETE => '/replicas/r1', 'rogue');
denied($r, 400, $m, 0, 'TLS, certificate from another CA');
like($r->{body}, qr/SSL certificate error/,
     'TLS, certificate from another CA: nginx says why');

$r = tls(DELETE => '/replicas/r1', 'client');
is($r->{curl_exit}, 0, 'TLS, client certificate: curl succeeded')
    or diag($r->{error});
deleted($r, $m, 'r1', 1, 'TLS, client certificate');

$r = tls(GET => '/replicas/r2', 'client');
refused($r, 405, 'method_not_allowed', $m, 1, 'TLS, client certificate, GET');

###############################################################################
# X-Accel-Redirect from the application to an internal location

$m = $up{xaccel};

$r = $t->http(port => $gw, method => 'POST', path => '/app/replicas/r1',
              body => '{}');
is($r->{status}, 403, 'app refuses: its own 403');
is($r->{body}, '{"error":"not your replica"}', 'app refuses: its own body');
is($m->connections, 0, 'app refuses: no upstream connection');

$r = $t->http(port => $gw, method => 'POST', path => '/app/replicas/r1',
              headers => [ 'X-Session' => 'good' ], body => '{}');
deleted($r, $m, 'r1', 1, 'X-Accel-Redirect (the method became GET)');
unlike($r->{raw}, qr/app body|X-Accel-Redirect/i,
       'X-Accel-Redirect: nothing of the app\'s answer reaches the client');
is(join('|', map { lc($_->[0]) . ': ' . $_->[1] }
             grep { $_->[0] =~ /^(cache-control|expires)$/i }
             @{ $r->{header_list} }),
   'cache-control: no-store',
   'X-Accel-Redirect: the app\'s Cache-Control and Expires replaced');


$r = gw(DELETE => '/app/replicas/r2', 'X-Session' => 'good');
deleted($r, $m, 'r2', 2, 'X-Accel-Redirect from a DELETE');

$r = gw(GET => '/app/replicas/a.b', 'X-Session' => 'good');
refused($r, 400, 'invalid_replica_id', $m, 2,
        'X-Accel-Redirect to an invalid id');

for my $method (qw(DELETE GET)) {
    $r = gw($method, '/internal/replicas/r3');
    denied($r, 404, $m, 2, "external $method to the internal location");
}

$r = gw(HEAD => '/app/replicas/r1h', 'X-Session' => 'good');
is($r->{status}, 200, 'X-Accel-Redirect from a HEAD: 200');
is($r->{body}, '', 'X-Accel-Redirect from a HEAD: no body');
is($r->{headers}{'cache-control'}, 'no-store',
   'X-Accel-Redirect from a HEAD: no-store');
like(($m->requests)[-1] // '', qr{^DELETE /v2/replicas/r1h HTTP/1\.1\r\n},
     'X-Accel-Redirect from a HEAD: deleted upstream');


###############################################################################
# a public tavus location: only a client DELETE deletes

$m = $up{public};

for my $method (qw(GET POST PUT)) {
    $r = gw($method, '/public/replicas/r1');
    $t->answer($r, 405, { code => 'method_not_allowed', error => qr/\S/ },
               "external $method to a public location");
    is($r->{headers}{allow}, 'DELETE', "external $method: Allow: DELETE");
    is($m->connections, 0, "external $method: no upstream connection");
}

$r = gw(DELETE => '/public/replicas/r1');
deleted($r, $m, 'r1', 1, 'external DELETE to a public location');

###############################################################################
# who did what: the audit log names the user and the certificate subject

my @audit = json_lines($t, 'audit.log');

my ($alice) = grep { $_->{uri} eq '/basic/replicas/r1'
                     && $_->{outcome} eq 'deleted' } @audit;
is($alice->{user} // '', 'alice', 'audit: the basic auth user');
is($alice->{key} // '', fingerprint($KEY), 'audit: the key fingerprint');
is($alice->{upstream_status} // '', '200', 'audit: the upstream status');

my ($cert) = grep { $_->{uri} eq '/replicas/r1' && $_->{outcome} eq 'deleted' }
             @audit;
like($cert->{cert} // '', qr/CN=alice/, 'audit: the client certificate subject');

my ($xaccel) = grep { $_->{uri} eq '/app/replicas/r1' && $_->{outcome} } @audit;
is($xaccel->{outcome} // '', 'deleted',
   'audit: the redirected request is logged with its outcome');
is($xaccel->{method} // '', 'GET',
   'audit: the redirected request was a GET when it deleted');

my @leaks = grep { index(join('', values %$_), $KEY) >= 0 } @audit;
ok(!@leaks, 'audit: no key in the log');

unlike($t->error_log, qr/\Q$KEY\E/, 'no key in the error log');

$t->stop;

done_testing;
