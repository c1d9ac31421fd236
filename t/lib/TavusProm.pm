package TavusProm;

# A strict parser of the Prometheus text exposition format (version
# 0.0.4), for the tests of tavus_metrics.  (Several workers and reloads:
# the harness, TavusTest->new(worker_processes => N) and $t->reload.)
#
#     use TavusProm;
#
#     my ($m, @errors) = TavusProm::parse($body);
#     is("@errors", '', 'the exposition parses');
#     my $v = TavusProm::value($m, 'tavus_requests_total',
#                              { label => 'a', outcome => 'deleted',
#                                hard => 'false' });
#
# parse returns a hash
#
#     { families => { NAME => { help, type, samples => [ S, ... ] } },
#       order    => [ NAME, ... ],          families as they appear
#       samples  => [ S, ... ] }            all samples, in order
#
# with S = { name, labels => { n => v }, value (a number), line }, and the
# list of what is wrong with the text, empty when it is well-formed:
#
#   - the body is UTF-8 and ends with a newline
#   - every line is a comment (# HELP, # TYPE or another #), empty, or a
#     sample: name{label="value",...} value [timestamp]
#   - names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
#     [a-zA-Z_][a-zA-Z0-9_]* and not __*, label values are quoted with
#     only \\, \" and \n escapes, no label is repeated in a sample
#   - each family has one # HELP and one # TYPE, both before its first
#     sample; the type is one of those allowed (counter and histogram by
#     default, types => [...] to change)
#   - every sample belongs to a declared family (a histogram's are
#     NAME_bucket, NAME_sum and NAME_count; a counter's NAME), and the
#     samples of a family are contiguous
#   - no two samples have the same name and labels
#   - counters are finite and not negative
#   - a histogram series (its labels but le) has buckets in increasing le
#     order with non-decreasing values, an le="+Inf" bucket, _sum and
#     _count, and +Inf == _count

use strict;
use warnings;

use Encode ();
use TavusTest;

my $NAME = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
my $LABEL = qr/[a-zA-Z_][a-zA-Z0-9_]*/;
my $FLOAT = qr/[+-]?(?:Inf|NaN|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)/;

sub number {
    my ($s) = @_;
    return 9**9**9 if $s =~ /^\+?Inf$/;
    return -9**9**9 if $s eq '-Inf';
    return 'nan' if $s eq 'NaN';
    return 0 + $s;
}

