#!/usr/bin/perl

# make bench-inflight: 10,000 deletes in flight at once through one nginx,
# against a slow mock on loopback, the module against the proxy_pass
# recipe (bench/conf/module.conf and bench/conf/recipe.conf, as the bench
# runs them), measuring the workers' memory per delete in flight.
#
# For each gateway:
#   1. nginx with INFLIGHT_WORKERS workers (4), worker_connections and
#      worker_rlimit_nofile raised in its own configuration only (each
#      delete in flight holds two connections in a worker: the client's
#      and the upstream's; a process may have 20,000 files here), a
#      listen socket per worker (reuseport) so that the clients spread;
#   2. a warm-up of 2,000 deletes the mock answers at once, then the
#      workers' memory at rest;
#   3. INFLIGHT_CLIENTS processes (4) open INFLIGHT_N connections (10,000)
#      and send a delete on each; the mock (INFLIGHT_MOCKS processes,
#      reuseport) holds every one, until it holds them all;
#   4. the workers' memory with all of them in flight, nginx's count of
#      connections;
#   5. the mock answers them all; every client must get its 200 (the
#      module's JSON, or the mock's body through the recipe) and none may
#      fail; the memory after.
#
# Memory is the sum over the workers of VmRSS and of Private_Dirty
# (/proc/PID/smaps_rollup): the growth from rest to the peak, divided by
# the number in flight, is the memory a delete in flight costs.
#
# Bounded: INFLIGHT_TIMEOUT seconds (120) for each step; the processes it
# starts are stopped by their pid.  Exit 1 when a delete failed or a step
# did not finish.
#
# Environment: INFLIGHT_N (10000), INFLIGHT_WORKERS (4), INFLIGHT_CLIENTS
# (4), INFLIGHT_MOCKS (4), INFLIGHT_ONLY (module,recipe), INFLIGHT_TIMEOUT,
# INFLIGHT_WORKER_CONNECTIONS (fewer than needed: what happens beyond the
# operator's limit; the run then fails, and says how),
# TAVUS_MODULE, TAVUS_NGINX, INFLIGHT_KEEP=1 (keep the work directory).

use strict;
use warnings;

use Cwd ();
use File::Basename ();
use File::Temp ();
use IO::Poll qw(POLLIN POLLOUT POLLERR POLLHUP);
use IO::Socket::INET ();
use POSIX ();
use Socket qw(SOL_SOCKET SOMAXCONN IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);
use Errno qw(EAGAIN EWOULDBLOCK EINPROGRESS EINTR);

use lib File::Basename::dirname(Cwd::abs_path(__FILE__)) . '/../../t/lib';
use TavusProc ();

$| = 1;
$SIG{PIPE} = 'IGNORE';

my $TOP = Cwd::abs_path(File::Basename::dirname(__FILE__) . '/../..');

my $N = $ENV{INFLIGHT_N} || 10000;
my $WORKERS = $ENV{INFLIGHT_WORKERS} || 4;
my $CLIENTS = $ENV{INFLIGHT_CLIENTS} || 4;
my $MOCKS = $ENV{INFLIGHT_MOCKS} || 4;
my $TIMEOUT = $ENV{INFLIGHT_TIMEOUT} || 120;
my $NGINX = $ENV{TAVUS_NGINX} || '/usr/sbin/nginx';
my $MODULE = $ENV{TAVUS_MODULE} || "$TOP/build/ngx_http_tavus_module.so";
my @ONLY = split /[\s,]+/, $ENV{INFLIGHT_ONLY} || 'module,recipe';
my $KEY = 'inflight-Key_0123456789';
my $SO_REUSEPORT = 15;

die "inflight: no module at $MODULE (make build)\n" unless -f $MODULE;

# the connections each worker must hold, with room for an uneven spread
# (INFLIGHT_WORKER_CONNECTIONS sets fewer, to see what happens beyond the
# limit an operator configured)
my $per_worker = $ENV{INFLIGHT_WORKER_CONNECTIONS}
                 || int(2 * $N / $WORKERS * 1.5) + 512;
