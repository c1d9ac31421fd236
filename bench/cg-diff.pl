#!/usr/bin/perl

# Where the instructions of a request go: the per-function difference of
# two callgrind runs of one gateway (bench.pl with BENCH_KEEP=1 keeps them
# as callgrind.out.NAME.0, the baseline, and callgrind.out.NAME.N), divided
# by the number of requests between them.
#
#   perl bench/cg-diff.pl [--self] [--top 40] BASE.out RUN.out N
#
# Inclusive by default (a function with everything it calls); --self
# counts each function's own instructions only.  Functions that nginx's
# stripped binary leaves unnamed show as ???:0x... with their object.

use strict;
use warnings;

my $self = 0;
my $top = 40;

while (@ARGV && $ARGV[0] =~ /^--/) {
    my $o = shift;
    if ($o eq '--self') { $self = 1 }
    elsif ($o eq '--top') { $top = shift }
    else { die "cg-diff: unknown option $o\n" }
}

die "usage: cg-diff.pl [--self] [--top N] BASE.out RUN.out REQUESTS\n"
    unless @ARGV == 3;

my ($base, $run, $n) = @ARGV;

sub functions {
    my ($file) = @_;
    my %f;
    my @cmd = ('callgrind_annotate', '--threshold=100',
               '--inclusive=' . ($self ? 'no' : 'yes'), $file);
    my $pid = open my $fh, '-|';
    die "cg-diff: fork: $!\n" unless defined $pid;
    if (!$pid) {
        open STDERR, '>', '/dev/null';    # its warnings on --threshold=100
        exec @cmd or exit 127;
    }
    while (<$fh>) {
        next unless /^\s*([\d,]+)\s+\([\s\d.]+%\)\s+(.+?)\s*$/;
        my ($ir, $name) = ($1, $2);
        next if $name eq 'PROGRAM TOTALS';
        $ir =~ tr/,//d;
        $name =~ s{^\S*/}{};    # the source path
        $f{$name} += $ir;
    }
    close $fh;
    return \%f;
}

my $fb = functions($base);
my $fr = functions($run);

my %d;
for my $k (keys %$fr) {
    my $v = ($fr->{$k} - ($fb->{$k} // 0)) / $n;
    $d{$k} = $v if abs($v) >= 1;
}

my @k = sort { $d{$b} <=> $d{$a} } keys %d;
splice @k, $top if @k > $top;

printf "%s instructions per request, %s, from %d requests\n",
       $self ? 'own' : 'inclusive', $run, $n;
printf "%10.0f  %s\n", $d{$_}, $_ for @k;
