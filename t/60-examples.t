#!/usr/bin/perl

# examples/*.conf: each passes `nginx -t` and answers smoke requests, run
# by the harness's nginx with the built module, in front of local mocks:
# the Tavus API (t/lib/mock-tavus.conf over TLS, with a certificate for
# tavusapi.com from a test CA), and the authentication service, the
# application or the DNS server an example talks to.  Every file in
# examples/ must have its checks here.
#
# The examples are http{}-level files, as an operator copies them into
# /etc/nginx/sites-available.  To run them here, with no DNS, no root
# paths and no fixed ports, their text is changed by these rules only:
#
#   1. comments are dropped;
#   2. `listen ANYTHING [ssl];` becomes `listen 127.0.0.1:PORT [ssl];`,
#      a free port for each listen, in order (listen1, listen2, ...);
#   3. an absolute path under /etc/ or /var/log/ becomes a file of that
#      base name in the test's directory (the key file, CA bundle,
#      certificates, htpasswd and map files are written there by this
#      test; logs are read from there);
#   4. in `upstream NAME { ... }`, each `server HOST[:PORT]` becomes
#      `server 127.0.0.1:PORT` of the mock for NAME: the hosts-file-free
#      way to test a group named after tavusapi.com, whose name nginx 1.22
#      resolves when it loads the configuration;
#   5. `resolver ADDRESS ...;` points at a local dnsmasq (Debian package
#      dnsmasq-base) that answers 127.0.0.1 for tavusapi.com; the other
#      resolver parameters stay;
#   6. the few per-example rules of %EXTRA, each of which must match
#      once: the resolver example's host gets the mock's port (its API
#      port, 443, cannot be bound here).
#
# After the rules no /etc/, /var/ or tavusapi.com:443 may be left.  The
# resolver example is also checked with rules 1 to 3 only: `nginx -t`
# passes with its real resolver address and no DNS, as its comment says.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use Cwd ();
use TavusTest;
use TavusConf ();
use TavusTLS ();
use TavusAuth qw(make_pki htpasswd basic json_lines fingerprint);

my $t = TavusTest->new->require_module;
my $p = $t->prefix;

my $KEY = 'example-Key_0123456789abcdef';
my $true = JSON::PP::true;
my $false = JSON::PP::false;

my %EXTRA = (
    'tavus-api-resolver.conf' => [
        [ qr/\bset\s+\$api_host\s+tavusapi\.com;/,
          'set $api_host tavusapi.com:%%PORT_up_tavusapi_com%%;' ],
    ],
);

my %SMOKE = (
    'auth-request-gateway.conf' => \&smoke_auth_request,
    'x-accel-redirect.conf'     => \&smoke_x_accel,
    'per-tenant-keys.conf'      => \&smoke_tenants,
    'tavus-api-keepalive.conf'  => \&smoke_keepalive,
    'tavus-api-resolver.conf'   => \&smoke_resolver,
    'audit-logging.conf'        => \&smoke_audit,
);

###############################################################################
# the files the examples name, in the test's directory (rule 3)

my $pki = make_pki($t);

$t->write_file('api.key', "$KEY\n");
cp($pki->{'ca.crt'}, 'ca-certificates.crt');
cp($pki->{'server.crt'}, 'gateway.crt');
cp($pki->{'server.key'}, 'gateway.key');
cp($pki->{'ca.crt'}, 'clients-ca.pem');

# tenants: acme has the right key, globex a wrong one, initech none
htpasswd($t, 'tenants.htpasswd', [ 'acme', 'acme-pass', 6 ],
         [ 'globex', 'globex-pass', 6 ], [ 'initech', 'initech-pass', 5 ]);
$t->write_file('tenant-keys.map', qq{acme "$KEY";\n}
                                  . qq{globex "globex-Wrong_Key_1";\n});

# the Tavus API: TLS, a certificate for tavusapi.com (and localhost)

my $mock_tavus = TavusTLS::mock_tavus_tls($t, name => 'tavus',
    port => $t->port('up_tavusapi_com'), key => $KEY,
    cert => $pki->{'server.crt'}, cert_key => $pki->{'server.key'});

###############################################################################

opendir my $dh, 'examples' or die "examples/: $!";
my @examples = sort grep { /\.conf$/ } readdir $dh;
closedir $dh;

