#!/usr/bin/perl

# A worker killed with SIGKILL while deletes are in flight: the master
# starts a new worker, the other worker's deletes and all later ones are
# answered, and the metrics zone stays consistent.
#
# Two workers (reuseport, so that connections go to both), a slow upstream
# that answers after a pause, and a fast one.  Deletes in flight on both
# workers; the worker that holds some of them is killed.  What each side
# sees is checked:
#
#   - the clients of the killed worker: their connection closes with no
#     byte of an answer (the kernel closes the dead worker's sockets);
#   - the upstream got those deletes: they may have happened, and the
#     access (audit) log has no line for them, since a killed worker logs
#     nothing (the master logs the exit as an [alert]);
#   - the clients of the other worker: 200, deleted;
#   - the master runs two workers again, a new one in place of the dead;
#   - the counters in the shared zone: everything that was logged, what the
#     dead worker had counted before it died included; the exposition
#     still parses, and no zone was left locked.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use IO::Socket::INET ();
use IO::Select ();
use Time::HiRes ();
use TavusTest qw(reply);
use TavusProm ();
use TavusChaos ();

my $t = TavusChaos->new(worker_processes => 2)->require_module;

plan skip_all => 'needs a master process (TAVUS_MASTER=off)'
    unless $t->master;

my $SLOW = $t->slow;
my $PAUSE = 2 * $SLOW;

my $ok = reply('200 OK', '{"message":"Replica deleted successfully"}',
               'Content-Type' => 'application/json');
my $slow = $t->raw_mock(port => $t->port('slow'),
                        script => [ [ { sleep => $PAUSE }, $ok ] ]);
my $key = 'kill-Key_0123456789';

$t->run($t->mock_tavus(name => 'fast', key => $key) . <<"HTTP");
    log_format audit '\$tavus_replica_id \$status \$tavus_outcome pid=\$pid';
    tavus_metrics_zone chaos 1m;

    server {
        listen 127.0.0.1:%%PORT_gw%% reuseport;
        access_log %%PREFIX%%/audit.log audit;
        tavus_api_key $key;
        tavus_read_timeout 30s;

        location ~ ^/slow/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_pass http://127.0.0.1:%%PORT_slow%%;
        }

        location ~ ^/fast/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_pass http://127.0.0.1:%%PORT_fast%%;
        }

        location = /metrics {
            tavus_metrics;
        }
    }
HTTP

my $gw = $t->port('gw');
my @workers = $t->wait_workers;
is(scalar @workers, 2, 'two workers');


sub fast_deletes {
    my ($name, $n, $from) = @_;
    my $good = 0;
    for my $i (1 .. $n) {
        my $id = sprintf 'r%s%02x', $from, $i;
        my $r = $t->http(port => $gw, method => 'DELETE', path => "/fast/$id");
        $good++ if $r->{status} == 200
                   && ($t->json($r)->{replica_id} // '') eq $id;
    }
    is($good, $n, "$name: $n of $n deletes answered 200 deleted");
}

fast_deletes('before the kill', 20, 'a');

# deletes in flight, until both workers hold some (bounded)

my (@flight, %by_worker);
my $sent = 0;

while ($sent < 40 && (keys(%by_worker) < 2 || @flight < 6)) {
    my $id = sprintf 'rb%02x', ++$sent;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $gw,
                                  Proto => 'tcp') or die "connect: $!";
    syswrite $s, "DELETE /slow/$id HTTP/1.1\r\nHost: gw\r\n"
                 . "Connection: close\r\n\r\n";

    # the upstream has it: it is in flight in one worker
    my $deadline = Time::HiRes::time() + 5 * $SLOW;
    Time::HiRes::sleep(0.01)
        while scalar($slow->requests) < $sent
              && Time::HiRes::time() < $deadline;

    my $owner = TavusChaos->owner_of_connection($gw, $s->sockport, @workers);
    push @flight, { id => $id, s => $s, worker => $owner // 0 };
    push @{ $by_worker{ $owner // 0 } }, $id;
}

is(scalar($slow->requests), $sent, "the upstream has all $sent deletes");
ok(!$by_worker{0}, 'each in-flight delete is held by a known worker');
is(scalar(grep { $by_worker{$_} } @workers), 2,
   'both workers hold deletes in flight: '
   . join(', ', map { "$_: " . scalar @{ $by_worker{$_} // [] } } @workers));

my ($victim, $other) = @workers;
my @killed = @{ $by_worker{$victim} // [] };
my @survive = @{ $by_worker{$other} // [] };

$t->expect_alert(qr/worker process $victim exited on signal 9/);
ok($t->kill_worker($victim), "SIGKILL to worker $victim, which holds "
                          . scalar(@killed) . ' deletes');

# what each client sees

my %seen;
my $deadline = Time::HiRes::time() + $PAUSE + 10 * $SLOW;

for my $f (@flight) {
    my $sel = IO::Select->new($f->{s});
    my $raw = '';
    while (Time::HiRes::time() < $deadline) {
        last unless $sel->can_read($deadline - Time::HiRes::time());
        my $n = sysread($f->{s}, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
    }
    close $f->{s};
    $seen{ $f->{id} } = $raw;
}

is(join(',', map { length $seen{$_} } @killed), join(',', map { 0 } @killed),
   'the killed worker\'s clients: the connection closed with no byte');
is(scalar(grep { $seen{$_} =~ m{^HTTP/1\.1 200 .*"replica_id":"\Q$_\E","deleted":true}s }
          @survive), scalar @survive,
   'the other worker\'s clients: 200 deleted, each');

# a new worker in place of the dead one

my @now = $t->wait_workers(not => [ $victim ]);
is(scalar @now, 2, 'the master runs two workers again');
ok((grep { $_ == $other } @now), 'the other worker is still the same');
my ($new) = grep { $_ != $other } @now;
ok($new && $new != $victim, "a new worker: $new");

fast_deletes('after the kill', 20, 'c');

# the audit log: nothing of the killed worker's deletes

my %log;
for (split /\n/, $t->read_file('audit.log')) {
    my ($id, $status, $outcome, $pid) = split / /;
    $log{$id} = "$status $outcome $pid";
}

is(scalar(grep { exists $log{$_} } @killed), 0,
   'the audit log has no line for the ' . scalar(@killed)
   . ' deletes the killed worker held (the upstream got them)');
is(scalar(grep { ($log{$_} // '') =~ /^200 deleted / } @survive),
   scalar @survive, 'the audit log has the other worker\'s as deleted');

# the counters: what was logged, no more, no less

my $r = $t->http(port => $gw, path => '/metrics');
my ($m, @errors) = TavusProm::parse($r->{body});
is("@errors", '', 'the exposition parses');

my $deleted = 0;
for my $s (@{ $m->{samples} }) {
    $deleted += $s->{value} if $s->{name} eq 'tavus_requests_total'
                               && $s->{labels}{outcome} eq 'deleted';
}
my $logged = grep { /^200 deleted / } values %log;
is($deleted, $logged, "the zone counts $logged deletes, as the audit log");
is($logged, 40 + @survive, 'which are the 40 fast ones and the survivors');

unlike($t->error_log, qr/was locked by/, 'no shared memory zone was left'
                                         . ' locked by the dead worker');
is(scalar($t->expected_alerts_seen), 1, 'the master logged the exit');

note('killed worker: ' . scalar(@killed) . ' deletes in flight, the'
     . ' clients got a closed connection and no byte; the upstream got the'
     . ' deletes; the audit log and the metrics have nothing of them');

$t->stop;

done_testing;
