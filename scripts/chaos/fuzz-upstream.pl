#!/usr/bin/perl

# The system fuzzer of the upstream answer path: a real nginx with the
# module (by default built with ASan and UBSan, build/asan), in front of a
# mock upstream that generates answers, and clients that send deletes over
# HTTP/1.1 and HTTP/2.  One process drives both sides, so that every
# exchange is checked against what the upstream really sent.
#
#   perl scripts/chaos/fuzz-upstream.pl [--seed N] [--cases N]
#                                        [--seconds N] [--asan]
#   perl scripts/chaos/fuzz-upstream.pl --seed N --case M [--case ...]
#   perl scripts/chaos/fuzz-upstream.pl --replay FILE [...]
#
# Case N of seed S (t/lib/TavusFuzz.pm, gen_case) is a route, a client
# behaviour and one to three upstream answers.  An answer is bytes (status
# lines, header sets, Content-Length, chunked, both or neither, chunk
# sizes and extensions, trailers, bodies, stray bytes, 1xx interim
# answers), cut into writes at random offsets with random pauses, ending
# with the connection kept, a FIN, a RST or silence.  Clients use
# HTTP/1.1 (alone, pipelined, with bodies, with Expect, keeping their
# connection) or HTTP/2 (several streams a connection, bodies in DATA
# frames), and some abort before the answer.
#
# Checked on every exchange:
#   - the client's answer: status, JSON body and headers of
#     docs/responses.md, against the outcomes the oracle
#     (TavusFuzz::classify) allows for the bytes sent; 200 only for a
#     well-formed HTTP/1.x 2xx;
#   - the request upstream: exactly the DELETE, Host and key, nothing of
#     the client's;
#   - an upstream connection carries another request only after an
#     exactly framed answer (the mock knows each request's connection);
# and after the run:
#   - no sanitizer report, no [alert], [crit] or [emerg] (a worker that
#     exits on a signal is an alert), the workers are those at the start;
#   - the key in no answer and no line of the error log (debug level) or
#     the access log;
#   - the access log's status, outcome and request_id for each delete
#     agree with what the client got; the metrics zone's counters with
#     the access log.
#
# A failing case prints its seed, number, bytes and a replay command, and
# is written as a JSON file to --save (default build/fuzz-upstream): copy
# it to t/chaos/regressions/ and t/43-upstream-fuzz-regressions.t replays
# it from then on.
#
# Options (environment FUZZ_UPSTREAM_SEED, _CASES, _SECONDS too):
#   --seed N         (1)       --cases N (20000; 0: until --seconds)
#   --seconds N      stop starting cases after N seconds (0: no limit)
#   --concurrency N  client connections at once (24)
#   --workers N      nginx worker processes (2)
#   --asan           the module of build/asan with the ASan runtime
#                    preloaded (scripts/test-asan.sh builds it)
#   --nginx, --module   default TAVUS_NGINX, TAVUS_MODULE, or Debian's
#                    nginx and build/ngx_http_tavus_module.so
#   --log-level L    the error log's level (debug)
#   --save DIR       failing cases go there
#   --keep           keep the prefix directory
#   --verbose        every exchange, and the error and warn lines counted
#   --quiet          no progress, no replay lines (t/43)
#   --dump FILE      each case's end, a line each, to compare two runs
#
# Two runs of a seed make the same cases and see the same answers, but for
# what depends on timing, printed on a line of its own: connections and
# their reuse, and the rare delete that meets a kept-alive connection the
# mock closed at that moment (HTTP's own race: counted, not a failure).

use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/../../t/lib";

use Cwd ();
use Errno qw(EAGAIN EWOULDBLOCK EINPROGRESS EINTR);
use File::Path ();
use File::Temp ();
use Getopt::Long ();
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use POSIX ();
use Socket qw(SOL_SOCKET SO_LINGER IPPROTO_TCP TCP_NODELAY);
use Time::HiRes ();

use TavusFuzz qw(gen_case classify chain_outcomes check_answer case_to_json
                 case_from_json printable);
use TavusH2 ();
use TavusProm ();
use TavusProc ();

$| = 1;
$SIG{PIPE} = 'IGNORE';

my $REPO = Cwd::abs_path("$FindBin::Bin/../..");

my %opt = (
    seed        => $ENV{FUZZ_UPSTREAM_SEED} // 1,
    cases       => $ENV{FUZZ_UPSTREAM_CASES} // 20000,
    seconds     => $ENV{FUZZ_UPSTREAM_SECONDS} // 0,
    concurrency => 24,
    workers     => 2,
    'log-level' => 'debug',
    save        => "$REPO/build/fuzz-upstream",
    case        => [],
    replay      => [],
);

Getopt::Long::GetOptions(\%opt, 'seed=i', 'cases=i', 'seconds=f',
    'concurrency=i', 'workers=i', 'asan', 'nginx=s', 'module=s',
    'log-level=s', 'save=s', 'keep', 'verbose', 'case=i@', 'replay=s@',
    'quiet', 'dump=s')
    or die "usage: see the header of $0\n";

my $SEED = $opt{seed};
my $KEY = 'fz-Key_' . join '', map { sprintf '%x', ($SEED * 7919 + $_ * 104729) % 16 } 1 .. 20;
my $CLIENT_TIMEOUT = 20;

my ($NGINX, $MODULE, %NGINX_ENV, $ASAN_LOGS);

if ($opt{asan}) {
    $MODULE = $opt{module} // "$REPO/build/asan/ngx_http_tavus_module.so";
    $NGINX = $opt{nginx} // '/usr/sbin/nginx';
    chomp(my $rt = `clang -print-file-name=libclang_rt.asan-x86_64.so`);
    die "fuzz-upstream: no ASan runtime ($rt): apt-get install clang"
        . " libclang-rt-14-dev\n" unless -f $rt;
    $NGINX_ENV{LD_PRELOAD} = $rt;
} else {
    $MODULE = $opt{module} // $ENV{TAVUS_MODULE}
              // "$REPO/build/ngx_http_tavus_module.so";
    $NGINX = $opt{nginx} // $ENV{TAVUS_NGINX} // '/usr/sbin/nginx';
}

# "static", as in the suite (TAVUS_MODULE): nginx has the module built in
die "fuzz-upstream: no module at $MODULE (make build, or"
    . " scripts/test-asan.sh for build/asan)\n"
    unless -f $MODULE || $MODULE eq 'static';
my $LOAD_MODULE = $MODULE eq 'static' ? '' : "load_module $MODULE;";

my $prefix = Cwd::abs_path(File::Temp::tempdir('tavus-fuzz-up-XXXXXX',
                                               TMPDIR => 1,
                                               CLEANUP => !$opt{keep}));

