package TavusTest;

# A small black-box test harness for ngx_tavus_module, in the spirit of
# nginx-tests and Test::Nginx, using core Perl modules only.
#
#     use lib 't/lib';
#     use TavusTest;
#
#     my $t = TavusTest->new;
#     my $m = $t->raw_mock(port => $t->port('up'), script => [ [ $reply ] ]);
#     $t->write_file('api.key', "secret\n");
#     $t->run(<<'HTTP');
#         server {
#             listen 127.0.0.1:%%PORT_gw%%;
#             location ~ ^/replicas/(?<replica>[^/]*)$ {
#                 tavus_delete_replica $replica;
#                 tavus_pass http://127.0.0.1:%%PORT_up%%;
#                 tavus_api_key_file %%PREFIX%%/api.key;
#             }
#         }
#     HTTP
#     my $r = $t->http(port => $t->port('gw'), method => 'DELETE',
#                      path => '/replicas/r1');
#     is($r->{status}, 200);
#     $t->stop;
#     done_testing;
#
# API (see each function for details):
#
# the test's nginx
#
#   TavusTest->new(no_module => 1?, worker_processes => N)
#                                     temporary prefix; no_module only for
#                                     the harness's own test (t/00-harness.t)
#   $t->require_module                BAIL_OUT unless the module is built
#   $t->static                        true when nginx has the module built in
#   $t->nginx_version                 the version of the nginx under test as
#                                     a number, as nginx's own nginx_version:
#                                     1026003 for 1.26.3 (from `nginx -v`)
#   $t->port(NAME)                    a free 127.0.0.1 port, memoised by
#                                     name, outside the kernel's ephemeral
#                                     range (t/lib/TavusProc.pm says why)
#   $t->refused_port(NAME)            the same, bound and held without
#                                     listening: connections are refused
#   $t->prefix, $t->module, $t->write_file(NAME, CONTENT), $t->read_file(NAME)
#   $t->key_file(NAME, KEY)           KEY and a newline in NAME, mode 0600
#   $t->run(HTTP_BLOCK)               write nginx.conf, start nginx, wait for
#                                     every `listen` port; %%PORT_name%% and
#                                     %%PREFIX%% are replaced (expand(TEXT))
#   $t->nginx_t(HTTP_BLOCK)           (passed, output) of nginx -t
#   $t->error_log                     this run's error log
#   $t->new_errors                    what it got since the last call, but
#                                     debug lines (a debug line may run
#                                     over several): lines, or their text
#   $t->stop                          stop mocks and nginx; a failure if the
#                                     error log has [alert], [crit], [emerg]
#
# workers and reloads
#
#   $t->master                        false with TAVUS_MASTER=off
#   $t->slow                          TAVUS_TIMEOUT / 5, at least 1: the
#                                     factor for a test's own waits
#   $t->workers(N?)                   the number of workers nginx runs (1
#                                     without a master); N from the next run
#   $t->master_pid, $t->worker_pids
#   $t->wait_workers(not => [PIDS], timeout => S)
#                                     the worker pids once all run (none of
#                                     PIDS), () on timeout
#   $t->reload(http => TEXT?, timeout => S)
#                                     SIGHUP (a new nginx.conf first, with
#                                     http); the new workers' pids once the
#                                     old ones are gone, () on timeout
#   $t->kill_worker(PID)              SIGKILL to a worker, on purpose: the
#                                     pid is added to the file that
#                                     TAVUS_KILLED names, if set, so that
#                                     the valgrind run knows why its
#                                     process left no summary
#
# the client and the answers
#
#   $t->http(port =>, method =>, path =>, headers => [..], body =>, raw =>,
#            from =>)                 { status, headers, header_list, body,
#                                       raw, timed_out, json_checked };
#                                     from => ADDR: a local address.
#                                     Every application/json body received
#                                     must be valid JSON, or the test fails
#                                     (see json_body_error; no_json_check
#                                     => 1 turns this off for one request)
#   $t->https(port =>, method =>, path =>, headers =>, cacert =>, cert =>,
#             key =>)                 the same over TLS, made by curl;
#                                     also { curl_exit, error }
#   $t->json_body_error($r)           why a response's JSON body is not
#                                     valid JSON, '' if it is, undef if the
#                                     response has no JSON body to check
#   $t->json($r)                      the body as a JSON object, or a failure
#   $t->answer($r, STATUS, {FIELDS}, NAME, keys => [..])
#                                     the checks every module answer passes
#   $t->printable(TEXT)               TEXT with other bytes as \xNN
#
# upstreams and other servers
#
#   $t->raw_mock(port =>, script => [ ENTRY, ... ])
#                                     a TavusTest::RawMock: a forked
#                                     upstream that plays ENTRY n to request
#                                     n (the last one to any later); an
#                                     ENTRY is a list of steps: bytes to
#                                     send, { sleep => S }, { wait => S } (a
#                                     sleep that a close of the peer ends),
#                                     { bytewise => 1 } (what follows a byte
#                                     at a time), { close => 1 },
#                                     { reset => 1 }, { hang => 1 }
#       ->requests, ->received, ->connections, ->stop
#       ->seen(EVENT, N), ->wait_for(EVENT, N, TIMEOUT), ->events
#                                     the events of request N: request
#                                     (received), answered (its entry
#                                     played), eof (the peer closed during a
#                                     wait)
#   reply(STATUS, BODY, NAME => VALUE, ...)
#                                     an upstream answer for a raw mock,
#                                     with Content-Length (exported on
#                                     request, as are the next three)
#   chunked(STATUS, [ CHUNK, ... ], NAME => VALUE, ...)
#                                     the same, chunked
#   $t->mock_tavus(name =>, port =>, key =>)
#                                     http{} text of t/lib/mock-tavus.conf,
#                                     an nginx that answers as Tavus does
#   $t->mock_log(NAME)                its access log as a list of hashes
#   $t->dnsmasq(name => 'dns', args => [ ... ])
#                                     a TavusTest::Dnsmasq on 127.0.0.1, port
#                                     $t->port(NAME): ->port, ->log,
#                                     ->reread (SIGHUP), ->running, ->stop
#
# configuration text a test makes many of
#
#   delete_location(PATH, DIRECTIVE, ...)
#                                     location ~ ^/PATH/(?<replica>[^/]*)$
#                                     with tavus_delete_replica $replica
#   gateway(DIRECTIVE, ...)           server { listen 127.0.0.1:%%PORT_gw%%;
#                                     with delete_location('replicas', ...) }
#   upstream_group(NAME, [ ADDRESS, ... ], DIRECTIVE, ...)
#                                     upstream NAME { server ADDRESS; ... }
#   server_block(LISTEN, ITEM, ...)   server { listen 127.0.0.1:%%PORT_name%%;
#                                     ITEM ... }: LISTEN is the port's name
#                                     and any listen parameters ('gw ssl');
#                                     an ITEM is a directive, or a block
#                                     such as delete_location()
#
# logs, and waiting
#
#   $t->wait_for(CODE, timeout => S)  CODE's first true value, polled;
#                                     undef after S (TAVUS_TIMEOUT) seconds
#   $t->wait_log(FILE, MATCH, timeout => S)
#                                     the first line of FILE that MATCH (a
#                                     regex, or a sub given the line in $_)
#                                     takes, once nginx has written it;
#                                     undef after S seconds
#   $t->log_entries(FILE, [FIELDS])   a log's lines as hashes: FIELDS names
#                                     the "|"-separated fields, else the
#                                     line is "name=value" words
#   $t->log_entry(FILE, [FIELDS], NAME => VALUE, timeout => S)
#                                     the entry whose NAME is VALUE, waited
#                                     for (wait_log); {} if none comes
#
# The rest of the library, in t/lib:
#
#   TavusProc.pm       ports, processes and files (free_port, spawn, reap,
#                      slurp, ...), under the harness and shared with the
#                      bench, the soak and `make run`
#   TavusConf.pm       the rewriter of the configurations an operator
#                      reads, examples/ and the docs, for a test machine
#   TavusTLS.pm        certificates made with openssl; the TLS mock of Tavus
#   TavusAuth.pm       a PKI, htpasswd files, Basic credentials, JSON-lines
#                      logs, key fingerprints, the search for leaked keys
#   TavusProm.pm       a strict parser of the Prometheus text format
#   mock-tavus.conf    the nginx mock of the Tavus API
#
# Environment:
#     TAVUS_MODULE   the module to load (default <repo>/build/ngx_http_tavus_module.so),
#                    or "static": TAVUS_NGINX was built with the module
#                    (--add-module), and no load_module line is written
#     TAVUS_NGINX    the nginx binary (default /usr/sbin/nginx)
#     TAVUS_KEEP=1   keep the temporary prefix directory (its path is printed)
#     TAVUS_TIMEOUT  seconds to wait for nginx and for answers (default 5)
#     TAVUS_WRAPPER  a command to run nginx under, e.g. "valgrind -q
#                    --error-exitcode=99" (with TAVUS_MASTER=off)
#     TAVUS_MASTER   off: master_process off (one process, for valgrind)
#     TAVUS_DNSMASQ  the dnsmasq binary (default /usr/sbin/dnsmasq)
#     TAVUS_KILLED   a file: kill_worker appends each pid it kills

