#!/usr/bin/perl

# Run-time DNS (docs/recipes.md, "Run-time DNS"): a tavus_pass with variables
# resolves its host per request through nginx's `resolver`, honouring the
# record's TTL.  A real DNS server on loopback (dnsmasq, Debian package
# dnsmasq-base) answers from a hosts file this test rewrites; two mocks of
# Tavus listen on 127.0.0.1 and 127.0.0.2 at the same port.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use IO::Socket::INET ();
use IO::Select ();
use Time::HiRes ();
use TavusTest;

my $t = TavusTest->new->require_module;

my $KEY = 'dns-Key_77';
# seconds, the records' TTL (--local-ttl): a cached answer is checked
# within it, which a slow nginx (valgrind) needs more time for
my $TTL = $ENV{TAVUS_WRAPPER} ? 4 : 2;
my $true = JSON::PP::true;

my $gw = $t->port('gw');
my $up = $t->port('a');         # both mocks listen on this port

$t->write_file('api.key', "$KEY\n");

###############################################################################
# dnsmasq, answering from a hosts file

sub hosts {
    my ($addr) = @_;
    # atomically: dnsmasq must never read half a file
    $t->write_file('hosts.tmp', "$addr tavus.test\n");
    rename $t->prefix . '/hosts.tmp', $t->prefix . '/hosts'
        or die "rename: $!";
}

hosts('127.0.0.1');

my $dns = $t->dnsmasq(args => [
    '--addn-hosts=' . $t->prefix . '/hosts', "--local-ttl=$TTL",
    # names under test. that are not in the file: NXDOMAIN, never
    # forwarded anywhere
    '--local=/test/' ]);

# a DNS query for an A record over UDP: { rcode, addrs => [...] }, or
# undef without an answer in the time given

sub dns_a {
    my ($name, $timeout) = @_;

    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $dns->port,
        Proto    => 'udp',
    ) or return undef;

    my $id = int rand 65536;
    my $query = pack('n6', $id, 0x0100, 1, 0, 0, 0)
                . join('', map { chr(length) . $_ } split /\./, $name)
                . "\0" . pack('n2', 1, 1);

    send($s, $query, 0) or return undef;
    IO::Select->new($s)->can_read($timeout) or return undef;
    defined recv($s, my $buf, 1500, 0) or return undef;
    return undef if length $buf < 12;

    my ($rid, $flags, $qd, $an) = unpack 'n4', $buf;
    return undef unless $rid == $id;

    my $pos = 12;

    my $skip_name = sub {
        while ($pos < length $buf) {
            my $len = ord substr($buf, $pos, 1);
            return $pos += 1 if $len == 0;
            return $pos += 2 if ($len & 0xc0) == 0xc0;
            $pos += $len + 1;
        }
    };

    for (1 .. $qd) {
        $skip_name->();
        $pos += 4;
    }

    my @addrs;

    for (1 .. $an) {
        $skip_name->();
        my ($type, $class, $ttl, $len) = unpack 'n n N n',
                                                substr($buf, $pos, 10);
        $pos += 10;
        push @addrs, join '.', unpack 'C4', substr($buf, $pos, 4)
            if $type == 1 && $len == 4;
        $pos += $len;
    }

    return { rcode => $flags & 0xf, addrs => \@addrs };
}

# polls dnsmasq until it answers tavus.test with the address, within 5s

sub dns_answers {
    my ($addr) = @_;

    my $deadline = Time::HiRes::time() + 5;
    my $last;

    while (Time::HiRes::time() < $deadline) {
        unless ($dns->running) {
            diag('dnsmasq exited: ' . $dns->log);
            return 0;
        }

        $last = dns_a('tavus.test', 0.2);
        return 1 if $last && "@{ $last->{addrs} }" eq $addr;
        Time::HiRes::sleep(0.02);
    }

    diag('dnsmasq answers: ' . ($last ? "@{ $last->{addrs} }" : 'nothing'));
    diag('dnsmasq log: ' . $dns->log);
    return 0;
}

###############################################################################

ok(dns_answers('127.0.0.1'), 'dnsmasq answers tavus.test 127.0.0.1')
    or BAIL_OUT('dnsmasq does not work');

my $nx = dns_a('nowhere.test', 2);
is($nx && $nx->{rcode}, 3, 'dnsmasq: nowhere.test is NXDOMAIN');

# the same Tavus mock on 127.0.0.1 and 127.0.0.2, each with its own log;
# the second's listen is quoted so that the harness does not wait for it
# on 127.0.0.1 (nginx opens every listen socket before it accepts any)

my $mock_b = $t->mock_tavus(name => 'b', port => $up, key => $KEY);
$mock_b =~ s/\blisten\s+127\.0\.0\.1:(\d+)\s*;/listen "127.0.0.2:$1";/
    or die 'no listen line in the mock';

