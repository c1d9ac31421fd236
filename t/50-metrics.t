#!/usr/bin/perl

# tavus_metrics (docs/directives.md, the metrics module): counters in a shared
# memory zone, served in the Prometheus text format.
#
#   1. the exposition parser of t/lib/TavusProm.pm finds what it must find
#   2. a known mix of requests over fresh connections to two workers
#      (worker_processes 2; both must serve some): exact counters by label,
#      outcome and hard flag, upstream classes, and a histogram that agrees
#      with nginx's own $upstream_response_time, bucket by bucket
#   3. the exposition parses: names, labels, escapes, HELP/TYPE, contiguous
#      families, cumulative buckets, +Inf == _count
#   4. the counters survive a reload (SIGHUP) that keeps the zone's name
#      and size, and go on counting; a new size starts a new zone
#   5. a zone too small for the labels: deletes still answered, one error
#      line, no alert or crash, existing labels still counted
#   6. label values: truncated and valid UTF-8 whatever the client sends

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use List::Util qw(shuffle sum0);
use TavusTest;
use TavusProm;

my @OUTCOMES = qw(deleted invalid_replica_id invalid_hard hard_delete_denied
                  method_not_allowed not_found rate_limited
                  upstream_rejected_key upstream_client_error upstream_error
                  upstream_timeout upstream_invalid_response
                  gateway_misconfigured dry_run);

my $REQ = 'tavus_requests_total';
my $CLS = 'tavus_upstream_responses_total';
my $HIS = 'tavus_upstream_response_seconds';

###############################################################################
# 1. the parser: each check it makes can fail

