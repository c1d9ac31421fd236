#!/usr/bin/perl

# The benchmark (bench/README.md): ngx_tavus_module against what an operator
# would write instead, side by side in one run on this machine.
#
#   (a) module   ngx_tavus_module                      bench/conf/module.conf
#   (b) recipe   plain proxy_pass, no translation      bench/conf/recipe.conf
#   (c) njs      js_content + r.subrequest             bench/conf/njs.conf
#   (d) lua      content_by_lua + ngx.location.capture bench/conf/lua.conf
#   (e) return   nginx's return 200, no upstream       bench/conf/return.conf
#
# One mock Tavus API (bench/conf/mock.conf, nginx, keepalive) serves them
# all; each gateway is its own nginx with one worker and an upstream{}
# group with keepalive to the mock.  Every server listens on 127.0.0.1.
#
# Over TLS (unless BENCH_TLS=0), (a) and (b) run twice more, with
# bench/conf/module-tls.conf and recipe-tls.conf: to the mock's TLS servers
# (bench/conf/mock-tls.conf, a certificate from a test CA made now with
# openssl), the certificate verified, TLSv1.2 and TLSv1.3 offered by both:
#   TLS, keepalive       the same group with keepalive, over https://
#   TLS, new connection  a group without keepalive, and the mock closes
#                        each connection: one handshake a request, each
#                        resuming the session of the one before
#
#  1. checks: each gateway must answer correctly (the translated JSON for
#     an upstream 200 and 400; the raw answer for the recipe), and the
#     mock must see the upstream requests and connections it should: N
#     requests on kept connections, or N new connections each resuming
#     its TLS session (the mock's stub_status and tls.log); one that
#     does not is not timed, and the run fails
#  2. wrk: warm-up, then interleaved rounds a b c d e a b ...: requests
#     per second and p99 latency; the worker's RSS after the warm-up and
#     after the last round
#  3. callgrind: each gateway alone under valgrind --tool=callgrind
#     (master_process off), twice on one keepalive connection: the
#     baseline run sends W = BENCH_CG_WARMUP requests, the measured run
#     W + N (N = BENCH_REQUESTS); instructions per request =
#     (Ir(W + N) - Ir(W)) / N.  Startup and shutdown cancel out, and so
#     does every one-time cost of the first requests (OpenSSL's DRBG set
#     up by the first $request_id, the first upstream connection and its
#     full TLS handshake, LuaJIT traces); W = 0 is a plain zero-request
#     baseline.  The mock must have seen the N requests as in 1.
#  4. the table, ratios to (b) over the same transport, and the targets
#     for (a) over plain HTTP (docs/decisions.md, "Performance")
#
# Environment (defaults in brackets):
#   BENCH_ROUNDS [3]        wrk rounds per gateway
#   BENCH_DURATION [5]      seconds per wrk round
#   BENCH_WARMUP [2]        seconds of wrk warm-up per gateway
#   BENCH_SOAK [0]          extra seconds of load per gateway after the
#                           rounds, before the final RSS (a longer run)
#   BENCH_CONNECTIONS [32]  wrk connections
#   BENCH_THREADS [2]       wrk threads
#   BENCH_REQUESTS [2000]   requests counted per callgrind run
#   BENCH_CG_WARMUP [100]   requests in the callgrind baseline run
#   BENCH_PIN [1]           1 (with 2+ CPUs): gateway workers on CPU 1,
#                           the mock and wrk on CPU 0
#   BENCH_ONLY              e.g. "a,b": a subset ((b) is always run)
#   BENCH_TLS [1]           0: plain HTTP only; only: the TLS runs only
#   BENCH_TLS_REQUESTS [500]  N of the callgrind runs with a new TLS
#                           connection a request (millions of
#                           instructions each, so fewer)
#   BENCH_NO_WRK, BENCH_NO_CALLGRIND   1: skip that part
#   BENCH_KEEP [0]          1: keep the work directory (configs, logs,
#                           callgrind.out.* for callgrind_annotate)
#   BENCH_STRICT [0]        1: exit 1 when (a) misses a target
#   TAVUS_MODULE            the module [build/ngx_http_tavus_module.so]
#   TAVUS_NGINX             nginx [/usr/sbin/nginx]
#
# Exit status: 0 done, 1 a gateway answered wrongly or a step failed
# (or, with BENCH_STRICT=1, a target missed).

use strict;
use warnings;

use Cwd ();
use File::Basename ();
use File::Temp ();
use IO::Socket::INET ();
use IO::Select ();
use JSON::PP ();
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);

use lib File::Basename::dirname(Cwd::abs_path(__FILE__)) . '/../t/lib';
use TavusProc ();
use TavusTLS ();

$| = 1;

my $BENCH = Cwd::abs_path(File::Basename::dirname(__FILE__));
my $TOP = File::Basename::dirname($BENCH);

sub knob {
    my ($name, $default) = @_;
    my $v = $ENV{$name};
    return $default if !defined $v || $v eq '';
    die "bench: $name must be a number, not \"$v\"\n"
        if $default =~ /^\d+$/ && $v !~ /^\d+$/;
    return $v;
}