use strict;
use warnings;

use Exporter 'import';
our @EXPORT_OK = qw(reply chunked delete_location upstream_group gateway
                    server_block);

use Test::More ();
use File::Temp ();
use File::Spec ();
use File::Basename ();
use File::Copy ();
use Cwd ();
use IO::Socket::INET ();
use IO::Select ();
use Socket qw(SOL_SOCKET SO_LINGER IPPROTO_TCP TCP_NODELAY);
use POSIX ();
use Time::HiRes ();
use JSON::PP ();

use TavusProc ();

our $VERSION = '0.1';

my $REPO = Cwd::abs_path(
    File::Spec->catdir(File::Basename::dirname(__FILE__), '..', '..'));

# seconds: readiness, client requests, stopping (more under valgrind)
my $TIMEOUT = $ENV{TAVUS_TIMEOUT} || 5;

my @LIVE;                 # harness objects that may own processes

# an error log line of level alert, crit or emerg: the level where nginx
# writes it, after the date and time (not a word in a logged message)
my $BAD_LEVEL = qr{^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(?:alert|crit|emerg)\]};

sub new {
    my ($class, %opts) = @_;

    my $keep = $ENV{TAVUS_KEEP} ? 1 : 0;
    my $dir = File::Temp::tempdir('tavus-test-XXXXXX', TMPDIR => 1,
                                  CLEANUP => !$keep);

    my $self = bless {
        prefix  => Cwd::abs_path($dir),
        module  => $ENV{TAVUS_MODULE}
                   // "$REPO/build/ngx_http_tavus_module.so",
        nginx   => _abs($ENV{TAVUS_NGINX} // '/usr/sbin/nginx'),
        ports   => {},
        used    => {},
        mocks   => [],
        owner   => $$,
        runs    => 0,
        tests   => 0,
        %opts,
    }, $class;

    Test::More::diag("prefix kept in $self->{prefix}") if $keep;

    push @LIVE, $self;
    return $self;
}

# a path made absolute: the harness reads the binary as well as runs it
sub _abs { Cwd::abs_path($_[0]) // $_[0] }

sub prefix { $_[0]{prefix} }
sub module { $_[0]{module} }
sub static { $_[0]{module} eq 'static' }

# stop the whole run unless the module has been built: a skip would let
# a missing build pass

sub require_module {
    my ($self) = @_;

    if ($self->static) {
        return $self if index($self->read_file($self->{nginx}),
                              "tavus_delete_replica\0") >= 0;

        Test::More::BAIL_OUT("TAVUS_MODULE=static, but $self->{nginx} was"
                             . " not built with the module");
    }

    return $self if -f $self->{module};

    Test::More::BAIL_OUT("no module at $self->{module}"
                         . " (make build, or set TAVUS_MODULE)");
}

# the version of the nginx under test, as nginx's nginx_version macro has
# it (1.22.1 is 1022001): what a test expects where nginx changed, e.g.
#
#     if ($t->nginx_version >= 1029007) { ... }

my %VERSION;

sub nginx_version {
    my ($self) = @_;

    my $nginx = $self->{nginx};

    return $VERSION{$nginx} //= do {
        my $out = qx('$nginx' -v 2>&1);
        my ($major, $minor, $patch) = $out =~ m{nginx/(\d+)\.(\d+)\.(\d+)}
            or die "nginx_version: no version in `$nginx -v`: $out";
        $major * 1000000 + $minor * 1000 + $patch;
    };
}

# the module, copied into the prefix once: a rebuild that overwrites the
# file in place while nginx has it mapped would crash nginx mid-test

sub _module {
    my ($self) = @_;

    return $self->{module_copy} //= do {
        my $copy = "$self->{prefix}/" . File::Basename::basename($self->{module});
        File::Copy::copy($self->{module}, $copy) ? $copy : $self->{module};
    };
}

# a free TCP port on 127.0.0.1, chosen now, the same one for the same name:
# outside the kernel's ephemeral range, for the reason given in
# t/lib/TavusProc.pm (the one port policy of the suite, the bench, the
# soak and `make run`)

sub port {
    my ($self, $name) = @_;

    $name //= 'default';
    return $self->{ports}{$name} //= TavusProc::free_port(
        used => $self->{used});
}

# a port where a connection is refused: bound, never listening, and held
# for the test's life, so that no other process (a test run beside this
# one) can start to listen on it

sub refused_port {
    my ($self, $name) = @_;

    my $port = $self->port($name);

    $self->{held}{$name} //= IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => $port,
        Proto     => 'tcp',
        ReuseAddr => 0,
    ) or die "refused_port: cannot bind 127.0.0.1:$port: $!";

    return $port;
}

