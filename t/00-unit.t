#!/usr/bin/perl

# Unit tests of the pure C parts (validation, JSON translation):
# build/unit, made by `make test`, prints TAP.

use strict;
use warnings;
use FindBin;

my $unit = "$FindBin::Bin/../build/unit";

unless (-x $unit) {
    print "Bail out! $unit is missing: run the suite with `make test`\n";
    exit 1;
}

exec $unit or die "exec $unit: $!\n";
