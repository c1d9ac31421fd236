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
#   TavusTest->new(no_module => 1?)   temporary prefix; no_module only for
#                                     the harness's own test (t/00-harness.t)
#   $t->require_module                BAIL_OUT unless the module is built
#   $t->static                        true when nginx has the module built in
#   $t->nginx_version                 the version of the nginx under test as
#                                     a number, as nginx's own nginx_version:
#                                     1026003 for 1.26.3 (from `nginx -v`)
#   $t->port(NAME)                    a free 127.0.0.1 port, memoised by name
#   $t->prefix, $t->write_file(NAME, CONTENT), $t->read_file(NAME)
#   $t->run(HTTP_BLOCK)               write nginx.conf, start nginx, wait for
#                                     every `listen` port; %%PORT_name%% and
#                                     %%PREFIX%% are replaced
#   $t->nginx_t(HTTP_BLOCK)           (passed, output) of nginx -t
#   $t->http(port =>, method =>, path =>, headers => [..], body =>, raw =>)
#                                     { status, headers, header_list, body,
#                                       raw, timed_out, json_checked }
#                                     every application/json body received
#                                     must be valid JSON, or the test fails
#                                     (see json_body_error; no_json_check
#                                     => 1 turns this off for one request)
#   $t->json_body_error($r)           why a response's JSON body is not
#                                     valid JSON, '' if it is, undef if the
#                                     response has no JSON body to check
#   $t->json($r)                      the body as a JSON object, or a failure
#   $t->answer($r, STATUS, {FIELDS}, NAME, keys => [..])
#                                     the checks every module answer passes
#   $t->raw_mock(port =>, script =>)  a TavusTest::RawMock: ->requests,
#                                     ->received, ->connections, ->stop
#   $t->mock_tavus(name =>, port =>, key =>)
#                                     http{} text of t/lib/mock-tavus.conf
#   $t->mock_log(NAME)                its access log as a list of hashes
#   $t->error_log                     this run's error log
#   $t->stop                          stop mocks and nginx; a failure if the
#                                     error log has [alert], [crit], [emerg]
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

use strict;
use warnings;

use Exporter 'import';
our @EXPORT_OK = qw(reply);

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

our $VERSION = '0.1';

my $REPO = Cwd::abs_path(
    File::Spec->catdir(File::Basename::dirname(__FILE__), '..', '..'));

# seconds: readiness, client requests, stopping (more under valgrind)
my $TIMEOUT = $ENV{TAVUS_TIMEOUT} || 5;

my @LIVE;                 # harness objects that may own processes

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

# a free TCP port on 127.0.0.1, chosen now, the same one for the same name
#
# Ports are taken outside the kernel's ephemeral range: a port from that
# range can become the local port of one of nginx's own upstream
# connections, and a connection to a port nobody listens on (a "refused"
# upstream) then connects to itself (TCP simultaneous open) and reads its
# own request back instead of being refused.

my @EPHEMERAL = do {
    my @r;
    if (open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
        @r = split ' ', <$fh> // '';
        close $fh;
    }
    @r == 2 ? @r : (32768, 60999);
};

sub _port_range {
    my ($lo, $hi) = @EPHEMERAL;

    return (10000, $lo - 1) if $lo - 1 - 10000 >= 1000;
    return ($hi + 1, 65535) if 65535 - ($hi + 1) >= 1000;
    return (1025, 65535);
}

sub port {
    my ($self, $name) = @_;

    $name //= 'default';
    return $self->{ports}{$name} if $self->{ports}{$name};

    my ($lo, $hi) = _port_range();

    for (1 .. 500) {
        my $port = $lo + int(rand($hi - $lo + 1));

        next if $self->{used}{$port};

        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => $port,
            Proto     => 'tcp',
            Listen    => 1,
        ) or next;

        close $s;

        $self->{used}{$port} = 1;

        return $self->{ports}{$name} = $port;
    }

    die "no distinct free port found for $name in $lo-$hi";
}

sub write_file {
    my ($self, $name, $content) = @_;

    my $path = $name =~ m{^/} ? $name : "$self->{prefix}/$name";

    open my $fh, '>:raw', $path or die "cannot write $path: $!";
    print $fh $content;
    close $fh or die "cannot close $path: $!";

    return $path;
}

sub read_file {
    my ($self, $name) = @_;

    my $path = $name =~ m{^/} ? $name : "$self->{prefix}/$name";

    open my $fh, '<:raw', $path or return '';
    local $/;
    my $content = <$fh>;
    close $fh;

    return $content // '';
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
worker_processes 1;
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

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        setpgrp(0, 0);
        open STDOUT, '>>', "$p/nginx.stderr";
        open STDERR, '>&', \*STDOUT;
        my @wrapper = split ' ', $ENV{TAVUS_WRAPPER} // '';
        exec @wrapper, $self->{nginx}, '-p', "$p/", '-c', "$p/nginx.conf",
             '-e', "$p/error.log"
            or POSIX::_exit(127);
    }

    $self->{pid} = $pid;
    $self->{watchdog} = _watchdog($pid);

    my $deadline = Time::HiRes::time() + $TIMEOUT;
    my @waiting = @ports;

    while (@waiting) {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            delete $self->{pid};
            my $why = $self->error_log . $self->read_file('nginx.stderr');
            die "nginx exited at start (status $?):\n$why";
        }

        @waiting = grep { !_can_connect($_) } @waiting;
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

