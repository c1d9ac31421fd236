package TavusSite;

# Configurations placed as an operator places them on Debian, and the
# requests the documentation shows for them, for the tests of what an
# operator reads: examples/ (t/60-examples.t), README.md's site and its
# verifying request (t/62-docs.t), `make run` (t/64-make-run.t).
#
#     use TavusSite ();
#
#     my $http = TavusSite::layout($t, [ 'conf.d', 'tavus-upstream.conf',
#                                        $text ],
#                                      [ 'sites-available', 'tavus', $text ]);
#     $t->nginx_t($http);
#
#     for my $e (TavusSite::expectations($readme_section)) {
#         my $r = TavusSite::run_curl($t, $e->{command});
#         TavusSite::check_answer($t, $r, $e, $e->{command});
#     }
#
#   layout($t, [ KIND, NAME, TEXT ], ..., inline => 1?)
#       writes each TEXT (%%PORT_...%% and %%PREFIX%% expanded) as
#       conf.d/NAME or sites-available/NAME with its link in
#       sites-enabled/, in a directory of its own in the prefix, and
#       returns the http{} text that includes them as Debian's nginx.conf
#       does: conf.d/*.conf, then sites-enabled/*; with inline => 1, the
#       texts themselves in that order (for $t->run, which waits for the
#       listen ports it sees)
#   expectations(TEXT)
#       the documented requests of TEXT: each line `curl ...` that comes
#       right after a comment line `# STATUS[ CODE]: what it shows`, as
#       { status, code (or ''), comment, command }
#   run_curl($t, COMMAND)
#       runs the command line with sh, as an operator pastes it (with
#       --max-time 10 added); its output (curl -i) parsed: { status,
#       headers, body, raw, exit }
#   curl($t, ARGUMENT, ...)
#       curl --include with these arguments, no shell; parsed the same
#   check_answer($t, $r, EXPECTATION, NAME)
#       the status, and the code: for an error, the `code` of the JSON
#       body; `deleted` and `dry_run`, the fields of those answers

use strict;
use warnings;

use POSIX ();
use JSON::PP ();
use Test::More ();

my $layouts = 0;

sub layout {
    my ($t, @files) = @_;

    my %o = ref $files[-1] eq 'ARRAY' ? () : splice @files, -2;
    my $p = $t->prefix;
    my $dir = "$p/layout" . ++$layouts;

    mkdir $_ or die "mkdir $_: $!"
        for $dir, map { "$dir/$_" } qw(conf.d sites-available sites-enabled);

    for my $f (@files) {
        my ($kind, $name, $text) = @$f;
        die "layout: $kind is not conf.d or sites-available"
            unless $kind =~ /^(?:conf\.d|sites-available)$/;
        $t->write_file("$dir/$kind/$name", $t->expand($text));
        next unless $kind eq 'sites-available';
        symlink "../sites-available/$name", "$dir/sites-enabled/$name"
            or die "symlink: $!";
    }

    return "    include $dir/conf.d/*.conf;\n"
           . "    include $dir/sites-enabled/*;\n"
        unless $o{inline};

    my @conf = sort { $a cmp $b } grep { /\.conf$/ } _names("$dir/conf.d");
    my @sites = sort { $a cmp $b } _names("$dir/sites-enabled");
    my @order = ((map { "$dir/conf.d/$_" } @conf),
                 map { "$dir/sites-enabled/$_" } @sites);

    return join '', map { $t->read_file($_) . "\n" } @order;
}

sub _names {
    my ($dir) = @_;
    opendir my $dh, $dir or die "$dir: $!";
    my @names = grep { !/^\./ } readdir $dh;
    closedir $dh;
    return @names;
}

sub expectations {
    my ($text) = @_;

    my @lines = split /\n/, $text;
    my @e;

    for my $i (1 .. $#lines) {
        next unless $lines[$i] =~ /^\s*(curl\s.*?)\s*$/;
        my $command = $1;
        my ($status, $code, $what) = $lines[$i - 1]
            =~ /^\s*#\s*(\d{3})(?:\s+([a-z_]+))?:\s*(.*?)\s*$/ or next;
        push @e, { status => $status, code => $code // '',
                   comment => $what, command => $command };
    }

    return @e;
}

sub run_curl {
    my ($t, $command) = @_;
    return _curl($t, 'sh', '-c', "$command --max-time 10");
}

sub curl {
    my ($t, @args) = @_;
    return _curl($t, 'curl', '--silent', '--show-error', '--include',
                 '--max-time', '10', @args);
}

sub _curl {
    my ($t, @cmd) = @_;

    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDERR, '>', $t->prefix . '/curl.stderr';
        exec @cmd or POSIX::_exit(127);
    }
    binmode $fh;
    local $/;
    my $raw = <$fh> // '';
    close $fh;

    my $r = { status => 0, headers => {}, body => '', raw => $raw,
              exit => $? >> 8 };

    my ($head, $body) = split /\r?\n\r?\n/, $raw, 2;
    my ($status_line, @lines) = split /\r?\n/, $head // '';

    if (($status_line // '') =~ m{^HTTP/\S+ (\d{3})}) {
        $r->{status} = $1;
        for (@lines) {
            my ($n, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
            $r->{headers}{lc $n} = $v;
        }
        $r->{body} = $body // '';
    } else {
        $r->{body} = $raw;
    }

    return $r;
}

sub check_answer {
    my ($t, $r, $e, $name) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    Test::More::is($r->{status}, $e->{status}, "$name: $e->{status}")
        or Test::More::diag($r->{raw} . $t->read_file('curl.stderr'));

    return unless $e->{code};

    my $j = eval { JSON::PP->new->decode($r->{body}) } // {};

    if ($e->{code} eq 'deleted') {
        Test::More::ok(JSON::PP::is_bool($j->{deleted}) && $j->{deleted},
                       "$name: \"deleted\":true");
    } elsif ($e->{code} eq 'dry_run') {
        Test::More::ok(JSON::PP::is_bool($j->{dry_run}) && $j->{dry_run},
                       "$name: \"dry_run\":true");
    } else {
        Test::More::is($j->{code}, $e->{code}, "$name: code $e->{code}");
    }
}

1;
