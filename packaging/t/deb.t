#!/usr/bin/perl

# The Debian package, end to end, on this machine: build it as `make deb`
# does (scripts/build-deb.sh), check what it declares, run lintian
# --pedantic on it, install it with dpkg, run Debian's stock
# /etc/nginx/nginx.conf with one site that uses the module against the
# mock Tavus API, delete one replica through it, purge the package, and
# check that the machine is as it was.
#
# It changes the machine (dpkg -i, dpkg --purge), so it is not part of
# the suite in t/: `make test-deb` runs it, and `make test-matrix` on
# Debian 12 (this machine) and in the Debian 13 and unstable chroots.  It
# needs root, and fails without.  It refuses to run, and fails, when the
# package is already on the machine: it would purge someone's install.
#
# lintian: every tag it reports at any level, pedantic included, fails
# the test unless the package's lintian-overrides explain it (see
# packaging/README.md); an override that no longer matches fails too.
#
# Debian's stock nginx.conf is run as it is, with the binary's own prefix
# (/usr/share/nginx, so that `load_module modules/...` in the package's
# snippet resolves as on a real install) and its
#
#     include /etc/nginx/modules-enabled/*.conf;
#
# untouched: the module can only come from the link that the package's
# postinst puts there.  The same config fails `nginx -t` with "unknown
# directive" before the install and after the purge.  Only what would clash
# with a running nginx or write outside the test's directory is pointed
# into a temporary copy: pid, error_log, access_log, conf.d and
# sites-enabled (which in the stock config listens on port 80).  Temporary
# paths are set by the test site, at http{} level, for the same reason.
# The mock is a separate nginx started by the harness (stock nginx
# directives only, so without the module).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use POSIX ();
use Time::HiRes ();
use IO::Socket::INET ();
use Cwd ();
use TavusTest;

my $PKG = 'libnginx-mod-http-tavus';
my $NGINX = '/usr/sbin/nginx';
my $STOCK = '/etc/nginx/nginx.conf';
my $LINK = '/etc/nginx/modules-enabled/50-mod-http-tavus.conf';
my $SNIPPET = '/usr/share/nginx/modules-available/mod-http-tavus.conf';
my $SO = '/usr/lib/nginx/modules/ngx_http_tavus_module.so';
my $ABI_FILE = '/usr/share/nginx/src/debian/libnginx-mod.abisubstvars';

my $top = Cwd::abs_path('.');

if ($> != 0) {
    fail('the package test runs as root: it installs a package with dpkg');
    done_testing;
    exit;
}

my $status = pkg_status();
if ($status ne 'not-installed') {
    fail("$PKG is not on this machine before the test");
    diag("dpkg says \"$status\": this test installs and purges $PKG;"
         . " remove it (dpkg --purge $PKG) to run the test");
    done_testing;
    exit;
}

my $t = TavusTest->new(no_module => 1);
my $p = $t->prefix;
my $before = snapshot();

my ($installed, $stock_pid, $stock_pgid);

# whatever happens below, the package goes and our nginx stops

END {
    local $?;
    stop_stock() if $stock_pid;
    dpkg('--purge', $PKG) if $installed && pkg_status() ne 'not-installed';
}

###############################################################################
# build

my $changelog = "$top/packaging/debian/changelog";
my $release_version = qx(dpkg-parsechangelog -l '$changelog' -S Version);
chomp $release_version;
my $arch = qx(dpkg-architecture -q DEB_HOST_ARCH);
chomp $arch;
like($release_version, qr/^\d+\.\d+\.\d+-\d+$/,
     "version $release_version from changelog");

# the Debian release this runs on, as build-deb.sh appends it
my %os = map { /^(\w+)="?(.*?)"?$/ ? ($1 => $2) : () }
         split /\n/, $t->read_file('/etc/os-release');
my $version = $release_version
              . ($os{VERSION_ID} ? "+deb$os{VERSION_ID}" : '+sid');

