#!/usr/bin/perl

# make soak: a bounded load of the module in a real nginx (master and
# worker_processes 2) with `nginx -s reload` every few seconds, checking
# every response against the status and JSON code its request must get.
#
# The gateway fronts a mock Tavus API (t/lib/mock-tavus.conf) and broken
# upstreams served by a second nginx: a 500, an answer with two
# Content-Length headers, and a port nobody listens on.  The request mix
# (weights in @KINDS): valid deletes through a keepalive group and a
# direct address, invalid ids, invalid hard flags, hard deletes that are
# denied, other methods, ids the upstream refuses, a key it rejects,
# failing and broken upstream answers, and the metrics page.
#
# It fails (exit 1) when a response has an unexpected status or code or is
# not valid JSON, on any socket error (refused, reset, timeout, a
# truncated answer), on any [alert], [crit] or [emerg] in the gateway's
# error log, when a reload did not take, or when the workers' resident
# memory at the end exceeds what it was after the warm-up by more than
# SOAK_RSS_TOLERANCE percent (default 10).
#
# A request that finds its kept-alive client connection closed by nginx
# before a byte of the answer (an old worker closing its idle connections
# at a reload: the request was never read) is re-sent on a new connection,
# as HTTP clients do; these are counted and printed, not errors.
#
# Environment:
#   SOAK_SECONDS        duration of the load (default 30)
#   SOAK_CONNECTIONS    concurrent client connections (default 64)
#   SOAK_RELOAD_EVERY   seconds between reloads (default 3)
#   SOAK_WARMUP         seconds of load before the first RSS figure and
#                       the first reload (default 5)
#   SOAK_RSS_TOLERANCE  percent (default 10)
#   SOAK_NGINX          the nginx binary or a wrapper (default
#                       /usr/sbin/nginx; build/asan/nginx-asan works)
#   SOAK_MODULE         the module (default build/ngx_http_tavus_module.so)
#   SOAK_KEEP=1         keep the prefix directory (its path is printed)

use strict;
use warnings;

use Cwd ();
use File::Basename ();
use File::Temp ();
use IO::Socket::INET ();
use IO::Select ();
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes ();
use JSON::PP ();
use Errno qw(EAGAIN EWOULDBLOCK EINPROGRESS EINTR);

use lib File::Basename::dirname(Cwd::abs_path(__FILE__)) . '/../t/lib';
use TavusProc qw();

$| = 1;

my $REPO = Cwd::abs_path(File::Basename::dirname(__FILE__) . '/..');

my $SECONDS = $ENV{SOAK_SECONDS} // 30;
my $CONNECTIONS = $ENV{SOAK_CONNECTIONS} // 64;
my $RELOAD_EVERY = $ENV{SOAK_RELOAD_EVERY} // 3;
my $WARMUP = $ENV{SOAK_WARMUP} // ($SECONDS >= 20 ? 5 : $SECONDS / 4);
my $TOLERANCE = $ENV{SOAK_RSS_TOLERANCE} // 10;
my $NGINX = $ENV{SOAK_NGINX} // '/usr/sbin/nginx';
my $MODULE = $ENV{SOAK_MODULE} // "$REPO/build/ngx_http_tavus_module.so";
my $TIMEOUT = 10;

die "soak: no module at $MODULE (make build)\n" unless -f $MODULE;

my $KEY = 'soak-Key_' . join('', map { sprintf '%x', int rand 16 } 1 .. 16);

my $prefix = File::Temp::tempdir('tavus-soak-XXXXXX', TMPDIR => 1,
                                 CLEANUP => !$ENV{SOAK_KEEP});
print "soak: prefix $prefix\n" if $ENV{SOAK_KEEP};

# ports: the harness's policy, outside the kernel's ephemeral range
my %used;
my %port = map { $_ => TavusProc::free_port(used => \%used) }
           qw(gw mock fail invalid refused);

# what is sent, and what must come back: [ name, weight, method, path
# (R: a fresh valid-looking id), status, code (undef: a deletion) ]