sub write_file {
    my ($self, $name, $content) = @_;
    return TavusProc::spew($self->_path($name), $content);
}

# a key file as an operator writes one: the key and a newline, mode 0600

sub key_file {
    my ($self, $name, $key) = @_;

    my $path = $self->write_file($name, "$key\n");
    chmod 0600, $path or die "chmod $path: $!";

    return $path;
}

sub read_file {
    my ($self, $name) = @_;
    return TavusProc::slurp($self->_path($name));
}

sub _path {
    my ($self, $name) = @_;
    return $name =~ m{^/} ? $name : "$self->{prefix}/$name";
}

# placeholders: %%PORT_name%% and %%PREFIX%%

sub expand {
    my ($self, $text) = @_;

    $text =~ s/%%PORT_(\w+)%%/$self->port($1)/ge;
    $text =~ s/%%PREFIX%%/$self->{prefix}/g;

    return $text;
}

sub _conf {
    my ($self, $http, $error_log) = @_;

    my $p = $self->{prefix};
    my $user = $> == 0 ? "user root;\n" : '';
    my $load = $self->{no_module} || $self->static
               ? '' : 'load_module ' . $self->_module . ";\n";
    my $master = ($ENV{TAVUS_MASTER} // 'on') eq 'off' ? 'off' : 'on';

    $http = $self->expand($http);

    return <<"CONF";
$load
daemon off;
master_process $master;
worker_processes @{[ $self->workers ]};
$user
pid $p/nginx.pid;
lock_file $p/nginx.lock;
error_log $error_log debug;

events {
    worker_connections 1024;
}

http {
    access_log $p/access.log;

    client_body_temp_path $p/client_body_temp;
    proxy_temp_path $p/proxy_temp;
    fastcgi_temp_path $p/fastcgi_temp;
    uwsgi_temp_path $p/uwsgi_temp;
    scgi_temp_path $p/scgi_temp;

$http
}
CONF
}

# nginx -t: (exit status was 0, stdout + stderr + error log)

sub nginx_t {
    my ($self, $http) = @_;

    my $n = ++$self->{tests};
    my $p = $self->{prefix};
    my $log = "$p/t$n.error.log";
    my $conf = $self->write_file("t$n.conf", $self->_conf($http, $log));

    my $pid = open(my $fh, '-|') // die "fork: $!";

    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec $self->{nginx}, '-t', '-q', '-p', "$p/", '-c', $conf,
             '-e', $log
            or POSIX::_exit(127);
    }

    local $/;
    my $out = <$fh> // '';
    close $fh;
    my $ok = $? == 0;

    $out .= $self->read_file($log);

    return ($ok, $out);
}

# start nginx with the http{} block given, wait until it listens