$t->run($t->mock_tavus(name => 'a', port => $up, key => $KEY) . $mock_b
        . <<'HTTP');
    log_format gw 'outcome=$tavus_outcome upstream=$upstream_addr';

    # no valid=: the records' TTL is used
    resolver 127.0.0.1:%%PORT_dns%%;
    resolver_timeout 1s;

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        access_log %%PREFIX%%/gw.access.log gw;

        tavus_api_key_file %%PREFIX%%/api.key;

        location ~ ^/replicas/(?<replica>[^/]*)$ {
            set $tavus_host tavus.test;
            tavus_delete_replica $replica;
            tavus_pass http://$tavus_host:%%PORT_a%%;
        }

        location ~ ^/nowhere/(?<replica>[^/]*)$ {
            set $tavus_host nowhere.test;
            tavus_delete_replica $replica;
            tavus_pass http://$tavus_host:%%PORT_a%%;
        }

        location ~ ^/late/(?<replica>[^/]*)$ {
            set $tavus_host late.test;
            tavus_delete_replica $replica;
            tavus_pass http://$tavus_host:%%PORT_a%%;
        }
    }
HTTP

sub del {
    my ($path) = @_;
    return $t->http(port => $gw, method => 'DELETE', path => $path);
}

# which mock saw the delete of this id: 'a', 'b', or ''

sub seen_by {
    my ($id) = @_;
    my $uri = "/v2/replicas/$id";
    return join '', map { my $m = $_;
                          (grep { ($_->{uri} // '') eq $uri } $t->mock_log($m))
                          ? $m : () } qw(a b);
}

###############################################################################
# resolved through dnsmasq: 127.0.0.1

my $t0 = Time::HiRes::time();

my $r = del('/replicas/r1');
$t->answer($r, 200, { replica_id => 'r1', deleted => $true }, 'resolved');
is(seen_by('r1'), 'a', 'tavus.test is 127.0.0.1: the delete went there');
is(($t->mock_log('a'))[-1]{key}, 'ok', 'with the key');

# the record changes

hosts('127.0.0.2');
$dns->reread;
ok(dns_answers('127.0.0.2'), 'dnsmasq re-read its hosts file: 127.0.0.2');

# within the TTL nginx keeps the address it has: resolved at t1 >= t0,
# valid until at least t1 + TTL

$r = del('/replicas/r2');
my $took = Time::HiRes::time() - $t0;
$t->answer($r, 200, { replica_id => 'r2', deleted => $true }, 'cached');
ok($took < $TTL && seen_by('r2') eq 'a',
   'within the TTL: the cached address, 127.0.0.1')
    or diag(sprintf 'seen by "%s" after %.2fs', seen_by('r2'), $took);

# after the TTL, the new address: poll with a deadline (one check for
# all the deletes of the poll, so that the count of tests is fixed)

my ($n, $switched, @failed) = (2, undef);
my $deadline = $t0 + $TTL + 4;

while (Time::HiRes::time() < $deadline) {
    my $id = 'r' . ++$n;
    $r = del("/replicas/$id");

    if ($r->{status} != 200) {
        push @failed, "$id: $r->{status}";
        last;
    }

    if (seen_by($id) eq 'b') {
        $switched = Time::HiRes::time() - $t0;
        last;
    }

    Time::HiRes::sleep(0.1);
}

is("@failed", '', 'every delete while the TTL runs out: 200 ('
                  . ($n - 2) . ' deletes)');
ok(defined $switched, 'after the TTL the deletes go to 127.0.0.2');
ok(defined $switched && $switched >= $TTL - 0.05,
   "not before the TTL (${TTL}s) passed")
    or diag('switched after ' . ($switched // 'never'));

$r = del('/replicas/r99');
$t->answer($r, 200, { replica_id => 'r99', deleted => $true }, 'new address');
is(seen_by('r99'), 'b', 'and they stay there');
is(($t->mock_log('b'))[-1]{key}, 'ok', 'with the key');

###############################################################################
# names that do not resolve: nginx's 502 as JSON, the reason in the error
# log, no mock reached

sub unresolved {
    my ($name, $path, $host, $why) = @_;

    my ($id) = $path =~ m{([^/]+)\z};
    my $r = del($path);
    $t->answer($r, 502, { code => 'upstream_error', replica_id => $id }, $name);
    like($t->error_log, qr/\[error\] .*\Q$host\E could not be resolved (?#
                           )\(\Q$why\E\)/,
         "$name: the error log says why");
    is(seen_by($id), '', "$name: no mock saw it");
}

unresolved('NXDOMAIN', '/nowhere/rdead', 'nowhere.test', '3: Host not found');

# the DNS server gone: a name not cached times out

$dns->stop;

unresolved('DNS server gone', '/late/rlate', 'late.test',
           '110: Operation timed out');

###############################################################################

my @gw = split /\n/, $t->read_file('gw.access.log');
is(scalar(grep { /^outcome=upstream_error upstream=-$/ } @gw), 2,
   '$tavus_outcome upstream_error, no $upstream_addr: the two unresolved');
is(scalar(grep { /^outcome=deleted upstream=127\.0\.0\.2:$up$/ } @gw), 2,
   '$upstream_addr: 127.0.0.2 for the two deletes after the change');

ok(index($t->error_log, $KEY) < 0, 'no key in the error log');

$t->stop;

done_testing;
