#!/usr/bin/perl

# The libFuzzer harnesses of fuzz/ replayed without libFuzzer: each
# harness is built with fuzz/regress_main.c and AddressSanitizer +
# UndefinedBehaviorSanitizer, then run on every input of its seed corpus
# (fuzz/corpus/<harness>/) and every crash `make fuzz` saved
# (fuzz/regressions/<harness>/).  A saved crash fails here until the bug
# is fixed; the file then stays, as the regression test.
#
# clang is used when present, the compiler `make fuzz` uses, so that a
# crash reproduces with the same checks; otherwise cc (gcc's sanitizers
# do not flag everything clang's do).

use strict;
use warnings;

use Test::More;
use File::Temp ();
use FindBin ();
use Cwd ();

my $top = Cwd::abs_path("$FindBin::Bin/..");
my $objs = "$top/build/nginx/objs";

# the build facts of the Makefile: the include paths (absolute) and the
# pure sources (relative to the top)

sub make_print {
    my ($var) = @_;
    my $v = qx{make -s --no-print-directory -C '$top' print-$var};
    die "make print-$var failed\n" if $? || $v !~ /\S/;
    return split ' ', $v;
}

my @incs = make_print('NGX_INCS');
my @pure = map { "$top/$_" } make_print('PURE');

unless (-f "$objs/ngx_auto_config.h") {
    print "Bail out! $objs/ngx_auto_config.h is missing: run the suite with"
          . " `make test`\n";
    exit 1;
}

my $cc = system('sh', '-c', 'command -v clang >/dev/null') == 0 ? 'clang'
         : ($ENV{CC} // 'cc');

my $dir = File::Temp::tempdir('tavus-fuzz-regress-XXXXXX', TMPDIR => 1,
                              CLEANUP => 1);

my @harnesses = map { m{fuzz_(\w+)\.c$} ? $1 : () }
                glob("$top/fuzz/fuzz_*.c");

ok(scalar @harnesses >= 3, 'the harnesses: ' . join(' ', @harnesses));

for my $h (@harnesses) {
    my $bin = "$dir/$h";

    my @cmd = ($cc, '-g', '-O1', '-fsanitize=address,undefined',
               '-fno-sanitize-recover=all', '-fno-omit-frame-pointer',
               '-Wno-unused-function', "-I$top/fuzz", @incs,
               '-o', $bin, "$top/fuzz/fuzz_$h.c", "$top/fuzz/regress_main.c",
               @pure, '-lcjson');

    my $out = qx{@cmd 2>&1};
    ok($? == 0, "$h: built with $cc") or diag($out), next;

    my @seeds = sort glob("$top/fuzz/corpus/$h/*");
    my @crashes = sort glob("$top/fuzz/regressions/$h/*");

    ok(scalar @seeds, "$h: a seed corpus (" . scalar(@seeds) . ' inputs)');

    for my $file (@seeds, @crashes) {
        (my $name = $file) =~ s{^\Q$top\E/}{};

        local $ENV{ASAN_OPTIONS} = 'detect_leaks=1:abort_on_error=1';
        local $ENV{UBSAN_OPTIONS} = 'print_stacktrace=1:halt_on_error=1';

        my $run = qx{'$bin' '$file' 2>&1};
        ok($? == 0, "$h: $name") or diag($run);
    }
}

done_testing;
