#!/usr/bin/perl

# tavus_api_key_file: a warning at load for a file that group or others
# can read; rotation by rewriting the file and reloading, under a
# concurrent load that must see no failed request across the reload.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use POSIX ();
use Time::HiRes ();
use TavusTest qw(reply delete_location server_block upstream_group);

my $t = TavusTest->new(worker_processes => 2)->require_module;

plan skip_all => 'a reload needs a master process (TAVUS_MASTER=off)'
    unless $t->master;

my $OLD = 'rot-Key_OLD_1';
my $NEW = 'rot-Key_NEW_2';

my $key = $t->write_file('api.key', "$OLD\n");

###############################################################################
# the file's mode

my $conf = upstream_group('tavus', [ '127.0.0.1:%%PORT_up%%' ], 'keepalive 4;')
           . server_block('gw',
               delete_location('r', 'tavus_pass http://tavus;',
                               'tavus_api_key_file %%PREFIX%%/api.key;'));

chmod 0644, $key;
my ($ok, $out) = $t->nginx_t($conf);
ok($ok, 'mode 0644: nginx -t passes');
like($out, qr/\[warn\].*key file ".*api\.key" is readable by group or others/,
     'mode 0644: a warning at load');
unlike($out, qr/\Q$OLD\E/, 'mode 0644: the warning does not show the key');

chmod 0600, $key;
($ok, $out) = $t->nginx_t($conf);
ok($ok, 'mode 0600: nginx -t passes');
unlike($out, qr/readable by group or others/, 'mode 0600: no warning');

###############################################################################
# rotation under load

my $m = $t->raw_mock(port => $t->port('up'),
                     script => [ [ reply('200 OK', '{}') ] ]);

$t->run($conf);
$t->wait_workers or BAIL_OUT('nginx workers did not start');

my $gw = $t->port('gw');
my $dir = $t->prefix;
my $clients = 4;
my $deadline = Time::HiRes::time() + 20;

# each client: one delete after another on fresh connections, every
# status written down, until told to stop (or 20 s, or 2000 requests)

my @kids;

for my $c (1 .. $clients) {
    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open my $fh, '>', "$dir/statuses.$c" or POSIX::_exit(2);
        $fh->autoflush(1);

        for my $i (1 .. 2000) {
            last if -e "$dir/stop" || Time::HiRes::time() > $deadline;

            my $r = $t->http(port => $gw, method => 'DELETE',
                             path => "/r/c${c}n$i", no_json_check => 1);
            print $fh "$r->{status}\n";
        }

        close $fh;
        POSIX::_exit(0);
    }

    push @kids, $pid;
}

sub answered {
    my $n = 0;
    for my $c (1 .. $clients) {
        open my $fh, '<', "$dir/statuses.$c" or next;
        $n++ while <$fh>;
    }
    return $n;
}

# within the clients' time

sub wait_for {
    my ($test) = @_;
    return $t->wait_for($test, timeout => $deadline - Time::HiRes::time());
}

ok(wait_for(sub { answered() >= 100 }), 'load runs before the reload');

$t->write_file('api.key', "$NEW\n");
chmod 0600, $key;

my @new = $t->reload;
ok(@new, 'reload: new workers run, old ones exited');

my $before = answered();
ok(wait_for(sub { answered() >= $before + 100 }),
   'load goes on after the reload');

$t->write_file('stop', '');
waitpid($_, 0) for @kids;

my %status;
for my $c (1 .. $clients) {
    open my $fh, '<', "$dir/statuses.$c" or next;
    while (my $s = <$fh>) {
        chomp $s;
        $status{$s}++;
    }
}

my $total = 0;
$total += $_ for values %status;

is_deeply(\%status, { 200 => $total },
          "every one of $total deletes across the reload answered 200")
    or diag(join ', ', map { "$_: $status{$_}" } sort keys %status);

# the keys the upstream saw: the old one, then the new one

my @keys = map { /\r\nx-api-key: ([^\r]*)\r\n/ ? $1 : '?' } $m->requests;

is(scalar(grep { $_ ne $OLD && $_ ne $NEW } @keys), 0,
   'every upstream request carried the old or the new key');
ok((grep { $_ eq $OLD } @keys) > 0, 'the old key was used before');

my $r = $t->http(port => $gw, method => 'DELETE', path => '/r/after');
is($r->{status}, 200, 'a delete after the reload');
like(($m->requests)[-1] // '', qr/\r\nx-api-key: \Q$NEW\E\r\n/,
     'a delete after the reload uses the new key');

my @tail = @keys[-20 .. -1];
is(scalar(grep { $_ ne $NEW } @tail), 0,
   'the last 20 deletes all used the new key');

unlike($t->error_log, qr/\Q$OLD\E|\Q$NEW\E/, 'no key in the error log');

$t->stop;

done_testing;