my $ROUNDS = knob('BENCH_ROUNDS', 3);
my $DURATION = knob('BENCH_DURATION', 5);
my $WARMUP = knob('BENCH_WARMUP', 2);
my $SOAK = knob('BENCH_SOAK', 0);
my $CONNS = knob('BENCH_CONNECTIONS', 32);
my $THREADS = knob('BENCH_THREADS', 2);
my $REQUESTS = knob('BENCH_REQUESTS', 2000);
my $TLS_REQUESTS = knob('BENCH_TLS_REQUESTS', 500);
my $CG_WARMUP = knob('BENCH_CG_WARMUP', 100);
my $PIN = knob('BENCH_PIN', 1);
my $KEEP = knob('BENCH_KEEP', 0);
my $STRICT = knob('BENCH_STRICT', 0);
my $NO_WRK = knob('BENCH_NO_WRK', 0);
my $NO_CG = knob('BENCH_NO_CALLGRIND', 0);
my $TLS = $ENV{BENCH_TLS} // '';
$TLS = 1 if $TLS eq '';
my $NGINX = knob('TAVUS_NGINX', '/usr/sbin/nginx');
my $MODULE = knob('TAVUS_MODULE', "$TOP/build/ngx_http_tavus_module.so");
my $MODDIR = '/usr/lib/nginx/modules';

die "bench: BENCH_ROUNDS, BENCH_DURATION, BENCH_REQUESTS, "
    . "BENCH_TLS_REQUESTS and BENCH_THREADS must be at least 1\n"
    if !$ROUNDS || !$DURATION || !$REQUESTS || !$THREADS || !$TLS_REQUESTS;
die "bench: BENCH_TLS is 0, 1 or only, not \"$TLS\"\n"
    unless $TLS =~ /^(?:0|1|only)$/;
die "bench: BENCH_CONNECTIONS must be at least BENCH_THREADS\n"
    if $CONNS < $THREADS;

my $OK_ID = 'rf3073f2dcc1';
my $BAD_ID = 'not-a-replica';

my @GATEWAYS = (
    { id => 'a', name => 'module', title => 'ngx_tavus_module',
      kind => 'translated', modules => [ $MODULE ], tls => 1 },
    { id => 'b', name => 'recipe', title => 'proxy_pass recipe',
      kind => 'passthrough', modules => [], tls => 1 },
    { id => 'c', name => 'njs', title => 'njs js_content',
      kind => 'translated', modules => [ "$MODDIR/ngx_http_js_module.so" ] },
    { id => 'd', name => 'lua', title => 'Lua content_by_lua',
      kind => 'translated',
      modules => [ "$MODDIR/ndk_http_module.so",
                   "$MODDIR/ngx_http_lua_module.so" ] },
    { id => 'e', name => 'return', title => 'nginx return (ceiling)',
      kind => 'ceiling', modules => [] },
);

if (defined $ENV{BENCH_ONLY} && $ENV{BENCH_ONLY} ne '') {
    my %want = map { $_ => 1 } split /[\s,]+/, lc $ENV{BENCH_ONLY};
    $want{b} = 1;
    @GATEWAYS = grep { $want{$_->{id}} || $want{$_->{name}} } @GATEWAYS;
}

# How a gateway reaches the mock.  Over TLS the gateway's config is
# NAME-tls.conf, whose %%KEEPALIVE%% comments the group's keepalive out
# for a new connection a request.

my @TRANSPORTS = (
    { id => 'http', title => 'HTTP, keepalive', label => '',
      keepalive => 1 },
    { id => 'tls', title => 'TLS, keepalive', label => ', TLS keepalive',
      keepalive => 1, tls => 1 },
    { id => 'tls-new', title => 'TLS, a new connection a request, '
                                . 'the session resumed',
      label => ', TLS new connections', keepalive => 0, tls => 1 },
);

@TRANSPORTS = grep { $_->{tls} ? $TLS : $TLS ne 'only' } @TRANSPORTS;

# a run: one gateway over one transport, with its own nginx

my @RUNS;

for my $t (@TRANSPORTS) {
    for my $g (grep { !$t->{tls} || $_->{tls} } @GATEWAYS) {
        my $tag = $t->{tls} ? "$g->{name}-$t->{id}" : $g->{name};
        push @RUNS, { %$g, transport => $t, tag => $tag,
                      conf => $t->{tls} ? "$g->{name}-tls" : $g->{name},
                      requests => $t->{keepalive} ? $REQUESTS
                                                  : $TLS_REQUESTS };
    }
}

# the recipe of each transport: the runs' ratios are to it
my %RECIPE = map { $_->{transport}{id} => $_ } grep { $_->{id} eq 'b' } @RUNS;

# ---------------------------------------------------------------------------
# processes (t/lib/TavusProc.pm): every one started here is stopped here,
# by its pid

my $MAIN = $$;

END {
    if (defined $MAIN && $$ == $MAIN) {
        my $rc = $?;
        TavusProc::stop_all('TERM', 10);
        $? = $rc;
    }
}

$SIG{INT} = $SIG{TERM} = $SIG{HUP} = sub { die "bench: interrupted\n" };

# nginx stops its workers itself; SIGKILL only if it does not exit
sub stop {
    my ($pid, $sig, $timeout) = @_;

    my $st = TavusProc::stop($pid, $sig, $timeout);
    warn "bench: pid $pid did not stop: killed\n" unless defined $st;

    return $st;
}