my $out = qx(bash '$top/scripts/build-deb.sh' '$p/deb' 2>'$p/build-deb.err');
is($?, 0, 'scripts/build-deb.sh builds the package')
    or diag($t->read_file('build-deb.err'), $t->read_file('deb/build.log'));
my ($deb) = (split /\n/, $out)[-1] // '';

is($deb, "$p/deb/${PKG}_${version}_$arch.deb",
   "the package is ${PKG}_${version}_$arch.deb");
unless (ok(-f $deb, 'the .deb exists')) {
    done_testing;
    exit;
}
ok(!-e "$top/debian", 'no debian/ at the top of the repository');

###############################################################################
# what it declares

my %f = map { $_ => field($deb, $_) } qw(Package Version Architecture Depends);
is($f{Package}, $PKG, 'Package');
is($f{Version}, $version, 'Version');
is($f{Architecture}, $arch, 'Architecture');

my ($abi) = $t->read_file($ABI_FILE) =~ /^nginx:abi=(\S+)$/m;
like($abi // '', qr/^nginx-abi-\d+\.\d+\.\d+-\d+$/,
     "nginx-dev's ABI: " . ($abi // 'none'));
my @deps = split /\s*,\s*/, $f{Depends};
ok((grep { $_ eq $abi } @deps), "Depends on exactly $abi")
    or diag("Depends: $f{Depends}");
ok((grep { /^libcjson1\b/ } @deps), 'Depends on libcjson1')
    or diag("Depends: $f{Depends}");
like(qx(dpkg-query -W -f='\${Provides}' nginx), qr/(?:^|, )\Q$abi\E(?:,|$)/,
     "the installed nginx provides $abi");

my @files = map { (split ' ', $_)[-1] } split /\n/, qx(dpkg-deb -c '$deb');
ok((grep { $_ eq ".$SO" } @files), "ships $SO");
ok((grep { $_ eq ".$SNIPPET" } @files), "ships $SNIPPET");
ok(!(grep { m{^\./etc/} } @files),
   'ships nothing in /etc (the link is made by postinst)');

my $DOC = "/usr/share/doc/$PKG";
ok((grep { m{^\.\Q$DOC\E/README\.Debian(?:\.gz)?$} } @files),
   "ships the operator's README.Debian");
# (examples/metrics/README.md, the metrics kit's, is an operator's)
ok(!(grep { m{^\.\Q$DOC\E/README\.md(?:\.gz)?$} } @files),
   "not the developers' README.md");
ok((grep { m{^\.\Q$DOC\E/examples/metrics/README\.md(?:\.gz)?$} } @files),
   "the metrics kit's README.md");
ok((grep { m{^\.\Q$DOC\E/docs/directives\.md(?:\.gz)?$} } @files),
   'ships the reference documentation');
my $clog = ".$DOC/changelog.Debian.gz";
like(qx(dpkg-deb --fsys-tarfile '$deb' | tar -xO '$clog' | gzip -dc | head -3),
     qr/^\Q$PKG ($version)\E .*\n\n  \* \Q$release_version\E built for Debian .*\Q$abi\E/,
     'the changelog says the release and the ABI it was built for');

###############################################################################
# lintian, every level: a tag is either fixed or explained in the
# package's lintian-overrides (an unused override is a tag too)

my $fail_on = 'error,warning,info,pedantic';
my $lint = qx(lintian -I -E --pedantic --fail-on $fail_on '$deb' 2>&1);
my $lint_rc = $? >> 8;
my @tags = grep { /^[EWIPXCO]: / } split /\n/, $lint;
is(join("\n", @tags), '', 'lintian -I -E --pedantic: no tag not overridden');
is($lint_rc, 0, 'lintian exits 0') or diag($lint);
like(qx(lintian --version), qr/^Lintian v\d/, 'lintian ran: ' . qx(lintian --version));
is(qx(dpkg-deb --fsys-tarfile '$deb' | tar -xO '.$SNIPPET'),
   "load_module modules/ngx_http_tavus_module.so;\n",
   'one load_module line for both modules of the .so');

mkdir "$p/control";
system('dpkg-deb', '-e', $deb, "$p/control") == 0 or die "dpkg-deb -e";
like($t->read_file('control/postinst'),
     qr{mod-http-tavus\.conf:50-mod-http-tavus\.conf.*ln -sf}s,
     "postinst links the snippet from modules-enabled (dh_nginx)");
like($t->read_file('control/postrm'), qr{purge.*50-mod-http-tavus\.conf}s,
     'postrm removes the link on purge (dh_nginx)');

###############################################################################
# Debian's stock nginx.conf, with a site that uses the module

my $mock_key = 'deb-Key_' . join '', map { sprintf '%x', rand 16 } 1 .. 12;
$t->run($t->mock_tavus(name => 'tavus', key => $mock_key));

my $s = "$p/stock";
mkdir $_ or die "mkdir $_: $!" for $s, "$s/sites-enabled", "$s/conf.d";
# the workers run as the stock config's user (www-data)
chmod 0711, $p;
chmod 0755, $s;
$t->write_file("$s/api.key", "$mock_key\n");
chmod 0600, "$s/api.key";

my $conf = $t->read_file($STOCK);
like($conf, qr{^\s*include\s+/etc/nginx/modules-enabled/\*\.conf;}m,
     'the stock nginx.conf includes /etc/nginx/modules-enabled/*.conf');
unlike($conf, qr{^\s*load_module\b}m, 'the stock nginx.conf loads nothing'
                                       . ' itself');

for (['pid /run/nginx.pid;' => "pid $s/nginx.pid;"],
     ['error_log /var/log/nginx/error.log;' => "error_log $s/error.log;"],
     ['access_log /var/log/nginx/access.log;' => "access_log $s/access.log;"],
     ['include /etc/nginx/conf.d/*.conf;' => "include $s/conf.d/*.conf;"],
     ['include /etc/nginx/sites-enabled/*;' => "include $s/sites-enabled/*;"])
{
    my ($from, $to) = @$_;
    my $n = () = $conf =~ /^(\s*)\Q$from\E/mg;
    is($n, 1, "the stock nginx.conf has '$from' once");
    $conf =~ s/^(\s*)\Q$from\E/$1$to/m;
}

$t->write_file("$s/nginx.conf", $conf);

my $gw = $t->port('gw');
my $mock = $t->port('tavus');

$t->write_file("$s/sites-enabled/tavus", <<"SITE");
client_body_temp_path $s/client_body_temp;
proxy_temp_path $s/proxy_temp;
fastcgi_temp_path $s/fastcgi_temp;
uwsgi_temp_path $s/uwsgi_temp;
scgi_temp_path $s/scgi_temp;

log_format tavus_deb '\$tavus_outcome \$tavus_replica_id '
                     '\$tavus_api_key_fingerprint \$upstream_status';
tavus_metrics_zone tavus_deb 1m;

server {
    listen 127.0.0.1:$gw;
    server_name tavus-deb-test;
    access_log $s/tavus.access.log tavus_deb;

    location ~ ^/v2/replicas/(?<replica_id>[^/]+)\$ {
        tavus_delete_replica \$replica_id;
        tavus_pass http://127.0.0.1:$mock;
        tavus_api_key_file $s/api.key;
    }

    location = /metrics {
        tavus_metrics;
    }
}
SITE

my ($ok, $why) = stock_t();
ok(!$ok, 'before the install: nginx -t fails');
like($why, qr/unknown directive "tavus_/,
     'before the install: tavus_* directives are unknown');

###############################################################################
# install

$installed = 1;
my ($rc, $dpkg) = dpkg('-i', $deb);
is($rc, 0, 'dpkg -i') or diag($dpkg);
is(pkg_status(), 'installed', "$PKG is installed");

is(readlink($LINK), $SNIPPET, "$LINK -> $SNIPPET");
ok(-f $SO, "$SO installed");

($ok, $why) = stock_t();
ok($ok, 'stock nginx.conf: nginx -t passes') or diag($why);

start_stock();

my $maps = $t->read_file("/proc/$stock_pid/maps");
like($maps, qr{\Q$SO\E}, "nginx mapped $SO");
unlike($maps, qr{\Q$top\E/build/}, 'and nothing from build/');

my $r = $t->http(port => $gw, method => 'DELETE',
                 path => '/v2/replicas/rf3073f2dcc1');
$t->answer($r, 200, { replica_id => 'rf3073f2dcc1', deleted => JSON::PP::true,
                      hard => JSON::PP::false }, 'delete through the package',
           keys => [qw(replica_id deleted hard)]);

# README.Debian's check: an id the module itself refuses, Tavus untouched
$r = $t->http(port => $gw, method => 'DELETE', path => '/v2/replicas/a.b');
$t->answer($r, 400, { code => 'invalid_replica_id', replica_id => undef },
           "README.Debian's a.b");
like($t->read_file("$top/packaging/debian/README.Debian"),
     qr{DELETE http://127\.0\.0\.1:8080/v2/replicas/a\.b\n\s*\nanswers 400 (?#
        ).*\{"code":"invalid_replica_id",}s,
     'README.Debian shows that check');

my @log = $t->mock_log('tavus');
is(scalar @log, 1, 'one request reached the mock');
is("$log[0]{method} $log[0]{uri} key=$log[0]{key}",
   'DELETE /v2/replicas/rf3073f2dcc1 key=ok', 'the mock saw the delete, with'
                                              . ' the key');

$r = $t->http(port => $gw, path => '/metrics');
is($r->{status}, 200, 'metrics module of the same .so answers');
like($r->{body}, qr/^tavus_requests_total\{[^}]*outcome="deleted"[^}]*\} 1$/m,
     'the delete is counted');

