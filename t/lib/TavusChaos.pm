package TavusChaos;

# For the process fault tests (t/44, t/45, t/46): a TavusTest (with its
# workers and reloads: new(worker_processes => N)) that
#
#   - passes the sanitizer's environment on to a binary that nginx
#     executes itself (USR2), through "env" lines: nginx gives a new binary
#     only the variables its configuration names;
#   - writes its error log at log_level (new(log_level => 'notice'), for
#     the load tests; debug by default);
#   - takes the [alert] lines a test provokes on purpose out of the check
#     at stop, one line for one expect_alert() (a SIGKILLed worker is an
#     alert), every other alert still failing the run;
#
# and a bounded load client that runs in a process of its own:
#
#     my $load = TavusChaos::Load->start(port => $port, path => '/d/',
#                                        connections => 8, seconds => 5,
#                                        file => "$prefix/load.json");
#     my $r = $load->wait;     # { ok, failed, resent, samples => [...],
#                              #   statuses => { 200 => n }, ids => [...] }
#
# Every request is "DELETE <path><id>" with a fresh id; an answer is ok
# when it is a 200 with the module's JSON for that id.  keepalive => 1
# keeps the client connections; a request whose kept-alive connection is
# closed by nginx before a byte of the answer (an old worker closing its
# idle connections) is sent again once on a new connection, as HTTP
# clients do, and counted in "resent", not as a failure.

use strict;
use warnings;

use TavusTest ();
use TavusProm ();
use IO::Socket::INET ();
use Time::HiRes ();

our @ISA = ('TavusTest');

sub new {
    my ($class, %o) = @_;
    my $level = delete $o{log_level};
    my $self = TavusTest::new($class, %o);
    $self->{expected_alerts} = [];
    $self->{log_level} = $level;
    return $self;
}

sub _conf {
    my ($self, @args) = @_;

    my $conf = $self->SUPER::_conf(@args);

    # under load a debug log is gigabytes: log_level => 'notice'
    $conf =~ s/^(error_log \S+) debug;$/$1 $self->{log_level};/m
        if $self->{log_level};

    # a binary upgrade runs nginx again with only these variables
    my $env = join '', map { "env $_;\n" } qw(LD_PRELOAD ASAN_OPTIONS
                                             UBSAN_OPTIONS);
    $conf =~ s/^(daemon off;)$/$env$1/m;

    return $conf;
}

# the gateway of the load tests (t/45, t/46): deletes under /d/ through
# an upstream{} group with keepalive to the mock on MOCK_PORT, and the
# metrics at /metrics; zone => the metrics zone's name, log => the
# server's access_log line, label => a tavus_metrics_label

sub load_gateway {
    my (%o) = @_;

    my $label = $o{label} ? "            tavus_metrics_label $o{label};\n"
                          : '';

    return <<"HTTP";
    tavus_metrics_zone $o{zone} 1m;

    upstream tavus_up {
        server 127.0.0.1:$o{mock_port};
        keepalive 8;
    }

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        $o{log}
        tavus_api_key $o{key};

        location ~ ^/d/(?<replica>[^/]*)\$ {
$label            tavus_delete_replica \$replica;
            tavus_pass http://tavus_up;
        }

        location = /metrics {
            tavus_metrics;
        }
    }
HTTP
}

# nginx as a daemon, for a binary upgrade: nginx ignores USR2 while the
# master's parent is the process that started it (it takes itself for
# the new binary of a running old one), so the master must be a daemon.
# Not the harness's child, it is not stopped by the harness either:
# stop_daemon() stops the master of nginx.pid (and an END block any
# master left), and fails on [alert], [crit] or [emerg].

my @DAEMONS;