my @KINDS = (
    [ delete_kept     => 8, 'DELETE', '/k/R',           200, undef ],
    [ delete_direct   => 2, 'DELETE', '/d/R',           200, undef ],
    [ invalid_id      => 3, 'DELETE', '/k/bad.id',      400,
      'invalid_replica_id' ],
    [ id_too_long     => 1, 'DELETE', '/k/' . ('a' x 129), 400,
      'invalid_replica_id' ],
    [ hard_denied     => 3, 'DELETE', '/k/R?hard=true', 403,
      'hard_delete_denied' ],
    [ invalid_hard    => 1, 'DELETE', '/k/R?hard=yes',  400, 'invalid_hard' ],
    [ get             => 1, 'GET',    '/k/R',           405,
      'method_not_allowed' ],
    [ upstream_400    => 2, 'DELETE', '/k/notareplica', 400,
      'upstream_client_error' ],
    [ rejected_key    => 1, 'DELETE', '/badkey/R',      502,
      'upstream_rejected_key' ],
    [ upstream_500    => 2, 'DELETE', '/fail/R',        502, 'upstream_error' ],
    [ upstream_broken => 2, 'DELETE', '/invalid/R',     502,
      'upstream_invalid_response' ],
    [ refused         => 1, 'DELETE', '/refused/R',     502, 'upstream_error' ],
    [ metrics         => 1, 'GET',    '/metrics',       200, '-metrics' ],
);

my @WHEEL = map { my $k = $_; ($k) x $k->[1] } @KINDS;

# the upstreams: an nginx without the module

my $mock_conf = TavusProc::slurp("$REPO/t/lib/mock-tavus.conf");
$mock_conf =~ s/%%MOCK_NAME%%/tavus/g;
$mock_conf =~ s/%%MOCK_PORT%%/$port{mock}/g;
$mock_conf =~ s/%%MOCK_KEY%%/$KEY/g;

my $user = $> == 0 ? 'root' : undef;

# a broken upstream: a server on the port of NAME that answers every
# request with what the location does

sub broken_server {
    my ($name, $location) = @_;
    return "    server {\n"
           . "        listen 127.0.0.1:$port{$name};\n"
           . "        default_type application/json;\n"
           . "        keepalive_requests 100000;\n"
           . "        location / { $location }\n"
           . "    }\n\n";
}

mkdir "$prefix/mock";
TavusProc::spew("$prefix/mock/nginx.conf", TavusProc::nginx_conf(
    dir => "$prefix/mock", user => $user,
    http => "$mock_conf\n"
            . broken_server(fail => q{return 500 '{"error":"boom"}';})
            . broken_server(invalid => q{add_header Content-Length 2; }
                                       . q{return 200 '{}';})));

TavusProc::spew("$prefix/api.key", "$KEY\n");
chmod 0600, "$prefix/api.key";

# the gateway's delete locations: /PATH/ID to tavus_pass PASS

my $locations = '';

for my $l ([ k       => 'http://tavus_kept' ],
           [ d       => "http://127.0.0.1:$port{mock}" ],
           [ badkey  => 'http://tavus_kept', 'tavus_api_key wrong-key;' ],
           [ fail    => 'http://tavus_fail' ],
           [ invalid => 'http://tavus_invalid' ],
           [ refused => "http://127.0.0.1:$port{refused}" ])
{
    my ($path, $pass, @more) = @$l;
    $locations .= "        location ~ ^/$path/(?<id>[^/]*)\$ {\n"
                  . "            tavus_delete_replica \$id;\n"
                  . "            tavus_pass $pass;\n"
                  . join('', map { "            $_\n" } @more)
                  . "        }\n";
}

mkdir "$prefix/gw";
TavusProc::spew("$prefix/gw/nginx.conf", TavusProc::nginx_conf(
    dir => "$prefix/gw", user => $user, modules => [ $MODULE ],
    workers => 2, error_log => 'notice', http => <<"HTTP"));
    keepalive_requests 1000;

    tavus_metrics_zone soak 1m;

    upstream tavus_kept    { server 127.0.0.1:$port{mock};    keepalive 32; }
    upstream tavus_fail    { server 127.0.0.1:$port{fail};    keepalive 8; }
    upstream tavus_invalid { server 127.0.0.1:$port{invalid}; keepalive 8; }

    server {
        listen 127.0.0.1:$port{gw};
        tavus_api_key_file $prefix/api.key;
        tavus_connect_timeout 2s;
        tavus_read_timeout 5s;

$locations
        location = /metrics {
            tavus_metrics;
        }
    }