my $files = $per_worker + 1024;
die "inflight: $WORKERS workers would need $files files each, more than"
    . " the 20,000 a process may have: raise INFLIGHT_WORKERS\n"
    if $files > 19500;
die "inflight: more than 4,800 connections for each client or mock"
    . " process: raise INFLIGHT_CLIENTS or INFLIGHT_MOCKS\n"
    if $N / $CLIENTS > 4800 || $N / $MOCKS > 4800;

my $WORK = File::Temp::tempdir('tavus-inflight-XXXXXX', TMPDIR => 1,
                               CLEANUP => !$ENV{INFLIGHT_KEEP});
print "inflight: work directory $WORK\n" if $ENV{INFLIGHT_KEEP};

my %CHILD;

END {
    for my $pid (keys %CHILD) {
        # nginx runs in a process group of its own, with its workers
        kill 'KILL', $CHILD{$pid} =~ /^nginx/ ? -$pid : $pid;
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
}

$SIG{INT} = $SIG{TERM} = sub { die "inflight: interrupted\n" };

# the project's port policy (t/lib/TavusProc.pm)

my %used;

sub free_port { TavusProc::free_port(used => \%used) }

my $mock_port = free_port();

###############################################################################
# the slow mock: holds every delete of an id that begins with "h" until
# SIGUSR1, answers the others at once

my $ANSWER = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
             . "Content-Length: 42\r\n\r\n"
             . '{"message":"Replica deleted successfully"}';

sub mock {
    my ($i) = @_;

    my $l = IO::Socket::INET->new(Proto => 'tcp');
    setsockopt($l, SOL_SOCKET, $SO_REUSEPORT, 1) or die "reuseport: $!";
    bind($l, Socket::pack_sockaddr_in($mock_port,
                                      Socket::inet_aton('127.0.0.1')))
        or die "mock: bind: $!";
    listen($l, 4096) or die "mock: listen: $!";
    $l->blocking(0);

    my $release = 0;
    my $parent = getppid();
    $SIG{USR1} = sub { $release = 1 };
    $SIG{TERM} = sub { POSIX::_exit(0) };

    my $poll = IO::Poll->new;
    $poll->mask($l => POLLIN);
    my (%conn, @held);
    my ($held, $written) = (0, -1);
    my $last = 0;

    while (1) {
        $poll->poll(0.1);

        # the bench is gone: so is its mock
        POSIX::_exit(0) if getppid() != $parent;

        if ($poll->events($l)) {
            while (my $s = $l->accept) {
                $s->blocking(0);
                setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
                $conn{ fileno $s } = { s => $s, in => '' };
                $poll->mask($s => POLLIN);
            }
        }

        for my $s ($poll->handles(POLLIN | POLLHUP | POLLERR)) {
            next if $s == $l;
            my $c = $conn{ fileno $s } or next;
            my $n = sysread($s, my $buf, 4096);
            if (!defined $n) {
                next if $! == EAGAIN || $! == EINTR;
            }
            unless ($n) {
                $poll->remove($s);
                delete $conn{ fileno $s };
                close $s;
                next;
            }
            $c->{in} .= $buf;
            while ((my $e = index($c->{in}, "\r\n\r\n")) >= 0) {
                my $req = substr($c->{in}, 0, $e + 4, '');
                my ($id) = $req =~ m{^DELETE /v2/replicas/(\S+) };
                if (defined $id && $id =~ /^h/ && !$release) {
                    push @held, $c;
                    $held++;
                } else {
                    syswrite($s, $ANSWER);
                }
            }
        }

        if ($release && @held) {
            for my $c (@held) {
                my $fd = fileno $c->{s};
                syswrite($c->{s}, $ANSWER) if defined $fd && $conn{$fd};
            }
            @held = ();
        }

        if ($held != $written && time - $last > 0.1) {
            spew("$WORK/mock.$i.tmp", "$held\n");
            rename "$WORK/mock.$i.tmp", "$WORK/mock.$i";
            ($written, $last) = ($held, time);
        }
    }
}

sub mocks_held {
    my $n = 0;
    $n += (slurp("$WORK/mock.$_") =~ /(\d+)/)[0] // 0 for 1 .. $MOCKS;
    return $n;
}

sub mocks_reset {
    unlink "$WORK/mock.$_" for 1 .. $MOCKS;
}

###############################################################################
# a client process: $count connections, one delete each, all at once

sub client {
    my ($i, $port, $count, $gateway) = @_;

    my $poll = IO::Poll->new;
    my %conn;
    my %r = (opened => 0, ok => 0, failed => 0, samples => []);
    my $start = time;
    my $deadline = $start + 3 * $TIMEOUT;
    my $addr = Socket::pack_sockaddr_in($port, Socket::inet_aton('127.0.0.1'));
    my $next = 0;

    my $fail = sub {
        my ($c, $why) = @_;
        $r{failed}++;
        push @{ $r{samples} }, "$c->{id}: $why" if @{ $r{samples} } < 10;
        $poll->remove($c->{s});
        delete $conn{ fileno $c->{s} };
        close $c->{s};
    };

    while (($next < $count || %conn) && time < $deadline) {

        # open more, a few hundred at a time (the listen queues are 4,096)
        for (1 .. 200) {
            last if $next >= $count;
            my $s = IO::Socket::INET->new(Proto => 'tcp', Blocking => 0)
                or die "client: socket: $!";
            connect($s, $addr) or $! == EINPROGRESS or $! == EAGAIN
                or die "client: connect: $!";
            my $id = sprintf 'h%dx%x', $i, ++$next;
            $conn{ fileno $s } = {
                s => $s, id => $id, in => '',
                out => "DELETE /replicas/$id HTTP/1.1\r\nHost: inflight\r\n"
                       . "Connection: close\r\n\r\n" };
            $poll->mask($s => POLLOUT);
            $r{opened}++;
        }

        $poll->poll(0.05);

        for my $s ($poll->handles(POLLOUT)) {
            my $c = $conn{ fileno $s } or next;
            my $n = syswrite($s, $c->{out});
            if (!defined $n) {
                next if $! == EAGAIN || $! == EINPROGRESS || $! == EINTR;
                $fail->($c, "write: $!");
                next;
            }
            substr($c->{out}, 0, $n, '');
            $poll->mask($s => POLLIN) if $c->{out} eq '';
        }

        for my $s ($poll->handles(POLLIN | POLLHUP | POLLERR)) {
            my $c = $conn{ fileno $s } or next;
            next if $c->{out} ne '';
            my $n = sysread($s, my $buf, 4096);
            if (!defined $n) {
                next if $! == EAGAIN || $! == EINTR;
                $fail->($c, "read: $!");
                next;
            }
            $c->{in} .= $buf if $n;
            my $e = index($c->{in}, "\r\n\r\n");
            my ($len) = $e >= 0 ? $c->{in} =~ /\r\ncontent-length:\s*(\d+)/i
                                : ();
            if ($e >= 0 && defined $len
                && length($c->{in}) >= $e + 4 + $len)
            {
                my $body = substr($c->{in}, $e + 4, $len);
                my $good = $c->{in} =~ m{\AHTTP/1\.1 200 }
                           && ($gateway eq 'recipe'
                               ? $body =~ /deleted successfully/
                               : $body =~ /^\{"replica_id":"\Q$c->{id}\E","deleted":true,/);
                if ($good) {
                    $r{ok}++;
                    $poll->remove($s);
                    delete $conn{ fileno $s };
                    close $s;
                } else {
                    $fail->($c, 'answer: ' . substr($c->{in}, 0, 200));
                }
                next;
            }
            $fail->($c, 'closed before the answer') unless $n;
        }
    }

    $r{unanswered} = scalar keys %conn;
    $r{seconds} = time - $start;
    spew("$WORK/client.$i.tmp", join("\n", map {
        ref $r{$_} ? map({ "sample $_" } @{ $r{$_} }) : "$_ $r{$_}" }
        sort keys %r) . "\n");
    rename "$WORK/client.$i.tmp", "$WORK/client.$i";
}

sub spawn {
    my ($name, $code) = @_;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        %CHILD = ();
        $SIG{INT} = $SIG{TERM} = 'DEFAULT';
        open STDIN, '<', '/dev/null';
        eval { $code->() };
        print STDERR "inflight: $name: $@" if $@;
        POSIX::_exit($@ ? 1 : 0);
    }
    $CHILD{$pid} = $name;
    return $pid;
}

sub reap {
    my ($pid, $timeout) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        if ($r == $pid || $r == -1) {
            delete $CHILD{$pid};
            return $r == $pid ? $? : 0;
        }
        sleep 0.05;
    }
    return undef;
}