sub run_daemon {
    my ($self, $http) = @_;

    my $p = $self->prefix;
    my $conf = $self->_conf($http, "$p/error.log");
    $conf =~ s/^daemon off;$/daemon on;/m or die 'run_daemon: no "daemon off"';
    $self->write_file('nginx.conf', $conf);

    my @ports = $conf =~ /\blisten\s+(?:127\.0\.0\.1:)?(\d+)\b/g;
    my @wrapper = split ' ', $ENV{TAVUS_WRAPPER} // '';

    system("@wrapper '$self->{nginx}' -p '$p/' -c '$p/nginx.conf'"
           . " -e '$p/error.log' >>'$p/nginx.stderr' 2>&1") == 0
        or die "nginx did not start:\n" . $self->read_file('error.log')
               . $self->read_file('nginx.stderr');

    my $deadline = Time::HiRes::time() + ($ENV{TAVUS_TIMEOUT} || 5);
    until (grep({ !_can_connect($_) } @ports) == 0
           && $self->read_file('nginx.pid') =~ /^\d+/)
    {
        die "nginx does not listen on @ports:\n" . $self->read_file('error.log')
            if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.02);
    }

    push @DAEMONS, $self;
    return $self->daemon_pid;
}

sub daemon_pid {
    my ($self, $file) = @_;
    my ($pid) = $self->read_file($file // 'nginx.pid') =~ /^(\d+)/;
    return $pid;
}

# exited: no such process, or a zombie its new parent has not reaped
sub gone {
    my ($class, $pid) = @_;
    return 1 unless kill 0, $pid;
    open my $fh, '<', "/proc/$pid/stat" or return 1;
    return (<$fh> // '') =~ /^\d+ \(.*\) Z /s ? 1 : 0;
}

sub stop_daemon {
    my ($self, %o) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    my @bad;
    for my $pid (grep { $_ } $self->daemon_pid, $self->daemon_pid('nginx.pid.oldbin')) {
        kill 'QUIT', $pid;
        my $deadline = Time::HiRes::time() + ($ENV{TAVUS_TIMEOUT} || 5) * 2;
        Time::HiRes::sleep(0.02)
            until $self->gone($pid) || Time::HiRes::time() > $deadline;
        next if $self->gone($pid);
        push @bad, "nginx $pid did not stop after SIGQUIT";
        kill 'KILL', $pid, $self->children_of($pid);
    }

    push @bad, grep { m{^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(?:alert|crit|emerg)\]} }
               split /\n/, $self->error_log;

    @DAEMONS = grep { $_ != $self } @DAEMONS;

    Test::More::ok(!@bad, 'nginx (a daemon) stopped cleanly, no alert, crit'
                          . ' or emerg in the error log')
        or Test::More::diag(join "\n", @bad);
}

sub _can_connect {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp') or return 0;
    close $s;
    return 1;
}

END {
    for my $self (@DAEMONS) {
        for my $pid (grep { $_ } $self->daemon_pid,
                     $self->daemon_pid('nginx.pid.oldbin'))
        {
            kill 'KILL', $self->children_of($pid), $pid;
        }
    }
}

# an [alert] line that must come, once: it is then no failure at stop

sub expect_alert {
    my ($self, $re) = @_;
    push @{ $self->{expected_alerts} }, $re;
}

# the lines of expect_alert() that the error log has (each pattern takes
# one line)

sub expected_alerts_seen {
    my ($self) = @_;
    my (@seen, %used);
    for my $line (split /\n/, $self->SUPER::error_log) {
        next unless $line =~ /\[alert\]/;
        for my $i (0 .. $#{ $self->{expected_alerts} }) {
            next if $used{$i} || $line !~ $self->{expected_alerts}[$i];
            $used{$i} = 1;
            push @seen, $line;
            last;
        }
    }
    return @seen;
}

sub error_log {
    my ($self) = @_;
    my %expected = map { $_ => 1 } $self->expected_alerts_seen;
    return join '', map { "$_\n" } grep { !$expected{$_} }
                    split /\n/, $self->SUPER::error_log;
}

# the workers of a master (Linux /proc), and their resident memory

sub children_of {
    my ($class, $master) = @_;
    my @pids;
    opendir my $dh, '/proc' or return ();
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh> // '';
        close $fh;
        my ($ppid) = $stat =~ /\)\s+\S+\s+(\d+)/ or next;
        push @pids, $pid if $ppid == $master;
    }
    closedir $dh;
    @pids = sort { $a <=> $b } @pids;
    return wantarray ? @pids : scalar @pids;
}