if ($opt{asan}) {
    $ASAN_LOGS = "$prefix/asan";
    mkdir $ASAN_LOGS;
    my $o = 'abort_on_error=1:halt_on_error=1:detect_leaks=0'
            . ':fast_unwind_on_malloc=0:print_stacktrace=1'
            . ":log_path=$ASAN_LOGS/nginx";
    $NGINX_ENV{ASAN_OPTIONS} = $NGINX_ENV{UBSAN_OPTIONS} = $o;
}

print "fuzz-upstream: prefix $prefix\n" if $opt{keep};

###############################################################################
# the cases

my @RUN;          # case numbers to run, or undef: 0, 1, 2, ...
my %CASE;         # id => case

if (@{ $opt{replay} }) {
    for my $file (@{ $opt{replay} }) {
        open my $fh, '<', $file or die "fuzz-upstream: $file: $!\n";
        local $/;
        my $c = case_from_json(<$fh>);
        # the key of the file is this run's
        for my $p (@{ $c->{plans} }) {
            for ($p->{bytes}, map { $_->[1] } @{ $p->{parts} }) {
                s/\Q$c->{key}\E/$KEY/g if $c->{key};
            }
        }
        $c->{file} = $file;
        $c->{group} = 1;
        $CASE{ $c->{id} } = $c;
        push @RUN, $c;
    }
} elsif (@{ $opt{case} }) {
    @RUN = map { my $c = gen_case($SEED, $_, key => $KEY); $c->{group} = 1;
                 $CASE{ $c->{id} } = $c; $c } @{ $opt{case} };
}

my $next_n = 0;

sub next_case {
    if (@RUN || @{ $opt{replay} } || @{ $opt{case} }) {
        return shift @RUN;
    }
    return undef if $opt{cases} && $next_n >= $opt{cases};
    my $c = gen_case($SEED, $next_n++, key => $KEY);
    $CASE{ $c->{id} } = $c;
    return $c;
}

###############################################################################
# ports, config, nginx

# the project's port policy (t/lib/TavusProc.pm)

my %used;

sub free_port { TavusProc::free_port(used => \%used) }

my %port = map { $_ => free_port() } qw(h1 h2 m1 m2);

my $listen1 = listener($port{m1});
my $listen2 = listener($port{m2});

sub listener {
    my ($p) = @_;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p,
                                  Proto => 'tcp', Listen => 1024,
                                  ReuseAddr => 1, Blocking => 0)
        or die "fuzz-upstream: cannot listen on $p: $!\n";
    return $l;
}

my $user = $> == 0 ? 'user root;' : '';
my $workers = $opt{workers};

spew("$prefix/nginx.conf", <<"CONF");
$LOAD_MODULE
daemon off;
master_process on;
worker_processes $workers;
$user
pid $prefix/nginx.pid;
error_log $prefix/error.log $opt{'log-level'};
events { worker_connections 4096; }

http {
    log_format fz '\$tavus_replica_id \$status \$tavus_outcome'
                  ' \$request_id \$server_protocol'
                  ' |\$upstream_addr|\$upstream_status';
    access_log $prefix/access.log fz;
    client_body_temp_path $prefix/client_body_temp;
    proxy_temp_path $prefix/proxy_temp;
    fastcgi_temp_path $prefix/fastcgi_temp;
    uwsgi_temp_path $prefix/uwsgi_temp;
    scgi_temp_path $prefix/scgi_temp;
    keepalive_requests 1000;

    tavus_metrics_zone fuzz 1m;

    upstream k {
        server 127.0.0.1:$port{m1} max_fails=0;
        keepalive 8;
    }

    # no keepalive here: after an error on a kept-alive connection nginx
    # gives the try back (outside tavus_next_upstream_tries), and whether
    # a try found a kept-alive connection depends on timing, not the seed
    upstream r {
        server 127.0.0.1:$port{m1} max_fails=0;
        server 127.0.0.1:$port{m2} max_fails=0;
    }

    server {
        listen 127.0.0.1:$port{h1};
        listen 127.0.0.1:$port{h2} http2;

        tavus_api_key $KEY;
        tavus_connect_timeout 3s;
        tavus_send_timeout 3s;
        tavus_read_timeout 1500ms;
        tavus_buffer_size 1024;
        tavus_metrics_label \$fuzz_route;

@{[ route_locations() ]}
        location ~ ^/(?<fuzz_route>b)/(?<id>[^/]*)\$ {
            tavus_delete_replica \$id;
            tavus_pass http://k;
            tavus_buffer_size 4096;
        }

        location ~ ^/(?<fuzz_route>n)/(?<id>[^/]*)\$ {
            tavus_delete_replica \$id;
            tavus_pass http://127.0.0.1:$port{m1};
        }

        location ~ ^/(?<fuzz_route>r)/(?<id>[^/]*)\$ {
            tavus_delete_replica \$id;
            tavus_pass http://r;
            tavus_next_upstream error timeout invalid_response http_500
                                http_503 non_idempotent;
            tavus_next_upstream_tries 2;
        }

        location = /metrics {
            tavus_metrics;
        }

        location = /status {
            stub_status;
        }
    }
}
CONF

# the routes a and t are k with other settings

sub route_locations {
    my @routes = ([ k => '' ], [ a => 'tavus_ignore_client_abort on;' ],
                  [ t => 'tavus_read_timeout 700ms;' ]);
    my $text = '';
    for (@routes) {
        my ($r, $extra) = @$_;
        $text .= <<"LOC";
        location ~ ^/(?<fuzz_route>$r)/(?<id>[^/]*)\$ {
            tavus_delete_replica \$id;
            tavus_pass http://k;
            $extra
        }
LOC
    }
    return $text;
}

mkdir "$prefix/$_" for qw(client_body_temp proxy_temp fastcgi_temp
                          uwsgi_temp scgi_temp);

my $nginx_pid = fork() // die "fork: $!";
if ($nginx_pid == 0) {
    # a process group of its own: a run that dies takes its workers along
    setpgrp(0, 0);
    close $listen1;
    close $listen2;
    open STDIN, '<', '/dev/null';
    open STDOUT, '>>', "$prefix/nginx.stderr";
    open STDERR, '>&', \*STDOUT;
    $ENV{$_} = $NGINX_ENV{$_} for keys %NGINX_ENV;
    exec $NGINX, '-p', "$prefix/", '-c', "$prefix/nginx.conf", '-e',
         "$prefix/error.log" or POSIX::_exit(127);
}

$SIG{INT} = $SIG{TERM} = sub { die "fuzz-upstream: interrupted\n" };

# and if this process is killed outright: a watchdog stops nginx
{
    my $parent = $$;
    my $wd = fork() // die "fork: $!";
    if ($wd == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        Time::HiRes::sleep(0.2) while getppid() == $parent;
        kill 'KILL', -$nginx_pid;
        POSIX::_exit(0);
    }
}

END {
    if ($nginx_pid && kill 0, $nginx_pid) {
        kill 'KILL', -$nginx_pid;
        kill 'KILL', $nginx_pid;
    }
}