HTTP

END {
    local $?;
    TavusProc::stop_all('KILL', 5);
}

my $mock_pid = start("$prefix/mock", '/usr/sbin/nginx',
                     @port{qw(mock fail invalid)});
my $gw_pid = start("$prefix/gw", $NGINX, $port{gw});

# the load

my $JSON = JSON::PP->new->utf8;

my (%sent, %bad, @bad_samples, %socket_errors);
my ($done, $retried, $connections_opened, $id_seq) = (0, 0, 0, 0);
my (@conns, %by_fd);

my $sel_r = IO::Select->new;
my $sel_w = IO::Select->new;

my $start = Time::HiRes::time();
my $end = $start + $SECONDS;
my $warm_at = $start + $WARMUP;
my $last_reload_by = $end - ($SECONDS >= 15 ? 5 : 0);
my $next_reload = $warm_at + 0.5;
my ($warm_rss, $reloads, $reload_failures) = (undef, 0, 0);

open_conn() for 1 .. $CONNECTIONS;

while (1) {
    my $now = Time::HiRes::time();

    if (!defined $warm_rss && $now >= $warm_at) {
        $warm_rss = rss_figures($gw_pid);
    }

    if ($now < $end && defined $warm_rss && $RELOAD_EVERY > 0
        && $now >= $next_reload && $now < $last_reload_by)
    {
        reload();
        $next_reload = $now + $RELOAD_EVERY;
    }

    last if $now >= $end && !grep { $_->{busy} } @conns;

    my ($r, $w) = IO::Select->select($sel_r, $sel_w, undef, 0.05);

    for my $fh (@{ $w // [] }) {
        my $c = $by_fd{ fileno $fh } or next;
        write_conn($c);
    }

    for my $fh (@{ $r // [] }) {
        my $c = $by_fd{ fileno $fh } or next;
        read_conn($c);
    }

    $now = Time::HiRes::time();

    for my $c (@conns) {
        next unless $c->{busy} && $now - $c->{since} > $TIMEOUT;
        socket_error($c, 'timeout');
    }

    # keep the number of connections while the load lasts

    @conns = grep { !$_->{dead} } @conns;

    if ($now < $end) {
        open_conn() while @conns < $CONNECTIONS;
    }
}

my $elapsed = Time::HiRes::time() - $start;

my $final_rss = rss_figures($gw_pid);

close_conn($_) for @conns;

# stop: the gateway, then the mock

my $gw_exit = TavusProc::stop($gw_pid, 'QUIT', 20);
TavusProc::stop($mock_pid, 'QUIT', 20);

my $log = TavusProc::slurp("$prefix/gw/error.log");
my @alerts = grep { /\[(?:alert|crit|emerg)\]/ } split /\n/, $log;
my $reconfigured = () = $log =~ /: reconfiguring$/mg;

# the figures

my $failed = 0;
my $total_bad = 0;
$total_bad += $_ for values %bad;
my $total_socket = 0;
$total_socket += $_ for values %socket_errors;

printf "soak: %.1fs, %d connections, %d requests (%.0f/s), %d client"
       . " connections opened\n",
       $elapsed, $CONNECTIONS, $done, $done / $elapsed, $connections_opened;

for my $k (@KINDS) {
    my $name = $k->[0];
    printf "soak:   %-16s %7d  -> %d %-26s %s\n", $name, $sent{$name} // 0,
           $k->[4], ($k->[5] // 'deleted') =~ s/^-metrics$/metrics page/r,
           $bad{$name} ? "$bad{$name} UNEXPECTED" : 'all as expected';
}

printf "soak: unexpected answers: %d\n", $total_bad;
print "soak:   $_\n" for @bad_samples[0 .. ($#bad_samples < 9 ? $#bad_samples : 9)];
$failed ||= $total_bad;

printf "soak: socket errors: %d%s\n", $total_socket,
       $total_socket ? ' (' . join(', ', map { "$_ $socket_errors{$_}" }
                                             sort keys %socket_errors) . ')'
                     : '';
$failed ||= $total_socket;

printf "soak: re-sent after a kept-alive connection was closed at a reload:"
       . " %d\n", $retried;

printf "soak: reloads: %d sent, %d seen in the error log, %d failed\n",
       $reloads, $reconfigured, $reload_failures;
$failed ||= $reload_failures || $reconfigured < $reloads;

printf "soak: [alert]/[crit]/[emerg] lines: %d\n", scalar @alerts;
print "soak:   $_\n" for @alerts[0 .. ($#alerts < 9 ? $#alerts : 9)];
$failed ||= @alerts;

printf "soak: gateway exit status: %s\n",
       $gw_exit // 'none (did not stop in 20 s: killed)';
$failed ||= $gw_exit // 1;

if ($warm_rss && $final_rss) {
    my $growth = 100 * ($final_rss->{workers} - $warm_rss->{workers})
                 / $warm_rss->{workers};

    printf "soak: worker RSS after the warm-up: %s = %d kB\n",
           $warm_rss->{list}, $warm_rss->{workers};
    printf "soak: worker RSS after the run:     %s = %d kB (%+.1f%%,"
           . " limit +%d%%)\n", $final_rss->{list}, $final_rss->{workers},
           $growth, $TOLERANCE;
    printf "soak: master RSS: %d kB after the warm-up, %d kB after %d"
           . " reloads\n", $warm_rss->{master}, $final_rss->{master}, $reloads;

    if ($growth > $TOLERANCE) {
        print "soak: worker RSS grew by more than $TOLERANCE%\n";
        $failed = 1;
    }

} else {
    print "soak: no RSS figures (the run was too short or nginx died)\n";
    $failed = 1;
}

print $failed ? "soak: FAIL\n" : "soak: PASS\n";
exit($failed ? 1 : 0);


sub open_conn {
    my ($kind) = @_;

    my $s = IO::Socket::INET->new(Proto => 'tcp', Blocking => 0);
    die "socket: $!" unless $s;

    my $addr = Socket::pack_sockaddr_in($port{gw},
                                        Socket::inet_aton('127.0.0.1'));
    unless (connect($s, $addr)) {
        die "connect: $!" unless $! == EINPROGRESS || $! == EAGAIN;
    }

    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);

    my $c = { s => $s, fd => fileno($s), served => 0, in => '', out => '',
              busy => 0, retry => $kind ? 1 : 0 };

    $connections_opened++;
    push @conns, $c;
    $by_fd{ $c->{fd} } = $c;

    next_request($c, $kind);
}

sub close_conn {
    my ($c) = @_;

    $sel_r->remove($c->{s});
    $sel_w->remove($c->{s});
    delete $by_fd{ $c->{fd} };
    close $c->{s};
    $c->{dead} = 1;
    $c->{busy} = 0;
}

sub next_request {
    my ($c, $kind) = @_;

    if (Time::HiRes::time() >= $end && !$c->{retry}) {
        close_conn($c);
        return;
    }

    $kind //= $WHEEL[ int rand @WHEEL ];

    my $path = $kind->[3];
    my $id = sprintf 'r%x', ++$id_seq;
    $path =~ s{/R(?=\?|\z)}{/$id};

    # every 50th request of a connection asks to close it
    my $close = ($c->{served} + 1) % 50 == 0;

    $c->{kind} = $kind;
    $c->{id} = $id;
    $c->{out} = "$kind->[2] $path HTTP/1.1\r\nHost: soak\r\n"
                . ($close ? "Connection: close\r\n" : '') . "\r\n";
    $c->{in} = '';
    $c->{busy} = 1;
    $c->{since} = Time::HiRes::time();

    $sel_r->remove($c->{s});
    $sel_w->add($c->{s});
}

sub write_conn {
    my ($c) = @_;

    my $n = syswrite($c->{s}, $c->{out});

    unless (defined $n) {
        return if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
        return maybe_retry($c, "write: $!");
    }

    substr($c->{out}, 0, $n, '');

    if ($c->{out} eq '') {
        $sel_w->remove($c->{s});
        $sel_r->add($c->{s});
    }
}

sub read_conn {
    my ($c) = @_;

    my ($got, $status, $head, $body) = TavusProc::read_answer($c->{s},
                                                             \$c->{in});
    return if $got eq 'again';

    # an error: $status is why (an answer that came is not sent again)
    return maybe_retry($c, $status) if $got eq 'error';

    check($c, $status, $head, $body);

    $done++;
    $sent{ $c->{kind}[0] }++;
    $c->{served}++;
    $c->{retry} = 0;

    if ($head =~ /\r\nconnection:\s*close/i) {
        close_conn($c);
        return;
    }

    next_request($c);
}

# a kept-alive connection closed before a byte of the answer came: an old
# worker closing its idle connections at a reload; the request is sent
# again on a new connection, once

sub maybe_retry {
    my ($c, $why) = @_;

    if ($c->{served} > 0 && $c->{in} eq '' && !$c->{retry}) {
        close_conn($c);
        $retried++;
        open_conn($c->{kind});
        return;
    }

    socket_error($c, $why);
}

sub socket_error {
    my ($c, $why) = @_;

    $socket_errors{$why}++;
    push @bad_samples, "$c->{kind}[0]: socket error: $why after"
                       . " $c->{served} answers on the connection"
        if @bad_samples < 20;

    close_conn($c);
}

sub check {
    my ($c, $status, $head, $body) = @_;

    my ($name, undef, undef, undef, $want, $code) = @{ $c->{kind} };
    my $why;

    if ($status != $want) {
        $why = "status $status, want $want";

    } elsif (defined $code && $code eq '-metrics') {
        $why = 'not the metrics page' unless $body =~ /^# HELP tavus_/;

    } elsif ($head !~ m{\r\ncontent-type:\s*application/json}i) {
        $why = 'not application/json';

    } else {
        my $j = eval { $JSON->decode($body) };

        if (ref $j ne 'HASH') {
            $why = 'the body is not a JSON object';

        } elsif (defined $code) {
            $why = "code " . ($j->{code} // 'none') . ", want $code"
                unless ($j->{code} // '') eq $code;

        } elsif (!($j->{deleted} && ($j->{replica_id} // '') eq $c->{id})) {
            $why = 'not a deletion of ' . $c->{id};
        }
    }

    return unless $why;

    $bad{$name}++;
    push @bad_samples, "$name: $why: " . printable($body)
        if @bad_samples < 20;
}

sub reload {
    my $rc = system($NGINX, '-p', "$prefix/gw/", '-c',
                    "$prefix/gw/nginx.conf", '-e', "$prefix/gw/error.log",
                    '-s', 'reload');
    $reloads++;
    $reload_failures++ if $rc != 0;
}

# resident memory (kB) of the master and of its current workers (not of
# old workers still shutting down)

sub rss_figures {
    my ($master) = @_;

    my @workers = map { [ $_, TavusProc::rss_kib($_) // 0 ] }
                  grep { TavusProc::slurp("/proc/$_/cmdline")
                         =~ /^nginx: worker process\0*$/ }
                  TavusProc::children($master);

    return undef unless @workers;

    my $total = 0;
    $total += $_->[1] for @workers;

    return {
        workers => $total,
        list    => join(' + ', map { "$_->[1]" } @workers),
        master  => TavusProc::rss_kib($master) // 0,
    };
}

# nginx with the nginx.conf of DIR, once it listens on the ports

sub start {
    my ($dir, $nginx, @ports) = @_;

    my $pid = eval {
        TavusProc::start_nginx(dir => $dir, nginx => $nginx, port => \@ports,
                               timeout => 30);
    };

    die "soak: $@" unless $pid;

    return $pid;
}

sub printable {
    my ($s) = @_;
    $s = substr($s, 0, 200);
    $s =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
    return $s;
}
