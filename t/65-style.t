#!/usr/bin/perl

# nginx's code style, the parts a machine can check, in every C file of
# the repository (the module, the unit tests, the fuzzers, the helpers of
# the suite):
#
#   - lines of at most 80 columns, no tab, no trailing white space, LF
#     line ends, a final newline;
#   - comments /* */, never //;
#   - each #if (nginx_version ...) is followed by a comment that names
#     the nginx version that changed, "nginx 1.23.0 ...".

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use TavusProc ();

use File::Temp ();

# --only FILE: that file alone, for the checks of the checks below
my $only = @ARGV == 2 && $ARGV[0] eq '--only' ? $ARGV[1] : undef;

my @files = $only ? ($only)
          : sort map { glob } qw(ngx_tavus_module/*.c ngx_tavus_module/*.h
                                 t/unit/*.c t/unit/*.h fuzz/*.c fuzz/*.h
                                 t/lib/*.c scripts/*.h);

cmp_ok(scalar(grep { m{^ngx_tavus_module/} } @files), '>=', 10,
       'the module\'s sources are found')
    unless $only;

for my $file (@files) {
    my $text = TavusProc::slurp($file);
    my (@long, @tab, @trailing, @cr, @slashes, @guard);
    my @lines = split /\n/, $text, -1;
    my $last = pop @lines;

    for my $i (0 .. $#lines) {
        my $line = $lines[$i];
        my $n = $i + 1;

        push @long, $n if length $line > 80;
        push @tab, $n if $line =~ /\t/;
        push @cr, $n if $line =~ /\r/;
        push @trailing, $n if $line =~ /[ \t]$/;

        # // outside a string: at the start, or after code and a blank
        push @slashes, $n if $line =~ m{^\s*//} || $line =~ m{[;{}]\s+//};

        if ($line =~ /^#\s*(?:el)?if\b.*\bnginx_version\b/) {
            my $next = $lines[$i + 1] // '';
            push @guard, $n unless $next =~ m{^\s*/\*\s*nginx \d+\.\d+\.\d+ };
        }
    }

    is("@long", '', "$file: no line over 80 columns");
    is("@tab", '', "$file: no tab");
    is("@trailing", '', "$file: no trailing white space");
    is("@cr", '', "$file: LF line ends");
    is($last, '', "$file: a final newline");
    is("@slashes", '', "$file: /* */ comments");
    is("@guard", '', "$file: each nginx_version guard names the change");
}

# the checks themselves: each finds what it is for

unless ($only) {
    my $bad = "int  a;\t\r\nc;  \n" . ('x' x 81) . "\n    b(); // c\n"
              . "#if (nginx_version >= 1023000)\n#endif";
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    TavusProc::spew("$dir/bad.c", $bad);
    my $out = `$^X $0 --only $dir/bad.c 2>&1`;
    like($out, qr/not ok \d+ - \Q$dir\E\/bad\.c: no line over 80/,
         'a long line is found');
    for my $what ('no tab', 'no trailing white space', 'LF line ends',
                  'a final newline', '/\* \*/ comments',
                  'each nginx_version guard names the change')
    {
        like($out, qr/not ok \d+ - \Q$dir\E\/bad\.c: $what/,
             "the check '$what' finds its fault");
    }
}

done_testing;
