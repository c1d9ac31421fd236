#!/usr/bin/perl

# The harness and its mocks, checked with stock nginx (no module loaded),
# so that a failure elsewhere is known to be the module's.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use POSIX ();
use TavusTest qw(reply chunked);

my $t = TavusTest->new(no_module => 1);

# ports: free, distinct, memoised by name

my $a = $t->port('a');
isnt($a, $t->port('b'), 'ports of two names differ');
is($t->port('a'), $a, 'a port is memoised by name');

# nginx -t

my ($ok, $out) = $t->nginx_t(<<'HTTP');
    server { listen 127.0.0.1:%%PORT_a%%; }
HTTP
ok($ok, 'nginx -t passes a good config') or diag($out);

($ok, $out) = $t->nginx_t(<<'HTTP');
    server { listen 127.0.0.1:%%PORT_a%%; no_such_directive x; }
HTTP
ok(!$ok, 'nginx -t fails a bad config');
like($out, qr/unknown directive "no_such_directive"/, 'nginx -t output');

# the nginx-based mock Tavus API

$t->run($t->mock_tavus(name => 'tavus', port => $t->port('tavus'),
                       key => 'k3y-Mock_1') . <<'HTTP');
    server {
        listen 127.0.0.1:%%PORT_echo%%;
        location / {
            return 200 "[%%PREFIX%%]";
        }
        location = /addr {
            return 200 $remote_addr;
        }
    }
HTTP

my $tp = $t->port('tavus');

my $r = $t->http(port => $t->port('echo'), path => '/');
is($r->{body}, '[' . $t->prefix . ']', '%%PREFIX%% replaced');

$r = $t->http(port => $t->port('echo'), path => '/addr', from => '127.0.0.2');
is($r->{body}, '127.0.0.2', 'http: from a local address');

$r = $t->http(port => $tp, method => 'DELETE', path => '/v2/replicas/rab12',
              headers => [ 'x-api-key' => 'k3y-Mock_1' ]);
is($r->{status}, 200, 'mock: good key, good id: 200');
is($r->{headers}{'content-type'}, 'application/json', 'mock: json type');
is($t->json($r)->{message}, 'Replica deleted successfully', 'mock: 200 body');

$r = $t->http(port => $tp, method => 'DELETE', path => '/v2/replicas/xyz',
              headers => [ 'x-api-key' => 'k3y-Mock_1' ]);
is($r->{status}, 400, 'mock: good key, bad id: 400');
is($t->json($r)->{error}, 'Invalid replica_id', 'mock: 400 body');

$r = $t->http(port => $tp, method => 'DELETE', path => '/v2/replicas/xyz',
              headers => [ 'x-api-key' => 'K3Y-MOCK_1' ]);
is($r->{status}, 401, 'mock: key compared case-sensitively, before the id');
is($t->json($r)->{message}, 'Invalid access token', 'mock: 401 body');

$r = $t->http(port => $tp, method => 'DELETE', path => '/v2/replicas/rab12');
is($r->{status}, 401, 'mock: no key: 401');

$r = $t->http(port => $tp, method => 'DELETE', path => '/v2/replicas/rab12',
              headers => [ 'x-api-key' => 'k3y-Mock_1x' ]);
is($r->{status}, 401, 'mock: key with a suffix: 401');

my @log = $t->mock_log('tavus');
is(scalar @log, 5, 'mock log: 5 entries');
is(join(',', map { "$_->{status}:$_->{key}" } @log),
   '200:ok,400:ok,401:bad,401:bad,401:bad', 'mock log: statuses and keys');
is($log[0]{uri}, '/v2/replicas/rab12', 'mock log: uri');
is($log[0]{method}, 'DELETE', 'mock log: method');
is($log[0]{reqs}, 1, 'mock log: connection requests');
unlike($t->read_file('tavus.access.log'), qr/k3y/i,
       'mock log: the key is not logged');

$t->stop;

# the raw mock, spoken to directly

my $m = $t->raw_mock(port => $t->port('raw'), script => [
    [ "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none" ],
    [ { bytewise => 1 }, "HTTP/1.1 201 OK\r\nContent-Length: 3\r\n\r\ntwo",
      { close => 1 } ],
    [ { sleep => 0.1 }, "HTTP/1.1 202 OK\r\n\r\nthree", { close => 1 } ],
    [ { reset => 1 } ],
]);