stop_stock();
is(join(' ', our_processes()), '', 'no stock nginx process left');

like($t->read_file("$s/tavus.access.log"),
     qr/^deleted rf3073f2dcc1 [0-9a-f]{16} 200$/m,
     'access log: $tavus_outcome, $tavus_replica_id, fingerprint');
my @bad = grep { /\[(?:alert|crit|emerg)\]/ }
          split /\n/, $t->read_file("$s/error.log");
ok(!@bad, 'no alert, crit or emerg in the stock nginx error log')
    or diag(join "\n", @bad);
unlike($t->read_file("$s/error.log") . $t->read_file("$s/tavus.access.log"),
       qr/\Q$mock_key\E/, 'the key is in no log');

$t->stop;

###############################################################################
# purge

($rc, $dpkg) = dpkg('--purge', $PKG);
is($rc, 0, 'dpkg --purge') or diag($dpkg);
$installed = 0;
is(pkg_status(), 'not-installed', "$PKG is gone");

ok(!-e $LINK && !-l $LINK && !-l "$LINK.removed", 'no modules-enabled link');
ok(!-e $SO, "no $SO");
ok(!-e $SNIPPET, "no $SNIPPET");

($ok, $why) = stock_t();
ok(!$ok && $why =~ /unknown directive "tavus_/,
   'after the purge: tavus_* directives are unknown again') or diag($why);

