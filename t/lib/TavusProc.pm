package TavusProc;

# Ports, processes and files on this machine, and a standalone nginx:
# what the test harness (t/lib/TavusTest.pm), the bench (bench/bench.pl),
# the soak (scripts/soak.pl) and `make run` (scripts/run.sh) share.  Core
# Perl only and no Test::More: the bench and the soak are not tests.
#
#     use lib "$top/t/lib";
#     use TavusProc ();
#
#   free_port(used => \%used, udp => 1)
#                             a free 127.0.0.1 TCP port (and UDP, with
#                             udp => 1) outside the kernel's ephemeral
#                             range, none of the keys of %used (the port
#                             is added there)
#   port_range()              (low, high) of the ports free_port picks from
#   can_connect(PORT)         1 if something accepts on 127.0.0.1:PORT
#   wait_until(CODE, timeout => S, interval => S)
#                             CODE's first true value, polled every
#                             interval (0.01 s) for at most timeout (5 s);
#                             undef when it never came
#   spawn(cmd => [..], out => FILE, group => 1, name => NAME)
#                             fork and exec; stdin /dev/null, stdout and
#                             stderr appended to FILE (/dev/null); group:
#                             a process group of its own; the pid
#   reap(PID, TIMEOUT)        its wait status once it exited, undef if it
#                             still runs after TIMEOUT seconds
#   stop(PID, SIGNAL, TIMEOUT)
#                             SIGNAL, then reap; SIGKILL if it does not exit
#                             in TIMEOUT (20) s: its wait status, or undef
#                             when it had to be killed
#   stop_all(SIGNAL, TIMEOUT) stop every process spawn() started and no one
#                             stopped yet (for END blocks)
#   watchdog(PID)             a process that stops PID's process group
#                             (QUIT, then KILL) once this process is gone
#   stop_watchdog(WATCHDOG)   no longer needed: gone
#   children(PID)             the pids whose parent is PID, sorted (/proc)
#   rss_kib(PID)              its resident memory (VmRSS), KiB
#   read_answer(FH, \$IN)    a non-blocking read from a client socket,
#                             appended to $IN: ('again') while the answer
#                             (Content-Length framed) is not all there,
#                             ('error', WHY) when the read failed, the
#                             connection closed or the answer has no
#                             Content-Length, ('ok', STATUS, HEAD, BODY)
#   slurp(PATH), spew(PATH, CONTENT)
#                             a whole file, raw ('' if unreadable); write
#                             one (dies on error)
#   nginx_conf(dir =>, http =>, ...)
#                             the nginx.conf of a standalone nginx in DIR
#   start_nginx(dir =>, port => [..], nginx =>, wrapper => [..], ...)
#                             nginx with DIR/nginx.conf, once it listens

use strict;
use warnings;

use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes ();

###############################################################################
# ports
#
# Ports are taken outside the kernel's ephemeral range: a port from that
# range can become the local port of one of nginx's own upstream
# connections, and a connection to a port nobody listens on (a "refused"
# upstream) then connects to itself (TCP simultaneous open) and reads its
# own request back instead of being refused.  A port the kernel hands out
# (LocalPort => 0) is one of that range: never used for a server here.

my @EPHEMERAL = do {
    my @r = split ' ', slurp('/proc/sys/net/ipv4/ip_local_port_range');
    @r == 2 ? @r : (32768, 60999);
};

sub port_range {
    my ($lo, $hi) = @EPHEMERAL;

    return (10000, $lo - 1) if $lo - 1 - 10000 >= 1000;
    return ($hi + 1, 65535) if 65535 - ($hi + 1) >= 1000;
    return (1025, 65535);
}