# which process holds the server side of a client's connection to $port:
# the socket's inode from /proc/net/tcp, then the process whose fd has it

sub owner_of_connection {
    my ($class, $port, $client_port, @pids) = @_;

    my $local = sprintf '0100007F:%04X', $port;
    my $remote = sprintf '0100007F:%04X', $client_port;
    my $inode;

    open my $fh, '<', '/proc/net/tcp' or return;
    while (<$fh>) {
        my @f = split ' ';
        next unless @f > 9 && $f[1] eq $local && $f[2] eq $remote;
        $inode = $f[9];
        last;
    }
    close $fh;

    return unless $inode;

    for my $pid (@pids) {
        opendir my $dh, "/proc/$pid/fd" or next;
        for my $fd (readdir $dh) {
            my $link = readlink "/proc/$pid/fd/$fd" // next;
            return $pid if $link eq "socket:[$inode]";
        }
        closedir $dh;
    }

    return;
}

package TavusChaos::Load;

use strict;
use warnings;

use IO::Socket::INET ();
use IO::Select ();
use JSON::PP ();
use POSIX ();
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes ();
use Errno qw(EAGAIN EWOULDBLOCK EINPROGRESS EINTR);

sub start {
    my ($class, %a) = @_;

    my $self = bless { %a }, $class;
    $self->{file} // die 'TavusChaos::Load: no file';
    unlink $self->{file};

    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        my $r = eval { $self->_run } // { error => $@ };
        open my $fh, '>', "$self->{file}.tmp" or POSIX::_exit(1);
        print $fh JSON::PP->new->canonical->encode($r);
        close $fh;
        rename "$self->{file}.tmp", $self->{file};
        POSIX::_exit(0);
    }

    $self->{pid} = $pid;
    return $self;
}

# stop early: the child finishes the requests in flight and reports
sub stop {
    my ($self) = @_;
    kill 'USR1', $self->{pid} if $self->{pid};
}

sub wait {
    my ($self, $timeout) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // $self->{seconds} + 30);
    while (Time::HiRes::time() < $deadline) {
        last if waitpid($self->{pid}, POSIX::WNOHANG()) == $self->{pid};
        Time::HiRes::sleep(0.05);
    }
    if (kill 0, $self->{pid}) {
        kill 'KILL', $self->{pid};
        waitpid($self->{pid}, 0);
        return { error => 'the load client did not finish' };
    }
    open my $fh, '<', $self->{file} or return { error => 'no result' };
    local $/;
    return JSON::PP->new->decode(<$fh>);
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!);
    if ($self->{pid} && kill 0, $self->{pid}) {
        kill 'KILL', $self->{pid};
        waitpid($self->{pid}, 0);
    }
}