is_deeply(snapshot(), $before, 'the machine is as it was');

done_testing;

###############################################################################

# dpkg ARGS: (exit status, output); waits up to two minutes for the dpkg
# lock when another dpkg or apt holds it

sub dpkg {
    my @args = @_;
    my $deadline = time + 120;

    while (1) {
        my $pid = open(my $fh, '-|') // die "fork: $!";
        if ($pid == 0) {
            open STDERR, '>&', \*STDOUT;
            exec 'dpkg', @args or POSIX::_exit(127);
        }
        local $/;
        my $out = <$fh> // '';
        close $fh;
        my $rc = $? >> 8;

        return ($rc, $out) if $rc == 0 || $out !~ /\block\b/i
                              || time > $deadline;
        sleep 2;
    }
}

sub pkg_status {
    my $st = qx(dpkg-query -W -f='\${db:Status-Abbrev}' $PKG 2>/dev/null);
    return 'not-installed' if $? != 0 || $st =~ /^.n/ || $st eq '';
    return 'installed' if $st =~ /^ii/;
    return $st;
}

sub field {
    my ($deb, $name) = @_;
    my $v = qx(dpkg-deb -f '$deb' $name);
    chomp $v;
    return $v;
}

sub stock_t {
    my $out = qx($NGINX -t -c '$s/nginx.conf' -e '$s/t.error.log' 2>&1);
    return ($? == 0, $out);
}