sub free_port {
    my (%o) = @_;

    my $used = $o{used} // {};
    my ($lo, $hi) = port_range();

    for (1 .. 500) {
        my $port = $lo + int(rand($hi - $lo + 1));

        next if $used->{$port};

        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => $port,
            Proto     => 'tcp',
            Listen    => 1,
        ) or next;

        close $s;

        if ($o{udp}) {
            my $u = IO::Socket::INET->new(
                LocalAddr => '127.0.0.1',
                LocalPort => $port,
                Proto     => 'udp',
            ) or next;

            close $u;
        }

        $used->{$port} = 1;

        return $port;
    }

    die "no free port found in $lo-$hi\n";
}

sub can_connect {
    my ($port) = @_;

    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $port,
        Proto    => 'tcp',
    ) or return 0;

    close $s;
    return 1;
}

sub wait_until {
    my ($code, %o) = @_;

    my $deadline = Time::HiRes::time() + ($o{timeout} // 5);

    while (1) {
        my $v = $code->();
        return $v if $v;
        return undef if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep($o{interval} // 0.01);
    }
}

###############################################################################
# processes

my %SPAWNED;                # pid => name, until stopped or reaped

sub spawn {
    my (%o) = @_;

    my @cmd = @{ $o{cmd} // die 'spawn: no cmd' };
    my $out = $o{out} // '/dev/null';

    my $pid = fork() // die "fork: $!\n";

    if ($pid == 0) {
        setpgrp(0, 0) if $o{group};
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $out or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        exec @cmd or POSIX::_exit(127);
    }

    $SPAWNED{$pid} = $o{name} // $cmd[0];

    return $pid;
}

sub reap {
    my ($pid, $timeout) = @_;

    my $deadline = Time::HiRes::time() + $timeout;

    while (1) {
        my $r = waitpid($pid, POSIX::WNOHANG());

        if ($r == $pid || $r == -1) {
            delete $SPAWNED{$pid};
            return $r == $pid ? $? : 0;
        }

        return undef if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.01);
    }
}

sub stop {
    my ($pid, $signal, $timeout) = @_;

    return 0 unless $pid;

    kill $signal, $pid;
    my $status = reap($pid, $timeout // 20);
    return $status if defined $status;

    kill 'KILL', $pid;
    reap($pid, 5);

    return undef;
}

sub stop_all {
    my ($signal, $timeout) = @_;

    for my $pid (sort keys %SPAWNED) {
        warn "$SPAWNED{$pid} (pid $pid) did not stop: killed\n"
            unless defined stop($pid, $signal // 'TERM', $timeout // 10);
    }
}

sub watchdog {
    my ($pid) = @_;

    my $parent = $$;
    my $wd = fork() // die "fork: $!\n";

    return $wd if $wd;

    $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP PIPE);
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';

    Time::HiRes::sleep(0.2) while getppid() == $parent;

    kill 'QUIT', -$pid, $pid;
    Time::HiRes::sleep(1);
    kill 'KILL', -$pid, $pid;

    POSIX::_exit(0);
}

sub stop_watchdog {
    my ($wd) = @_;

    return unless $wd;

    kill 'KILL', $wd;
    waitpid($wd, 0);
}

sub children {
    my ($ppid) = @_;

    my @pids;

    opendir my $dh, '/proc' or die "cannot read /proc: $!\n";

    for my $pid (grep { /^\d+$/ } readdir $dh) {
        # pid (comm) state ppid ...
        my ($parent) = slurp("/proc/$pid/stat") =~ /\)\s+\S+\s+(\d+)/
            or next;
        push @pids, $pid if $parent == $ppid;
    }

    closedir $dh;

    return sort { $a <=> $b } @pids;
}

sub rss_kib {
    my ($pid) = @_;
    my ($kib) = slurp("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)\s+kB/m;
    return $kib;
}

###############################################################################
# answers

sub read_answer {
    my ($fh, $in) = @_;

    my $n = sysread($fh, my $buf, 65536);
    if (!defined $n) {
        return 'again' if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
        return ('error', "read: $!");
    }
    return ('error', 'closed before the answer') unless $n;

    $$in .= $buf;

    my $end = index($$in, "\r\n\r\n");
    return 'again' if $end < 0;

    my $head = substr($$in, 0, $end);
    my ($len) = $head =~ /\r\ncontent-length:[ \t]*(\d+)/i;
    return ('error', 'an answer without Content-Length') unless defined $len;
    return 'again' if length($$in) < $end + 4 + $len;

    my ($status) = $head =~ m{\AHTTP/1\.[01] (\d{3})};

    return ('ok', $status // 0, $head, substr($$in, $end + 4, $len));
}

###############################################################################
# files

sub slurp {
    my ($path) = @_;

    open my $fh, '<:raw', $path or return '';
    local $/;
    my $content = <$fh>;
    close $fh;

    return $content // '';
}

sub spew {
    my ($path, $content) = @_;

    open my $fh, '>:raw', $path or die "cannot write $path: $!\n";
    print $fh $content;
    close $fh or die "cannot close $path: $!\n";

    return $path;
}

###############################################################################
# a standalone nginx, for the bench and the soak (the suite's own is the
# harness's run())
#
#   dir          its prefix: nginx.conf, nginx.pid, error.log, temp/
#   http         the http{} body
#   modules      load_module paths
#   workers      worker_processes (1)
#   single       master_process off
#   affinity     worker_cpu_affinity
#   user         a user directive
#   error_log    its level (warn)
#   connections  worker_connections (4096)

sub nginx_conf {
    my (%o) = @_;

    my $dir = $o{dir} // die 'nginx_conf: no dir';

    mkdir "$dir/temp";

    my $main = join '', map { "load_module $_;\n" } @{ $o{modules} // [] };
    $main .= "master_process off;\n" if $o{single};
    $main .= "daemon off;\nworker_processes " . ($o{workers} // 1) . ";\n";
    $main .= "worker_cpu_affinity $o{affinity};\n" if $o{affinity};
    $main .= "user $o{user};\n" if $o{user};

    my $level = $o{error_log} // 'warn';
    my $connections = $o{connections} // 4096;
    my $t = "$dir/temp";

    return <<"CONF";
$main
pid $dir/nginx.pid;
error_log $dir/error.log $level;

events {
    worker_connections $connections;
}

http {
    access_log off;
    client_body_temp_path $t/body;
    proxy_temp_path $t/proxy;
    fastcgi_temp_path $t/fastcgi;
    uwsgi_temp_path $t/uwsgi;
    scgi_temp_path $t/scgi;

$o{http}
}
CONF
}

# the last lines of its error log and stderr, for a message

sub nginx_log_tail {
    my ($dir) = @_;

    my $text = '';

    for my $f ("$dir/error.log", "$dir/stderr.log") {
        my @l = split /\n/, slurp($f);
        $text .= join '', map { "    $_\n" } @l[ ($#l > 9 ? $#l - 9 : 0) .. $#l ];
    }

    return $text;
}

# nginx (or WRAPPER... nginx) with DIR/nginx.conf, stdout and stderr in
# DIR/stderr.log; returns its pid once every port listens, dies with the
# end of its logs when it exits first or does not listen in time

sub start_nginx {
    my (%o) = @_;

    my $dir = $o{dir} // die 'start_nginx: no dir';
    my $name = $o{name} // "nginx in $dir";

    my $pid = spawn(name => $name, out => "$dir/stderr.log",
                    cmd => [ @{ $o{wrapper} // [] },
                             $o{nginx} // '/usr/sbin/nginx', '-p', "$dir/",
                             '-c', "$dir/nginx.conf", '-e',
                             "$dir/error.log" ]);

    my $exited;

    my $up = wait_until(sub {
        $exited = defined reap($pid, 0);
        return $exited || !grep { !can_connect($_) } @{ $o{port} };
    }, timeout => $o{timeout} // 10, interval => 0.05);

    return $pid if $up && !$exited;

    stop($pid, 'TERM', 10) unless $exited;

    die "$name " . ($exited ? 'exited' : 'does not listen on '
                               . join(', ', @{ $o{port} })) . ":\n"
        . nginx_log_tail($dir);
}

1;
