#!/usr/bin/perl

# A binary upgrade under continuous deletes: USR2 (the master runs the
# binary again: a new master and new workers beside the old), WINCH (the
# old workers finish what they serve and exit), QUIT of the old master.
# The load client must see every delete answered 200, none failed.
#
# The metrics: tavus_metrics_zone is shared memory of one master and its
# workers; the new master is a new process image that makes its own
# zone, so its counters start at zero and count only what its workers
# serve (the old workers go on counting in the old zone until they exit,
# and the old zone goes with the old master).  Between USR2 and WINCH a
# scrape reaches either set of workers and so either zone.  Checked here:
# after the upgrade, the counters are exactly the deletes that the access
# log shows the new workers served.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use POSIX ();
use Time::HiRes ();
use TavusTest;
use TavusProm ();
use TavusChaos ();

my $t = TavusChaos->new(worker_processes => 2, log_level => 'notice')
    ->require_module;

plan skip_all => 'needs a master process (TAVUS_MASTER=off)'
    unless $t->master;

my $SLOW = $t->slow;

my $key = 'upgrade-Key_0123456789';

# the upstream is an nginx of its own: one inside the upgraded nginx would
# have its server side of the kept-alive connections closed by the old
# workers as they exit, which is no fault of the gateway
my $mock = TavusTest->new;
$mock->run($mock->mock_tavus(name => 'tavus', key => $key));
my $mock_port = $mock->port('tavus');

my $old = $t->run_daemon(
    "    log_format audit '\$tavus_replica_id \$status \$tavus_outcome"
    . " pid=\$pid';\n\n"
    . TavusChaos::load_gateway(zone => 'upgrade', mock_port => $mock_port,
                               key => $key,
                               log => 'access_log %%PREFIX%%/audit.log audit;'));

my $gw = $t->port('gw');
ok(until_true('two workers', sub { TavusChaos->children_of($old) == 2 }),
   "master $old runs two workers");
my @old_workers = TavusChaos->children_of($old);

my $load = TavusChaos::Load->start(port => $gw, path => '/d/',
                                   connections => 8, keepalive => 1,
                                   seconds => 60,
                                   file => $t->prefix . '/load.json');

sub until_true {
    my ($what, $cond, $timeout) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // 10) * $SLOW;
    until ($cond->()) {
        return 0 if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.02);
    }
    return 1;
}

Time::HiRes::sleep(1);

# USR2: a new master, from the same binary, with its own workers

ok(kill('USR2', $old), 'USR2 to the old master');
my $new;
ok(until_true('a new master', sub {
       -e $t->prefix . '/nginx.pid.oldbin'
       && ($new = $t->read_file('nginx.pid') =~ s/\s+//gr) =~ /^\d+$/
       && $new != $old
       && TavusChaos->children_of($new) == 2 }, 15),
   'a new master with two workers');
$new = 0 unless $new && $new =~ /^\d+$/ && $new != $old;
my @new_workers = TavusChaos->children_of($new);

# the new binary runs in the environment of the old (the sanitizer's
# runtime under make test-asan), through the "env" lines
sub environ {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/environ" or return {};
    local $/;
    return { map { split /=/, $_, 2 } grep { /=/ } split /\0/, <$fh> // '' };
}
# (valgrind, which follows the exec, leaves an empty LD_PRELOAD: none)
is(environ($new)->{LD_PRELOAD} || 'none',
   environ($old)->{LD_PRELOAD} || 'none',
   'the new master has the old one\'s LD_PRELOAD');
is(scalar(TavusChaos->children_of($old)), 3, 'the old master: its two'
   . ' workers and the new master');

# both sets of workers serve, each set counts in its own zone

my @scrapes;
for (1 .. 20) {
    my $r = $t->http(port => $gw, path => '/metrics', no_json_check => 1);
    my ($m) = TavusProm::parse($r->{body});
    my $d = 0;
    $d += $_->{value} for grep { $_->{name} eq 'tavus_requests_total'
                                 && $_->{labels}{outcome} eq 'deleted' }
                          @{ $m->{samples} };
    push @scrapes, $d;
}
note("deletes counted, scrapes between USR2 and WINCH: @scrapes");

Time::HiRes::sleep(1);

# WINCH: the old workers finish and exit, the old master stays

ok(kill('WINCH', $old), 'WINCH to the old master');
ok(until_true('old workers gone', sub {
       TavusChaos->children_of($old) == 1 }, 15),
   'the old workers have exited');

Time::HiRes::sleep(1);

# QUIT: the old master goes

ok(kill('QUIT', $old), 'QUIT to the old master');
ok(until_true('old master gone', sub { TavusChaos->gone($old) }, 15),
   'the old master has exited');
ok(!-e $t->prefix . '/nginx.pid.oldbin', 'and removed nginx.pid.oldbin');

Time::HiRes::sleep(1);

$load->stop;
my $r = $load->wait;

ok($r->{ok} > 100, "the load: $r->{ok} deletes answered 200 during the"
                   . ' upgrade') or diag(explain $r);
is($r->{failed}, 0, 'no failed request') or diag(explain $r->{samples});
note("re-sent after an old worker closed an idle kept-alive connection:"
     . " $r->{resent}");

is(join(',', TavusChaos->children_of($new)), join(',', @new_workers),
   'the new master runs its two workers');
is($t->read_file('nginx.pid') =~ s/\s+//gr, $new, 'nginx.pid is the new'
   . ' master');

# what the new workers served, as counted by the new zone

my %served;
for (split /\n/, $t->read_file('audit.log')) {
    my ($id, $st, $outcome, $pid) = split / /;
    $pid =~ s/^pid=//;
    $served{$pid}{"$st $outcome"}++;
}

my $by_new = 0;
$by_new += $served{$_}{'200 deleted'} // 0 for @new_workers;
my $by_old = 0;
$by_old += $served{$_}{'200 deleted'} // 0 for @old_workers;

ok($by_old > 0 && $by_new > 0, "deletes served by the old workers ($by_old)"
                               . " and by the new ($by_new)");
is($by_old + $by_new, $r->{ok}, 'every answered delete is in the audit log');

my $mr = $t->http(port => $gw, path => '/metrics', no_json_check => 1);
my ($m, @errors) = TavusProm::parse($mr->{body});
is("@errors", '', 'the exposition parses');
my $counted = 0;
$counted += $_->{value} for grep { $_->{name} eq 'tavus_requests_total'
                                   && $_->{labels}{outcome} eq 'deleted' }
                            @{ $m->{samples} };
is($counted, $by_new, "the new zone counts the new workers' $by_new"
                      . ' deletes: the counters restarted at zero');

# the new master stops, and its error log has no alert

$t->stop_daemon;
$mock->stop;

done_testing;