{
    my $head = "# HELP a_total A.\n# TYPE a_total counter\n";
    my $hist = "# HELP h H.\n# TYPE h histogram\n";
    my $good = $head . qq{a_total{l="x\\"y\\\\z\\nw"} 3\n}
               . $hist . qq{h_bucket{l="x",le="0.1"} 1\n}
               . qq{h_bucket{l="x",le="+Inf"} 2\nh_sum{l="x"} 0.3\n}
               . qq{h_count{l="x"} 2\n};

    my ($m, @e) = TavusProm::parse($good);
    is("@e", '', 'parser: a good exposition passes');
    is(TavusProm::value($m, 'a_total', { l => "x\"y\\z\nw" }), 3,
       'parser: label value unescaped');
    is(TavusProm::value($m, 'h_count', { l => 'x' }), 2, 'parser: value');

    my @bad = (
        [ 'no newline at the end', substr($good, 0, -1), qr/newline/ ],
        [ 'not UTF-8', $head . qq{a_total{l="\xff"} 1\n}, qr/UTF-8/ ],
        [ 'garbage line', $head . "a_total 1 2 3\n", qr/not name/ ],
        [ 'unquoted label', $head . "a_total{l=x} 1\n", qr/label syntax/ ],
        [ 'bad escape', $head . qq{a_total{l="\\t"} 1\n}, qr/bad escape/ ],
        [ 'stray quote', $head . qq{a_total{l="a"b"} 1\n},
          qr/label|not name/ ],
        [ 'no TYPE', "# HELP a_total A.\na_total 1\n",
          qr/no TYPE|no HELP and/ ],
        [ 'no HELP', "# TYPE a_total counter\na_total 1\n", qr/no HELP/ ],
        [ 'TYPE after samples', "# HELP a_total A.\na_total 1\n"
          . "# TYPE a_total counter\n", qr/after the samples|no HELP and/ ],
        [ 'gauge', "# HELP g G.\n# TYPE g gauge\ng 1\n", qr/not one of/ ],
        [ 'undeclared sample', $head . "b_total 1\n", qr/no HELP and TYPE/ ],
        [ 'not contiguous', $head . "a_total{l=\"1\"} 1\n" . $hist
          . qq{h_bucket{le="+Inf"} 0\nh_sum 0\nh_count 0\n}
          . "a_total{l=\"2\"} 1\n", qr/not contiguous/ ],
        [ 'duplicate', $head . "a_total 1\na_total 2\n", qr/duplicate/ ],
        [ 'negative counter', $head . "a_total -1\n", qr/counter value/ ],
        [ 'not cumulative', $hist . qq{h_bucket{le="1"} 2\n}
          . qq{h_bucket{le="2"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0\n}
          . "h_count 2\n", qr/not cumulative/ ],
        [ 'le not increasing', $hist . qq{h_bucket{le="2"} 1\n}
          . qq{h_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 0\n}
          . "h_count 1\n", qr/le not increasing/ ],
        [ 'no +Inf', $hist . qq{h_bucket{le="1"} 1\nh_sum 0\nh_count 1\n},
          qr/no \+Inf/ ],
        [ '+Inf != _count', $hist . qq{h_bucket{le="+Inf"} 1\nh_sum 0\n}
          . "h_count 2\n", qr/!= _count/ ],
        [ 'no _sum', $hist . qq{h_bucket{le="+Inf"} 1\nh_count 1\n},
          qr/no _sum/ ],
    );

    for my $case (@bad) {
        my ($name, $text, $want) = @$case;
        my (undef, @errors) = TavusProm::parse($text);
        like("@errors", $want, "parser: finds $name");
    }
}

###############################################################################
# 2. a known mix of requests, two workers, three servers (labels)

my $t = TavusTest->new(worker_processes => 2)->require_module;

my ($gw, $gw2, $gw3) = map { $t->port($_) } qw(gw gw2 gw3);
$t->refused_port('closed');

my $ok200 = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            . "Content-Length: 2\r\n\r\n{}";

my $e503 = $t->raw_mock(port => $t->port('e503'), script => [ [
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    . "Content-Length: 2\r\n\r\n{}" ] ]);
my $slow = $t->raw_mock(port => $t->port('slow'),
                        script => [ [ { sleep => 0.03 }, $ok200 ] ]);
my $hang = $t->raw_mock(port => $t->port('hang'),
                        script => [ [ { hang => 1 } ] ]);

# reuseport: each fresh connection goes to a worker by a hash of its
# source port, so that both workers serve some of them

my $conf = $t->mock_tavus(name => 'tavus', key => 'met-Key_1') . <<'HTTP';
    tavus_metrics_zone tavus 1m;

    log_format gw 'pid=$pid port=$server_port uri=$uri '
                  'outcome=$tavus_outcome hard=$tavus_hard '
                  'status=$upstream_status '
                  'connect=$upstream_connect_time '
                  'time=$upstream_response_time';

    access_log %%PREFIX%%/gw.access.log gw;
    tavus_api_key met-Key_1;
    tavus_pass http://127.0.0.1:%%PORT_tavus%%;

    server {
        listen 127.0.0.1:%%PORT_gw%% reuseport;
        tavus_metrics_label alpha;

        location = /metrics {
            tavus_metrics;
        }

        location = /pid {
            return 200 $pid;
        }

        location ~ ^/a/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
        }

        location ~ ^/refused/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
            tavus_pass http://127.0.0.1:%%PORT_closed%%;
        }

        location ~ ^/e503/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
            tavus_pass http://127.0.0.1:%%PORT_e503%%;
        }

        location ~ ^/hang/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
            tavus_pass http://127.0.0.1:%%PORT_hang%%;
            tavus_read_timeout 300ms;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_gw2%% reuseport;
        tavus_metrics_label beta;
        tavus_allow_hard_delete on;

        location ~ ^/b/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
        }

        location ~ ^/dry/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
            tavus_dry_run on;
        }

        location ~ ^/slow/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
            tavus_pass http://127.0.0.1:%%PORT_slow%%;
        }

        location ~ ^/badkey/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
            tavus_api_key met-Wrong_2;
        }

        location ~ ^/odd/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
            tavus_metrics_label "q\"b\\s\nn";
        }
    }

    server {
        listen 127.0.0.1:%%PORT_gw3%% reuseport;

        location ~ ^/none/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
        }
    }