###############################################################################
# nginx

sub gateway_conf {
    my ($name, $dir, $port) = @_;

    my $body = slurp("$TOP/bench/conf/$name.conf");
    my %sub = (PORT => $port, MOCK_PORT => $mock_port, KEY => $KEY);
    $body =~ s/%%(\w+)%%/$sub{$1} \/\/ die "inflight: %%$1%%\n"/ge;

    # a listen socket a worker, a queue as long as the system allows
    $body =~ s/(listen 127\.0\.0\.1:\d+) backlog=\d+;/$1 reuseport backlog=4096;/
        or die "inflight: no listen line in bench/conf/$name.conf\n";
    $body .= "\nserver {\n    listen 127.0.0.1:%%STATUS%%;\n"
             . "    location / { stub_status; }\n}\n";

    my $load = $name eq 'module' ? "load_module $MODULE;" : '';
    my $user = $> == 0 ? 'user root;' : '';

    return <<"CONF";
$load
daemon off;
worker_processes $WORKERS;
worker_rlimit_nofile $files;
$user
pid $dir/nginx.pid;
error_log $dir/error.log notice;

events {
    worker_connections $per_worker;
}

http {
    access_log off;
    keepalive_requests 100000;
    client_body_temp_path $dir/temp;
    proxy_temp_path $dir/temp;
    fastcgi_temp_path $dir/temp;
    uwsgi_temp_path $dir/temp;
    scgi_temp_path $dir/temp;

$body
}
CONF
}