# processes of the stock nginx: its process group, or its config in the
# command line

sub our_processes {
    my @pids;

    opendir my $proc, '/proc' or die "/proc: $!";
    for my $pid (grep { /^\d+$/ } readdir $proc) {
        my $cmd = $t->read_file("/proc/$pid/cmdline");
        my ($pgrp) = $t->read_file("/proc/$pid/stat") =~ /\) \S \d+ (\d+)/;
        push @pids, $pid if index($cmd, "$s/") >= 0
                            || ($stock_pgid && ($pgrp // 0) == $stock_pgid);
    }
    closedir $proc;

    return sort { $a <=> $b } @pids;
}

sub start_stock {
    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        setpgrp(0, 0);
        open STDOUT, '>>', "$s/nginx.stderr";
        open STDERR, '>&', \*STDOUT;
        exec $NGINX, '-c', "$s/nginx.conf", '-e', "$s/error.log",
             '-g', 'daemon off;'
            or POSIX::_exit(127);
    }

    $stock_pid = $stock_pgid = $pid;

    my $deadline = Time::HiRes::time() + 10;

    until (IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $gw)) {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            undef $stock_pid;
            die "stock nginx exited at start:\n"
                . $t->read_file("$s/error.log")
                . $t->read_file("$s/nginx.stderr");
        }
        if (Time::HiRes::time() > $deadline) {
            stop_stock();
            die "stock nginx does not listen on $gw\n";
        }
        Time::HiRes::sleep(0.02);
    }
}

# QUIT, then KILL the process group if it does not go in 10 seconds

sub stop_stock {
    my $pid = $stock_pid or return;
    undef $stock_pid;

    kill 'QUIT', $pid;

    my $deadline = Time::HiRes::time() + 10;
    my $status;

    while (Time::HiRes::time() < $deadline) {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            $status = $?;
            last;
        }
        Time::HiRes::sleep(0.02);
    }

    unless (defined $status) {
        kill 'KILL', -$pid, $pid;
        waitpid($pid, 0);
    }

    # workers of a master that did not reap them
    kill 'KILL', -$pid;

    is($status, 0, 'stock nginx stopped by QUIT, exit status 0');
}

# what a package install could leave behind (not processes: on a shared
# machine other nginx instances come and go; ours are checked by
# our_processes)

sub snapshot {
    my %snap;

    for my $dir (qw(/usr/lib/nginx/modules /etc/nginx/modules-enabled
                    /usr/share/nginx/modules-available /etc/nginx
                    /etc/nginx/sites-enabled /etc/nginx/conf.d
                    /var/lib/nginx /var/log/nginx /usr/share/doc /run))
    {
        opendir my $dh, $dir or next;
        for my $e (sort grep { !/^\.\.?$/ } readdir $dh) {
            next if $dir =~ m{^/(?:usr/share/doc|run)$} && $e !~ /nginx/;
            my $path = "$dir/$e";
            $snap{$path} = -l $path ? 'link ' . readlink($path)
                           : -d $path ? 'dir' : 'file';
        }
        closedir $dh;
    }

    $snap{"dpkg $PKG"} = pkg_status();

    return \%snap;
}
