#!/usr/bin/perl

# The cases that the system fuzzer of the upstream answer path
# (scripts/chaos/fuzz-upstream.pl) found wrong, replayed through a real
# nginx: each file of t/chaos/regressions/ is one upstream answer (its
# bytes, its writes, how the connection ends) and one client, with what
# the answer must be in its "note".  The fuzzer's own oracle and checks
# judge them; a file fails here until the module answers it right, and
# stays as the regression test.
#
# It uses TAVUS_NGINX and TAVUS_MODULE like the rest of the suite, so
# that `make test-asan` replays the cases with the sanitizers.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use FindBin ();
use Cwd ();
use File::Temp ();

my $top = Cwd::abs_path("$FindBin::Bin/..");
my @files = sort glob("$top/t/chaos/regressions/*.json");

my $module = $ENV{TAVUS_MODULE} // "$top/build/ngx_http_tavus_module.so";
BAIL_OUT("no module at $module (make build, or set TAVUS_MODULE)")
    unless -f $module || $module eq 'static';

ok(scalar @files >= 1, scalar(@files) . ' regression cases');

my $save = File::Temp::tempdir('tavus-fuzz-regressions-XXXXXX', TMPDIR => 1,
                               CLEANUP => 1);
my $cmd = join ' ', "'$^X'", "'$top/scripts/chaos/fuzz-upstream.pl'",
               '--quiet', "--save '$save'", map { "--replay '$_'" } @files;
my $out = qx{$cmd 2>&1};
my $rc = $? >> 8;

my %id;
for my $f (@files) {
    open my $fh, '<', $f or die "$f: $!";
    local $/;
    my ($id) = <$fh> =~ /"id"\s*:\s*"([^"]+)"/;
    $id{$f} = $id;
}

for my $f (@files) {
    (my $name = $f) =~ s{^.*/}{};
    my $id = $id{$f} // '?';
    my @fails = $out =~ /^(FAIL: case \d+ \(\Q$id\E,[^\n]*)$/mg;
    ok(!@fails, "$name") or diag(join "\n", @fails);
}

my @run = $out =~ /^(FAIL: the run: [^\n]*)$/mg;
ok(!@run, 'no failure of the run as a whole (error log, metrics,'
          . ' sanitizers, workers)') or diag(join "\n", @run);

like($out, qr/^fuzz-upstream: \d+ passed, \d+ failed$/m, 'the fuzzer ran')
    or diag($out);
is($rc, $out =~ /^FAIL: /m ? 1 : 0, 'its exit status');

done_testing;