sub workers_of {
    my ($master) = @_;
    my @pids;
    opendir my $dh, '/proc' or return ();
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my ($ppid) = slurp("/proc/$pid/stat") =~ /\)\s+\S+\s+(\d+)/ or next;
        push @pids, $pid if $ppid == $master;
    }
    closedir $dh;
    @pids = sort { $a <=> $b } @pids;
    return wantarray ? @pids : scalar @pids;
}

# kB: VmRSS and Private_Dirty, summed over the workers, and each's RSS
sub memory {
    my (@pids) = @_;
    my %m = (rss => 0, dirty => 0, each => []);
    for my $pid (@pids) {
        my ($rss) = slurp("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)/m;
        my ($dirty) = slurp("/proc/$pid/smaps_rollup")
                      =~ /^Private_Dirty:\s+(\d+)/m;
        $m{rss} += $rss // 0;
        $m{dirty} += $dirty // 0;
        push @{ $m{each} }, $rss // 0;
    }
    return \%m;
}

sub http_get {
    my ($port, $path) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5) or return '';
    print $s "GET $path HTTP/1.0\r\nHost: x\r\n\r\n";
    local $/;
    return <$s> // '';
}

sub wait_port {
    my ($port, $pid) = @_;
    my $end = time + 30;
    while (time < $end) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp');
        if ($s) { close $s; return 1 }
        return 0 if waitpid($pid, POSIX::WNOHANG()) == $pid;
        sleep 0.05;
    }
    return 0;
}