my $rp = $t->port('raw');

is($m->connections, 0, 'raw mock: no connection yet');

# keepalive: two requests on one connection

my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $rp)
    or die "connect: $!";
print $s "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n";
my $got = read_n($s, length "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none");
is($got, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none", 'raw mock: reply 1');
print $s "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
$got = read_all($s);
is($got, "HTTP/1.1 201 OK\r\nContent-Length: 3\r\n\r\ntwo",
   'raw mock: reply 2, bytewise, on the same connection, then closed');
close $s;

$r = $t->http(port => $rp, path => '/3');
is($r->{status}, 202, 'raw mock: reply 3 after a sleep');
is($r->{body}, 'three', 'raw mock: reply 3 body');

$r = $t->http(port => $rp, path => '/4');
is($r->{status}, 0, 'raw mock: reset, no answer');
is($r->{raw}, '', 'raw mock: reset, nothing read');

$r = $t->http(port => $rp, path => '/5');
is($r->{raw}, '', 'raw mock: the last entry repeats');

is($m->connections, 4, 'raw mock: 4 connections');

my @req = $m->requests;
is(scalar @req, 5, 'raw mock: 5 requests');
is($req[0], "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n", 'raw mock: request 1 bytes');
is($req[1], "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n", 'raw mock: request 2 bytes');
like($req[2], qr{^GET /3 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n\z},
     'raw mock: request 3 bytes');

# the answers for raw mocks

is(reply('404 Not Found', '{}', 'X-A' => 1),
   "HTTP/1.1 404 Not Found\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n{}",
   'reply: status, headers, Content-Length, body');
is(chunked('200 OK', [ 'abc', 'de' ], 'X-A' => 1),
   "HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
   . "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
   'chunked: status, headers, the chunks and the last chunk');

# a raw mock behind stock nginx: chunked answers reach the client, a hang
# is a timeout

$m = $t->raw_mock(port => $t->port('raw2'), script => [
    [ chunked('200 OK', [ 'abc', 'de' ]) ],
    [ { hang => 1 } ],
]);

$t->run(<<'HTTP');
    server {
        listen 127.0.0.1:%%PORT_gw%%;
        location / {
            proxy_pass http://127.0.0.1:%%PORT_raw2%%;
            proxy_read_timeout 200ms;
        }
        location = /version {
            return 200 $nginx_version;
        }
    }
HTTP

# nginx_version: the running nginx's own $nginx_version, as a number

my ($x, $y, $z) = split /\./, $t->http(port => $t->port('gw'),
                                       path => '/version')->{body};
is($t->nginx_version, $x * 1000000 + $y * 1000 + $z,
   "nginx_version: " . $t->nginx_version . " for nginx $x.$y.$z");

$r = $t->http(port => $t->port('gw'), path => '/a?b=c',
              headers => [ 'X-Test' => '1' ]);
is($r->{status}, 200, 'proxied: 200');
is($r->{body}, 'abcde', 'proxied: chunked body decoded');

# nginx 1.29.7 made HTTP/1.1 the default of proxy_http_version and stopped
# sending "Connection: close" by default

my $host = "Host: 127.0.0.1:" . $t->port('raw2') . "\r\n";
is(($m->requests)[0],
   $t->nginx_version >= 1029007
   ? "GET /a?b=c HTTP/1.1\r\n${host}X-Test: 1\r\n\r\n"
   : "GET /a?b=c HTTP/1.0\r\n${host}Connection: close\r\nX-Test: 1\r\n\r\n",
   'proxied: exact request bytes (HTTP/1.1 by default since nginx 1.29.7)');

$t->new_errors;
$r = $t->http(port => $t->port('gw'), path => '/hang');
is($r->{status}, 504, 'proxied: hang is a timeout');
like(scalar $t->new_errors, qr/\[error\] .*upstream timed out/,
     'new_errors: the timeout, logged since the last call');
unlike(scalar $t->new_errors, qr/\S/, 'new_errors: nothing new since');
is($m->connections, 2, 'proxied: 2 connections');

# connections counted even when the mock has not accepted them yet

my @pending = map {
    IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                          PeerPort => $t->port('raw2')) or die "connect: $!"
} 1 .. 3;
is($m->connections, 5, 'raw mock: queued connections counted');
close $_ for @pending;