# ---------------------------------------------------------------------------
# the work directory

my $WORK = File::Temp::tempdir('tavus-bench-XXXXXX', TMPDIR => 1,
                               CLEANUP => !$KEEP);
chmod 0700, $WORK;

# ports: the harness's policy, outside the kernel's ephemeral range
my %PORTS;
sub free_port { TavusProc::free_port(used => \%PORTS) }

my $KEY = 'bench-' . join '', map { sprintf '%02x', int rand 256 } 1 .. 12;
my $NCPU = () = TavusProc::slurp('/proc/cpuinfo') =~ /^processor\s*:/mg;
$PIN = 0 if $NCPU < 2;

# the placeholders of bench/conf/*.conf that are the same for every server
# (and, once the mock listens, its ports and the test CA's files)
my %SUB = (KEY => $KEY, BENCH => $BENCH);

# TLS: a test CA and the mock's certificate for tavusapi.com, made at run
# time with the openssl command by t/lib/TavusTLS.pm, which needs of the
# harness's TavusTest only these three file methods
package BenchFiles {
    sub new { my ($class, $dir) = @_; return bless { dir => $dir }, $class }
    sub prefix { $_[0]{dir} }
    sub write_file { TavusProc::spew($_[1], $_[2]) }
    sub read_file { TavusProc::slurp($_[1]) }
}

sub make_pki {
    my $pki = TavusTLS->new(BenchFiles->new($WORK));

    $pki->ca('bench');
    $pki->leaf('tavusapi', issuer => 'bench', names => [ 'tavusapi.com' ]);

    @SUB{qw(CA CERT CERT_KEY)} = ($pki->crt('bench'), $pki->crt('tavusapi'),
                                  $pki->key('tavusapi'));
}

# nginx.conf for one server: its http{} body from bench/conf/NAME.conf
# (NAME or [NAME, ...]: those files one after the other); placeholders
# from %SUB and sub => {...}
sub write_conf {
    my (%o) = @_;

    my $dir = "$WORK/$o{tag}";
    mkdir $dir;

    my %sub = (%SUB, PORT => $o{port}, %{ $o{sub} // {} });
    my $body = '';

    for my $name (ref $o{name} ? @{ $o{name} } : $o{name}) {
        my $file = "$BENCH/conf/$name.conf";
        die "bench: no $file\n" unless -f $file;
        $body .= "\n" if $body ne '';
        $body .= TavusProc::slurp($file);
    }

    $body =~ s/%%(\w+)%%/exists $sub{$1} ? $sub{$1}
                                         : die "bench: unknown %%$1%%\n"/ge;
    $body =~ s/^/    /mg;

    TavusProc::spew("$dir/nginx.conf", TavusProc::nginx_conf(
        dir => $dir, modules => $o{modules}, single => $o{single},
        affinity => $o{cpu}, http => "    keepalive_requests 100000;\n\n"
                                     . $body));

    return $dir;
}

sub start_nginx {
    my (%o) = @_;

    my $dir = write_conf(%o);
    my $pid = eval {
        TavusProc::start_nginx(dir => $dir,
                               port => [ $o{port}, @{ $o{more_ports} // [] } ],
                               nginx => $NGINX, wrapper => $o{wrapper},
                               timeout => $o{timeout} // 10,
                               name => "$o{tag} nginx");
    } or die "bench: $@";

    return ($pid, $dir);
}

# the worker of a master: the child process of that pid
sub worker_of {
    my ($master) = @_;
    return (TavusProc::children($master))[0];
}

# ---------------------------------------------------------------------------
# an HTTP/1.1 client on one keepalive connection

sub connect_to {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 10)
        or die "bench: connect 127.0.0.1:$port: $!\n";
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    binmode $s;
    return $s;
}

sub request {
    my ($s, $method, $path, @headers) = @_;

    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n"
              . join('', map { "$_\r\n" } @headers) . "\r\n";

    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite($s, $req, length($req) - $off, $off);
        die "bench: write: $!\n" unless defined $n;
        $off += $n;
    }

    my $buf = '';
    my $sel = IO::Select->new($s);

    my $read = sub {
        die "bench: no answer in 30 s\n" unless $sel->can_read(30);
        my $n = sysread($s, $buf, 65536, length $buf);
        die "bench: read: $!\n" unless defined $n;
        die "bench: connection closed\n" if $n == 0;
    };

    $read->() while index($buf, "\r\n\r\n") < 0;

    my $end = index($buf, "\r\n\r\n");
    my ($line, @lines) = split /\r\n/, substr($buf, 0, $end);
    $buf = substr($buf, $end + 4);

    my ($status) = $line =~ m{^HTTP/1\.[01] (\d{3})}
        or die "bench: bad status line \"$line\"\n";

    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $h{lc $k} = $v;
    }

    my $body;

    if (defined $h{'content-length'}) {
        $read->() while length $buf < $h{'content-length'};
        $body = substr($buf, 0, $h{'content-length'});

    } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        $body = '';
        for (;;) {
            $read->() while $buf !~ /\r\n/;
            my ($size) = $buf =~ /^([0-9a-fA-F]+)/
                or die "bench: bad chunk\n";
            $size = hex $size;
            my $skip = index($buf, "\r\n") + 2;
            $read->() while length $buf < $skip + $size + 2;
            $body .= substr($buf, $skip, $size);
            $buf = substr($buf, $skip + $size + 2);
            last if $size == 0;
        }

    } else {
        die "bench: an answer with no length\n";
    }

    return { status => $status, headers => \%h, body => $body };
}