HTTP

$t->run($conf);

# with TAVUS_MASTER=off (valgrind) nginx is one process: "both workers"
# is then that one

my @workers = $t->wait_workers;
is(scalar @workers, $t->workers, $t->workers . ' workers run')
    or diag("workers: @workers");

my $ODD = "q\"b\\s\nn";

# [ count, port, method, path, status, label, outcome, hard ]

my @plan = (
    [ 12, $gw,  qw(DELETE /a/r%x            200 alpha deleted 0) ],
    [ 2,  $gw,  qw(DELETE /a/bad.id%d       400 alpha invalid_replica_id 0) ],
    [ 1,  $gw,  DELETE => '/a/' . ('x' x 129),
                                      qw(400 alpha invalid_replica_id 0) ],
    [ 2,  $gw,  qw(DELETE /a/a+b%d          400 alpha invalid_replica_id 0) ],
    [ 4,  $gw,  qw(DELETE /a/r%x?hard=true  403 alpha hard_delete_denied 1) ],
    [ 3,  $gw,  qw(DELETE /a/notHex%d   400 alpha upstream_client_error 0) ],
    [ 1,  $gw,  qw(DELETE /refused/r1       502 alpha upstream_error 0) ],
    [ 2,  $gw,  qw(DELETE /e503/r%x         502 alpha upstream_error 0) ],
    [ 1,  $gw,  qw(DELETE /hang/r1          504 alpha upstream_timeout 0) ],
    [ 1,  $gw,  qw(DELETE /a/r1?hard=maybe  400 alpha invalid_hard 0) ],
    [ 1,  $gw,  qw(GET    /a/r1             405 alpha method_not_allowed 0) ],

    [ 6,  $gw2, qw(DELETE /b/r%x?hard=true  200 beta deleted 1) ],
    [ 3,  $gw2, qw(DELETE /b/r%x            200 beta deleted 0) ],
    [ 2,  $gw2, qw(DELETE /slow/r%x         200 beta deleted 0) ],
    [ 2,  $gw2, qw(DELETE /dry/r%x          200 beta dry_run 0) ],
    [ 1,  $gw2, qw(DELETE /dry/r1?hard=true 200 beta dry_run 1) ],
    [ 1,  $gw2, qw(DELETE /badkey/r1   502 beta upstream_rejected_key 0) ],
    [ 1,  $gw2, qw(DELETE /odd/bad.id  400), $ODD, 'invalid_replica_id', 0 ],
    [ 1,  $gw2, qw(DELETE /odd/r1      200), $ODD, 'deleted', 0 ],

    [ 1,  $gw3, qw(DELETE /none/r1     200), '', 'deleted', 0 ],
);

# what each label's counters must read, and the upstream classes: from
# the plan, not from the answers

my (%want, %classes, @requests);
my %class_of = (200 => '2xx', 400 => '4xx', 503 => '5xx', 401 => '4xx');

for my $p (@plan) {
    my ($n, $port, $method, $path, $status, $label, $outcome, $hard) = @$p;
    for my $i (1 .. $n) {
        push @requests, [ $port, $method,
                          $path =~ /%/ ? sprintf($path, 0xa0 + $i) : $path,
                          $status, $label, $outcome, $hard ];
        $want{$label}{$outcome}{$hard}++;
    }
}

$classes{alpha} = { '2xx' => 12, '4xx' => 3, '5xx' => 2 };
$classes{beta}  = { '2xx' => 11, '4xx' => 1 };
$classes{$ODD}  = { '2xx' => 1 };
$classes{''}    = { '2xx' => 1 };

# requests that connected to an upstream, so have a response time: those
# with an upstream status, and the timeout; not the refused connection

