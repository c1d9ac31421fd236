#!/usr/bin/perl

# A reload every second under continuous deletes, with the metrics zone in
# use: CHAOS_RELOAD_SECONDS (6 here; `make chaos-reload` runs 60).
#
# Checked: no delete fails (a request whose kept-alive client connection
# an old worker closed before reading it is sent again, as HTTP clients
# do, and counted apart); each reload gives new workers; the counters
# survive every reload (the zone keeps its name and size) and never go
# down; after the run they equal the deletes answered, exactly; the
# exposition parses after each reload; no [alert], [crit] or [emerg].

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Time::HiRes ();
use TavusTest;
use TavusProm ();
use TavusChaos ();

my $t = TavusChaos->new(worker_processes => 2, log_level => 'notice')
    ->require_module;

plan skip_all => 'needs a master process (TAVUS_MASTER=off)'
    unless $t->master;

my $SECONDS = $ENV{CHAOS_RELOAD_SECONDS} || 6;
my $key = 'reload-Key_0123456789';

# the upstream in an nginx of its own, which the reloads leave alone
my $mock = TavusTest->new;
$mock->run($mock->mock_tavus(name => 'tavus', key => $key));
my $mock_port = $mock->port('tavus');

$t->run("    access_log off;\n\n"
        . TavusChaos::load_gateway(zone => 'reload', mock_port => $mock_port,
                                   key => $key, log => '', label => 'load'));

my $gw = $t->port('gw');
$t->wait_workers;

sub deleted {
    my $r = $t->http(port => $gw, path => '/metrics', no_json_check => 1);
    my ($m, @errors) = TavusProm::parse($r->{body});
    return (undef, @errors) if @errors;
    return (TavusProm::value($m, 'tavus_requests_total',
                             { label => 'load', outcome => 'deleted',
                               hard => 'false' }) // 0);
}

my $load = TavusChaos::Load->start(port => $gw, path => '/d/',
                                   connections => 8, keepalive => 1,
                                   seconds => $SECONDS + 30,
                                   file => $t->prefix . '/load.json');

my ($reloads, $took, $down, @parse, @missing) = (0, 0, 0);
my $last = 0;
my $start = Time::HiRes::time();
my $next = $start + 1;

while (Time::HiRes::time() - $start < $SECONDS) {
    Time::HiRes::sleep(0.01) while Time::HiRes::time() < $next;
    $next += 1;

    my $t0 = Time::HiRes::time();
    my @new = $t->reload;
    $took = Time::HiRes::time() - $t0 if Time::HiRes::time() - $t0 > $took;
    $reloads++;
    push @missing, $reloads unless @new == 2;

    my ($d, @errors) = deleted();
    push @parse, "reload $reloads: @errors" if @errors;
    $down++ if defined $d && $d < $last;
    $last = $d // $last;
}

$load->stop;
my $r = $load->wait;

is(scalar @missing, 0, "$reloads reloads in ${SECONDS}s, each gave two new"
                       . ' workers') or diag("not after reloads @missing");
note(sprintf 'the slowest reload took %.2fs until its old workers had'
     . ' gone', $took);
is(scalar @parse, 0, 'the exposition parses after every reload')
    or diag(join "\n", @parse);
is($down, 0, 'the counters never went down');

ok($r->{ok} > 10 * $SECONDS, "$r->{ok} deletes answered 200")
    or diag(explain $r);
is($r->{failed}, 0, 'no failed request') or diag(explain $r->{samples});
note("re-sent after an old worker closed an idle kept-alive connection:"
     . " $r->{resent}");

my ($d, @errors) = deleted();
is($d, $r->{ok}, "the zone counts every delete answered, across $reloads"
                 . ' reloads');

my $log = $t->error_log;
my $reconfigured = () = $log =~ /: reconfiguring$/mg;
is($reconfigured, $reloads, 'every reload was carried out');

$t->stop;
$mock->stop;

done_testing;