sub one_request {
    my ($port, @args) = @_;
    my $s = connect_to($port);
    my $r = request($s, @args);
    close $s;
    return $r;
}

# ---------------------------------------------------------------------------
# a run's nginx, and what the mock sees of it: the stub_status counters of
# the mock (one nginx for all its servers: the runs go one at a time) and,
# over TLS, the lines of tls.log, one for each new TLS connection

my %MOCK;       # http, tls, tls-new: the mock's port for each; dir

# the gateway's nginx: its config to the mock's server for the transport
sub start_run {
    my ($run, %o) = @_;

    my $t = $run->{transport};

    return start_nginx(%o, name => $run->{conf}, modules => $run->{modules},
                       sub => { MOCK_PORT => $MOCK{ $t->{id} },
                                KEEPALIVE => $t->{keepalive} ? '' : '# ' });
}

sub mock_counters {
    my $r = one_request($MOCK{http}, 'GET', '/status');
    my ($acc, $hand, $reqs) = $r->{body} =~ /^\s*(\d+)\s+(\d+)\s+(\d+)\s*$/m
        or die "bench: no stub_status counters from the mock\n";
    return ($acc, $reqs);
}

sub tls_log_size { return -s "$MOCK{dir}/tls.log" // 0 }

# the lines of tls.log from OFFSET for the run's port, as hashes
sub tls_log_since {
    my ($run, $off) = @_;

    open my $fh, '<:raw', "$MOCK{dir}/tls.log" or return ();
    seek $fh, $off, 0;
    my $port = $MOCK{ $run->{transport}{id} };

    return grep { ($_->{port} // '') eq $port }
           map { +{ /(\w+)=(\S*)/g } } <$fh>;
}

# what the mock saw while CODE ran: new connections and requests (each
# stub_status query is one of each itself), new TLS connections
sub upstream_during {
    my ($run, $code) = @_;

    my ($acc0, $req0) = mock_counters();
    my $off = tls_log_size();

    $code->();

    my ($acc1, $req1) = mock_counters();

    return { conns => $acc1 - $acc0 - 1, reqs => $req1 - $req0 - 1,
             tls => [ tls_log_since($run, $off) ] };
}

# What the mock must see of N requests through a run: N upstream requests
# (none from the ceiling), on kept connections, or on N new ones (a new
# connection a request); each new TLS connection resumed its session.
# The protocol and name of every TLS connection: tls_wrong().
sub upstream_wrong {
    my ($run, $up, $n, $what) = @_;

    my $reqs = $run->{kind} eq 'ceiling' ? 0 : $n;
    my $conns = $run->{transport}{keepalive} ? 0 : $reqs;
    my @fail;

    push @fail, "$what: the mock had $up->{reqs} requests, not $reqs"
        if $up->{reqs} != $reqs;
    push @fail, "$what: $up->{conns} new upstream connections, not $conns"
        if $up->{conns} != $conns;

    return @fail unless $run->{transport}{tls};

    my @tls = @{ $up->{tls} };
    my $full = grep { $_->{reused} ne 'r' } @tls;

    push @fail, "$what: tls.log shows " . @tls . " TLS connections, not "
                . $up->{conns}
        if @tls != $up->{conns};
    push @fail, "$what: $full of " . @tls . " TLS connections made a new "
                . "session (a full handshake), not resumed"
        if $full;

    return (@fail, tls_wrong($run, @tls));
}

# each TLS connection: TLSv1.3 (both sides offer TLSv1.2 and TLSv1.3) and
# SNI tavusapi.com; what was negotiated is kept for the table
sub tls_wrong {
    my ($run, @tls) = @_;

    my @fail;

    for my $l (@tls) {
        my $p = join ' ', map { $l->{$_} // '?' } qw(proto cipher curve);
        $run->{negotiated}{$p}++;
        push @fail, "a TLS connection with $p, not TLSv1.3"
            if ($l->{proto} // '') ne 'TLSv1.3';
        push @fail, "a TLS connection with SNI \"" . ($l->{sni} // '')
                    . '", not "tavusapi.com"'
            if ($l->{sni} // '') ne 'tavusapi.com';
    }

    return @fail;
}

sub negotiated {
    my ($run) = @_;
    return join ', ', sort keys %{ $run->{negotiated} // {} };
}

# ---------------------------------------------------------------------------
# 1. correctness

sub check_gateway {
    my ($g) = @_;
    my @fail;

    my $json = JSON::PP->new;
    my $decode = sub {
        my ($r) = @_;
        my $j = eval { $json->decode($r->{body}) };
        return ref $j eq 'HASH' ? $j : undef;
    };
    my $is_json = sub {
        my ($r, $what) = @_;
        push @fail, "$what: Content-Type is not application/json"
            unless ($r->{headers}{'content-type'} // '')
                   =~ m{^application/json\b};
        push @fail, "$what: no Cache-Control: no-store"
            unless ($r->{headers}{'cache-control'} // '') eq 'no-store';
    };
    my $same = sub {
        my ($what, $j, %want) = @_;
        if (!$j) {
            push @fail, "$what: the body is not a JSON object";
            return;
        }
        my @keys = sort keys %$j;
        my @want = sort keys %want;
        push @fail, "$what: keys @keys, not @want" if "@keys" ne "@want";
        for my $k (@want) {
            my ($got, $exp) = ($j->{$k}, $want{$k});
            my $ok = ref $exp eq 'Regexp' ? (defined $got && !ref $got
                                             && $got =~ $exp)
                   : JSON::PP::is_bool($exp) ? (JSON::PP::is_bool($got)
                                                && !!$got == !!$exp)
                   : (defined $got && !ref $got && $got eq $exp);
            push @fail, "$what: \"$k\" is "
                        . (defined $got ? $json->encode([$got]) : 'missing')
                unless $ok;
        }
    };

    my $rid = qr/^[0-9a-f]{32}$/;
    my $ok = eval {
        my $r = one_request($g->{port}, 'DELETE', "/replicas/$OK_ID");
        my $r2 = one_request($g->{port}, 'DELETE', "/replicas/$OK_ID",
                             'x-api-key: a-client-key',
                             'Connection: keep-alive');
        my $what = "DELETE /replicas/$OK_ID";

        push @fail, "$what: status $r->{status}, not 200"
            if $r->{status} != 200;
        push @fail, "$what with a client x-api-key: status $r2->{status}, "
                    . "not 200 (client headers reach the upstream?)"
            if $r2->{status} != 200;

        if ($g->{kind} eq 'passthrough') {
            $same->($what, $decode->($r),
                    message => 'Replica deleted successfully');
        } else {
            $is_json->($r, $what);
            $same->($what, $decode->($r), replica_id => $OK_ID,
                    deleted => JSON::PP::true, hard => JSON::PP::false,
                    request_id => $rid);
        }

        return 1 if $g->{kind} eq 'ceiling';

        $what = "DELETE /replicas/$BAD_ID";
        $r = one_request($g->{port}, 'DELETE', "/replicas/$BAD_ID");
        push @fail, "$what: status $r->{status}, not 400"
            if $r->{status} != 400;

        if ($g->{kind} eq 'passthrough') {
            $same->($what, $decode->($r), error => 'Invalid replica_id');
        } else {
            $is_json->($r, $what);
            $same->($what, $decode->($r), error => 'Invalid replica_id',
                    code => 'upstream_client_error', replica_id => $BAD_ID,
                    request_id => $rid);
        }

        $r = one_request($g->{port}, 'GET', "/replicas/$OK_ID");
        push @fail, "GET /replicas/$OK_ID: status $r->{status}, not 403/405"
            unless $r->{status} == 403 || $r->{status} == 405;

        1;
    };

    push @fail, "no answer: $@" unless $ok;

    return @fail;
}

# ---------------------------------------------------------------------------
# 2. wrk

sub unit_ms {
    my ($v, $u) = @_;
    return $v / 1000 if $u eq 'us';
    return $v if $u eq 'ms';
    return $v * 1000 if $u eq 's';
    return $v * 60000 if $u eq 'm';
    die "bench: unknown wrk unit $u\n";
}

sub wrk {
    my ($g, $seconds) = @_;

    my @cmd = ('wrk', "-t$THREADS", "-c$CONNS", "-d${seconds}s",
               '--latency', '--timeout', '5s',
               '-s', "$BENCH/wrk-delete.lua",
               "http://127.0.0.1:$g->{port}/replicas/$OK_ID");
    unshift @cmd, 'taskset', '-c', '0' if $PIN;

    my $out = "$WORK/wrk.out";
    unlink $out;
    my $pid = TavusProc::spawn(name => 'wrk', out => $out, cmd => \@cmd);
    my $st = TavusProc::reap($pid, $seconds + 30);
    if (!defined $st) {
        stop($pid, 'TERM', 5);
        die "bench: wrk did not end\n";
    }

    my $text = TavusProc::slurp($out);
    die "bench: wrk failed ($st):\n$text" if $st;

    my %r;
    ($r{rps}) = $text =~ /^Requests\/sec:\s+([\d.]+)/m;
    my ($v, $u) = $text =~ /^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$/m;
    $r{p99} = unit_ms($v, $u) if defined $v;
    ($r{requests}) = $text =~ /^\s+(\d+) requests in/m;
    ($r{non2xx}) = $text =~ /Non-2xx or 3xx responses:\s+(\d+)/;
    ($r{errors}) = $text =~ /Socket errors:\s+(.*)$/m;
    $r{non2xx} //= 0;

    die "bench: cannot read wrk's output:\n$text"
        unless defined $r{rps} && defined $r{p99};

    return \%r;
}

# ---------------------------------------------------------------------------
# 3. callgrind

sub callgrind_run {
    my ($g, $warm, $count) = @_;

    my $port = free_port();
    my $tag = "cg-$g->{tag}-$count";
    my $out = "$WORK/callgrind.out.$g->{tag}.$count";

    my ($pid, $dir) = start_run(
        $g, tag => $tag, port => $port, single => 1, timeout => 180,
        wrapper => [ 'valgrind', '--tool=callgrind', '-q',
                     "--callgrind-out-file=$out" ]);

    my $s = connect_to($port);
    my $failed = 0;

    my $send = sub {
        for (1 .. $_[0]) {
            my $r = request($s, 'DELETE', "/replicas/$OK_ID");
            $failed++ if $r->{status} != 200;
        }
    };

    $send->($warm);
    my $up = upstream_during($g, sub { $send->($count) });
    close $s;

    # QUIT: a graceful exit, and callgrind writes its file
    my $st = stop($pid, 'QUIT', 120);
    die "bench: $tag exited with status " . ($st // 'killed') . ":\n"
        . TavusProc::nginx_log_tail($dir)
        if !defined $st || $st;

    my ($ir) = TavusProc::slurp($out) =~ /^(?:summary|totals):\s+(\d+)/m
        or die "bench: no instruction count in $out\n";

    die "bench: $tag: $failed of " . ($warm + $count) . " requests failed\n"
        if $failed;

    return { ir => $ir, up => $up, out => $out };
}

# ---------------------------------------------------------------------------
# the run

sub say_step { print "bench: @_\n" }

my $t0 = time;

say_step(sprintf 'work directory %s%s; %d CPU%s, %s', $WORK,
         $KEEP ? ' (kept)' : '', $NCPU, $NCPU == 1 ? '' : 's',
         $PIN ? 'gateways on CPU 1, mock and wrk on CPU 0'
              : 'no CPU pinning');

for my $g (@GATEWAYS) {
    for my $m (@{ $g->{modules} }) {
        die "bench: $m is missing (make build; make bench installs the packages)\n"
            unless -f $m;
    }
}

for my $tool ('wrk', 'valgrind', 'callgrind_annotate', 'openssl') {
    next if $tool eq 'wrk' && $NO_WRK;
    next if $tool =~ /grind/ && $NO_CG;
    next if $tool eq 'openssl' && !$TLS;
    die "bench: $tool is missing (make bench installs it)\n"
        unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}

# the mock: plain HTTP and, unless BENCH_TLS=0, its TLS servers
$MOCK{$_->{id}} = free_port() for @TRANSPORTS;
$MOCK{http} //= free_port();
@SUB{qw(MOCK_PORT TLS_PORT TLS_NEW_PORT)} = @MOCK{qw(http tls tls-new)};
make_pki() if $TLS;

(my $mock_pid, $MOCK{dir}) = start_nginx(
    tag => 'mock', name => [ 'mock', $TLS ? 'mock-tls' : () ],
    port => $MOCK{http}, more_ports => [ $TLS ? @MOCK{qw(tls tls-new)} : () ],
    modules => [], cpu => $PIN ? '01' : undef);

say_step("mock Tavus API on 127.0.0.1: HTTP $MOCK{http}"
         . ($TLS ? ", TLS $MOCK{tls} (keepalive) and $MOCK{'tls-new'} "
                   . "(a connection a request), certificate from a test CA "
                   . "in $WORK/pki" : ''));

my @bad;

# the requests of a run's check of its upstream connections
my $CHECK_REQUESTS = 10;

for my $g (@RUNS) {
    $g->{port} = free_port();
    $g->{label} = "($g->{id}) $g->{title}$g->{transport}{label}";

    my @fail;
    my $started = eval {
        ($g->{pid}, $g->{dir}) = start_run(
            $g, tag => $g->{tag}, port => $g->{port},
            cpu => $PIN ? '10' : undef);
        $g->{worker} = worker_of($g->{pid})
            or die "bench: no worker process for $g->{tag}\n";
        1;
    };

    if ($started) {
        # the answers (the first of them makes the first upstream
        # connection, a full handshake over TLS), then N requests on one
        # client connection, as the mock must see them
        my $first = upstream_during($g, sub { @fail = check_gateway($g) });
        push @fail, tls_wrong($g, @{ $first->{tls} });
        push @fail, 'the mock logged no TLS connection'
            if $g->{transport}{tls} && !@{ $first->{tls} };

        my $up = eval {
            upstream_during($g, sub {
                my $s = connect_to($g->{port});
                request($s, 'DELETE', "/replicas/$OK_ID")
                    for 1 .. $CHECK_REQUESTS;
                close $s;
            });
        };
        push @fail, $up ? upstream_wrong($g, $up, $CHECK_REQUESTS,
                                         "$CHECK_REQUESTS more requests")
                        : "no answer: $@";
    } else {
        @fail = ("did not start: $@");
    }

    my %seen;
    @fail = grep { !$seen{$_}++ } @fail;
    $g->{ok} = !@fail;

    # the checks log on purpose (the recipe's denied GET): not counted
    $g->{log_off} = $g->{dir} ? -s "$g->{dir}/error.log" // 0 : 0;

    printf "bench: check %-42s %s%s\n", $g->{label},
           @fail ? 'WRONG, not timed' : 'ok',
           $g->{negotiated} ? ' (' . negotiated($g) . ')' : '';
    print map { "         $_\n" } @fail;
    push @bad, $g unless $g->{ok};
}

# like with like: (a) and (b) negotiate the same over one transport
for my $t (grep { $_->{tls} } @TRANSPORTS) {
    my @pair = grep { $_->{transport} == $t && $_->{ok} } @RUNS;
    next unless @pair == 2 && negotiated($pair[0]) ne negotiated($pair[1]);
    print "bench: check $t->{title}: (a) and (b) negotiate differently: "
          . join(' / ', map { negotiated($_) } @pair) . "\n";
    $_->{ok} = 0 for @pair;
    push @bad, @pair;
}

for my $t (@TRANSPORTS) {
    die "bench: the recipe (b) over $t->{title} answers wrongly: no ratios "
        . "can be given\n"
        unless $RECIPE{ $t->{id} }{ok};
}

my @timed = grep { $_->{ok} } @RUNS;

# one wrk load of a run, and what the mock saw of it: new connections
sub wrk_run {
    my ($g, $seconds) = @_;

    my $r;
    my $up = upstream_during($g, sub { $r = wrk($g, $seconds) });
    $r->{up} = $up;

    return $r;
}

unless ($NO_WRK) {
    say_step(sprintf 'wrk: %d threads, %d connections; warm-up %d s, '
             . '%d interleaved round%s of %d s%s', $THREADS, $CONNS, $WARMUP,
             $ROUNDS, $ROUNDS == 1 ? '' : 's', $DURATION,
             $SOAK ? ", then $SOAK s more each" : '');

    for my $g (@timed) {
        wrk($g, $WARMUP) if $WARMUP;
        $g->{rss_warm} = TavusProc::rss_kib($g->{worker});
    }

    for my $round (1 .. $ROUNDS) {
        for my $g (@timed) {
            my $r = wrk_run($g, $DURATION);
            push @{ $g->{rounds} }, $r;

            my $up = $r->{up};
            my $resumed = grep { $_->{reused} eq 'r' } @{ $up->{tls} };
            printf "bench: round %d %-42s %9.0f req/s  p99 %7.2f ms, "
                   . "%d new upstream connections%s%s\n",
                   $round, $g->{label}, $r->{rps}, $r->{p99}, $up->{conns},
                   $g->{transport}{tls} ? " ($resumed resumed)" : '',
                   ($r->{non2xx} || ($r->{errors} // '') ne ''
                    ? "  non-2xx $r->{non2xx}"
                      . ($r->{errors} ? ", socket errors: $r->{errors}" : '')
                    : '');
        }
    }

    for my $g (@timed) {
        wrk($g, $SOAK) if $SOAK;
        $g->{rss_end} = TavusProc::rss_kib($g->{worker});
        $g->{served} = 0;
        $g->{served} += $_->{requests} // 0 for @{ $g->{rounds} };
    }
}

for my $g (@RUNS) {
    stop($g->{pid}, 'QUIT', 20);
    next unless $g->{dir};
    my $log = TavusProc::slurp("$g->{dir}/error.log");
    $log = substr($log, $g->{log_off} // 0);
    my $n = () = $log =~ /\[(?:error|crit|alert|emerg)\]/g;
    $g->{log_errors} = $n;
}

unless ($NO_CG) {
    say_step("callgrind: each gateway alone, master_process off, "
             . "$CG_WARMUP and $CG_WARMUP + N requests on one keepalive "
             . "client connection (N = $REQUESTS"
             . ($TLS ? ", $TLS_REQUESTS with a new TLS connection a request"
                     : '') . ')');

    for my $g (@timed) {
        my $n = $g->{requests};
        my $zero = callgrind_run($g, $CG_WARMUP, 0);
        my $full = callgrind_run($g, $CG_WARMUP, $n);

        $g->{ir} = ($full->{ir} - $zero->{ir}) / $n;
        $g->{cg_out} = $full->{out};

        my $up = $full->{up};
        my @fail = upstream_wrong($g, $up, $n, 'under callgrind');

        printf "bench: callgrind %-42s %8.0f instructions/request, "
               . "upstream: %d requests, %d new connection%s%s\n",
               $g->{label}, $g->{ir}, $up->{reqs}, $up->{conns},
               $up->{conns} == 1 ? '' : 's',
               $g->{transport}{tls} && $up->{conns}
               ? sprintf(' (%d resumed)',
                         scalar grep { $_->{reused} eq 'r' } @{ $up->{tls} })
               : '';
        print map { "         $_\n" } @fail;

        if (@fail) {
            $g->{ok} = 0;
            push @bad, $g;
        }
    }
}

stop($mock_pid, 'QUIT', 20);

# ---------------------------------------------------------------------------
# 4. the table

sub median {
    my @v = sort { $a <=> $b } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

for my $g (@timed) {
    next unless $g->{rounds};
    $g->{rps} = median(map { $_->{rps} } @{ $g->{rounds} });
    $g->{p99} = median(map { $_->{p99} } @{ $g->{rounds} });
}

sub ratio {
    my ($g, $k) = @_;
    my $base = $RECIPE{ $g->{transport}{id} };
    return '' unless defined $g->{$k} && $base->{$k};
    return sprintf '%.2fx', $g->{$k} / $base->{$k};
}

sub num {
    my ($v, $fmt) = @_;
    return defined $v ? sprintf($fmt, $v) : '-';
}

if ($NO_WRK && $NO_CG) {
    print "\nbench: checks only (BENCH_NO_WRK, BENCH_NO_CALLGRIND): "
          . (@bad ? "FAILED\n" : "all gateways answer correctly\n");
    exit(@bad ? 1 : 0);
}

print "\n";
printf "%-28s %9s %6s %8s %6s %10s %6s %17s\n", 'gateway (1 worker each)',
       'req/s', 'x(b)', 'p99 ms', 'x(b)', 'instr/req', 'x(b)',
       'RSS KiB warm->end';

for my $g (@RUNS) {
    my $name = "($g->{id}) $g->{title}";
    my $t = $g->{transport};

    # a line for each transport, before its first row
    if (@TRANSPORTS > 1 && $g == (grep { $_->{transport} == $t } @RUNS)[0]) {
        my $n = negotiated($RECIPE{ $t->{id} });
        print $t->{title}, ($n ? " ($n)" : ''), ":\n";
    }

    if (!$g->{ok}) {
        printf "%-28s %s\n", $name, 'answers wrongly: not timed';
        next;
    }

    my $rss = defined $g->{rss_end}
        ? sprintf('%d->%d (%+d)', $g->{rss_warm}, $g->{rss_end},
                  $g->{rss_end} - $g->{rss_warm})
        : '-';

    printf "%-28s %9s %6s %8s %6s %10s %6s %17s\n", $name,
           num($g->{rps}, '%.0f'), ratio($g, 'rps'),
           num($g->{p99}, '%.2f'), ratio($g, 'p99'),
           num($g->{ir}, '%.0f'), ratio($g, 'ir'), $rss;
}

print "\n";
printf "req/s, p99: median of %d interleaved wrk round%s of %d s "
       . "(-t%d -c%d); RSS: the worker's VmRSS\n",
       $ROUNDS, $ROUNDS == 1 ? '' : 's', $DURATION, $THREADS, $CONNS
    unless $NO_WRK;
printf "instr/req: callgrind, (Ir after %d+N requests - Ir after %d) / N, "
       . "the gateway's one process; N = %d%s\n",
       $CG_WARMUP, $CG_WARMUP, $REQUESTS,
       grep({ !$_->{keepalive} } @TRANSPORTS)
       ? ", $TLS_REQUESTS with a new TLS connection a request" : ''
    unless $NO_CG;

my @failing = grep { my $g = $_;
                     grep { $_->{non2xx} || $_->{errors} } @{ $g->{rounds} }
                   } grep { $_->{rounds} } @RUNS;
printf "wrk saw non-2xx answers or socket errors: %s (see the rounds)\n",
       join ', ', map { $_->{label} } @failing
    if @failing;

my @errs = grep { $_->{log_errors} } @RUNS;
printf "error log lines at [error] or worse while timed: %s\n",
       join ', ', map { "$_->{label} $_->{log_errors}" } @errs
    if @errs;

# the targets for (a), over plain HTTP: docs/decisions.md, "Performance"

my $RECIPE = $RECIPE{http};
my ($A) = grep { $_->{id} eq 'a' && $_->{ok} && !$_->{transport}{tls} }
          @RUNS;
my $missed = 0;

if ($A) {
    print "\ntargets for (a) (docs/decisions.md, \"Performance\"):\n";

    my $target = sub {
        my ($what, $have, $pass) = @_;
        $missed++ unless $pass;
        printf "  %-40s %-26s %s\n", $what, $have, $pass ? 'met' : 'MISSED';
    };

    if (defined $A->{ir} && $RECIPE->{ir}) {
        my $r = $A->{ir} / $RECIPE->{ir};
        $target->('instructions/request <= 0.80x recipe',
                  sprintf('%.0f = %.2fx', $A->{ir}, $r), $r <= 0.8);
    }

    if (defined $A->{rps} && $RECIPE->{rps}) {
        my $r = $A->{rps} / $RECIPE->{rps};
        $target->('req/s >= 1.00x recipe',
                  sprintf('%.0f = %.2fx', $A->{rps}, $r), $r >= 1.0);

        $r = $A->{p99} / $RECIPE->{p99};
        $target->('p99 <= recipe',
                  sprintf('%.2f ms = %.2fx', $A->{p99}, $r), $r <= 1.0);
    }

    if (defined $A->{rss_end}) {
        # flat: grows by no more than 1% (and 256 KiB at most) from the
        # warm-up to the end, over the requests of all rounds
        my $d = $A->{rss_end} - $A->{rss_warm};
        my $flat = $d <= 256 && $d <= $A->{rss_warm} / 100;
        $target->('worker RSS flat after warm-up',
                  sprintf('%+d KiB over %d req', $d, $A->{served}), $flat);
    }
}

printf "\nbench: done in %.0f s%s\n", time - $t0,
       $KEEP ? "; callgrind files in $WORK" : '';

if (@bad) {
    print "bench: FAILED: wrong answers from "
          . join(', ', map { $_->{label} } @bad) . "\n";
    exit 1;
}

exit($STRICT && $missed ? 1 : 0);