is(join(' ', sort @examples), join(' ', sort keys %SMOKE),
   'every example has its checks here, and every check its example');

for my $name (@examples) {
    my $raw = $t->read_file(Cwd::abs_path("examples/$name"));

    unlike($raw, qr/^\s*load_module\b/m,
           "$name: no load_module (an http{}-level file)");

    my $conf = adapt($name, $raw);

    my ($ok, $out) = $t->nginx_t($conf);
    ok($ok, "$name: nginx -t") or diag($out);

    next unless $SMOKE{$name};

    reset_mock_logs();
    $SMOKE{$name}->($name, $conf);
}

# the resolver example needs no DNS for nginx -t

{
    my $name = 'tavus-api-resolver.conf';
    my $conf = adapt($name, $t->read_file(Cwd::abs_path("examples/$name")),
                     only_paths => 1);
    like($conf, qr/^\s*resolver\s+127\.0\.0\.53\b/m,
         "$name: its own resolver address kept");
    my ($ok, $out) = $t->nginx_t($conf);
    ok($ok, "$name: nginx -t without DNS") or diag($out);
}

done_testing;

###############################################################################
# the rules

sub adapt {
    my ($name, $text, %o) = @_;

    # 1 to 3
    my %rules = (comments => 1, listen => 'listen', paths => \&example_path);

    # 4 and 5
    %rules = (%rules, upstream_servers => \&mock_server,
              resolver => '127.0.0.1:%%PORT_dns%%')
        unless $o{only_paths};

    $text = TavusConf::adapt($text, %rules);

    return $text if $o{only_paths};

    # 6. this example's own
    for my $rule (@{ $EXTRA{$name} // [] }) {
        my ($re, $to) = @$rule;
        my $count = () = $text =~ /$re/g;
        is($count, 1, "$name: rule $re matches once");
        $text =~ s/$re/$to/;
    }

    unlike($text, qr{(?<![\w%])/(?:etc|var)/|tavusapi\.com:443},
           "$name: no path of the machine, no real API left");

    return $text;
}

# rule 3: /etc/... and /var/log/... become a file of the prefix

sub example_path {
    my ($directive, $arg) = @_;
    return $arg =~ m{^/(?:etc|var/log)/(?:[^\s;"'/]+/)*([^\s;"'/]+)$}
           ? "%%PREFIX%%/$1" : $arg;
}

# rule 4: the mock of the group

sub mock_server {
    my ($group) = @_;
    (my $port = "up_$group") =~ s/\W/_/g;
    return "127.0.0.1:%%PORT_$port%%";
}

sub cp {
    my ($from, $to) = @_;
    $t->write_file($to, $t->read_file($from));
}

# requests to the example: plain or HTTPS (the harness's http, https)

sub req {
    my (%a) = @_;

    if (delete $a{tls}) {
        return $t->https(cacert => $pki->{'ca.crt'}, %a);
    }

    return $t->http(%a);
}

# each example starts with empty mock logs

sub reset_mock_logs {
    unlink "$p/tavus.access.log", "$p/tavus_tls.access.log";
}

sub mock_requests {
    return scalar(() = $t->mock_log('tavus'));
}

###############################################################################
# auth_request: a mock authentication service answering by token

sub smoke_auth_request {
    my ($name, $conf) = @_;

    $t->run($mock_tavus . $conf . <<'HTTP');
    server {
        listen 127.0.0.1:%%PORT_up_tavus_auth_service%%;
        location = /check {
            if ($http_authorization = "Bearer user-token") {
                return 204;
            }
            if ($http_authorization = "Bearer admin-token") {
                add_header X-Tavus-Allow-Hard on;
                return 204;
            }
            return 401;
        }
    }
HTTP

    my %gw = (tls => 1, port => $t->port('listen1'), method => 'DELETE');

    my $r = req(%gw, path => '/v2/replicas/rf3073f2dcc1');
    is($r->{status}, 401, "$name: no token: the auth service's 401");
    is(mock_requests(), 0, "$name: no token: Tavus not called");

    $r = req(%gw, path => '/v2/replicas/rf3073f2dcc1',
             headers => [ Authorization => 'Bearer user-token' ]);
    $t->answer($r, 200, { replica_id => 'rf3073f2dcc1', deleted => $true,
                          hard => $false }, "$name: delete");

    $r = req(%gw, path => '/v2/replicas/r1?hard=true',
             headers => [ Authorization => 'Bearer user-token' ]);
    $t->answer($r, 403, { code => 'hard_delete_denied' },
               "$name: hard delete, not allowed");

    $r = req(%gw, path => '/v2/replicas/r2?hard=true',
             headers => [ Authorization => 'Bearer admin-token' ]);
    $t->answer($r, 200, { replica_id => 'r2', hard => $true },
               "$name: hard delete, allowed by the auth service");

    my @log = $t->mock_log('tavus');
    is(join(' ', map { "$_->{uri} $_->{key}" } @log),
       '/v2/replicas/rf3073f2dcc1 ok /v2/replicas/r2?hard=true ok',
       "$name: Tavus saw the two allowed deletes, with the key");

    $t->stop;
}

# X-Accel-Redirect: a mock application that allows deletes to sessions

sub smoke_x_accel {
    my ($name, $conf) = @_;

    $t->run($mock_tavus . $conf . <<'HTTP');
    server {
        listen 127.0.0.1:%%PORT_up_app%%;
        location ~ ^/replicas/(?<id>[^/]+)$ {
            if ($http_cookie !~ "session=ok") {
                return 403;
            }
            add_header X-Accel-Redirect
                       /internal/tavus/replicas/$id$is_args$args;
            return 204;
        }
    }
HTTP

    my %gw = (tls => 1, port => $t->port('listen1'), method => 'DELETE');

    my $r = req(%gw, path => '/replicas/rf3073f2dcc1');
    is($r->{status}, 403, "$name: the application refuses: its 403");

    $r = req(%gw, path => '/internal/tavus/replicas/rf3073f2dcc1');
    is($r->{status}, 404, "$name: the internal location is not reachable");
    is(mock_requests(), 0, "$name: Tavus not called");

    $r = req(%gw, path => '/replicas/rf3073f2dcc1',
             headers => [ Cookie => 'session=ok' ]);
    $t->answer($r, 200, { replica_id => 'rf3073f2dcc1', deleted => $true,
                          hard => $false }, "$name: delete");

    $r = req(%gw, path => '/replicas/r3?hard=true',
             headers => [ Cookie => 'session=ok' ]);
    $t->answer($r, 200, { replica_id => 'r3', hard => $true },
               "$name: hard delete asked by the application");

    is(join(', ', map { "$_->{method} $_->{uri} $_->{key}" }
                  $t->mock_log('tavus')),
       'DELETE /v2/replicas/rf3073f2dcc1 ok, '
       . 'DELETE /v2/replicas/r3?hard=true ok',
       "$name: Tavus saw the deletes");

    $t->stop;
}

# per-tenant keys

sub smoke_tenants {
    my ($name, $conf) = @_;

    $t->run($mock_tavus . $conf);

    my %gw = (tls => 1, port => $t->port('listen1'), method => 'DELETE',
              path => '/v2/replicas/rf3073f2dcc1');

    my $r = req(%gw);
    is($r->{status}, 401, "$name: no credentials: 401");
    like($r->{headers}{'www-authenticate'} // '', qr/^Basic /,
         "$name: a Basic challenge");

    $r = req(%gw, headers => [ Authorization => basic('acme', 'wrong') ]);
    is($r->{status}, 401, "$name: a wrong password: 401");
    is(mock_requests(), 0, "$name: Tavus not called");

    $r = req(%gw, headers => [ Authorization => basic('acme', 'acme-pass') ]);
    $t->answer($r, 200, { replica_id => 'rf3073f2dcc1', deleted => $true },
               "$name: acme deletes with its key");

    $r = req(%gw, headers => [ Authorization => basic('globex',
                                                      'globex-pass') ]);
    $t->answer($r, 502, { code => 'upstream_rejected_key' },
               "$name: globex's key, refused by Tavus");

    $r = req(%gw, headers => [ Authorization => basic('initech',
                                                      'initech-pass') ]);
    $t->answer($r, 500, { code => 'gateway_misconfigured' },
               "$name: initech, no key in the map");

    is(join(' ', map { $_->{key} } $t->mock_log('tavus')), 'ok bad',
       "$name: Tavus saw acme's key, then globex's");

    $t->stop;
}

# the real API with keepalive: three deletes, one TLS connection

sub smoke_keepalive {
    my ($name, $conf) = @_;

    $t->run($mock_tavus . $conf);

    for my $id (qw(r1 r2 r3)) {
        my $r = req(port => $t->port('listen1'), method => 'DELETE',
                    path => "/v2/replicas/$id");
        $t->answer($r, 200, { replica_id => $id, deleted => $true },
                   "$name: delete $id");
    }

    my @log = $t->mock_log('tavus');
    is(join(' ', map { $_->{reqs} } @log), '1 2 3',
       "$name: requests 1, 2, 3 of a connection");
    is(scalar(keys %{{ map { $_->{conn} => 1 } @log }}), 1,
       "$name: one connection (keepalive)");

    my @tls = TavusTLS::tls_log($t, 'tavus');
    is($tls[0]{sni} // '', 'tavusapi.com', "$name: SNI tavusapi.com");

    $t->stop;
}

# the real API through the resolver: a dnsmasq answers for tavusapi.com

sub smoke_resolver {
    my ($name, $conf) = @_;

    my $dns = $t->dnsmasq(args => [ '--address=/tavusapi.com/127.0.0.1' ]);

    $t->run($mock_tavus . $conf);

    my $r = req(port => $t->port('listen1'), method => 'DELETE',
                path => '/v2/replicas/rf3073f2dcc1');
    $t->answer($r, 200, { replica_id => 'rf3073f2dcc1', deleted => $true },
               "$name: delete");

    my @tls = TavusTLS::tls_log($t, 'tavus');
    is($tls[0]{sni} // '', 'tavusapi.com', "$name: SNI tavusapi.com");
    like($dns->log, qr/query\[A\] tavusapi\.com /,
         "$name: nginx asked the resolver for tavusapi.com");

    $t->stop;
}

# audit log and metrics, callers with client certificates

sub smoke_audit {
    my ($name, $conf) = @_;

    $t->run($mock_tavus . $conf);

    my %gw = (tls => 1, port => $t->port('listen1'), method => 'DELETE');
    my %cert = (cert => $pki->{'client.crt'}, key => $pki->{'client.key'});

    my $r = req(%gw, path => '/v2/replicas/rf3073f2dcc1');
    is($r->{status}, 400, "$name: no client certificate: 400");

    $r = req(%gw, %cert, path => '/v2/replicas/rf3073f2dcc1');
    $t->answer($r, 200, { replica_id => 'rf3073f2dcc1', deleted => $true },
               "$name: delete");
    my $id = $t->json($r)->{request_id} // '';

    $r = req(%gw, %cert, path => '/v2/replicas/bad.id');
    $t->answer($r, 400, { code => 'invalid_replica_id' },
               "$name: an invalid id");

    # nginx writes the access log after the answer is sent: poll for it

    my @audit;
    $t->wait_for(sub { (@audit = json_lines($t, 'tavus-audit.log')) >= 2 });

    is(scalar @audit, 2, "$name: two audit lines (not the refused"
                         . ' handshake)');

    my $a = $audit[0] // {};
    is($a->{request_id}, $id, "$name: audit: request_id");
    like($a->{client} // '', qr/CN=alice/, "$name: audit: the client");
    is($a->{client_verify}, 'SUCCESS', "$name: audit: client verified");
    is($a->{status}, 200, "$name: audit: status (a number)");
    is($a->{outcome}, 'deleted', "$name: audit: outcome");
    is($a->{replica_id}, 'rf3073f2dcc1', "$name: audit: replica_id");
    is($a->{hard}, 'false', "$name: audit: hard");
    is($a->{key}, fingerprint($KEY), "$name: audit: the key's fingerprint");
    is($a->{upstream_status}, '200', "$name: audit: upstream_status");
    is(($audit[1] // {})->{outcome}, 'invalid_replica_id',
       "$name: audit: the invalid id");
    unlike($t->read_file('tavus-audit.log'), qr/\Q$KEY\E/,
           "$name: audit: no key");

    $r = req(port => $t->port('listen2'), path => '/metrics');
    is($r->{status}, 200, "$name: metrics");
    my ($line) = grep { /^tavus_requests_total\{/ && /outcome="deleted"/
                        && /hard="false"/ } split /\n/, $r->{body};
    is($line, 'tavus_requests_total{label="tavus-gateway.example.com",'
              . 'outcome="deleted",hard="false"} 1',
       "$name: the delete counted, labelled by server name");

    $t->stop;
}