# a process that stops nginx (its process group) if the test process goes
# away without cleaning up (SIGKILL, a CI timeout)

sub _watchdog {
    my ($pid) = @_;

    my $parent = $$;
    my $wd = fork() // die "fork: $!";

    return $wd if $wd;

    $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP PIPE);
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';

    Time::HiRes::sleep(0.2) while getppid() == $parent;

    kill 'QUIT', -$pid;
    Time::HiRes::sleep(1);
    kill 'KILL', -$pid;

    POSIX::_exit(0);
}

sub _can_connect {
    my ($port) = @_;

    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $port,
        Proto    => 'tcp',
    ) or return 0;

    close $s;
    return 1;
}

sub error_log {
    my ($self) = @_;
    return $self->read_file('error.log');
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

    if (my $wd = delete $self->{watchdog}) {
        kill 'KILL', $wd;
        waitpid($wd, 0);
    }

    my $pid = delete $self->{pid} or return;

    my @bad;

    kill 'QUIT', $pid;
    my $status = _reap($pid, $TIMEOUT);

    unless (defined $status) {
        push @bad, "nginx did not stop in ${TIMEOUT}s after SIGQUIT";
        kill 'TERM', $pid;
        $status = _reap($pid, 2);
        unless (defined $status) {
            kill 'KILL', -$pid, $pid;
            $status = _reap($pid, 2);
        }
    }

    # workers left behind by a master killed or crashed
    kill 'KILL', -$pid;

    push @bad, sprintf('nginx exit status %d, signal %d', $status >> 8,
                       $status & 127)
        if defined $status && $status != 0;

    push @bad, grep { /\[(?:alert|crit|emerg)\]/ } split /\n/, $self->error_log;

    return @bad ? @bad : (1);
}

# the wait status of the process, or undef if still running after timeout

sub _reap {
    my ($pid, $timeout) = @_;

    my $deadline = Time::HiRes::time() + $timeout;

    while (Time::HiRes::time() < $deadline) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        return $? if $r == $pid;
        return 0 if $r == -1;
        Time::HiRes::sleep(0.01);
    }

    return undef;
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
#   body, raw (exact bytes to send instead), timeout (5)

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
               . "Connection: close\r\n";

        while (my ($n, $v) = splice @h, 0, 2) {
            $req .= "$n: $v\r\n";
        }

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
    ) or return _fail_response("cannot connect to 127.0.0.1:$port: $!");

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

# A harness-level assertion: every body the suite receives that says it
# is application/json must be valid JSON (DESIGN.md: "the body is always
# valid JSON"), whatever the test itself checks.  A failing test is added
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

    $name //= 'tavus';

    my @entries;

    for (split /\n/, $self->read_file("$name.access.log")) {
        my %e = map { split /=/, $_, 2 } split / /;
        push @entries, \%e;
    }

    return @entries;
}

# an upstream answer for raw mocks: reply('404 Not Found', $body,
# Name => value, ...); with a body, its Content-Length is added

sub reply {
    my ($status, $body, @headers) = @_;

    my $h = '';
    while (my ($n, $v) = splice @headers, 0, 2) {
        $h .= "$n: $v\r\n";
    }

    return "HTTP/1.1 $status\r\n$h"
           . (defined $body ? 'Content-Length: ' . length($body) . "\r\n" : '')
           . "\r\n" . ($body // '');
}

package TavusTest::RawMock;

use strict;
use warnings;

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

    my $sel = IO::Select->new($c);
    my $buf = '';

    while (1) {
        my $end;

        while (($end = index($buf, "\r\n\r\n")) < 0) {
            return unless $sel->can_read(30);
            my $n = sysread($c, my $chunk, 65536);
            return unless $n;
            print $stream $chunk;
            $buf .= $chunk;
        }

        my $request = substr($buf, 0, $end + 4, '');
        my $index = $self->_next_index_of('request');

        my $file = sprintf("%s/request-%06d", $self->{dir}, $index);
        open my $fh, '>:raw', "$file.tmp" or die "request: $!";
        print $fh $request;
        close $fh;
        rename "$file.tmp", $file;

        my @script = @{ $self->{script} };
        my $entry = $script[ $index <= @script ? $index - 1 : $#script ];

        return unless $self->_play($c, $entry);
    }
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

sub _play {
    my ($self, $c, $entry) = @_;

    my $bytewise = 0;

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

        } elsif ($step->{bytewise}) {
            $bytewise = 1;

        } elsif ($step->{close}) {
            close $c;
            return 0;

        } elsif ($step->{reset}) {
            setsockopt($c, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
            close $c;
            return 0;

        } elsif ($step->{hang}) {
            # never answer; the harness kills us (or give up after a minute)
            Time::HiRes::sleep(60);
            return 0;

        } else {
            die "raw mock: unknown step";
        }
    }

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

sub _slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or return '';
    local $/;
    my $c = <$fh>;
    return $c // '';
}

sub stop {
    my ($self) = @_;

    return unless $$ == $self->{owner};
    return unless $self->{pid};

    $self->{final_connections} = eval { $self->connections };

    my $pid = delete $self->{pid};

    kill 'KILL', -$pid;
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $@, $!);
    $self->stop;
}

1;