sub run {
    my ($self, $http) = @_;

    $self->stop if $self->{pid};

    my $n = ++$self->{runs};
    my $p = $self->{prefix};

    # one error log a run, so that each run is checked on its own
    rename "$p/error.log", "$p/error.log." . ($n - 1) if -e "$p/error.log";

    my $conf = $self->_conf($http, "$p/error.log");
    $self->write_file('nginx.conf', $conf);

    my @ports = $conf =~ /\blisten\s+(?:127\.0\.0\.1:)?(\d+)\b/g;
    die "run: no 'listen 127.0.0.1:PORT' in the config" unless @ports;

    my $pid = TavusProc::spawn(
        group => 1, out => "$p/nginx.stderr", name => 'nginx',
        cmd => [ split(' ', $ENV{TAVUS_WRAPPER} // ''), $self->{nginx},
                 '-p', "$p/", '-c', "$p/nginx.conf", '-e', "$p/error.log" ]);

    $self->{pid} = $pid;
    $self->{watchdog} = TavusProc::watchdog($pid);

    my $deadline = Time::HiRes::time() + $TIMEOUT;
    my @waiting = @ports;

    while (@waiting) {
        if (defined(my $status = TavusProc::reap($pid, 0))) {
            delete $self->{pid};
            my $why = $self->error_log . $self->read_file('nginx.stderr');
            die "nginx exited at start (status $status):\n$why";
        }

        @waiting = grep { !TavusProc::can_connect($_) } @waiting;
        last unless @waiting;

        if (Time::HiRes::time() > $deadline) {
            my $why = $self->error_log;
            $self->stop;
            die "nginx does not listen on @waiting after ${TIMEOUT}s:\n$why";
        }

        Time::HiRes::sleep(0.01);
    }

    return $self;
}

sub error_log {
    my ($self) = @_;
    return $self->read_file('error.log');
}

# what this run's error log got since the last call (since the start of
# the run the first time), without its [debug] lines: the lines, or in
# scalar context their text

sub new_errors {
    my ($self) = @_;

    my $log = $self->error_log;
    my $seen = $self->{errors_seen}{ $self->{runs} } // 0;
    $self->{errors_seen}{ $self->{runs} } = length $log;

    # a line of its own level: nginx's debug lines may run over several
    my @lines = grep { m{^\d{4}/\d\d/\d\d [\d:]{8} \[(?!debug\])} }
                split /\n/, substr($log, $seen);

    return wantarray ? @lines : join "\n", @lines;
}

# workers and reloads
#
# With TAVUS_MASTER=off (valgrind) there is one process, which is then
# "the worker": worker_processes stays 1 (reuseport sockets of absent
# workers would never be accepted from).  nginx cannot reload without a
# master (its single-process reconfigure leaks the old cycle's
# connections: "worker_connections are not enough"), so reload dies.

# how much slower than usual nginx runs (valgrind): TAVUS_TIMEOUT over its
# default, at least 1; a test's own waits are scaled by it

sub slow {
    my $slow = $TIMEOUT / 5;
    return $slow < 1 ? 1 : $slow;
}

sub master { ($ENV{TAVUS_MASTER} // 'on') ne 'off' }

# the number of worker processes nginx runs; with N, worker_processes N
# from the next run on

sub workers {
    my ($self, $n) = @_;
    $self->{worker_processes} = $n if defined $n;
    return $self->master ? $self->{worker_processes} // 1 : 1;
}

sub master_pid {
    my ($self) = @_;
    my ($pid) = $self->read_file('nginx.pid') =~ /^(\d+)$/m;
    return $pid // $self->{pid};
}

# the pids of the master's children; without a master, the one process

sub worker_pids {
    my ($self) = @_;

    my $master = $self->master_pid // return ();
    return ($master) unless $self->master;

    return TavusProc::children($master);
}

# waits until the master has exactly its workers, none of the pids in
# not => [...] (a freshly started nginx listens before all its workers
# may be up; after a reload the old ones finish their requests first);
# the pids, or () on timeout

sub wait_workers {
    my ($self, %o) = @_;

    my $n = $self->workers;
    my %old = map { $_ => 1 } @{ $o{not} // [] };
    my @pids;

    $self->wait_for(sub {
        @pids = $self->worker_pids;
        return @pids == $n && !grep { $old{$_} } @pids;
    }, timeout => $o{timeout}) or return ();

    return @pids;
}

sub kill_worker {
    my ($self, $pid) = @_;

    if ($ENV{TAVUS_KILLED}) {
        open my $fh, '>>', $ENV{TAVUS_KILLED}
            or die "kill_worker: $ENV{TAVUS_KILLED}: $!";
        print $fh "$pid\n";
        close $fh;
    }

    return kill 'KILL', $pid;
}

# nginx -s reload: SIGHUP to the master (with http => TEXT, a new
# nginx.conf first), then waits until the old workers have exited and the
# new ones run; the new pids, or () on timeout (the reason is then in the
# error log)

sub reload {
    my ($self, %o) = @_;

    die "reload: nginx reloads only with a master process\n"
        unless $self->master;

    my @old = $self->worker_pids;
    my $master = $self->master_pid or die 'reload: no master pid';

    $self->write_file('nginx.conf',
                      $self->_conf($o{http}, "$self->{prefix}/error.log"))
        if defined $o{http};

    kill 'HUP', $master or die "reload: cannot signal $master: $!";

    return $self->wait_workers(not => \@old, timeout => $o{timeout});
}

# CODE's first true value, polled every 10 ms; undef after timeout
# seconds (TAVUS_TIMEOUT)

sub wait_for {
    my ($self, $code, %o) = @_;
    return TavusProc::wait_until($code, timeout => $o{timeout} // $TIMEOUT);
}

# the first line of a file of the prefix that MATCH takes, waited for:
# nginx writes a request's access log line when the request ends, which
# may be just after the client has its answer.  MATCH is a regex (the
# line is returned) or a sub called with the line in $_ (its true value
# is returned).  undef when no line came in timeout seconds.

sub wait_log {
    my ($self, $file, $match, %o) = @_;

    my $take = ref $match eq 'CODE' ? $match : sub { /$match/ ? $_ : undef };

    return $self->wait_for(sub {
        for (split /\n/, $self->read_file($file)) {
            my $v = $take->();
            return $v if $v;
        }
        return undef;
    }, %o);
}

# stop mocks, then nginx (QUIT, then TERM, then KILL); a failure if nginx
# did not exit 0 by itself, or if this run's error log has an [alert],
# [crit] or [emerg] line (a crashed worker is an alert)

sub stop {
    my ($self) = @_;

    return unless $$ == $self->{owner};

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    my @bad = $self->_shutdown or return $self;
    @bad = () if $bad[0] eq '1';

    Test::More::ok(!@bad, "run $self->{runs}: nginx stopped cleanly, no"
                          . " alert, crit or emerg in the error log")
        or Test::More::diag(join "\n", @bad);

    return $self;
}

# returns () when nothing runs, else (1) when all is well, else the lines
# that are not

sub _shutdown {
    my ($self) = @_;

    $_->stop for @{ $self->{mocks} };
    $self->{mocks} = [];

    TavusProc::stop_watchdog(delete $self->{watchdog});

    my $pid = delete $self->{pid} or return;

    my @bad;

    kill 'QUIT', $pid;
    my $status = TavusProc::reap($pid, $TIMEOUT);

    unless (defined $status) {
        push @bad, "nginx did not stop in ${TIMEOUT}s after SIGQUIT";
        kill 'TERM', $pid;
        $status = TavusProc::reap($pid, 2);
        unless (defined $status) {
            kill 'KILL', -$pid, $pid;
            $status = TavusProc::reap($pid, 2);
        }
    }

    # workers left behind by a master killed or crashed
    kill 'KILL', -$pid;

    push @bad, sprintf('nginx exit status %d, signal %d', $status >> 8,
                       $status & 127)
        if defined $status && $status != 0;

    push @bad, grep { /$BAD_LEVEL/ } split /\n/, $self->error_log;

    return @bad ? @bad : (1);
}

# at exit, when the test did not call stop: kill everything, and add a
# failing test only if the error log has alerts (a passing one would break
# the plan)

sub _cleanup {
    my ($self) = @_;

    return unless $$ == $self->{owner};

    my @bad = $self->_shutdown;

    if (@bad && $bad[0] ne '1') {
        Test::More::ok(0, "run $self->{runs} (not stopped by the test):"
                          . " nginx stopped cleanly, no alert, crit or"
                          . " emerg in the error log");
        Test::More::diag(join "\n", @bad);
    }
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $@, $!);
    $self->_cleanup;
}

END {
    local $?;
    for my $t (@LIVE) {
        $t->_cleanup if $t;
    }
    @LIVE = ();
}

for my $sig (qw(INT TERM HUP PIPE)) {
    $SIG{$sig} = sub { die "caught SIG$sig\n" } if ($SIG{$sig} // '') eq ''
        || $SIG{$sig} eq 'DEFAULT';
}

# an HTTP/1.1 request over a fresh connection, Connection: close
#
#   port, method (GET), path (/), host (localhost), headers => [ n => v ],
#   body, raw (exact bytes to send instead), timeout (5), from (the local
#   address: 127.0.0.2 is loopback too, as all of 127/8)

sub http {
    my ($self, %a) = @_;

    my $port = $a{port} // die "http: no port";
    my $timeout = $a{timeout} // $TIMEOUT;

    my $req = $a{raw};

    unless (defined $req) {
        my $method = $a{method} // 'GET';
        my $path = $a{path} // '/';
        my @h = @{ $a{headers} // [] };

        $req = "$method $path HTTP/1.1\r\n"
               . 'Host: ' . ($a{host} // 'localhost') . "\r\n"
               . "Connection: close\r\n" . _header_lines(@h);

        $req .= 'Content-Length: ' . length($a{body}) . "\r\n"
            if defined $a{body};

        $req .= "\r\n";
        $req .= $a{body} if defined $a{body};
    }

    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $port,
        Proto    => 'tcp',
        Timeout  => $timeout,
        ($a{from} ? (LocalAddr => $a{from}) : ()),
    ) or return _fail_response("cannot connect to 127.0.0.1:$port"
                               . ($a{from} ? " from $a{from}" : '') . ": $!");

    $s->autoflush(1);

    local $SIG{PIPE} = 'IGNORE';
    my $sent = syswrite($s, $req);
    my $raw = '';
    my $sel = IO::Select->new($s);
    my $deadline = Time::HiRes::time() + $timeout;
    my $timed_out = 0;

    while (1) {
        my $left = $deadline - Time::HiRes::time();
        if ($left <= 0 || !$sel->can_read($left)) {
            $timed_out = 1;
            last;
        }
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
    }

    close $s;

    my $r = _parse_response($raw);
    $r->{timed_out} = $timed_out;
    $r->{request} = $req;

    Test::More::diag("http: no complete answer in ${timeout}s from port"
                     . " $port to: " . (split /\r\n/, $req)[0])
        if $timed_out;

    $self->_check_json_body($r) unless $a{no_json_check};

    return $r;
}

# an HTTPS request, made by curl (core Perl has no TLS client) to
# https://localhost:PORT (resolved to 127.0.0.1), parsed as http() parses
# (--raw keeps a chunked body as sent, which the parser decodes)
#
#   port, method (GET), path (/), headers => [ n => v ], cacert (the CA
#   that signed the server's certificate), cert and key (a client
#   certificate), timeout (5)
#
# curl's exit status is in {curl_exit}, its stderr in {error}

sub https {
    my ($self, %a) = @_;

    my $port = $a{port} // die "https: no port";
    my $method = $a{method} // 'GET';
    my $path = $a{path} // '/';

    my @cmd = ('curl', '--silent', '--show-error', '--include', '--raw',
               '--http1.1', '--max-time', $a{timeout} // $TIMEOUT,
               '--request', $method,
               '--cacert', $a{cacert} // die "https: no cacert");

    push @cmd, '--cert', $a{cert}, '--key', $a{key} if $a{cert};

    my @h = @{ $a{headers} // [] };
    while (my ($n, $v) = splice @h, 0, 2) {
        push @cmd, '--header', "$n: $v";
    }

    push @cmd, '--resolve', "localhost:$port:127.0.0.1",
               "https://localhost:$port$path";

    my $err = "$self->{prefix}/curl.stderr";

    my $pid = open(my $fh, '-|') // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDERR, '>', $err;
        exec @cmd or POSIX::_exit(127);
    }

    binmode $fh;
    local $/;
    my $raw = <$fh> // '';
    close $fh;

    my $r = _parse_response($raw);
    $r->{curl_exit} = $? >> 8;
    $r->{error} = $self->read_file($err);
    $r->{request} = "$method $path HTTP/1.1\r\n";

    $self->_check_json_body($r) unless $a{no_json_check};

    return $r;
}

# A harness-level assertion: every body the suite receives that says it
# is application/json must be valid JSON (docs/responses.md, "Common to
# every answer": a body of one JSON object), whatever the test itself
# checks.  A failing test is added
# when it is not; valid bodies are only counted (reported at the end), so
# that the number of tests of a file does not depend on it.

my $JSON_CHECKED = 0;

sub _check_json_body {
    my ($self, $r) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 2;

    my $error = $self->json_body_error($r);
    return unless defined $error;

    $r->{json_checked} = 1;
    $JSON_CHECKED++;

    return if $error eq '';

    my ($line) = split /\r\n/, $r->{request} // '';

    Test::More::ok(0, 'harness: the application/json body of the answer to "'
                      . _printable($line // '') . '" is valid JSON');
    Test::More::diag("error: $error");
    Test::More::diag('body: ' . _printable($r->{body} // ''));
}

my $ANY_JSON = JSON::PP->new->utf8->allow_nonref(1);

sub json_body_error {
    my ($self, $r) = @_;

    # no body by definition: no status, HEAD, 1xx, 204, 304
    return undef unless $r->{status};
    return undef if $r->{status} < 200 || $r->{status} == 204
                    || $r->{status} == 304;
    return undef if ($r->{request} // '') =~ /^HEAD /;

    my $type = $r->{headers}{'content-type'} // '';
    return undef unless $type =~ m{^\s*application/json\s*(?:;|\z)}i;

    my $body = $r->{body} // '';

    return 'an empty body' if $body =~ /^\s*\z/;

    my $ok = eval { $ANY_JSON->decode($body); 1 };
    return '' if $ok;

    (my $why = $@ || 'invalid') =~ s/\s+\z//;
    return $why;
}

END {
    Test::More::note("harness: $JSON_CHECKED application/json bodies"
                     . " checked to be valid JSON")
        if $JSON_CHECKED;
}

sub _fail_response {
    my ($why) = @_;
    Test::More::diag("http: $why");
    return { status => 0, headers => {}, header_list => [], body => '',
             raw => '', error => $why };
}

sub _parse_response {
    my ($raw) = @_;

    my $r = { status => 0, headers => {}, header_list => [], body => '',
              raw => $raw };

    my $end = index($raw, "\r\n\r\n");
    return $r if $end < 0;

    my ($status_line, @lines) = split /\r\n/, substr($raw, 0, $end);
    my $body = substr($raw, $end + 4);

    ($r->{status}) = $status_line =~ m{^HTTP/\d\.\d (\d{3})};
    $r->{status} //= 0;
    $r->{status_line} = $status_line;

    for my $line (@lines) {
        my ($n, $v) = $line =~ /^([^:]+):\s*(.*?)\s*$/ or next;
        push @{ $r->{header_list} }, [ $n, $v ];
        $n = lc $n;
        $r->{headers}{$n} = exists $r->{headers}{$n}
                            ? "$r->{headers}{$n}, $v" : $v;
    }

    if (($r->{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        my $decoded = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $size = hex $1;
            last if $size == 0;
            $decoded .= substr($body, 0, $size, '');
            $body =~ s/^\r\n//;
        }
        $body = $decoded;
    }

    $r->{body} = $body;

    return $r;
}

# the body decoded as a JSON object; a failure if it is not one

my $JSON = JSON::PP->new->utf8->allow_nonref(0);

sub json {
    my ($self, $r, $name) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    my $body = ref $r ? $r->{body} : $r;
    my $j = eval { $JSON->decode($body // '') };

    if (ref $j eq 'HASH') {
        return $j;
    }

    Test::More::fail(($name // 'response') . ' body is a JSON object');
    Test::More::diag('body: ' . _printable($body // ''));
    Test::More::diag("error: $@") if $@;

    return {};
}

# checks an answer of the module: the status, JSON type, no-store, a JSON
# object body with a request_id of 32 hex digits, and the fields expected
# (undef: present and null; JSON::PP::true/false: a JSON boolean); with
# keys => [...] the body has exactly these fields (and request_id)
#
#     my $j = $t->answer($r, 400, { code => 'invalid_replica_id',
#                                   replica_id => undef }, 'empty id');

sub answer {
    my ($self, $r, $status, $fields, $name, %o) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    $name //= "$status answer";

    Test::More::is($r->{status}, $status, "$name: status $status")
        or Test::More::diag('answer: ' . _printable($r->{raw}));
    Test::More::like($r->{headers}{'content-type'} // '',
                     qr{^application/json\s*(?:;|\z)}, "$name: json type");
    Test::More::is($r->{headers}{'cache-control'}, 'no-store',
                   "$name: no-store");

    my $j = $self->json($r, $name);

    Test::More::like($j->{request_id} // '', qr/^[0-9a-f]{32}\z/,
                     "$name: request_id");

    for my $k (sort keys %{ $fields // {} }) {
        my $want = $fields->{$k};
        my $got = $j->{$k};

        if (!defined $want) {
            Test::More::ok(exists $j->{$k} && !defined $got,
                           "$name: $k is null")
                or Test::More::diag("$k: " . _show($got));

        } elsif (JSON::PP::is_bool($want)) {
            Test::More::ok(JSON::PP::is_bool($got) && !!$got == !!$want,
                           "$name: $k is " . ($want ? 'true' : 'false'))
                or Test::More::diag("$k: " . _show($got));

        } elsif (ref $want eq 'Regexp') {
            Test::More::like($got, $want, "$name: $k");

        } else {
            Test::More::is($got, $want, "$name: $k");
        }
    }

    if ($o{keys}) {
        Test::More::is(join(',', sort keys %$j),
                       join(',', sort @{ $o{keys} }, 'request_id'),
                       "$name: exactly these fields");
    }

    return $j;
}

sub _show {
    my ($v) = @_;
    return 'missing' unless defined $v;
    return JSON::PP::is_bool($v) ? ($v ? 'true' : 'false') . ' (boolean)'
           : ref $v ? JSON::PP->new->canonical->encode($v) : "\"$v\"";
}

sub _printable {
    my ($s) = @_;
    $s =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
    return $s;
}

sub printable { _printable($_[1]) }

# a forked raw-socket upstream playing a script, see TavusTest::RawMock

sub raw_mock {
    my ($self, %a) = @_;

    my $m = TavusTest::RawMock->new(
        port   => $a{port} // $self->port($a{name} // 'raw'),
        script => $a{script} // [ [ "HTTP/1.1 200 OK\r\n"
                                    . "Content-Length: 0\r\n\r\n" ] ],
        dir    => "$self->{prefix}/mock-" . ++$self->{mock_seq},
    );

    push @{ $self->{mocks} }, $m;

    return $m;
}

# a DNS server on 127.0.0.1 (dnsmasq, Debian package dnsmasq-base), see
# TavusTest::Dnsmasq; its port is the port of NAME (%%PORT_dns%%)

sub dnsmasq {
    my ($self, %a) = @_;

    my $name = $a{name} // 'dns';

    my $d = TavusTest::Dnsmasq->new(
        name => $name,
        args => $a{args} // [],
        dir  => $self->{prefix},
        port => sub { TavusProc::free_port(used => $self->{used}, udp => 1) },
    );

    $self->{ports}{$name} = $d->port;
    push @{ $self->{mocks} }, $d;

    return $d;
}

# http{}-level config text of an nginx-based mock Tavus API

sub mock_tavus {
    my ($self, %a) = @_;

    my $name = $a{name} // 'tavus';
    die "mock_tavus: name must match \\w+" unless $name =~ /^\w+$/;

    my $port = $a{port} // $self->port($name);
    my $key = $a{key} // die "mock_tavus: no key";
    # a regex in the template: exact and case-sensitive, unlike map strings
    die "mock_tavus: key must match [A-Za-z0-9_-]+"
        unless $key =~ /^[A-Za-z0-9_-]+$/;

    my $text = $self->read_file("$REPO/t/lib/mock-tavus.conf");
    die "mock_tavus: cannot read t/lib/mock-tavus.conf" if $text eq '';

    $text =~ s/%%MOCK_NAME%%/$name/g;
    $text =~ s/%%MOCK_PORT%%/$port/g;
    $text =~ s/%%MOCK_KEY%%/$key/g;

    return $text;
}

# the mock Tavus access log: a list of
# { connection, requests, method, uri, key (ok/bad), status }

sub mock_log {
    my ($self, $name) = @_;
    return $self->log_entries(($name // 'tavus') . '.access.log');
}

# the lines of a log of the prefix as hashes: with FIELDS, the names of
# its "|"-separated fields; without, its "name=value" words

sub log_entries {
    my ($self, $file, $fields) = @_;
    return map { _log_fields($_, $fields) } split /\n/, $self->read_file($file);
}

# the entry of a log whose field NAME is VALUE, once nginx has written it
# (see wait_log); {} when it does not come in time, or VALUE is empty

sub log_entry {
    my ($self, $file, $fields, $name, $value, %o) = @_;

    return {} unless defined $value && length $value;

    return $self->wait_log($file, sub {
        my $e = _log_fields($_, $fields);
        return ($e->{$name} // '') eq $value ? $e : undef;
    }, %o) // {};
}

sub _log_fields {
    my ($line, $fields) = @_;

    return { map { split /=/, $_, 2 } split / /, $line } unless $fields;

    my %e;
    @e{@$fields} = split /\|/, $line;
    return \%e;
}

# an upstream answer for raw mocks: reply('404 Not Found', $body,
# Name => value, ...); with a body, its Content-Length is added

sub reply {
    my ($status, $body, @headers) = @_;

    return "HTTP/1.1 $status\r\n" . _header_lines(@headers)
           . (defined $body ? 'Content-Length: ' . length($body) . "\r\n" : '')
           . "\r\n" . ($body // '');
}

# a chunked upstream answer: chunked('200 OK', [ '{"a":', '1}' ], Name =>
# value, ...), each string a chunk, then the last chunk

sub chunked {
    my ($status, $chunks, @headers) = @_;

    return "HTTP/1.1 $status\r\n" . _header_lines(@headers)
           . "Transfer-Encoding: chunked\r\n\r\n"
           . join('', map { sprintf("%x\r\n%s\r\n", length, $_) } @$chunks)
           . "0\r\n\r\n";
}

# "Name: value\r\n" lines of a list of names and values

sub _header_lines {
    my (@headers) = @_;

    my $h = '';
    while (my ($n, $v) = splice @headers, 0, 2) {
        $h .= "$n: $v\r\n";
    }

    return $h;
}

# configuration text a test makes many of:
#
#   delete_location(PATH, DIRECTIVE, ...)
#
#       location ~ ^/PATH/(?<replica>[^/]*)$ {
#           tavus_delete_replica $replica;
#           DIRECTIVE
#       }
#
#   gateway(DIRECTIVE, ...)           server { listen 127.0.0.1:%%PORT_gw%%;
#                                     with delete_location('replicas', ...) }
#   upstream_group(NAME, [ ADDRESS, ... ], DIRECTIVE, ...)
#
#       upstream NAME {
#           server ADDRESS;
#           DIRECTIVE
#       }
#
# DIRECTIVEs are given with their ";", and the empty ones are left out.

sub delete_location {
    my ($path, @directives) = @_;

    return "        location ~ ^/$path/(?<replica>[^/]*)\$ {\n"
           . "            tavus_delete_replica \$replica;\n"
           . join('', map { "            $_\n" } grep { length } @directives)
           . "        }\n";
}

sub gateway {
    my (@directives) = @_;

    return "    server {\n"
           . "        listen 127.0.0.1:%%PORT_gw%%;\n\n"
           . delete_location('replicas', @directives)
           . "    }\n";
}

sub upstream_group {
    my ($name, $servers, @directives) = @_;

    return "    upstream $name {\n"
           . join('', map { "        server $_;\n" } @$servers)
           . join('', map { "        $_\n" } grep { length } @directives)
           . "    }\n";
}

#   server_block(LISTEN, ITEM, ...)
#
#       server {
#           listen 127.0.0.1:%%PORT_NAME%% PARAMETER ...;
#           ITEM
#       }
#
# LISTEN is "NAME PARAMETER ...": the port's name, then any parameters of
# listen ("gw reuseport", "tls ssl").  An ITEM of one line is a directive
# (or a block written on one line); one of several lines, such as what
# delete_location() returns, is put in as it is, after a blank line.

sub server_block {
    my ($listen, @items) = @_;
    my ($port, @parameters) = split ' ', $listen;

    return "    server {\n"
           . "        listen "
           . join(' ', "127.0.0.1:%%PORT_$port%%", @parameters) . ";\n"
           . join('', map { /\n/ ? "\n$_" : "        $_\n" }
                      grep { length } @items)
           . "    }\n";
}

package TavusTest::RawMock;

use strict;
use warnings;

our @ISA = ('TavusTest::Forked');

use IO::Socket::INET ();
use IO::Select ();
use Socket qw(SOL_SOCKET SO_LINGER IPPROTO_TCP TCP_NODELAY);
use POSIX ();
use Time::HiRes ();
use Fcntl qw(:flock O_RDWR O_CREAT);

sub new {
    my ($class, %a) = @_;

    my $self = bless { %a, owner => $$ }, $class;

    mkdir $self->{dir} or die "mkdir $self->{dir}: $!";

    my $listen = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => $self->{port},
        Proto     => 'tcp',
        Listen    => 128,
        ReuseAddr => 1,
    ) or die "raw mock: cannot listen on 127.0.0.1:$self->{port}: $!";

    my $control = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => 0,
        Proto     => 'tcp',
        Listen    => 16,
        ReuseAddr => 1,
    ) or die "raw mock: cannot listen for control: $!";

    $self->{control_port} = $control->sockport;

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        # not holding prove's pipe open, whatever happens to the test
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>>', "$self->{dir}/errors";
        eval { $self->_serve($listen, $control) };
        print STDERR $@ if $@;
        POSIX::_exit(0);
    }

    close $listen;
    close $control;

    $self->{pid} = $pid;

    return $self;
}

sub port { $_[0]{port} }

# the mock's main loop: one child process a connection

sub _serve {
    my ($self, $listen, $control) = @_;

    setpgrp(0, 0);

    $SIG{CHLD} = 'IGNORE';
    $SIG{PIPE} = 'IGNORE';
    $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);

    my $parent = getppid();
    my $connections = 0;
    my $sel = IO::Select->new($listen, $control);

    my $accept = sub {
        my $c = $listen->accept or return 0;
        $connections++;
        my $pid = fork();
        if (defined $pid && $pid == 0) {
            close $listen;
            close $control;
            eval { $self->_connection($c) };
            print STDERR $@ if $@;
            POSIX::_exit(0);
        }
        close $c;
        return 1;
    };

    while (1) {
        POSIX::_exit(0) if getppid() != $parent;

        for my $fh ($sel->can_read(1)) {
            if ($fh == $listen) {
                $accept->();

            } else {
                # a barrier: accept whatever is queued, then report the count
                my $c = $control->accept or next;
                $listen->blocking(0);
                1 while $accept->();
                $listen->blocking(1);
                syswrite $c, "$connections\n";
                close $c;
            }
        }
    }
}

sub _connection {
    my ($self, $c) = @_;

    setsockopt($c, IPPROTO_TCP, TCP_NODELAY, 1);

    my $conn = $self->_next_index_of('connection');
    open my $stream, '>>:raw', sprintf("%s/stream-%04d", $self->{dir}, $conn)
        or die "stream: $!";
    $stream->autoflush(1);

    # this process serves this one connection: its state is the object's
    @$self{qw(c stream buf)} = ($c, $stream, '');

    while (1) {
        my $end;

        while (($end = index($self->{buf}, "\r\n\r\n")) < 0) {
            return unless IO::Select->new($c)->can_read(30);
            return unless $self->_read_more;
        }

        my $request = substr($self->{buf}, 0, $end + 4, '');
        my $index = $self->_next_index_of('request');

        $self->_record('request', $index, $request);

        my @script = @{ $self->{script} };
        my $entry = $script[ $index <= @script ? $index - 1 : $#script ];

        my $more = $self->_play($c, $entry, $index);
        $self->_record('answered', $index) if $more || $self->{played};

        return unless $more;
    }
}

# reads what the peer sent into the buffer (and the stream file): false
# when the peer closed or reset the connection

sub _read_more {
    my ($self) = @_;

    my $n = sysread($self->{c}, my $chunk, 65536);
    return 0 unless $n;

    print { $self->{stream} } $chunk;
    $self->{buf} .= $chunk;

    return 1;
}

# an event of request N: a file NAME-N in the mock's directory, made at
# once (written aside, then renamed)

sub _record {
    my ($self, $name, $index, $content) = @_;

    my $file = sprintf("%s/%s-%06d", $self->{dir}, $name, $index);
    open my $fh, '>:raw', "$file.tmp" or die "$name: $!";
    print $fh $content // sprintf('%.3f', Time::HiRes::time());
    close $fh;
    rename "$file.tmp", $file;
}

sub _next_index_of {
    my ($self, $what) = @_;

    sysopen my $fh, "$self->{dir}/$what-counter", O_RDWR | O_CREAT
        or die "counter: $!";
    flock $fh, LOCK_EX;
    my $n = <$fh> // 0;
    $n++;
    seek $fh, 0, 0;
    truncate $fh, 0;
    syswrite $fh, "$n\n";
    close $fh;

    return $n;
}

# plays one script entry; returns false when the connection is done
# ({played} tells whether the whole entry was played)

sub _play {
    my ($self, $c, $entry, $index) = @_;

    my $bytewise = 0;
    $self->{played} = 0;

    for my $step (ref $entry eq 'ARRAY' ? @$entry : ($entry)) {

        if (!ref $step) {
            if ($bytewise) {
                for my $byte (split //, $step) {
                    _write_all($c, $byte) or return 0;
                    Time::HiRes::sleep(0.001);
                }
            } else {
                _write_all($c, $step) or return 0;
            }

        } elsif (exists $step->{sleep}) {
            Time::HiRes::sleep($step->{sleep});

        } elsif (exists $step->{wait}) {
            # a slow upstream that sees its peer go: sleeps, but a peer
            # that closes meanwhile ends the connection (event "eof")
            my $deadline = Time::HiRes::time() + $step->{wait};
            my $sel = IO::Select->new($c);

            while ((my $left = $deadline - Time::HiRes::time()) > 0) {
                next unless $sel->can_read($left);
                next if $self->_read_more;
                $self->_record('eof', $index);
                return 0;
            }

        } elsif ($step->{bytewise}) {
            $bytewise = 1;

        } elsif ($step->{close}) {
            close $c;
            $self->{played} = 1;
            return 0;

        } elsif ($step->{reset}) {
            setsockopt($c, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
            close $c;
            $self->{played} = 1;
            return 0;

        } elsif ($step->{hang}) {
            # never answer; the harness kills us (or give up after a minute)
            Time::HiRes::sleep(60);
            return 0;

        } else {
            die "raw mock: unknown step";
        }
    }

    $self->{played} = 1;

    return 1;
}

sub _write_all {
    my ($c, $data) = @_;

    while (length $data) {
        my $n = syswrite($c, $data);
        return 0 unless $n;
        substr($data, 0, $n, '');
    }

    return 1;
}

# the exact requests received, in order

sub requests {
    my ($self) = @_;

    opendir my $dh, $self->{dir} or return ();
    my @files = sort grep { /^request-\d+$/ } readdir $dh;
    closedir $dh;

    return map { _slurp("$self->{dir}/$_") } @files;
}

# all bytes received, connection after connection

sub received {
    my ($self) = @_;

    opendir my $dh, $self->{dir} or return '';
    my @files = sort grep { /^stream-\d+$/ } readdir $dh;
    closedir $dh;

    return join '', map { _slurp("$self->{dir}/$_") } @files;
}

# connections accepted so far, counting those still waiting in the
# listen queue (a barrier through the control port)

sub connections {
    my ($self) = @_;

    return $self->{final_connections} unless $self->{pid};

    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $self->{control_port},
        Proto    => 'tcp',
        Timeout  => 5,
    ) or die "raw mock: control: $!";

    my $sel = IO::Select->new($s);
    $sel->can_read(5) or die "raw mock: control: no answer";
    my $n = <$s>;
    close $s;

    chomp $n;
    return $n;
}

# request N (counting from 1, over all connections) had the event NAME:
# "request" (received), "answered" (its script entry played to the end),
# "eof" (the peer closed during a wait step)

sub seen {
    my ($self, $name, $n) = @_;
    return -e sprintf("%s/%s-%06d", $self->{dir}, $name, $n);
}

# waits until it has; false after timeout seconds (TAVUS_TIMEOUT)

sub wait_for {
    my ($self, $name, $n, $timeout) = @_;
    return TavusProc::wait_until(sub { $self->seen($name, $n) },
                                 timeout => $timeout // $TIMEOUT);
}

# the events so far, "NAME-N ..." in order, for a diagnostic

sub events {
    my ($self) = @_;

    my %order = (request => 0, eof => 1, answered => 2);

    opendir my $dh, $self->{dir} or return '';
    my @e = map { /^(\w+)-0*(\d+)$/ && exists $order{$1} ? [ $1, $2 ] : () }
            readdir $dh;
    closedir $dh;

    return join ' ', map { "$_->[0]-$_->[1]" }
                     sort { $a->[1] <=> $b->[1]
                            || $order{ $a->[0] } <=> $order{ $b->[0] } } @e;
}

sub _slurp { TavusProc::slurp($_[0]) }

# stopping, for TavusTest::Forked: the count of connections kept first

sub _stop {
    my ($self) = @_;

    $self->{final_connections} = eval { $self->connections };

    kill 'KILL', -$self->{pid}, $self->{pid};
    waitpid($self->{pid}, 0);
}


# dnsmasq on 127.0.0.1, answering from what its arguments say, every
# query logged (--log-queries) to NAME.log in the prefix:
#
#     my $dns = $t->dnsmasq(args => [ '--address=/tavusapi.com/127.0.0.1' ]);
#     $dns->port, $dns->log, $dns->reread (SIGHUP: it re-reads its hosts
#     files), $dns->running, $dns->stop
#
# Ready once its UDP socket is bound.  A port free for TCP and UDP when
# chosen may be taken before dnsmasq binds it: then another, three times.
# A watchdog stops it if the test goes away; the harness stops it with the
# mocks.

package TavusTest::Dnsmasq;

use strict;
use warnings;

our @ISA = ('TavusTest::Forked');

my $DNSMASQ = $ENV{TAVUS_DNSMASQ} // '/usr/sbin/dnsmasq';

sub new {
    my ($class, %a) = @_;

    Test::More::BAIL_OUT("no $DNSMASQ: apt-get install dnsmasq-base")
        unless -x $DNSMASQ;

    my $self = bless { %a, owner => $$, log => "$a{dir}/$a{name}.log" },
                     $class;
    my $user = getpwuid($>) // 'root';

    for my $try (1 .. 3) {
        my $port = $a{port}->();

        my $pid = TavusProc::spawn(
            group => 1, out => $self->{log}, name => 'dnsmasq',
            cmd => [ $DNSMASQ, '--keep-in-foreground', '--conf-file=/dev/null',
                     "--port=$port", '--listen-address=127.0.0.1',
                     '--bind-interfaces', '--no-resolv', '--no-hosts',
                     "--user=$user", "--pid-file=$a{dir}/$a{name}.pid",
                     '--log-queries', '--log-facility=-', @{ $a{args} } ]);

        my $watchdog = TavusProc::watchdog($pid);

        # bound: 127.0.0.1:port in /proc/net/udp
        my $hex = sprintf '0100007F:%04X', $port;
        my $up = TavusProc::wait_until(sub {
            return 'exited' if defined TavusProc::reap($pid, 0);
            return TavusProc::slurp('/proc/net/udp') =~ /\s\Q$hex\E\s/;
        }, timeout => $TIMEOUT);

        if ($up && $up ne 'exited') {
            @$self{qw(port pid watchdog)} = ($port, $pid, $watchdog);
            return $self;
        }

        TavusProc::stop($pid, 'KILL', 2) unless $up;
        TavusProc::stop_watchdog($watchdog);

        die "dnsmasq does not start:\n" . $self->log
            unless $up && $try < 3;
    }
}

sub port { $_[0]{port} }
sub log { TavusProc::slurp($_[0]{log}) }

sub reread {
    my ($self) = @_;
    return kill 'HUP', $self->{pid};
}

sub running {
    my ($self) = @_;

    return 0 unless $self->{pid};
    return 1 unless defined TavusProc::reap($self->{pid}, 0);

    delete $self->{pid};
    return 0;
}

sub _stop {
    my ($self) = @_;
    TavusProc::stop($self->{pid}, 'TERM', 5);
}

# what the harness's forked helpers share: stopped ({pid}: _stop, their
# own way, then the watchdog, if any) by the process that started them
# ({owner}) only, once, at the latest when they go

package TavusTest::Forked;

use strict;
use warnings;

sub stop {
    my ($self) = @_;

    return unless $$ == $self->{owner};

    $self->_stop if $self->{pid};
    delete $self->{pid};

    TavusProc::stop_watchdog(delete $self->{watchdog});
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $@, $!);
    $self->stop;
}

1;
