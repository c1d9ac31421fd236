#!/usr/bin/perl

# examples/*.conf, used as their comments say: each alone, with the files
# its install steps copy before it, and all of them together, as one
# Debian machine would have them.  Run by the harness's nginx with the
# built module, in front of local mocks: the Tavus API
# (t/lib/mock-tavus.conf over TLS, with a certificate for tavusapi.com
# from a test CA), and the authentication service, the application or
# the DNS server an example talks to.  Every file in examples/ must have
# its checks here.
#
#   1. the layout: each example's install steps copy it to
#      /etc/nginx/conf.d/NAME.conf (a file every site shares, which
#      Debian's nginx.conf includes first) or to
#      /etc/nginx/sites-available/NAME with its link in sites-enabled/;
#      no two examples are copied to the same file; a file an example
#      copies before itself is another example, for conf.d/;
#   2. `upstream tavusapi.com` is defined in tavus-upstream.conf only, and
#      every example that names the group installs that file;
#   3. the keepalive rule (docs/decisions.md): every upstream{} group of
#      the API has `keepalive_timeout 30s`;
#   4. each example alone: its files in conf.d/ and sites-enabled/ of a
#      directory that the http{} block includes as Debian's nginx.conf
#      does (conf.d/*.conf, then sites-enabled/*); `nginx -t` passes with
#      no warning, and nginx answers its smoke requests;
#   5. all the examples together in one such layout: `nginx -t` passes
#      with no warning (a duplicate upstream, zone or log_format fails it,
#      two servers with one name on one address warn), and every
#      example's smoke requests get the same answers as alone, the sites
#      on 443 told apart by their server names (SNI), and the metrics
#      count each site's deletes under its server name.
#
# The examples' text is changed by these rules only, to run with no DNS,
# no root paths and no fixed ports:
#
#   1. comments are dropped;
#   2. `listen ADDRESS [ssl];` becomes `listen 127.0.0.1:PORT [ssl];`, one
#      free port an address (TavusConf's listen_by_address), so that the
#      sites that share an address in the examples share it here;
#   3. an absolute path under /etc/ or /var/log/ becomes a file of that
#      base name in the test's directory (the key file, CA bundle,
#      certificates, htpasswd and map files are written there by this
#      test; logs are read from there);
#   4. in `upstream NAME { ... }`, each `server HOST[:PORT]` becomes
#      `server 127.0.0.1:PORT` of the mock for NAME: the hosts-file-free
#      way to test a group named after tavusapi.com, whose name nginx
#      resolves when it loads the configuration;
#   5. `resolver ADDRESS ...;` points at a local dnsmasq (Debian package
#      dnsmasq-base) that answers 127.0.0.1 for tavusapi.com; the other
#      resolver parameters stay;
#   6. the few per-example rules of %EXTRA, each of which must match
#      once: the resolver example's host gets the mock's port in place of
#      443 (which cannot be bound here).
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
use TavusSite ();
use TavusTLS ();
use TavusProm;
use TavusAuth qw(make_pki htpasswd basic json_lines fingerprint openssl_cmd);

my $t = TavusTest->new->require_module;
my $p = $t->prefix;

my $KEY = 'example-Key_0123456789abcdef';
my $KEEPALIVE_TIMEOUT = '30s';
my $true = JSON::PP::true;
my $false = JSON::PP::false;

my %EXTRA = (
    'tavus-api-resolver.conf' => [
        [ qr/\bset\s+\$api_host\s+tavusapi\.com:443;/,
          'set $api_host tavusapi.com:%%PORT_up_tavusapi_com%%;' ],
    ],
);

# each example's smoke requests (undef: nginx -t only, and the rules);
# the metrics run last, when the examples are together
my %SMOKE = (
    'tavus-upstream.conf'       => undef,
    'auth-request-gateway.conf' => \&smoke_auth_request,
    'x-accel-redirect.conf'     => \&smoke_x_accel,
    'per-tenant-keys.conf'      => \&smoke_tenants,
    'tavus-api-keepalive.conf'  => \&smoke_keepalive,
    'tavus-api-resolver.conf'   => \&smoke_resolver,
    'audit-logging.conf'        => \&smoke_audit,
    'tavus-metrics.conf'        => \&smoke_metrics,
);