$t->stop;

is($m->connections, 5, 'raw mock: count kept after stop');

# a slow raw mock: a wait step that ends when the peer goes away

$m = $t->raw_mock(port => $t->port('slow'), script => [
    [ { wait => 5 }, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" ],
    [ { wait => 0.1 }, "HTTP/1.1 204 No Content\r\n\r\n", { close => 1 } ],
]);

$s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                           PeerPort => $t->port('slow'))
    or die "connect: $!";
print $s "DELETE /a HTTP/1.1\r\nHost: x\r\n\r\n";
ok($m->wait_for(request => 1), 'slow mock: request 1 received');
ok(!$m->seen(eof => 1), 'slow mock: no eof while the peer is there');
close $s;
ok($m->wait_for(eof => 1), 'slow mock: the peer\'s close seen in the wait');
ok(!$m->seen(answered => 1), 'slow mock: request 1 not answered');

$r = $t->http(port => $t->port('slow'), path => '/b');
is($r->{status}, 204, 'slow mock: a wait that runs out, then the answer');
ok($m->wait_for(answered => 2), 'slow mock: request 2 answered');
is($m->events, 'request-1 eof-1 request-2 answered-2', 'slow mock: events');
is($m->connections, 2, 'slow mock: 2 connections');

# several workers, and a reload that replaces them

{
    my $w = TavusTest->new(no_module => 1, worker_processes => 2);
    $w->run("    server { listen 127.0.0.1:%%PORT_w%%; return 204; }\n");

    my @pids = $w->wait_workers;
    is(scalar @pids, $w->workers, 'workers: ' . $w->workers . ' run');

    SKIP: {
        skip 'no reload without a master process (TAVUS_MASTER=off)', 2
            unless $w->master;

        my @new = $w->reload(http => "    server { listen 127.0.0.1:"
                                     . "%%PORT_w%%; return 205; }\n");
        my %old = map { $_ => 1 } @pids;
        ok(@new == 2 && !grep({ $old{$_} } @new),
           'reload: two new workers, none of the old ones');
        is($w->http(port => $w->port('w'))->{status}, 205,
           'reload: the new configuration answers');
    }

    $w->stop;
}

# waiting for a log line: one written later, one that never comes

$t->write_file('some.log', "a 1\nb 2\n");

my $writer = fork() // die "fork: $!";
if ($writer == 0) {
    select(undef, undef, undef, 0.3);
    open my $fh, '>>', $t->prefix . '/some.log' or POSIX::_exit(1);
    print $fh "c 3\n";
    close $fh;
    POSIX::_exit(0);
}

is($t->wait_log('some.log', qr/^b /), 'b 2', 'wait_log: a line there');
is($t->wait_log('some.log', sub { /^c (\d)/ ? $1 * 2 : undef }), 6,
   'wait_log: a line written later, through a sub');
waitpid($writer, 0);
is($t->wait_log('some.log', qr/^d /, timeout => 0.2), undef,
   'wait_log: undef for a line that never comes');
is($t->wait_for(sub { 0 }, timeout => 0.1), undef,
   'wait_for: undef when the condition never holds');

# log lines as hashes: name=value words, or "|"-separated fields

$t->write_file('kv.log', "id=a n=1\nid=b n=2\n");
$t->write_file('bar.log', "a|1|x\nb|2, 3|y\n");

is(join(' ', map { "$_->{id}:$_->{n}" } $t->log_entries('kv.log')),
   'a:1 b:2', 'log_entries: name=value words');
is($t->log_entry('bar.log', [qw(id n w)], id => 'b')->{n}, '2, 3',
   'log_entry: the line of a field\'s value, by the fields\' names');
is_deeply($t->log_entry('bar.log', [qw(id n w)], id => 'c',
                        timeout => 0.2), {},
          'log_entry: {} for a value no line has');

done_testing;

sub read_n {
    my ($s, $n) = @_;
    my $buf = '';
    while (length $buf < $n) {
        sysread($s, $buf, $n - length $buf, length $buf) or last;
    }
    return $buf;
}

sub read_all {
    my ($s) = @_;
    my $buf = '';
    1 while sysread($s, $buf, 4096, length $buf);
    return $buf;
}