sub until_true {
    my ($cond, $timeout) = @_;
    my $end = time + $timeout;
    until ($cond->()) {
        return 0 if time > $end;
        sleep 0.1;
    }
    return 1;
}

# 2,000 deletes the mock answers at once, over 4 kept-alive connections
sub warm_up {
    my ($port) = @_;
    my @s = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                        PeerPort => $port, Proto => 'tcp')
                  or die "warm-up: $!" } 1 .. 4;
    my $ok = 0;
    for my $i (1 .. 500) {
        for my $j (0 .. $#s) {
            my $s = $s[$j];
            print $s "DELETE /replicas/w${j}x$i HTTP/1.1\r\nHost: w\r\n\r\n";
        }
        for my $s (@s) {
            my $head = '';
            while ($head !~ /\r\n\r\n\z/) {
                sysread($s, my $c, 1) or die 'warm-up: closed';
                $head .= $c;
            }
            my ($len) = $head =~ /content-length:\s*(\d+)/i;
            my $body = '';
            sysread($s, $body, $len - length($body), length $body)
                while length($body) < $len;
            $ok++ if $head =~ m{^HTTP/1\.1 200 };
        }
    }
    close $_ for @s;
    return $ok;
}

###############################################################################
# the run

my @mock_pids = map { my $i = $_; spawn("mock $i", sub { mock($i) }) }
                1 .. $MOCKS;
wait_port($mock_port, $mock_pids[0]) or die "inflight: the mock does not listen\n";

my (%result, $failed);

for my $name (@ONLY) {
    my $dir = "$WORK/$name";
    mkdir $dir;
    mkdir "$dir/temp";
    my $port = free_port();
    my $status_port = free_port();
    my $conf = gateway_conf($name, $dir, $port);
    $conf =~ s/%%STATUS%%/$status_port/;
    spew("$dir/nginx.conf", $conf);

    my $master = spawn("nginx $name", sub {
        setpgrp(0, 0);
        open STDOUT, '>>', "$dir/stderr";
        open STDERR, '>&', \*STDOUT;
        exec $NGINX, '-p', "$dir/", '-c', "$dir/nginx.conf", '-e',
             "$dir/error.log" or die "exec: $!";
    });

    # and if this process is killed outright: a watchdog stops nginx
    my $parent = $$;
    my $wd = fork() // die "fork: $!";
    if ($wd == 0) {
        open STDIN, '<', '/dev/null';
        sleep 0.2 while getppid() == $parent && kill 0, $master;
        kill 'KILL', -$master if getppid() != $parent;
        POSIX::_exit(0);
    }

    wait_port($port, $master) && wait_port($status_port, $master)
        or die "inflight: nginx ($name) did not start:\n"
               . slurp("$dir/error.log") . slurp("$dir/stderr");
    until_true(sub { workers_of($master) == $WORKERS }, 10)
        or die "inflight: nginx ($name) has not $WORKERS workers\n";
    my @workers = workers_of($master);

    my $warm = warm_up($port);
    sleep 0.5;
    my $rest = memory(@workers);

    mocks_reset();
    my $t0 = time;
    my @clients = map {
        my $i = $_;
        my $count = int($N / $CLIENTS) + ($i <= $N % $CLIENTS ? 1 : 0);
        spawn("client $i", sub { client($i, $port, $count, $name) })
    } 1 .. $CLIENTS;

    my $all = until_true(sub { mocks_held() >= $N }, $TIMEOUT);
    my $t_all = time - $t0;
    sleep 1;
    my $peak = memory(@workers);
    my ($active) = http_get($status_port, '/') =~ /Active connections:\s*(\d+)/;
    my $held = mocks_held();

    # the answers
    kill 'USR1', @mock_pids;
    my $t1 = time;
    my $done = until_true(sub { !grep { !-e "$WORK/client.$_" } 1 .. $CLIENTS },
                          3 * $TIMEOUT);
    reap($_, 10) for @clients;
    my $t_answers = time - $t1;
    my $after = memory(@workers);

    my %c = (ok => 0, failed => 0, unanswered => 0, opened => 0);
    my @samples;
    for my $i (1 .. $CLIENTS) {
        for (split /\n/, slurp("$WORK/client.$i")) {
            my ($k, $v) = split / /, $_, 2;
            if ($k eq 'sample') { push @samples, $v } else { $c{$k} += $v if $v =~ /^\d+(?:\.\d+)?$/ }
        }
        unlink "$WORK/client.$i";
    }

    my $log = slurp("$dir/error.log");
    my @bad = grep { /\[(?:alert|crit|emerg)\]/ } split /\n/, $log;

    kill 'QUIT', $master;
    my $st = reap($master, 60);
    unless (defined $st) { kill 'KILL', $master; reap($master, 5) }

    $result{$name} = {
        warm => $warm, rest => $rest, peak => $peak, after => $after,
        held => $held, active => $active // 0, clients => \%c,
        all => $all, t_all => $t_all, t_answers => $t_answers,
        bad => \@bad, samples => \@samples, workers => \@workers,
    };

    $failed ||= !$all || !$done || $c{failed} || $c{unanswered} || $c{ok} != $N || @bad
                || $warm != 2000;

    # the mock must hold again for the next gateway: new processes
    kill 'TERM', @mock_pids;
    reap($_, 5) for @mock_pids;
    @mock_pids = map { my $i = $_; spawn("mock $i", sub { mock($i) }) }
                 1 .. $MOCKS;
    wait_port($mock_port, $mock_pids[0]) or die "inflight: the mock\n";
}