sub _run {
    my ($self) = @_;

    my $stop = 0;
    local $SIG{USR1} = sub { $stop = 1 };
    local $SIG{PIPE} = 'IGNORE';

    my %r = (ok => 0, failed => 0, resent => 0, samples => [],
             statuses => {}, requests => 0);
    my $end = Time::HiRes::time() + $self->{seconds};
    my $seq = 0;
    my $prefix = $self->{id_prefix} // 'r' . sprintf('%x', $$);
    my (@conns, %by_fd);
    my $sel_r = IO::Select->new;
    my $sel_w = IO::Select->new;

    my ($open, $send, $close, $fail);

    $open = sub {
        my ($resend) = @_;
        my $s = IO::Socket::INET->new(Proto => 'tcp', Blocking => 0)
            or die "socket: $!";
        my $addr = Socket::pack_sockaddr_in($self->{port},
                                            Socket::inet_aton('127.0.0.1'));
        connect($s, $addr) or $! == EINPROGRESS or $! == EAGAIN
            or die "connect: $!";
        setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
        my $c = { s => $s, in => '', out => '', served => 0 };
        push @conns, $c;
        $by_fd{ fileno $s } = $c;
        $send->($c, $resend);
    };

    $send = sub {
        my ($c, $resend) = @_;
        my $id = $resend // sprintf('%s%x', $prefix, ++$seq);
        $c->{id} = $id;
        $c->{resend} = defined $resend;
        $c->{since} = Time::HiRes::time();
        my $keep = $self->{keepalive} ? '' : "Connection: close\r\n";
        $c->{out} = "DELETE $self->{path}$id HTTP/1.1\r\nHost: load\r\n$keep\r\n";
        $c->{in} = '';
        $c->{busy} = 1;
        $r{requests}++;
        $sel_w->add($c->{s});
    };

    $close = sub {
        my ($c) = @_;
        $sel_r->remove($c->{s});
        $sel_w->remove($c->{s});
        delete $by_fd{ fileno $c->{s} };
        close $c->{s};
        @conns = grep { $_ != $c } @conns;
    };

    $fail = sub {
        my ($c, $why) = @_;
        # a kept-alive connection closed before a byte of the answer
        if ($c->{served} && $c->{in} eq '' && !$c->{resend}) {
            $r{resent}++;
            my $id = $c->{id};
            $close->($c);
            $open->($id);
            return;
        }
        $r{failed}++;
        push @{ $r{samples} }, "$c->{id}: $why" if @{ $r{samples} } < 20;
        $close->($c);
    };

    my $want = $self->{connections} // 8;
    $open->() for 1 .. $want;

    while (1) {
        my $now = Time::HiRes::time();
        my $over = $stop || $now >= $end;
        last if $over && !grep { $_->{busy} } @conns;

        my ($rr, $ww) = IO::Select->select($sel_r, $sel_w, undef, 0.05);

        for my $fh (@{ $ww // [] }) {
            my $c = $by_fd{ fileno $fh } or next;
            my $n = syswrite($c->{s}, $c->{out});
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR
                        || $! == EINPROGRESS;
                $fail->($c, "write: $!");
                next;
            }
            substr($c->{out}, 0, $n, '');
            if ($c->{out} eq '') {
                $sel_w->remove($c->{s});
                $sel_r->add($c->{s});
            }
        }

        for my $fh (@{ $rr // [] }) {
            my $c = $by_fd{ fileno $fh } or next;
            my ($got, $status, $head, $body) =
                TavusProc::read_answer($c->{s}, \$c->{in});
            next if $got eq 'again';
            if ($got eq 'error') {
                $fail->($c, $status);
                next;
            }
            $r{statuses}{$status}++;
            $c->{busy} = 0;
            $c->{served}++;
            if ($status == 200 && $body =~ /\A\{"replica_id":"\Q$c->{id}\E","deleted":true,"hard":false,"request_id":"[0-9a-f]{32}"\}\n\z/) {
                $r{ok}++;
            } else {
                $r{failed}++;
                push @{ $r{samples} }, "$c->{id}: $status $body"
                    if @{ $r{samples} } < 20;
            }

            my $closing = $head =~ /\r\nconnection:\s*close/i
                          || !$self->{keepalive};
            if ($closing || $over) {
                $close->($c);
                $open->() if !$over;
            } else {
                $send->($c);
            }
        }

        for my $c (@{ [ @conns ] }) {
            next unless $c->{busy} && Time::HiRes::time() - $c->{since} > 10;
            $fail->($c, 'no answer in 10s');
        }

        $open->() while !$over && @conns < $want;
    }

    $close->($_) for @{ [ @conns ] };

    return \%r;
}

1;