wait_listen($port{h1});
wait_listen($port{h2});

my @WORKERS;
for (1 .. 500) {
    @WORKERS = worker_pids();
    last if @WORKERS == $workers;
    Time::HiRes::sleep(0.01);
}
die "fuzz-upstream: nginx runs " . scalar(@WORKERS) . " workers\n"
    unless @WORKERS == $workers;

# the sanitizers must really be there: a run without them proves less
if ($opt{asan} || ($NGINX =~ /asan/)) {
    my $maps = slurp("/proc/$WORKERS[0]/maps");
    die "fuzz-upstream: the ASan runtime is not in worker $WORKERS[0]\n"
        unless $maps =~ /libclang_rt\.asan/;
}

###############################################################################
# the event loop

my (%rd, %wr, @timers, $timer_seq);

sub watch_read {
    my ($fh, $cb) = @_;
    if ($cb) { $rd{ fileno $fh } = [ $fh, $cb ] } else { delete $rd{ fileno $fh } }
}

sub watch_write {
    my ($fh, $cb) = @_;
    if ($cb) { $wr{ fileno $fh } = [ $fh, $cb ] } else { delete $wr{ fileno $fh } }
}

sub after {
    my ($ms, $cb) = @_;
    my $t = [ Time::HiRes::time() + $ms / 1000, ++$timer_seq, $cb ];
    # sorted insert from the end: most timers are near
    my $i = @timers;
    $i-- while $i > 0 && ($timers[ $i - 1 ][0] > $t->[0]);
    splice @timers, $i, 0, $t;
    return $t;
}

sub forget {
    my ($fh) = @_;
    return unless $fh && defined fileno $fh;
    delete $rd{ fileno $fh };
    delete $wr{ fileno $fh };
}

sub run_loop {
    my ($done) = @_;

    until ($done->()) {
        my $now = Time::HiRes::time();

        while (@timers && $timers[0][0] <= $now) {
            my $t = shift @timers;
            $t->[2]->();
        }

        my $wait = @timers ? $timers[0][0] - Time::HiRes::time() : 0.05;
        $wait = 0 if $wait < 0;
        $wait = 0.05 if $wait > 0.05;

        my ($r, $w) = ('', '');
        vec($r, $_, 1) = 1 for keys %rd;
        vec($w, $_, 1) = 1 for keys %wr;

        my $n = select(my $ro = $r, my $wo = $w, undef, $wait);
        next if $n <= 0;

        for my $fd (keys %wr) {
            next unless vec($wo, $fd, 1) && $wr{$fd};
            $wr{$fd}[1]->();
        }
        for my $fd (keys %rd) {
            next unless vec($ro, $fd, 1) && $rd{$fd};
            $rd{$fd}[1]->();
        }
    }
}

###############################################################################
# results

my (%stat, @failures);
my $t0 = Time::HiRes::time();