kill 'TERM', @mock_pids;
reap($_, 5) for @mock_pids;

###############################################################################
# the figures

printf "inflight: %d deletes in flight at once, %d workers, %d client and"
       . " %d mock processes, worker_connections %d, worker_rlimit_nofile %d\n",
       $N, $WORKERS, $CLIENTS, $MOCKS, $per_worker, $files;

for my $name (@ONLY) {
    my $r = $result{$name};
    my $c = $r->{clients};
    printf "inflight: %-7s %s in flight after %.1fs (nginx: %d active"
           . " connections); %d answered 200, %d failed, %d unanswered, in"
           . " %.1fs after the release\n",
           $name, $r->{all} ? "all $r->{held}" : "only $r->{held} of $N",
           $r->{t_all}, $r->{active}, $c->{ok}, $c->{failed},
           $c->{unanswered}, $r->{t_answers};
    printf "inflight: %-7s workers' RSS %d kB at rest, %d kB in flight"
           . " (%s), %d kB after; Private_Dirty %d -> %d kB\n",
           $name, $r->{rest}{rss}, $r->{peak}{rss},
           join(' + ', @{ $r->{peak}{each} }), $r->{after}{rss},
           $r->{rest}{dirty}, $r->{peak}{dirty};
    printf "inflight: %-7s per delete in flight: %.1f KiB RSS, %.1f KiB"
           . " private dirty\n", $name,
           ($r->{peak}{rss} - $r->{rest}{rss}) / ($r->{held} || 1),
           ($r->{peak}{dirty} - $r->{rest}{dirty}) / ($r->{held} || 1);
    print "inflight: $name: $_\n" for @{ $r->{samples} }, @{ $r->{bad} };
    print "inflight: $name: the warm-up got $r->{warm} of 2000\n"
        if $r->{warm} != 2000;
}

if (@ONLY == 2 && $result{recipe}{held} && $result{module}{held}) {
    my ($m, $p) = map { ($result{$_}{peak}{rss} - $result{$_}{rest}{rss})
                        / $result{$_}{held} } qw(module recipe);
    printf "inflight: the module needs %.2fx the recipe's memory per delete"
           . " in flight\n", $m / ($p || 1);
}

print $failed ? "inflight: FAIL\n" : "inflight: PASS\n";
exit($failed ? 1 : 0);

sub slurp { TavusProc::slurp(@_) }
sub spew { TavusProc::spew(@_) }