# the services an example talks to, besides Tavus
my %SERVICES = (
    'auth-request-gateway.conf' => <<'HTTP',
    server {
        listen 127.0.0.1:%%PORT_up_tavus_auth_service%%;
        location = /check {
            # another tenant's replica: no caller may delete it
            if ($http_x_tavus_replica_id = "r-other") {
                return 403;
            }
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
    'x-accel-redirect.conf' => <<'HTTP',
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
);

###############################################################################
# the examples, as written and as adapted

opendir my $dh, 'examples' or die "examples/: $!";
my @names = sort grep { /\.conf$/ } readdir $dh;
closedir $dh;

is(join(' ', sort @names), join(' ', sort keys %SMOKE),
   'every example has its checks here, and every check its example');

my %ex;

for my $name (@names) {
    my $raw = $t->read_file(Cwd::abs_path("examples/$name"));
    (my $code = $raw) =~ s/^\s*#.*\n//mg;

    my ($listen, $args) = $code =~ /^\s*listen\s+([^\s;]+)([^;]*);/m;
    my ($server_name) = $code =~ /^\s*server_name\s+([^\s;]+)/m;

    $ex{$name} = {
        name => $name, raw => $raw, code => $code,
        listen => $listen, ssl => (($args // "") =~ /\bssl\b/ ? 1 : 0),
        server_name => $server_name,
        install => install_steps($name, $raw),
    };

    unlike($raw, qr/^\s*load_module\b/m,
           "$name: no load_module (an http{}-level file)");
}

# the smokes, in order: the metrics last

my @smoked = ((grep { $_ ne 'tavus-metrics.conf' && $SMOKE{$_} } @names),
              grep { $_ eq 'tavus-metrics.conf' } @names);

###############################################################################
# 1. the layout of the install steps

my %dest;

for my $name (@names) {
    my $in = $ex{$name}{install};

    ok($in->{kind}, "$name: its install steps copy it into /etc/nginx")
        or next;

    if ($in->{kind} eq 'conf.d') {
        like($in->{dest}, qr/\.conf$/, "$name: conf.d/$in->{dest} ends in"
             . ' .conf (Debian includes conf.d/*.conf)');
    } else {
        ok($in->{linked}, "$name: sites-available/$in->{dest} is linked"
                          . ' from sites-enabled/');
    }

    my $where = "$in->{kind}/$in->{dest}";
    ok(!$dest{$where}, "$name: $where is its own file"
       . ($dest{$where} ? " (also $dest{$where}'s)" : ''));
    $dest{$where} //= $name;

    for my $need (@{ $in->{needs} }) {
        my $other = $ex{$need}{install};
        is($in->{need_dest}{$need},
           'conf.d/' . ($other->{dest} // '?'),
           "$name: copies $need before itself, where $need says, in"
           . ' conf.d/');
    }
}

# 2. the group of the API, defined once

for my $name (@names) {
    my @defined = $ex{$name}{code} =~ /^\s*upstream\s+tavusapi\.com\s*\{/mg;
    is(scalar @defined, $name eq 'tavus-upstream.conf' ? 1 : 0,
       "$name: defines upstream tavusapi.com "
       . ($name eq 'tavus-upstream.conf' ? 'once' : 'not'));

    next unless $ex{$name}{code} =~ m{^\s*tavus_pass\s+https://tavusapi\.com;}m;

    ok((grep { $_ eq 'tavus-upstream.conf' } @{ $ex{$name}{install}{needs} }),
       "$name: names the group, and installs tavus-upstream.conf first");
}

# 3. the keepalive rule

my $groups = 0;

for my $name (@names) {
    for my $g (TavusConf::api_groups($ex{$name}{code})) {
        $groups++;
        is($g->[2] // 'none', $KEEPALIVE_TIMEOUT,
           "$name: upstream $g->[0]: keepalive_timeout $KEEPALIVE_TIMEOUT");
    }
}

ok($groups, "the examples define the API's group ($groups)");

ok($t->read_file(Cwd::abs_path("docs/decisions.md")) =~
     qr/`keepalive_timeout \Q$KEEPALIVE_TIMEOUT\E`/,
     "docs/decisions.md states the rule, keepalive_timeout"
     . " $KEEPALIVE_TIMEOUT");

###############################################################################
# the files the examples name, in the test's directory (rule 3)

my $pki = make_pki($t);

# the gateway's certificate: every server name of the examples
my @server_names = sort grep { defined } map { $ex{$_}{server_name} } @names;
$t->write_file('gateway.ext', 'subjectAltName='
    . join(',', map { "DNS:$_" } 'localhost', @server_names)
    . "\nextendedKeyUsage=serverAuth\n");
openssl_cmd($t, 'req', '-new', '-newkey', 'ec', '-pkeyopt',
            'ec_paramgen_curve:prime256v1', '-nodes', '-keyout',
            'gateway.key', '-out', 'gateway.csr', '-subj', '/CN=gateway');
openssl_cmd($t, 'x509', '-req', '-in', 'gateway.csr', '-CA', 'ca.crt',
            '-CAkey', 'ca.key', '-set_serial', int(rand(1e9)) + 1,
            '-days', '2', '-extfile', 'gateway.ext', '-out', 'gateway.crt');
chmod 0600, "$p/gateway.key";

$t->key_file('api.key', $KEY);
cp($pki->{'ca.crt'}, 'ca-certificates.crt');
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
# 4. each example alone

$ex{$_}{text} = adapt($_, $ex{$_}{raw}) for @names;

for my $name (@names) {
    my @files = ((map { $ex{$_} } @{ $ex{$name}{install}{needs} }),
                 $ex{$name});

    check_nginx_t(layout(@files), "$name, alone");

    next unless $SMOKE{$name};

    start(@files);
    my %deleted = smoke($name);
    smoke_metrics_counted($name, \%deleted) if $name eq 'tavus-metrics.conf';
    $t->stop;
}

# the resolver example needs no DNS for nginx -t

{
    my $name = 'tavus-api-resolver.conf';
    my $conf = adapt($name, $ex{$name}{raw}, only_paths => 1);
    like($conf, qr/^\s*resolver\s+127\.0\.0\.53\b/m,
         "$name: its own resolver address kept");
    my ($ok, $out) = $t->nginx_t($conf);
    ok($ok, "$name: nginx -t without DNS") or diag($out);
}

###############################################################################
# 5. all of them together

{
    my @files = map { $ex{$_} } @names;

    check_nginx_t(layout(@files), 'all the examples together');

    start(@files);

    my %deleted;
    for my $name (@smoked) {
        next if $name eq 'tavus-metrics.conf';
        my %d = smoke($name, 'together');
        %deleted = (%deleted, %d);
    }
    smoke($_, 'together') for grep { $_ eq 'tavus-metrics.conf' } @smoked;
    smoke_metrics_counted('tavus-metrics.conf, together', \%deleted);

    $t->stop;
}

done_testing;

###############################################################################
# the install steps of an example, from its comments:
#
#     cp NAME /etc/nginx/conf.d/DEST
#     cp NAME /etc/nginx/sites-available/DEST
#     ln -s ../sites-available/DEST /etc/nginx/sites-enabled/
#
# { kind => conf.d|sites-available, dest, linked, needs => [ examples
# copied before it ] }

sub install_steps {
    my ($name, $raw) = @_;

    my %in = (needs => []);
    my %example = map { $_ => 1 } @names;

    while ($raw =~ m{^\#\s+cp\s+(\S+)\s+/etc/nginx/(conf\.d|sites-available)/
                     (\S+)}mgx)
    {
        my ($file, $kind, $dest) = ($1, $2, $3);

        if ($file eq $name) {
            ok(!$in{kind}, "$name: copied once by its install steps");
            @in{qw(kind dest)} = ($kind, $dest);
        } elsif ($example{$file}) {
            push @{ $in{needs} }, $file;
            $in{need_dest}{$file} = "$kind/$dest";
        }
    }

    $in{linked} = $in{dest} && $raw =~ m{^\#\s+ln\s+-s\s+\.\./sites-available/
        \Q$in{dest}\E\s+/etc/nginx/sites-enabled/(?:\Q$in{dest}\E)?\s*$}mx;

    return \%in;
}

###############################################################################
# the rules

sub adapt {
    my ($name, $text, %o) = @_;

    # 1 to 3
    my %rules = (comments => 1, listen_by_address => 'l',
                 paths => \&example_path);

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

###############################################################################
# a Debian layout of the examples given (TavusSite), with the mocks they
# talk to

sub layout {
    my (@files) = @_;

    my %seen;
    my @layout = map { [ $_->{install}{kind}, $_->{install}{dest},
                         $_->{text} ] }
                 grep { !$seen{$_->{name}}++ } @files;

    my $services = join '', map { $SERVICES{$_->{name}} // '' } @files;

    return $mock_tavus . $services . TavusSite::layout($t, @layout);
}

sub check_nginx_t {
    my ($http, $what) = @_;

    my ($ok, $out) = $t->nginx_t($http);
    ok($ok, "$what: nginx -t") or diag($out);
    unlike($out, qr/\[(?:warn|emerg|alert|crit)\]/, "$what: no warning")
        or diag($out);
}

# nginx with these examples (and the DNS server, when the resolver
# example is one), up once every site's port accepts

my $DNS;

sub start {
    my (@files) = @_;

    $DNS = $t->dnsmasq(args => [ '--address=/tavusapi.com/127.0.0.1' ])
        if grep { $_->{name} eq 'tavus-api-resolver.conf' } @files;

    $t->run(layout(@files));

    for my $e (grep { $_->{listen} } @files) {
        my $port = site_port($e);
        ok($t->wait_for(sub { TavusProc::can_connect($port) }),
           "$e->{name}: nginx listens for it");
    }
}

sub site_port {
    my ($e) = @_;
    return $t->port(TavusConf::listen_port('l', $e->{listen}));
}

# an example's smoke requests, with empty mock logs; what it deleted:
# { server name => soft deletes }

sub smoke {
    my ($name, $together) = @_;

    for my $log (qw(tavus.access.log tavus_tls.access.log)) {
        # emptied, not removed: nginx appends to the file it opened
        open my $fh, '>', "$p/$log" or die "$log: $!";
    }

    my $e = $ex{$name};
    my $what = $together ? "$name, together" : $name;

    return $SMOKE{$name}->($what, $e);
}

# a request to an example's site: plain HTTP with its server name in
# Host, or HTTPS with it in SNI and Host (curl)

sub req {
    my ($e, %a) = @_;

    my $port = site_port($e);

    return $t->http(port => $port, host => $e->{server_name}, %a)
        unless $e->{ssl};

    my $host = $e->{server_name};
    my @args = ('--http1.1', '--request', $a{method} // 'GET',
                '--cacert', $pki->{'ca.crt'},
                '--resolve', "$host:$port:127.0.0.1");

    push @args, '--cert', $a{cert}, '--key', $a{key} if $a{cert};

    my @h = @{ $a{headers} // [] };
    while (my ($n, $v) = splice @h, 0, 2) {
        push @args, '--header', "$n: $v";
    }

    my $r = TavusSite::curl($t, @args,
                            "https://$host:$port" . ($a{path} // '/'));

    diag('curl: ' . $t->read_file('curl.stderr')) unless $r->{status};

    return $r;
}

sub mock_requests {
    return scalar(() = $t->mock_log('tavus'));
}

###############################################################################
# auth_request: a mock authentication service answering by token

sub smoke_auth_request {
    my ($name, $e) = @_;

    my %gw = (method => 'DELETE');

    my $r = req($e, %gw, path => '/v2/replicas/rf3073f2dcc1');
    is($r->{status}, 401, "$name: no token: the auth service's 401");
    is(mock_requests(), 0, "$name: no token: Tavus not called");

    # the service decides on the id that is deleted, not on the URI as
    # the client wrote it
    for my $path ('/v2/replicas/r-other',
                  '/v2/replicas/rf3073f2dcc1/../r-other',
                  '/v2/replicas/rf3073f2dcc1/%2e%2e/r-other',
                  '/v2/replicas/rf3073f2dcc1/%2E%2E/r%2dother')
    {
        $r = req($e, %gw, path => $path,
                 headers => [ Authorization => 'Bearer user-token' ]);
        is($r->{status}, 403, "$name: $path: the auth service's 403");
    }
    is(mock_requests(), 0, "$name: another tenant's replica: Tavus not"
                           . ' called');

    $r = req($e, %gw, path => '/v2/replicas/rf3073f2dcc1',
             headers => [ Authorization => 'Bearer user-token' ]);
    $t->answer($r, 200, { replica_id => 'rf3073f2dcc1', deleted => $true,
                          hard => $false }, "$name: delete");

    $r = req($e, %gw, path => '/v2/replicas/r1?hard=true',
             headers => [ Authorization => 'Bearer user-token' ]);
    $t->answer($r, 403, { code => 'hard_delete_denied' },
               "$name: hard delete, not allowed");

    $r = req($e, %gw, path => '/v2/replicas/r2?hard=true',
             headers => [ Authorization => 'Bearer admin-token' ]);
    $t->answer($r, 200, { replica_id => 'r2', hard => $true },
               "$name: hard delete, allowed by the auth service");

    my @log = $t->mock_log('tavus');
    is(join(' ', map { "$_->{uri} $_->{key}" } @log),
       '/v2/replicas/rf3073f2dcc1 ok /v2/replicas/r2?hard=true ok',
       "$name: Tavus saw the two allowed deletes, with the key");

    return ($e->{server_name} => 1);
}

# X-Accel-Redirect: a mock application that allows deletes to sessions

sub smoke_x_accel {
    my ($name, $e) = @_;

    my %gw = (method => 'DELETE');

    my $r = req($e, %gw, path => '/replicas/rf3073f2dcc1');
    is($r->{status}, 403, "$name: the application refuses: its 403");

    $r = req($e, %gw, path => '/internal/tavus/replicas/rf3073f2dcc1');
    is($r->{status}, 404, "$name: the internal location is not reachable");
    is(mock_requests(), 0, "$name: Tavus not called");

    $r = req($e, %gw, path => '/replicas/rf3073f2dcc1',
             headers => [ Cookie => 'session=ok' ]);
    $t->answer($r, 200, { replica_id => 'rf3073f2dcc1', deleted => $true,
                          hard => $false }, "$name: delete");

    $r = req($e, %gw, path => '/replicas/r3?hard=true',
             headers => [ Cookie => 'session=ok' ]);
    $t->answer($r, 200, { replica_id => 'r3', hard => $true },
               "$name: hard delete asked by the application");

    is(join(', ', map { "$_->{method} $_->{uri} $_->{key}" }
                  $t->mock_log('tavus')),
       'DELETE /v2/replicas/rf3073f2dcc1 ok, '
       . 'DELETE /v2/replicas/r3?hard=true ok',
       "$name: Tavus saw the deletes");

    return ($e->{server_name} => 1);
}

# per-tenant keys

sub smoke_tenants {
    my ($name, $e) = @_;

    my %gw = (method => 'DELETE', path => '/v2/replicas/rf3073f2dcc1');

    my $r = req($e, %gw);
    is($r->{status}, 401, "$name: no credentials: 401");
    like($r->{headers}{'www-authenticate'} // '', qr/^Basic /,
         "$name: a Basic challenge");

    $r = req($e, %gw, headers => [ Authorization => basic('acme', 'wrong') ]);
    is($r->{status}, 401, "$name: a wrong password: 401");
    is(mock_requests(), 0, "$name: Tavus not called");

    $r = req($e, %gw,
             headers => [ Authorization => basic('acme', 'acme-pass') ]);
    $t->answer($r, 200, { replica_id => 'rf3073f2dcc1', deleted => $true },
               "$name: acme deletes with its key");

    $r = req($e, %gw, headers => [ Authorization => basic('globex',
                                                         'globex-pass') ]);
    $t->answer($r, 502, { code => 'upstream_rejected_key' },
               "$name: globex's key, refused by Tavus");

    $r = req($e, %gw, headers => [ Authorization => basic('initech',
                                                         'initech-pass') ]);
    $t->answer($r, 500, { code => 'gateway_misconfigured' },
               "$name: initech, no key in the map");

    is(join(' ', map { $_->{key} } $t->mock_log('tavus')), 'ok bad',
       "$name: Tavus saw acme's key, then globex's");

    return ($e->{server_name} => 1);
}

# the real API with keepalive: three deletes, one TLS connection (which
# an earlier example may have opened, when the examples are together)

sub smoke_keepalive {
    my ($name, $e) = @_;

    for my $id (qw(r1 r2 r3)) {
        my $r = req($e, method => 'DELETE', path => "/v2/replicas/$id");
        $t->answer($r, 200, { replica_id => $id, deleted => $true },
                   "$name: delete $id");
    }

    my @log = $t->mock_log('tavus');
    is(scalar(keys %{{ map { $_->{conn} => 1 } @log }}), 1,
       "$name: one connection (keepalive)");
    my @reqs = map { $_->{reqs} } @log;
    is("@reqs", join(' ', map { ($reqs[0] // 0) + $_ } 0 .. 2),
       "$name: three requests in a row on it");

    my @tls = TavusTLS::tls_log($t, 'tavus');
    is($tls[0]{sni} // '', 'tavusapi.com', "$name: SNI tavusapi.com");

    return ($e->{server_name} => 3);
}

# the real API through the resolver: a dnsmasq answers for tavusapi.com;
# together with tavus-upstream.conf, the group is not used

sub smoke_resolver {
    my ($name, $e) = @_;

    my $r = req($e, method => 'DELETE', path => '/v2/replicas/rf3073f2dcc1');
    $t->answer($r, 200, { replica_id => 'rf3073f2dcc1', deleted => $true },
               "$name: delete");

    my @tls = TavusTLS::tls_log($t, 'tavus');
    is($tls[0]{sni} // '', 'tavusapi.com', "$name: SNI tavusapi.com");

    like($DNS ? $DNS->log : '', qr/query\[A\] tavusapi\.com /,
         "$name: nginx asked the resolver for tavusapi.com");

    return ($e->{server_name} => 1);
}

# audit log, callers with client certificates

sub smoke_audit {
    my ($name, $e) = @_;

    my %gw = (method => 'DELETE');
    my %cert = (cert => $pki->{'client.crt'}, key => $pki->{'client.key'});

    # emptied, not removed: a running nginx appends to the file it opened
    open my $fh, '>', "$p/tavus-audit.log" or die "tavus-audit.log: $!";
    close $fh;

    my $r = req($e, %gw, path => '/v2/replicas/rf3073f2dcc1');
    is($r->{status}, 400, "$name: no client certificate: 400");

    $r = req($e, %gw, %cert, path => '/v2/replicas/rf3073f2dcc1');
    $t->answer($r, 200, { replica_id => 'rf3073f2dcc1', deleted => $true },
               "$name: delete");
    my $id = $t->json($r)->{request_id} // '';

    $r = req($e, %gw, %cert, path => '/v2/replicas/bad.id');
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

    return ($e->{server_name} => 1);
}

# the metrics server: loopback only, GET only, a valid exposition

my $last_scrape;

sub smoke_metrics {
    my ($name, $e) = @_;

    my $r = req($e, path => '/metrics');
    is($r->{status}, 200, "$name: /metrics");
    like($r->{headers}{'content-type'} // '', qr{^text/plain; version=0\.0\.4},
         "$name: Prometheus' text format");

    my (undef, @errors) = TavusProm::parse($r->{body});
    is("@errors", '', "$name: the exposition parses");
    $last_scrape = $r->{body};

    $r = req($e, path => '/metrics', from => '127.0.0.2');
    is($r->{status}, 403, "$name: from another address: 403");

    $r = req($e, method => 'POST', path => '/metrics');
    is($r->{status}, 405, "$name: POST: 405");

    return ();
}

# the deletes of the smokes, counted under their server's name

sub smoke_metrics_counted {
    my ($name, $deleted) = @_;

    my ($m) = TavusProm::parse($last_scrape // '');

    my @labels = sort keys %$deleted;
    for my $label (@labels) {
        is(TavusProm::value($m, 'tavus_requests_total',
                            { label => $label, outcome => 'deleted',
                              hard => 'false' }) // 'none',
           $deleted->{$label},
           "$name: $label: its $deleted->{$label} deletes counted");
    }

    my %want = map { $_ => 1 } @labels;
    my @other = grep { !$want{$_} } map { $_->{labels}{label} }
                grep { $_->{name} eq 'tavus_requests_total' }
                @{ $m->{samples} // [] };
    is("@other", '', "$name: no other label");
}