sub fail {
    my ($c, $what) = @_;

    my $f = { case => $c, what => $what };
    push @failures, $f;
    $stat{failures}++;

    my $where = $c ? "case $c->{n} ($c->{id}, route $c->{route}, $c->{proto})"
                   : 'the run';
    print "FAIL: $where: $what\n";

    return unless $c && !$c->{reported}++;

    for my $i (0 .. $#{ $c->{plans} }) {
        my $p = $c->{plans}[$i];
        next if $i > 0 && $i >= ($c->{received} // 0);
        print "  answer ", $i + 1, " ($p->{kind}, end $p->{end}): \"",
              printable($p->{bytes}), "\"\n";
        print "  writes: ", join(' ', map { "+$_->[0]ms:" . length($_->[1]) }
                                 @{ $p->{parts} }), "\n";
    }
    print "  replay: perl scripts/chaos/fuzz-upstream.pl "
          . ($c->{file} ? "--replay $c->{file}"
                        : "--seed $c->{seed} --case $c->{n}") . "\n"
        unless $opt{quiet};

    File::Path::make_path($opt{save});
    my $file = "$opt{save}/seed$c->{seed}-case$c->{n}.json";
    my %saved = map { $_ => $c->{$_} }
                grep { exists $c->{$_} }
                qw(seed n id route proto group abort abort_ms body body_len
                   client_keep client_key hard plans);
    spew($file, case_to_json({ %saved, key => $KEY }, note => $what));
    print "  saved: $file\n" unless $opt{quiet};
}

###############################################################################
# the mock upstream

my $conn_seq = 0;
my %UP;           # upstream connections by id

for my $l ([ $listen1, 'm1' ], [ $listen2, 'm2' ]) {
    my ($fh, $name) = @$l;
    watch_read($fh, sub {
        while (my $s = $fh->accept) {
            $s->blocking(0);
            setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
            my $u = { id => ++$conn_seq, fh => $s, srv => $name, in => '',
                      served => 0, busy => 0, out => '' };
            $UP{ $u->{id} } = $u;
            $stat{upstream_connections}++;
            watch_read($s, sub { up_read($u) });
        }
    });
}

# a RST drops what the socket has not sent yet: what the plan wrote goes
# first (the send queue empty: nginx's kernel has it all)

my $SIOCOUTQ = 0x5411;
my $TCP_CORK = 3;

sub up_close {
    my ($u, $how) = @_;
    return if $u->{dead}++;
    $u->{busy} = 0;
    forget($u->{fh});
    if ($how && $how eq 'rst') {
        for (1 .. 200) {
            my $q = pack 'i', 0;
            ioctl($u->{fh}, $SIOCOUTQ, $q) or last;
            last if unpack('i', $q) == 0;
            Time::HiRes::sleep(0.0005);
        }
        setsockopt($u->{fh}, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    }
    close $u->{fh};
    delete $UP{ $u->{id} };
}

sub up_read {
    my ($u) = @_;

    my $n = sysread($u->{fh}, my $buf, 65536);
    if (!defined $n) {
        return if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
    }
    unless ($n) {
        # nginx closed it (or reset it)
        $stat{upstream_closed_by_nginx}++;
        up_close($u);
        return;
    }

    $u->{in} .= $buf;

    while ((my $end = index($u->{in}, "\r\n\r\n")) >= 0) {
        my $req = substr($u->{in}, 0, $end + 4, '');
        up_request($u, $req);
        return if $u->{dead};
    }
}

sub up_request {
    my ($u, $req) = @_;

    my ($id, $hard, $host, $key) = $req =~ m{\ADELETE /v2/replicas/([A-Za-z0-9_-]+)(\?hard=true)? HTTP/1\.1\r\nHost: ([^\r\n]+)\r\nx-api-key: ([^\r\n]+)\r\n\r\n\z};
    my $c = defined $id ? $CASE{$id} : undef;

    unless ($c) {
        fail(undef, 'an unexpected request upstream: "' . printable($req) . '"');
        return up_close($u);
    }

    $stat{upstream_requests}++;

    my $want_host = $c->{route} eq 'n' ? "127.0.0.1:$port{m1}"
                    : $c->{route} eq 'r' ? 'r' : 'k';
    fail($c, "the upstream request's Host is $host, not $want_host")
        unless $host eq $want_host;
    fail($c, 'the upstream request does not carry the key') unless $key eq $KEY;
    fail($c, 'a hard delete was asked for') if $hard;

    if ($u->{busy}) {
        fail($c, "a request on upstream connection $u->{id} before its"
                 . ' answer was complete');
    }

    if ($u->{served}) {
        $stat{upstream_reused}++;
        my $prev = $u->{last};
        fail($c, "upstream connection $u->{id} reused after case"
                 . " $prev->{n}'s answer, which was not exactly framed"
                 . " ($prev->{why})")
            unless $prev->{keepable};
    }

    if ($u->{closing}) {
        # a complete answer, then the close the plan wants: nginx took the
        # connection again before the FIN or RST came, as HTTP allows; the
        # close answers this request
        $c->{stale_tries}++;
        $stat{upstream_requests_on_closing}++;
        print "stale: case $c->{n} on connection $u->{id} after case"
              . " $u->{last}{n} ($u->{last}{why})\n" if $opt{verbose};
        return;
    }

    my $try = ++$c->{received};
    my $plan = $c->{plans}[ $try - 1 ] // $c->{plans}[-1];
    push @{ $c->{tries} }, { conn => $u->{id}, srv => $u->{srv} };

    # a client that goes away does so once the upstream has the delete:
    # at once, or after its delay (the answer waits longer, see gen_case)
    if (my $cb = delete $c->{abort_cb}) {
        after($c->{abort} eq 'after_delay' ? $c->{abort_ms} : 0, $cb);
    }

    # exactly framed is a property of the bytes; the end of the plan
    # (FIN, RST) comes after them, nginx cannot know of it
    my $v = classify(bytes => $plan->{bytes}, end => 'keep',
                     buffer => $TavusFuzz::ROUTE{ $c->{route} }{buffer},
                     key => $KEY);

    $u->{served}++;
    $u->{busy} = 1;
    $u->{last} = { n => $c->{n}, keepable => $v->{keepable},
                   why => $v->{why} };

    my @parts = @{ $plan->{parts} };
    my $step;
    $step = sub {
        return if $u->{dead};
        my $part = shift @parts;
        unless ($part) {
            # all written: a complete answer leaves the connection free
            # for the next request whatever comes after
            my $complete = $v->{why} =~ /^complete/;
            $u->{busy} = 0 if $complete || $plan->{end} ne 'hang';
            if ($plan->{end} eq 'fin' || $plan->{end} eq 'rst') {
                $u->{closing} = 1;
                after($plan->{end_delay}, sub {
                    up_close($u, $plan->{end}) unless $u->{dead};
                });
            }
            # keep: wait for the next request; hang: nothing more, nginx
            # gives up and closes
            return;
        }
        after($part->[0], sub {
            return if $u->{dead};
            # the last write of an answer the mock then closes: with the
            # FIN in the same segment (TCP_CORK until the close), so that
            # nginx sees the close with the answer's end
            setsockopt($u->{fh}, IPPROTO_TCP, $TCP_CORK, 1)
                if !@parts && $plan->{end} eq 'fin' && !$plan->{end_delay};
            up_write($u, $part->[1]);
            $step->();
        });
    };
    $step->();
}

sub up_write {
    my ($u, $data) = @_;
    return unless length $data;
    # answers are small: the socket's buffer takes them whole
    my $n = syswrite($u->{fh}, $data);
    if (!defined $n || $n < length $data) {
        # nginx is gone, or no room: it will see the connection close
        up_close($u) unless defined $n;
    }
}

###############################################################################
# the clients

my $client_seq = 0;
my $active = 0;
my $started_all = 0;
my @pending;                 # cases taken but not started

sub take_group {
    my $first = shift(@pending) // next_case() // return ();
    my @g = ($first);
    my $want = $first->{group};
    while (@g < $want) {
        my $c = shift(@pending) // next_case() // last;
        if ($c->{proto} ne $first->{proto}) {
            unshift @pending, $c;
            last;
        }
        push @g, $c;
    }
    return @g;
}

sub start_more {
    while ($active < $opt{concurrency}) {
        if ($opt{seconds} && Time::HiRes::time() - $t0 > $opt{seconds}) {
            $started_all = 1;
            return;
        }
        my @g = take_group();
        unless (@g) {
            $started_all = 1;
            return;
        }
        $g[0]{proto} eq 'h2' ? h2_start(@g) : h1_start(@g);
    }
}

sub client_socket {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(Proto => 'tcp', Blocking => 0)
        or die "socket: $!";
    my $addr = Socket::pack_sockaddr_in($port, Socket::inet_aton('127.0.0.1'));
    connect($s, $addr) or $! == EINPROGRESS or $! == EAGAIN
        or die "connect: $!";
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    return $s;
}

sub case_started {
    my ($c) = @_;
    $c->{deadline} = Time::HiRes::time() + $CLIENT_TIMEOUT;
    $stat{cases}++;
    # what the seed made: the same in every run of it
    $stat{"route_$c->{route}"}++;
    $stat{"proto_$c->{proto}"}++;
    $stat{"abort_$c->{abort}"}++;
    $stat{"body_$c->{body}"}++;
    for my $p (@{ $c->{plans} }[ 0 .. ($c->{route} eq 'r' ? 1 : 0) ]) {
        $stat{"kind_$p->{kind}"}++;
        $stat{"end_$p->{end}"}++;
    }
}

# the client got an answer: check it

sub case_answered {
    my ($c, $status, $headers, $body) = @_;

    return if $c->{answered}++;
    $stat{answers_checked}++;
    $c->{took} = Time::HiRes::time() - $c->{deadline} + $CLIENT_TIMEOUT;

    my $tries = $c->{received} // 0;
    my $route = $TavusFuzz::ROUTE{ $c->{route} };

    $c->{client} = { status => $status, body => $body,
                     request_id => (eval { JSON::PP->new->decode($body) }
                                    // {})->{request_id} };

    my @wrong;
    my $chain = $tries ? chain_outcomes($c, $tries, key => $KEY) : undef;
    $chain = [ TavusFuzz::outcome('upstream_error') ]
        if !$tries && $c->{stale_tries};

    if ($chain) {
        @wrong = check_answer(status => $status, headers => $headers,
                              body => $body, id => $c->{id},
                              outcomes => $chain, key => $KEY);
    } else {
        @wrong = ($tries ? "$tries tries upstream, which the answers before"
                           . ' the last would not have caused'
                         : 'no request reached the upstream');
    }

    if (@wrong && $route->{keepalive} && $status == 502
        && !check_answer(status => $status, headers => $headers,
                         body => $body, id => $c->{id}, key => $KEY,
                         outcomes => [ TavusFuzz::outcome('upstream_error') ])
        && !$c->{stale_tries})
    {
        # perhaps a kept-alive connection that the mock had closed, as its
        # plan said, before nginx saw it: the access log tells (a try the
        # mock never saw)
        $c->{maybe_stale} = join('; ', @wrong);
        return;
    }

    if (@wrong && $c->{stale_tries} && $status == 502
        && !check_answer(status => $status, headers => $headers,
                         body => $body, id => $c->{id}, key => $KEY,
                         outcomes => [ TavusFuzz::outcome('upstream_error') ]))
    {
        # the delete went on a kept-alive connection that the mock then
        # closed, as its plan said, without an answer: the error is right
        $stat{stale_keepalive}++;
        $c->{stale} = 1;
        return;
    }

    $stat{"outcome_" . ((eval { JSON::PP->new->decode($body) } // {})->{code}
                        // 'deleted')}++;

    if (@wrong) {
        fail($c, join('; ', @wrong) . " (got $status: " . printable($body)
                 . ')');
    } else {
        print "ok $c->{n} $c->{route} $c->{proto} $status\n"
            if $opt{verbose};
        # a long run keeps what the checks after it need, not the bytes
        $c->{plans} = [] unless $opt{keep} || @{ $opt{replay} };
    }
}

sub case_gone {
    my ($c, $why) = @_;
    return if $c->{answered}++;
    if ($c->{abort} ne 'none') {
        $stat{aborted}++;
        return;
    }
    fail($c, $why);
}

# HTTP/1.1

sub h1_request {
    my ($c, $last) = @_;

    my $path = "/$c->{route}/$c->{id}";
    my $h = "DELETE $path HTTP/1.1\r\nHost: fuzz\r\nX-Client: c$c->{n}\r\n";
    $h .= "X-Api-Key: client-supplied-key\r\n" if $c->{client_key};
    $h .= "Connection: close\r\n" if $last && !$c->{client_keep};

    my $body = 'b' x $c->{body_len};
    my $kind = $c->{body};
    my ($head, $rest) = ($h, '');

    if ($kind eq 'length' || $kind eq 'unsent') {
        $head .= "Content-Length: $c->{body_len}\r\n";
        $rest = $kind eq 'length' ? $body : '';
    } elsif ($kind eq 'large') {
        $head .= "Content-Length: 20000\r\n";
        $rest = 'L' x 20000;
    } elsif ($kind eq 'chunked') {
        $head .= "Transfer-Encoding: chunked\r\n";
        $rest = sprintf("%x\r\n%s\r\n0\r\n\r\n", length $body, $body);
    } elsif ($kind eq 'expect') {
        $head .= "Content-Length: $c->{body_len}\r\nExpect: 100-continue\r\n";
        $rest = $body;
    }

    return ("$head\r\n", $rest);
}

sub h1_start {
    my (@group) = @_;

    my $s = client_socket($port{h1});
    my $cl = { id => ++$client_seq, fh => $s, in => '', out => '',
               wait => [], closed => 0 };
    $active++;

    # a client of several pipelined deletes does not go away: which of
    # their answers came first would depend on timing
    if (@group > 1) {
        $_->{abort} = 'none' for @group;
    }

    for my $i (0 .. $#group) {
        my $c = $group[$i];
        case_started($c);
        if ($i < $#group) {
            # only the last aborts, or leaves its body unsent
            $c->{abort} = 'none';
            $c->{body} = 'none' if $c->{body} eq 'unsent';
        }
        my ($head, $rest) = h1_request($c, $i == $#group);
        if ($c->{body} eq 'expect' && @group == 1) {
            $c->{expect_rest} = $rest;
            $rest = '';
        }
        $cl->{out} .= $head . $rest;
        push @{ $cl->{wait} }, $c;
    }

    my $last = $group[-1];
    $cl->{keep} = $last->{client_keep} && $last->{body} ne 'unsent';

    if ($last->{abort} eq 'partial_request') {
        # a part of the request line and headers: never a whole request
        my $head = index($cl->{out}, "\r\n\r\n");
        $cl->{out} = substr($cl->{out}, 0, int($head / 2));
    }

    # the answers, and the check of each

    watch_read($s, sub { h1_read($cl) });
    watch_write($s, sub { h1_flush($cl) });

    if ($last->{abort} ne 'none') {
        $cl->{abort_timer} = 1;
        my $abort = sub {
            return if $cl->{closed};
            # flushed first: the request is whole before the close
            h1_flush($cl);
            h1_close($cl, 'aborted');
        };
        if ($last->{abort} eq 'partial_request') {
            after(5, $abort);
        } else {
            $last->{abort_cb} = $abort;
        }
    }

    if ($last->{body} eq 'expect' && defined $last->{expect_rest}) {
        # without a 100 Continue in 50 ms, the body goes anyway
        after(50, sub {
            return if $cl->{closed} || !defined $last->{expect_rest};
            $cl->{out} .= delete $last->{expect_rest};
            h1_flush($cl);
        });
    }
}

sub h1_flush {
    my ($cl) = @_;
    return if $cl->{closed};
    flush_out($cl, \&h1_close, \&h1_flush);
}

# what a client connection has to send, written; a write error closes it
# with CLOSE; while something is left, AGAIN runs when it can be written

sub flush_out {
    my ($cl, $close, $again) = @_;
    if (length $cl->{out}) {
        my $n = syswrite($cl->{fh}, $cl->{out});
        if (defined $n) {
            substr($cl->{out}, 0, $n, '');
        } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR
                 && $! != EINPROGRESS && $! != Errno::ENOTCONN())
        {
            return $close->($cl, "write: $!");
        }
    }
    watch_write($cl->{fh}, length $cl->{out} ? sub { $again->($cl) } : undef);
}

# a client connection closed, once: false when it already was
sub close_client {
    my ($cl) = @_;
    return 0 if $cl->{closed}++;
    forget($cl->{fh});
    close $cl->{fh};
    $active--;
    return 1;
}

sub h1_close {
    my ($cl, $why) = @_;
    return unless close_client($cl);
    for my $c (@{ $cl->{wait} }) {
        # the cases before the one that aborted go with the connection
        $c->{abort} = 'with_group' if $why eq 'aborted';
        case_gone($c, "the client connection ended ($why) before an answer");
    }
    $cl->{wait} = [];
    start_more();
}

# what nginx sent on a client connection, or undef: nothing yet, or the
# connection is gone and $close was called
sub read_some {
    my ($cl, $close) = @_;

    my $n = sysread($cl->{fh}, my $buf, 65536);
    if (!defined $n) {
        return undef if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
        $close->($cl, "read: $!");
        return undef;
    }
    if (!$n) {
        $close->($cl, 'closed by nginx');
        return undef;
    }
    return $buf;
}

sub h1_read {
    my ($cl) = @_;

    my $buf = read_some($cl, \&h1_close);
    return unless defined $buf;

    $cl->{in} .= $buf;

    while (@{ $cl->{wait} }) {
        my $end = index($cl->{in}, "\r\n\r\n");
        last if $end < 0;
        my $head = substr($cl->{in}, 0, $end);
        my ($status) = $head =~ m{\AHTTP/1\.1 (\d\d\d)};
        my $c = $cl->{wait}[0];

        unless ($status) {
            fail($c, 'not an HTTP/1.1 answer: ' . printable(substr($head, 0, 80)));
            return h1_close($cl, 'garbage');
        }

        my %h;
        for my $line (split /\r\n/, $head) {
            my ($name, $v) = $line =~ /\A([^:]+):\s*(.*?)\s*\z/ or next;
            push @{ $h{ lc $name } }, $v;
        }

        if ($status == 100) {
            substr($cl->{in}, 0, $end + 4, '');
            if (defined $c->{expect_rest}) {
                $cl->{out} .= delete $c->{expect_rest};
                h1_flush($cl);
            }
            next;
        }

        my $len = $h{'content-length'} ? $h{'content-length'}[0] : undef;
        unless (defined $len && $len =~ /\A\d+\z/) {
            fail($c, 'an answer without Content-Length: ' . printable($head));
            return h1_close($cl, 'no length');
        }
        last if length($cl->{in}) < $end + 4 + $len;

        my $body = substr($cl->{in}, $end + 4, $len);
        substr($cl->{in}, 0, $end + 4 + $len, '');
        shift @{ $cl->{wait} };

        case_answered($c, $status, \%h, $body);
    }

    unless (@{ $cl->{wait} }) {
        # the connection carries on with the next case when it asked to
        # keep it and that case is a single HTTP/1.1 one
        my @g = $cl->{keep} && !$cl->{abort_timer} ? take_group() : ();
        if (@g == 1 && $g[0]{proto} eq 'h1' && $g[0]{abort} eq 'none') {
            $cl->{keep} = $g[0]{client_keep} && $g[0]{body} ne 'unsent';
            h1_continue($cl, $g[0]);
            return;
        }
        unshift @pending, @g;
        h1_close($cl, 'done');
    }
}

sub h1_continue {
    my ($cl, $c) = @_;
    case_started($c);
    my ($head, $rest) = h1_request($c, 1);
    $rest = '' if $c->{body} eq 'expect' && ($c->{expect_rest} = $rest);
    $cl->{out} .= $head . $rest;
    push @{ $cl->{wait} }, $c;
    h1_flush($cl);
    if (defined $c->{expect_rest}) {
        after(50, sub {
            return if $cl->{closed} || !defined $c->{expect_rest};
            $cl->{out} .= delete $c->{expect_rest};
            h1_flush($cl);
        });
    }
}

# HTTP/2: the cases of a group on one connection, as concurrent streams

sub h2_start {
    my (@group) = @_;

    my $s = client_socket($port{h2});
    my $h2 = TavusH2->new;
    my $cl = { id => ++$client_seq, fh => $s, out => $h2->preface, h2 => $h2,
               streams => {}, closed => 0 };
    $active++;

    for my $c (@group) {
        case_started($c);
        my @h = ('x-client' => "c$c->{n}");
        push @h, 'x-api-key' => 'client-supplied-key' if $c->{client_key};
        my $body = $c->{body} eq 'none' ? undef
                   : $c->{body} eq 'large' ? 'L' x 20000
                   : 'b' x $c->{body_len};
        push @h, 'content-length' => length $body
            if defined $body && $c->{body} ne 'chunked';
        my $unsent = $c->{body} eq 'unsent';
        my ($sid, $bytes) = $h2->request(method => 'DELETE',
                                         path => "/$c->{route}/$c->{id}",
                                         authority => 'fuzz', headers => \@h,
                                         body => $unsent ? undef : $body,
                                         end => $unsent ? 0 : 1);
        $cl->{out} .= $bytes;
        $cl->{streams}{$sid} = { c => $c, headers => undef, body => '' };

        if ($c->{abort} ne 'none') {
            # no half request in HTTP/2: a reset once the upstream has it
            $c->{abort} = 'after_send' if $c->{abort} eq 'partial_request';
            $c->{abort_cb} = sub {
                return if $cl->{closed} || !$cl->{streams}{$sid};
                if ($c->{abort_ms} % 3 == 0 && @group == 1) {
                    # the whole connection goes, and every stream on it
                    $_->{c}{abort} = 'with_connection'
                        for values %{ $cl->{streams} };
                    return h2_close($cl, 'aborted');
                }
                my $st = delete $cl->{streams}{$sid};
                $cl->{out} .= $h2->rst($sid, 8);
                h2_flush($cl);
                case_gone($st->{c}, 'reset');
                h2_maybe_done($cl);
            };
        }
    }

    watch_read($s, sub { h2_read($cl) });
    watch_write($s, sub { h2_flush($cl) });
}

sub h2_flush {
    my ($cl) = @_;
    return if $cl->{closed};
    $cl->{out} .= $cl->{h2}->take_output;
    flush_out($cl, \&h2_close, \&h2_flush);
}

sub h2_close {
    my ($cl, $why) = @_;
    return unless close_client($cl);
    for my $sid (sort keys %{ $cl->{streams} }) {
        case_gone($cl->{streams}{$sid}{c}, "the HTTP/2 connection ended ($why)"
                                          . ' before an answer');
    }
    $cl->{streams} = {};
    start_more();
}

sub h2_maybe_done {
    my ($cl) = @_;
    return if %{ $cl->{streams} } || $cl->{closed};
    $cl->{out} .= $cl->{h2}->goaway;
    h2_flush($cl);
    h2_close($cl, 'done');
}

sub h2_read {
    my ($cl) = @_;

    my $buf = read_some($cl, \&h2_close);
    return unless defined $buf;

    for my $e ($cl->{h2}->feed($buf)) {
        my ($type, $sid) = @$e;
        if ($type eq 'error') {
            fail(undef, "HTTP/2: $sid");
            return h2_close($cl, 'protocol error');
        }
        if ($type eq 'goaway') {
            next;
        }
        my $st = $cl->{streams}{$sid} or next;
        if ($type eq 'rst') {
            delete $cl->{streams}{$sid};
            case_gone($st->{c}, "the stream was reset by nginx ($e->[2])");
            next;
        }
        if ($type eq 'headers') {
            if ($st->{headers}) {
                $st->{trailers} = $e->[2];
            } else {
                my $status = ($e->[2]{':status'} // [0])->[0];
                next if $status =~ /\A1\d\d\z/;
                $st->{headers} = $e->[2];
            }
        } elsif ($type eq 'data') {
            $st->{body} .= $e->[2];
        }
        my $end = $e->[3];
        if ($end) {
            delete $cl->{streams}{$sid};
            my $h = $st->{headers} // {};
            my $status = ($h->{':status'} // [0])->[0];
            my %hh = map { $_ => $h->{$_} } grep { !/\A:/ } keys %$h;
            fail($st->{c}, 'HTTP/2 trailers in the answer') if $st->{trailers};
            case_answered($st->{c}, $status, \%hh, $st->{body});
        }
    }

    h2_flush($cl);
    h2_maybe_done($cl);
}

###############################################################################
# the run

my $last_report = $t0;

start_more();

run_loop(sub {
    my $now = Time::HiRes::time();

    # per-case deadlines: no answer in time is a failure
    if ($now - ($stat{last_deadline_check} // 0) > 1) {
        $stat{last_deadline_check} = $now;
        for my $c (values %CASE) {
            next if $c->{answered} || !$c->{deadline} || $c->{deadline} > $now;
            $c->{answered} = 1;
            fail($c, "no answer in ${CLIENT_TIMEOUT}s");
        }
        if (!$opt{quiet} && $now - $last_report > 10) {
            $last_report = $now;
            printf "fuzz-upstream: %.0fs, %d cases, %d failures\n",
                   $now - $t0, $stat{cases} // 0, $stat{failures} // 0;
        }
        # a worker that died and was replaced
        my @w = worker_pids();
        if (join(',', sort @w) ne join(',', sort @WORKERS)) {
            fail(undef, "the workers changed: @WORKERS -> @w");
            @WORKERS = @w;
        }
    }

    return $started_all && $active == 0;
});

# the mock's last writes and closes: until its connections are idle

my $settle = Time::HiRes::time() + 5;
run_loop(sub { Time::HiRes::time() > $settle
               || !@timers && !grep { $_->{busy} && $_->{last} } values %UP });

# and until nginx has finished every request (a client that went away
# leaves requests that end later: an upstream that times out)

my $quiet = Time::HiRes::time() + 15;
while (Time::HiRes::time() < $quiet) {
    my $st = http_get($port{h1}, '/status') // '';
    last if $st =~ /^Active connections: 1\s/;
    run_loop(sub { 1 });
    Time::HiRes::sleep(0.05);
}

my $elapsed = Time::HiRes::time() - $t0;

# the metrics, before nginx stops

my $metrics = http_get($port{h1}, '/metrics');

kill 'QUIT', $nginx_pid;
my $exit = reap($nginx_pid, 30);
$nginx_pid = undef;

###############################################################################
# after the run

# the access log against the clients

my (%logged, $log_lines);
for my $line (split /\n/, slurp("$prefix/access.log")) {
    my ($fields, $uaddr, $ustatus) = split /\|/, $line;
    my ($id, $status, $outcome, $rid, $proto) = split / /, $fields;
    next unless $id && $id ne '-';
    $log_lines++;
    $logged{$id} = [ $status, $outcome, $rid, $proto, $uaddr, $ustatus ];
    $stat{logged_outcomes}{$outcome}++ if $outcome ne '-';
}

for my $c (sort { $a->{n} <=> $b->{n} } values %CASE) {
    next unless $c->{client} && !$c->{stale};
    my $l = $logged{ $c->{id} };
    if ($c->{maybe_stale}) {
        my $tries = $l ? scalar(split /, /, $l->[4]) : 0;
        my $seen = ($c->{received} // 0) + ($c->{stale_tries} // 0);
        if ($l && $l->[4] =~ /(?:^|, )[a-z]+$/ && $tries == $seen + 1) {
            # every server tried, and one more try: nginx gives a try
            # back after an error on a kept-alive connection (outside
            # tavus_next_upstream_tries); it found no live server, and
            # "the last try decides" (docs/responses.md)
            print "no live server: case $c->{n}: nginx tried $l->[4]"
                  . " ($l->[5]), the mock saw $seen\n" if $opt{verbose};
            $stat{no_live_after_keepalive_error}++;
            $c->{stale} = 1;
            next;
        }
        if ($l && $tries > $seen) {
            print "stale: case $c->{n} route $c->{route}: nginx tried"
                  . " $l->[4] ($l->[5]), the mock saw $seen\n"
                if $opt{verbose};
            $stat{stale_keepalive}++;
            $c->{stale} = 1;
            next;
        }
        fail($c, delete($c->{maybe_stale}) . ' (the access log shows '
                 . ($l ? "$tries tries: $l->[4] $l->[5]" : 'nothing')
                 . ", the mock saw $seen)");
        next;
    }
    unless ($l) {
        fail($c, 'no access log line for an answered delete');
        next;
    }
    my ($j) = eval { JSON::PP->new->decode($c->{client}{body}) };
    my $code = $j->{code} // 'deleted';
    fail($c, "the access log says $l->[0] $l->[1], the client got"
             . " $c->{client}{status} $code")
        unless $l->[0] == $c->{client}{status} && $l->[1] eq $code;
    fail($c, "the access log's request_id $l->[2] is not the answer's")
        unless $l->[2] eq ($c->{client}{request_id} // '');
}

# an aborted delete on the route that reads the answer anyway: the log
# has its outcome

for my $c (values %CASE) {
    next unless $c->{route} eq 'a' && $c->{abort} ne 'none' && !$c->{client}
                && $c->{received};
    my $l = $logged{ $c->{id} } or next;
    my $chain = chain_outcomes($c, $c->{received}, key => $KEY) or next;
    $stat{aborted_logged}++;
    fail($c, "an aborted delete with tavus_ignore_client_abort logged"
             . " $l->[1], not one of " . join(', ', map { $_->{code} } @$chain))
        unless grep { $_->{code} eq $l->[1] } @$chain;
}

# each case's end, for comparing two runs (--dump FILE)

if ($opt{dump}) {
    open my $fh, '>', $opt{dump} or die "$opt{dump}: $!";
    for my $c (sort { $a->{n} <=> $b->{n} } values %CASE) {
        printf $fh "%d %s %s %d %s\n", $c->{n}, $c->{route},
               $c->{client} ? $c->{client}{status} : 'none',
               $c->{received} // 0,
               $c->{stale} ? 'stale' : $c->{abort};
    }
    close $fh;
}

# the metrics against the access log

if ($metrics) {
    my ($m, @errors) = TavusProm::parse($metrics);
    fail(undef, 'the metrics do not parse: ' . join('; ', @errors)) if @errors;
    my %count;
    for my $s (@{ $m->{samples} }) {
        next unless $s->{name} eq 'tavus_requests_total';
        $count{ $s->{labels}{outcome} } += $s->{value};
    }
    for my $o (sort keys %{ { %count, %{ $stat{logged_outcomes} // {} } } }) {
        my $want = $stat{logged_outcomes}{$o} // 0;
        fail(undef, "the metrics count $count{$o} $o, the access log $want")
            unless ($count{$o} // 0) == $want;
    }
} else {
    fail(undef, 'no metrics page');
}

# the error log: levels, worker exits, the key

my (%levels, %messages, $key_lines);
open my $log, '<', "$prefix/error.log" or die "error.log: $!";
while (my $line = <$log>) {
    if (index($line, $KEY) >= 0) {
        $key_lines++;
        fail(undef, 'the key in the error log: ' . printable(substr($line, 0, 200)))
            if $key_lines <= 3;
    }
    my ($level) = $line =~ /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[(\w+)\]/ or next;
    $levels{$level}++;
    if ($level =~ /^(?:alert|crit|emerg)$/) {
        fail(undef, "[$level] in the error log: " . printable(substr($line, 0, 300)));
    }
    if ($level eq 'error' || $level eq 'warn') {
        my ($msg) = $line =~ /\] \d+#\d+: \*\d+ (.*?)(?:,|$)/;
        $msg //= '';
        $msg =~ s/\d+/N/g;
        $msg =~ s/"[^"]*"/"..."/g;
        $messages{"$level: $msg"}++;
    }
}
close $log;

fail(undef, 'the key in the access log')
    if index(slurp("$prefix/access.log"), $KEY) >= 0;

fail(undef, "nginx exited with status " . ($exit // 'none') . ' after QUIT')
    unless defined $exit && $exit == 0;

# sanitizer reports

my @reports = $ASAN_LOGS ? glob("$ASAN_LOGS/*") : ();
for my $r (@reports) {
    my $text = slurp($r);
    my ($first) = $text =~ /^(.*(?:ERROR: AddressSanitizer|runtime error:).*)$/m;
    fail(undef, "sanitizer report $r: " . ($first // 'report'));
    print "  $_\n" for (grep { /^\s+#\d+ / } split /\n/, $text)[0 .. 15];
}

# a test that cannot fail is a defect: the run must have exercised
# what it checks

unless (@{ $opt{replay} } || @{ $opt{case} }) {
    fail(undef, 'no upstream connection was ever reused')
        unless $stat{upstream_reused};
    fail(undef, 'no HTTP/2 exchange') unless $stat{proto_h2};
    fail(undef, 'no deletion succeeded') unless $stat{outcome_deleted};
}

###############################################################################
# the report

my $n = $stat{cases} // 0;
printf "fuzz-upstream: seed %d, %d cases in %.1fs (%.0f/s), %d workers,"
       . " module %s%s\n", $SEED, $n, $elapsed, $n / ($elapsed || 1), $workers,
       $MODULE =~ s{^\Q$REPO\E/}{}r, $opt{asan} ? ' with ASan and UBSan' : '';

sub line {
    my ($title, $prefix) = @_;
    my @k = sort grep { /^\Q$prefix\E/ } keys %stat;
    printf "fuzz-upstream: %-13s %s\n", $title,
           join(', ', map { (s/^\Q$prefix\E//r) . " $stat{$_}" } @k);
}

print "fuzz-upstream: made by the seed (first answer, and the second of"
      . " the retry route):\n";
line('  routes', 'route_');
line('  clients', 'proto_');
line('  aborts', 'abort_');
line('  bodies', 'body_');
line('  answers', 'kind_');
line('  ends', 'end_');
print "fuzz-upstream: seen:\n";
line('  outcomes', 'outcome_');
printf "fuzz-upstream:   checks      %d client answers, %d upstream requests,"
       . " %d access log lines, the metrics\n",
       $stat{answers_checked} // 0, $stat{upstream_requests} // 0,
       $log_lines // 0;
printf "fuzz-upstream:   aborted     %d by the client (%d of them logged with"
       . " tavus_ignore_client_abort)\n",
       $stat{aborted} // 0, $stat{aborted_logged} // 0;

# what depends on timing as well as on the seed
printf "fuzz-upstream:   timing      %d upstream connections, %d reused, %d"
       . " closed by nginx; %d stale kept-alive connections%s; error log:"
       . " %s\n",
       $stat{upstream_connections} // 0, $stat{upstream_reused} // 0,
       $stat{upstream_closed_by_nginx} // 0, $stat{stale_keepalive} // 0,
       $stat{no_live_after_keepalive_error}
       ? "; $stat{no_live_after_keepalive_error} retried deletes ended with"
         . ' no live server after an error on a kept-alive connection' : '',
       join(', ', map { "$_ $levels{$_}" } sort keys %levels);
if ($opt{verbose}) {
    printf "fuzz-upstream:   %6d %s\n", $messages{$_}, $_
        for sort { $messages{$b} <=> $messages{$a} } keys %messages;
}
printf "fuzz-upstream:   sanitizer   %s\n",
       $ASAN_LOGS ? scalar(@reports) . ' reports' : 'not used';

# cases that failed, and failures of the run as a whole
my %failed_case = map { $_->{case}{n} => 1 } grep { $_->{case} } @failures;
my $failed = keys(%failed_case) + grep { !$_->{case} } @failures;
printf "fuzz-upstream: %d passed, %d failed\n", $n - keys %failed_case,
       $failed;
print $failed ? "fuzz-upstream: FAIL\n" : "fuzz-upstream: PASS\n";

exit($failed ? 1 : 0);

###############################################################################

sub worker_pids {
    return () unless $nginx_pid;
    my @pids;
    opendir my $dh, '/proc' or return ();
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my $stat = slurp("/proc/$pid/stat") or next;
        my ($ppid) = $stat =~ /\)\s+\S+\s+(\d+)/ or next;
        push @pids, $pid if $ppid == $nginx_pid;
    }
    closedir $dh;
    return @pids;
}

sub wait_listen {
    my ($p) = @_;
    my $deadline = Time::HiRes::time() + 30;
    while (Time::HiRes::time() < $deadline) {
        die "fuzz-upstream: nginx exited:\n" . slurp("$prefix/error.log")
            . slurp("$prefix/nginx.stderr")
            if waitpid($nginx_pid, POSIX::WNOHANG()) == $nginx_pid;
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p,
                                      Proto => 'tcp');
        if ($s) { close $s; return }
        Time::HiRes::sleep(0.02);
    }
    die "fuzz-upstream: nginx does not listen on $p\n"
        . slurp("$prefix/error.log");
}

sub reap {
    my ($pid, $timeout) = @_;
    my $deadline = Time::HiRes::time() + $timeout;
    while (Time::HiRes::time() < $deadline) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        return $? if $r == $pid;
        return 0 if $r == -1;
        Time::HiRes::sleep(0.02);
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    return undef;
}

sub http_get {
    my ($p, $path) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p,
                                  Proto => 'tcp', Timeout => 5) or return;
    print $s "GET $path HTTP/1.0\r\n\r\n";
    local $/;
    my $r = <$s> // '';
    return $r =~ /\A\S+ 200 .*?\r\n\r\n(.*)\z/s ? $1 : undef;
}

sub slurp { TavusProc::slurp(@_) }
sub spew { TavusProc::spew(@_) }
