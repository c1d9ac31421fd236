#!/usr/bin/perl

# `make run` (scripts/run.sh) against README.md's "Run it, test it":
#
#   1. the script, started as `make run` starts it (bash scripts/run.sh;
#      TAVUS_LISTEN on a free port, TAVUS_RUN_DIR in the test's
#      directory, no terminal), prints exactly README's lines, the
#      address aside;
#   2. each of those lines is a request under a `# STATUS[ CODE]: ...`
#      comment, and each shows something else: a delete, the module's own
#      refusal of an id, a wrong method, a denied hard delete, a dry run,
#      the metrics;
#   3. each line, run with sh as an operator pastes it, gets the status
#      and code its comment says; the mock was asked for the delete only,
#      and the metrics counted each of the requests before them;
#   4. Ctrl-C (SIGINT) stops it.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Cwd ();
use TavusTest;
use TavusProc ();
use TavusProm;
use TavusSite ();

my $t = TavusTest->new->require_module;
my $p = $t->prefix;

# README's lines: the first indented block of its "Run it, test it"
# section that holds a curl line

my $readme = $t->read_file(Cwd::abs_path('README.md'));
my ($section) = $readme =~ /^## Run it, test it\n(.*?)^## /ms;
my ($block) = ($section // '') =~ /((?:^    .*\n)*^    curl .*\n(?:^    .*\n)*)/m;
my @readme = map { s/^    //r } split /\n/, $block // '';

cmp_ok(scalar @readme, '>=', 10, 'README.md: the lines of make run');

###############################################################################
# 1. the script

my $port = $t->port('gw');
my $out = "$p/run.out";

my $pid = do {
    local $ENV{TAVUS_LISTEN} = "127.0.0.1:$port";
    local $ENV{TAVUS_RUN_DIR} = "$p/run";
    delete local $ENV{TAVUS_API_KEY};
    delete local $ENV{TAVUS_URL};
    TavusProc::spawn(cmd => [ 'bash', 'scripts/run.sh' ], out => $out,
                     name => 'make run', group => 1);
};
my $watchdog = TavusProc::watchdog($pid);     # if this test dies

ok($t->wait_for(sub { TavusProc::can_connect($port)
                      && $t->read_file($out) =~ /^Ctrl-C stops it\.$/m },
                timeout => 10),
   'make run: nginx listens, and the script has printed its lines')
    or diag($t->read_file($out));

my ($printed) = $t->read_file($out) =~ /^Try:\n(.*?)^Ctrl-C stops it\.$/ms;
my @printed = map { s/^    //r } split /\n/, $printed // '';

is(join("\n", map { s/127\.0\.0\.1:$port\b/127.0.0.1:8080/gr } @printed),
   join("\n", @readme), "the script prints README's lines, word for word");

###############################################################################
# 2. what each line shows

my @e = TavusSite::expectations(join "\n", @printed);
is(scalar @e, scalar(grep { /^curl / } @printed),
   'every curl line under a "# STATUS CODE: ..." comment');

my %shown = map { ("$_->{status} $_->{code}" => 1) } @e;
is(scalar keys %shown, scalar @e, 'each line shows something else: '
   . join(', ', sort keys %shown));
for my $want ('200 deleted', '400 invalid_replica_id',
              '405 method_not_allowed', '200 ') {
    ok($shown{$want}, "a line answers $want");
}
ok($shown{'403 hard_delete_denied'} || $shown{'200 dry_run'},
   'a line shows a denied hard delete or a dry run');
ok((grep { $_->{command} =~ m{/v2/replicas/a\.b\b} } @e),
   'the refused id is one the module refuses itself (a.b)');

###############################################################################
# 3. the answers

my %counted;

for my $e (@e) {
    my $r = TavusSite::run_curl($t, $e->{command});
    TavusSite::check_answer($t, $r, $e, $e->{command});

    if ($e->{code}) {
        $counted{$e->{code}}{$e->{command} =~ /hard=true/ ? 'true' : 'false'}++;
        next;
    }

    # the metrics: every request before them, counted by its outcome
    my ($m, @errors) = TavusProm::parse($r->{body});
    is("@errors", '', "$e->{command}: Prometheus' text format");
    for my $outcome (sort keys %counted) {
        for my $hard (sort keys %{ $counted{$outcome} }) {
            is(TavusProm::value($m, 'tavus_requests_total',
                   { label => 'gateway', outcome => $outcome,
                     hard => $hard }) // 'none',
               $counted{$outcome}{$hard},
               "$e->{command}: $outcome (hard=$hard) counted");
        }
    }
}

my @mock = $t->mock_log("$p/run/tavus");
is(join(' ', map { "$_->{method} $_->{uri} $_->{status}" } @mock),
   'DELETE /v2/replicas/rf3073f2dcc1 200',
   'the mock got the delete, and nothing else');

###############################################################################
# 4. Ctrl-C

kill 'INT', $pid;
my $status = TavusProc::reap($pid, 10);
is($status, 0, 'Ctrl-C stops it') or kill 'KILL', -$pid;
TavusProc::stop_watchdog($watchdog);

done_testing;

END { TavusProc::stop_all() }