sub parse {
    my ($text, %o) = @_;

    my %allowed = map { $_ => 1 } @{ $o{types} // [qw(counter histogram)] };
    my (@errors, %fam, @order, @samples, %seen, %done);
    my $current;                  # the family whose samples come now

    my $bytes = $text;
    eval { Encode::decode('UTF-8', $bytes, Encode::FB_CROAK()); 1 }
        or push @errors, 'the body is not valid UTF-8';

    push @errors, 'the body does not end with a newline'
        if length $text && substr($text, -1) ne "\n";

    my $n = 0;

    for my $line (split /\n/, $text, -1) {
        $n++;
        next if $line eq '';

        my $where = "line $n: " . TavusTest->printable($line);

        if ($line =~ /^#/) {
            my ($kw, $name, $rest) =
                $line =~ /^#\s+(HELP|TYPE)\s+(\S+)(?:\s+(.*))?$/
                or next;                            # a plain comment

            if ($name !~ /^$NAME\z/) {
                push @errors, "$where: bad metric name in $kw";
                next;
            }

            my $f = $fam{$name} //= do {
                push @order, $name;
                { name => $name, samples => [] };
            };

            push @errors, "$where: $kw after the samples of $name"
                if @{ $f->{samples} };

            if ($kw eq 'HELP') {
                push @errors, "$where: a second HELP for $name"
                    if defined $f->{help};
                $f->{help} = $rest // '';
                push @errors, "$where: bad escape in HELP"
                    if $f->{help} =~ /\\(?:[^\\n]|\z)/;
            } else {
                push @errors, "$where: a second TYPE for $name"
                    if defined $f->{type};
                $f->{type} = $rest // '';
                push @errors, "$where: type \"$f->{type}\" not one of "
                              . join(', ', sort keys %allowed)
                    unless $allowed{ $f->{type} };
            }

            next;
        }

        my ($name, $labels, $value, $ts) =
            $line =~ /^($NAME)(?:\{(.*)\})?[ \t]+($FLOAT)(?:[ \t]+(-?\d+))?$/
            or do { push @errors, "$where: not name{labels} value"; next };

        my %l;
        my $ok = 1;

        if (defined $labels) {
            my $s = $labels;
            while (length $s) {
                if ($s =~ s/^($LABEL)="((?:[^"\\\n]|\\.)*)"//) {
                    my ($ln, $raw) = ($1, $2);
                    if ($raw !~ /^(?:[^\\]|\\[\\"n])*\z/) {
                        push @errors, "$where: bad escape in label $ln";
                        $ok = 0;
                    }
                    push @errors, "$where: reserved label name $ln"
                        if $ln =~ /^__/;
                    push @errors, "$where: label $ln repeated"
                        if exists $l{$ln};
                    $l{$ln} = $raw =~ s/\\(.)/$1 eq 'n' ? "\n" : $1/ger;
                    last if $s eq '' || $s eq ',';
                    unless ($s =~ s/^,//) {
                        push @errors, "$where: no comma after label $ln";
                        $ok = 0;
                        last;
                    }
                } else {
                    push @errors, "$where: bad label syntax at "
                                  . TavusTest->printable($s);
                    $ok = 0;
                    last;
                }
            }
        }

        next unless $ok;

        # the family: NAME itself, or a histogram's NAME_bucket/_sum/_count

        my $family;
        if ($fam{$name} && ($fam{$name}{type} // '') ne 'histogram') {
            $family = $name;
        } elsif ($name =~ /^(.*)_(bucket|sum|count)$/ && $fam{$1}
                 && ($fam{$1}{type} // '') eq 'histogram') {
            $family = $1;
        }

        unless (defined $family) {
            push @errors, "$where: no HELP and TYPE before this sample";
            next;
        }

        my $f = $fam{$family};

        push @errors, "$where: no HELP for $family" unless defined $f->{help};
        push @errors, "$where: no TYPE for $family" unless defined $f->{type};

        if (!defined $current || $current ne $family) {
            push @errors, "$where: samples of $family are not contiguous"
                if $done{$family};
            $done{$current} = 1 if defined $current;
            $current = $family;
        }

        my $key = join "\0", $name, map { "$_=$l{$_}" } sort keys %l;
        push @errors, "$where: duplicate sample" if $seen{$key}++;

        my $v = number($value);
        my $type = $f->{type} // '';

        push @errors, "$where: counter value not finite and >= 0"
            if $type eq 'counter' && !($value =~ /^\+?[\d.]/ && $v >= 0);

        push @errors, "$where: le label on a $type"
            if $type ne 'histogram' && exists $l{le};

        my $s = { name => $name, family => $family, labels => \%l,
                  value => $v, text => $value, line => $n };

        push @{ $f->{samples} }, $s;
        push @samples, $s;
    }

    for my $name (@order) {
        my $f = $fam{$name};
        push @errors, "$name: no TYPE" unless defined $f->{type};
        push @errors, "$name: no HELP" unless defined $f->{help};
        push @errors, _histogram($f)
            if ($f->{type} // '') eq 'histogram';
    }

    return ({ families => \%fam, order => \@order, samples => \@samples },
            @errors);
}

sub _histogram {
    my ($f) = @_;

    my (@errors, %series);

    for my $s (@{ $f->{samples} }) {
        my %l = %{ $s->{labels} };
        delete $l{le};
        my $key = join "\0", map { "$_=$l{$_}" } sort keys %l;
        my $h = $series{$key} //= { labels => \%l, buckets => [] };

        if ($s->{name} eq "$f->{name}_bucket") {
            if (!defined $s->{labels}{le}) {
                push @errors, "line $s->{line}: a bucket without le";
            } elsif ($s->{labels}{le} !~ /^$FLOAT\z/
                     || $s->{labels}{le} eq 'NaN') {
                push @errors, "line $s->{line}: le is not a number";
            } else {
                push @{ $h->{buckets} }, [ number($s->{labels}{le}),
                                           $s->{value}, $s->{line} ];
            }
        } elsif ($s->{name} eq "$f->{name}_sum") {
            $h->{sum} = $s->{value};
            push @errors, "line $s->{line}: le on _sum"
                if exists $s->{labels}{le};
        } else {
            $h->{count} = $s->{value};
            push @errors, "line $s->{line}: le on _count"
                if exists $s->{labels}{le};
        }
    }

    for my $key (sort keys %series) {
        my $h = $series{$key};
        my $what = $f->{name} . '{'
                   . join(',', map { "$_=\"$h->{labels}{$_}\"" }
                               sort keys %{ $h->{labels} })
                   . '}';
        my @b = @{ $h->{buckets} };

        push @errors, "$what: no buckets" unless @b;

        for my $i (1 .. $#b) {
            push @errors, "$what: le not increasing at line $b[$i][2]"
                unless $b[$i][0] > $b[$i - 1][0];
            push @errors, "$what: bucket at line $b[$i][2] is less than the"
                          . ' one before (not cumulative)'
                unless $b[$i][1] >= $b[$i - 1][1];
        }

        push @errors, "$what: no +Inf bucket"
            unless @b && $b[-1][0] == 9**9**9;
        push @errors, "$what: no _count" unless defined $h->{count};
        push @errors, "$what: no _sum" unless defined $h->{sum};
        push @errors, "$what: +Inf bucket $b[-1][1] != _count $h->{count}"
            if @b && defined $h->{count} && $b[-1][1] != $h->{count};
    }

    return @errors;
}

# the value of the sample NAME with exactly these labels, or undef

sub value {
    my ($m, $name, $labels) = @_;

    my $want = join "\0", map { "$_=$labels->{$_}" } sort keys %$labels;

    for my $s (@{ $m->{samples} }) {
        next unless $s->{name} eq $name;
        my $got = join "\0", map { "$_=$s->{labels}{$_}" }
                             sort keys %{ $s->{labels} };
        return $s->{value} if $got eq $want;
    }

    return undef;
}

# the values of the label LABEL over the samples of NAME

sub label_values {
    my ($m, $name, $label) = @_;

    my %v;
    $v{ $_->{labels}{$label} } = 1
        for grep { $_->{name} eq $name && exists $_->{labels}{$label} }
            @{ $m->{samples} };

    return sort keys %v;
}

# sample name and labels => value, for comparing two scrapes

sub snapshot {
    my ($m) = @_;

    return { map {
        my $s = $_;
        (join(',', $s->{name}, map { "$_=$s->{labels}{$_}" }
                               sort keys %{ $s->{labels} })
         => $s->{text})
    } @{ $m->{samples} } };
}

1;