my %timed = (alpha => 12 + 3 + 2 + 1, beta => 11 + 1, $ODD => 1, '' => 1);

# the metrics page, parsed: (the metrics, what is wrong with the text)

sub scrape {
    return TavusProm::parse($t->http(port => $gw, path => '/metrics')->{body});
}

# tavus_requests_total of a label, an outcome and a hard flag (false)

sub requests_total {
    my ($m, $label, $outcome, $hard) = @_;
    return TavusProm::value($m, $REQ, { label => $label, outcome => $outcome,
                                        hard => $hard // 'false' });
}

# without autovivification: %want is compared as a whole below

sub want {
    my ($label, $outcome, $hard) = @_;
    return 0 unless exists $want{$label} && exists $want{$label}{$outcome};
    return $want{$label}{$outcome}{$hard} // 0;
}

srand(9);
my $failed = 0;

for my $q (shuffle @requests) {
    my ($port, $method, $path, $status, $label, $outcome) = @$q;
    my $r = $t->http(port => $port, method => $method, path => $path);
    my $j = $r->{status} == $status ? $t->json($r) : {};
    my $code = $outcome eq 'deleted' || $outcome eq 'dry_run'
               ? ($j->{dry_run} ? 'dry_run' : $j->{deleted} ? 'deleted' : '')
               : $j->{code} // '';
    next if $r->{status} == $status && $code eq $outcome;
    $failed++;
    diag("$method $path: $r->{status} $code, want $status $outcome");
}

is($failed, 0, scalar(@requests) . ' requests answered as planned');

my $scrape = $t->http(port => $gw, path => '/metrics');

is($scrape->{status}, 200, 'metrics: 200');
like($scrape->{headers}{'content-type'} // '',
     qr{^text/plain; version=0\.0\.4(?:;|\z)}, 'metrics: text format 0.0.4');

my ($m, @errors) = TavusProm::parse($scrape->{body});
is(join("\n", @errors), '', 'exposition parses (names, labels, escapes,'
                            . ' HELP/TYPE, contiguous, cumulative)');

is(join(' ', @{ $m->{order} }), "$REQ $CLS $HIS", 'the three families');
is($m->{families}{$REQ}{type}, 'counter', "$REQ is a counter");
is($m->{families}{$CLS}{type}, 'counter', "$CLS is a counter");
is($m->{families}{$HIS}{type}, 'histogram', "$HIS is a histogram");

is(join('|', map { TavusTest->printable($_) }
             TavusProm::label_values($m, $REQ, 'label')),
   join('|', map { TavusTest->printable($_) } sort keys %want),
   'exactly the labels used (escapes undone)');

is(join(' ', TavusProm::label_values($m, $REQ, 'outcome')),
   join(' ', sort @OUTCOMES), 'every outcome word, no other');

# every series of the requests family, zeros included, is exact

my @wrong;

for my $s (grep { $_->{name} eq $REQ } @{ $m->{samples} }) {
    my $l = $s->{labels};
    my $hard = ($l->{hard} // '') eq 'true' ? 1
               : ($l->{hard} // '') eq 'false' ? 0 : 'bad';
    my $exp = want($l->{label}, $l->{outcome}, $hard);
    push @wrong, TavusTest->printable("$l->{label}/$l->{outcome}/"
                                      . "$l->{hard}: $s->{text}, want $exp")
        if $s->{value} != $exp || $hard eq 'bad'
           || join(',', sort keys %$l) ne 'hard,label,outcome';
}

is(scalar(grep { $_->{name} eq $REQ } @{ $m->{samples} }),
   scalar(keys %want) * @OUTCOMES * 2, "$REQ: outcome x hard for each label");
is(join("\n", @wrong), '', "$REQ: every count exact");

is(requests_total($m, 'alpha', 'deleted'), 12,
   "$REQ: alpha deleted false is 12");
is(requests_total($m, 'beta', 'deleted', 'true'), 6,
   "$REQ: beta deleted true is 6");

# upstream classes

for my $label (sort keys %want) {
    my $name = TavusTest->printable($label);
    is(join(' ', map {
           TavusProm::value($m, $CLS, { label => $label, class => $_ })
           // 'missing' } qw(1xx 2xx 3xx 4xx 5xx)),
       join(' ', map { $classes{$label}{$_} // 0 } qw(1xx 2xx 3xx 4xx 5xx)),
       "$CLS \"$name\": 1xx..5xx exact");
}

# the histogram, against the plan and against the access log: the same
# milliseconds nginx logs as $upstream_response_time

my @log = grep { ($_->{outcome} // '') ne '-' }
          $t->log_entries('gw.access.log');

is(scalar @log, scalar @requests, 'access log: a line a request');

my %label_of = ($gw => 'alpha', $gw2 => 'beta', $gw3 => '');
my %logged;

for my $e (@log) {
    my $label = $e->{uri} =~ m{^/odd/} ? $ODD : $label_of{ $e->{port} };
    $e->{label} = $label;
    $logged{$label}{ $e->{outcome} }{ $e->{hard} eq 'true' ? 1 : 0 }++;
}

is_deeply(\%logged, \%want, 'access log ($tavus_outcome, $tavus_hard) agrees'
                            . ' with the plan');

my %pids = map { $_->{pid} => 1 } @log;
is(join(' ', sort keys %pids), join(' ', sort @workers),
   'every worker served requests (pids in the access log)');

for my $label (sort keys %want) {
    my $name = TavusTest->printable($label);
    my @ms = map { my $v = $_->{time}; $v =~ s/\.//; 0 + $v }
             grep { $_->{label} eq $label && $_->{connect} ne '-' } @log;

    is(TavusProm::value($m, "${HIS}_count", { label => $label }),
       $timed{$label}, "$HIS \"$name\": _count is the requests that"
                       . ' connected to an upstream');
    is(scalar @ms, $timed{$label},
       "access log \"$name\": as many with \$upstream_connect_time");

    is(TavusProm::value($m, "${HIS}_sum", { label => $label }),
       sum0(@ms) / 1000, "$HIS \"$name\": _sum is the logged times' sum");

    my (@got, @exp);
    for my $s (grep { $_->{name} eq "${HIS}_bucket"
                      && $_->{labels}{label} eq $label } @{ $m->{samples} }) {
        my $le = $s->{labels}{le};
        my $bound = $le eq '+Inf' ? 9**9**9 : $le * 1000;
        push @got, "$le=$s->{text}";
        push @exp, "$le=" . scalar(grep { $_ <= $bound + 1e-9 } @ms);
    }

    is("@got", "@exp", "$HIS \"$name\": every bucket holds the logged times");
    is(scalar @got, 12, "$HIS \"$name\": 11 bounds and +Inf");
    is(join(' ', map { (split /=/)[0] } @got),
       '0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf',
       "$HIS \"$name\": the bounds in seconds, written as Prometheus' own");
}

# the slow answers (30 ms) are above 0.025 s, the timeout (300 ms) is
# between 0.25 and 0.5 s

sub bucket {
    my ($mm, $label, $le) = @_;
    return TavusProm::value($mm, "${HIS}_bucket", { label => $label,
                                                    le => $le }) // -1;
}

cmp_ok(bucket($m, 'beta', '+Inf') - bucket($m, 'beta', '0.025'), '>=', 2,
       "$HIS beta: the two slow answers above 0.025 s");
is(bucket($m, 'alpha', '0.5') - bucket($m, 'alpha', '0.25'), 1,
   "$HIS alpha: the timeout in the 0.5 s bucket");

# a scrape is not a request of the module: no change

my ($m2) = scrape();
is_deeply(TavusProm::snapshot($m2), TavusProm::snapshot($m),
          'a second scrape reads the same');

is($t->http(port => $gw, method => 'POST', path => '/metrics')->{status},
   405, 'metrics: POST is 405');

###############################################################################
# 4. a reload that keeps the zone's name and size keeps the counters

# nginx reloads only with a master process: with TAVUS_MASTER=off
# (valgrind) this part cannot run, and says so

SKIP: {
    skip 'no reload without a master process (TAVUS_MASTER=off)', 15
        unless $t->master;

    my @new = $t->reload;
    is(scalar @new, $t->workers, 'reload: new workers, the old ones gone')
        or diag($t->error_log);

    my %old = map { $_ => 1 } @workers;
    my $pid = $t->http(port => $gw, path => '/pid')->{body};
    ok($pid && !$old{$pid} && grep({ $_ == $pid } @new),
       'reload: a new worker answers') or diag("pid $pid");

    my ($m3, @e3) = scrape();
    is("@e3", '', 'reload: the exposition parses');
    is_deeply(TavusProm::snapshot($m3), TavusProm::snapshot($m),
              'reload: every value as before');

    # and counting goes on, in the new workers

    for my $id (qw(rb1 rb2)) {
        is($t->http(port => $gw, method => 'DELETE',
                    path => "/a/$id")->{status}, 200,
           "after reload: delete $id");
    }
    is($t->http(port => $gw2, method => 'DELETE', path => '/dry/r1')->{status},
       200, 'after reload: a dry run');

    ($m3) = scrape();
    is(requests_total($m3, 'alpha', 'deleted'), 14,
       'after reload: alpha deleted 12 + 2');
    is(requests_total($m3, 'beta', 'dry_run'), 3,
       'after reload: beta dry_run 2 + 1');
    is(TavusProm::value($m3, "${HIS}_count", { label => 'alpha' })
       - TavusProm::value($m, "${HIS}_count", { label => 'alpha' }), 2,
       'after reload: alpha histogram _count + 2');

    # a zone of another size is a new zone: counting starts over

    (my $bigger = $conf)
        =~ s/tavus_metrics_zone tavus 1m;/tavus_metrics_zone tavus 2m;/
        or die 'no zone line';

    @new = $t->reload(http => $bigger);
    is(scalar @new, $t->workers, 'reload with a new size: new workers')
        or diag($t->error_log);

    my ($m4, @e4) = scrape();
    is("@e4", '', 'new size: the exposition parses');
    is(scalar @{ $m4->{samples} }, 0, 'new size: no series yet');

    is($t->http(port => $gw, method => 'DELETE', path => '/a/rc1')->{status},
       200, 'new size: a delete');
    ($m4) = scrape();
    is(requests_total($m4, 'alpha', 'deleted'), 1,
       'new size: counted from zero');
}

unlike($t->error_log, qr/no memory/, 'no "no memory" error in this run');

$t->stop;

# a gateway whose metrics label comes from the client's "l" argument

sub labels_conf {
    my ($zone) = @_;

    return $t->mock_tavus(name => 'tavus', key => 'met-Key_1') . <<"HTTP";
    tavus_metrics_zone $zone;

    server {
        listen 127.0.0.1:%%PORT_gw%%;

        location = /metrics {
            tavus_metrics;
        }

        location ~ ^/l/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_pass http://127.0.0.1:%%PORT_tavus%%;
            tavus_api_key met-Key_1;
            tavus_metrics_label \$arg_l;
        }
    }
HTTP
}

###############################################################################
# 5. a zone too small for the labels

$t->workers(1);
$t->write_file('tavus.access.log', '');      # the mock's, of this run only

$t->run(labels_conf('small 32k'));

my $N = 300;
my @labels = map { sprintf 'L%03d', $_ } 1 .. $N;
my @bad;

for my $i (0 .. $#labels) {
    my $id = sprintf 'r%x', 0x1000 + $i;
    my $r = $t->http(port => $gw, method => 'DELETE',
                     path => "/l/$id?l=$labels[$i]");
    my $j = $r->{status} == 200 ? $t->json($r) : {};
    push @bad, "$labels[$i]: $r->{status}"
        unless $r->{status} == 200 && ($j->{replica_id} // '') eq $id
               && JSON::PP::is_bool($j->{deleted}) && $j->{deleted};
}

is(join(', ', @bad), '', "small zone: all $N deletes answered 200 deleted");
is(scalar(grep { $_->{status} == 200 } $t->mock_log('tavus')), $N,
   "small zone: all $N reached the mock");

$scrape = $t->http(port => $gw, path => '/metrics');
is($scrape->{status}, 200, 'small zone: metrics 200');
($m, @errors) = TavusProm::parse($scrape->{body});
is(join("\n", @errors), '', 'small zone: the exposition parses');

my @present = TavusProm::label_values($m, $REQ, 'label');
my $S = @present;
ok($S > 0 && $S < $N, "small zone: some labels counted, not all ($S)");
is("@present", "@labels[0 .. $S - 1]", 'small zone: the first ones, in order');
is(join(' ', map { requests_total($m, $_, 'deleted') // 0 } @present),
   join(' ', (1) x $S), 'small zone: each counted once');

my @nomem = grep { /no memory.*requests with new labels are not counted/ }
            split /\n/, $t->error_log;
is(scalar @nomem, 1, 'small zone: one "no memory" line, not one a request')
    or diag(scalar(@nomem) . " lines");
like($nomem[0] // '', qr/\[error\].*tavus_metrics_zone "small"/,
     'small zone: an [error] naming the zone');

# a label already there is still counted, a new one still is not

$t->http(port => $gw, method => 'DELETE', path => "/l/rd1?l=$labels[0]");
$t->http(port => $gw, method => 'DELETE', path => "/l/rd2?l=$labels[-1]");
$t->http(port => $gw, method => 'DELETE', path => '/l/rd3?l=Lnew');

($m) = scrape();
is(requests_total($m, $labels[0], 'deleted'), 2,
   'small zone: an existing label counts on');
my @now = TavusProm::label_values($m, $REQ, 'label');
is(scalar @now, $S,
   'small zone: no label added when full');
is(scalar(grep { /no memory/ } split /\n/, $t->error_log), 1,
   'small zone: still one "no memory" line');

$t->stop;

###############################################################################
# 6. label values from the client: truncated, and valid UTF-8 in the
# exposition whatever bytes arrive (Prometheus rejects a whole scrape
# with one invalid UTF-8 label value)

$t->run(labels_conf('tavus 1m'));

my %sent = (long => 'x' x 200, latin1 => "caf\xe9",
            cut => ('a' x 127) . "\xc3\xa9");

for my $k (sort keys %sent) {
    is($t->http(port => $gw, method => 'DELETE',
                path => "/l/r1?l=$sent{$k}")->{status}, 200, "label $k: 200");
}

$scrape = $t->http(port => $gw, path => '/metrics');
($m, @errors) = TavusProm::parse($scrape->{body});
is(join("\n", @errors), '', 'client labels: the exposition parses (UTF-8)');

@present = TavusProm::label_values($m, $REQ, 'label');
is(scalar @present, 3, 'client labels: three series');

my ($long) = grep { /^x+\z/ } @present;
ok(defined $long && length($long) <= 128 && length($long) > 0,
   'a 200-byte label is cut (at most 128 bytes)')
    or diag('labels: ' . join(', ', map { length } @present));

my ($cut) = grep { /^a{127}/ } @present;
ok(defined $cut && ($cut eq 'a' x 127 || $cut eq ('a' x 127) . "\xc3\xa9"),
   'a label cut inside a UTF-8 character is cut before it')
    or diag('label: ' . TavusTest->printable($cut // 'missing'));

$t->stop;

done_testing;
