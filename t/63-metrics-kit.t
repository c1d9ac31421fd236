#!/usr/bin/perl

# The metrics kit, examples/metrics/ with examples/tavus-metrics.conf,
# against the real tools and a real nginx with the module:
#
#   1. promtool (Debian package prometheus, or promtool since Debian 13,
#      unpacked by scripts/tool.sh when missing) is there, and fails what
#      it must fail;
#   2. nginx runs examples/tavus-metrics.conf (its listen moved to a free
#      port, comments dropped) with a site that deletes through a mock of
#      Tavus; `promtool check metrics` accepts a live scrape of /metrics
#      after deletes, refusals and a rejected key;
#   3. `promtool check config` accepts prometheus.yml, `promtool check
#      rules` tavus-alerts.yml, and `promtool test rules` passes
#      tavus-alerts.test.yml;
#   4. one address: the scrape target of prometheus.yml is the listen
#      address of tavus-metrics.conf, its metrics_path that server's
#      location, and every server with `tavus_metrics` in README.md,
#      docs/*.md and examples/*.conf listens there and nowhere else; the
#      job the rules name is the job of prometheus.yml;
#   5. the dashboard (tavus-dashboard.json) and the rules use only what
#      the live scrape has: every metric name of their expressions (the
#      dashboard's `expr` fields and its variables' queries, the rules'
#      `expr`), every label name, and every outcome, class and hard value
#      they match; the dashboard's expressions are valid PromQL (promtool
#      check rules, with Grafana's variables replaced), and every panel
#      queries the data source of its variable;
#   6. Prometheus itself runs prometheus.yml (the target moved to the
#      live port, 1s intervals): the target is up, the rules are loaded and
#      evaluated without error, every dashboard expression returns data,
#      and a delete with a rejected key fires TavusKeyRejected.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use Cwd ();
use POSIX ();
use Time::HiRes ();
use TavusTest;
use TavusConf ();
use TavusProc ();
use TavusProm;

my $KIT = 'examples/metrics';
my @KIT = qw(README.md prometheus.yml tavus-alerts.yml tavus-alerts.test.yml
             tavus-dashboard.json);
my $REPO = Cwd::abs_path('.');

my $t = TavusTest->new->require_module;
my $p = $t->prefix;

###############################################################################
# 1. promtool

# from Debian's package, unpacked into build/tools and not installed:
# installing it would enable and start a Prometheus on the machine

# (Debian 13 has promtool in a package of its own, Debian 12 in prometheus)

my %bin = (promtool => 'promtool prometheus', prometheus => 'prometheus');
for my $prog (keys %bin) {
    chomp($bin{$prog} = qx{sh scripts/tool.sh $prog $bin{$prog}});
}

ok(-x $bin{promtool} && -x $bin{prometheus},
   'promtool and prometheus, unpacked from Debian\'s packages')
    or BAIL_OUT('no promtool or prometheus: sh scripts/tool.sh promtool'
                . ' promtool prometheus');

my ($rc, $out) = run_cmd([ $bin{promtool}, 'check', 'metrics' ],
                         "# HELP x X.\n# TYPE x counter\nx 1\n");
isnt($rc, 0, 'promtool check metrics refuses a counter without _total')
    or diag($out);

opendir my $dh, $KIT or die "$KIT: $!";
is(join(' ', sort grep { !/^\./ } readdir $dh), join(' ', sort @KIT),
   "$KIT holds the kit, each file checked here");
closedir $dh;

###############################################################################
# 2. a live scrape

my $example = $t->read_file("$REPO/examples/tavus-metrics.conf");
my ($listen) = $example =~ /^\s*listen\s+([^\s;]+)\s*;/m;
my ($location) = $example =~ /^\s*location\s+=\s+(\S+)\s*\{/m;
my $mport = TavusConf::listen_port('m', $listen // '');

$t->key_file('api.key', 'kit-Key_0123456789');

$t->run($t->mock_tavus(name => 'tavus', key => 'kit-Key_0123456789')
        . TavusConf::adapt($example, comments => 1,
                           listen_by_address => 'm')
        . <<'HTTP');
    server {
        listen 127.0.0.1:%%PORT_site%%;
        server_name kit-site;

        tavus_pass http://127.0.0.1:%%PORT_tavus%%;

        location ~ ^/v2/replicas/(?<id>[^/]*)$ {
            tavus_delete_replica $id;
            tavus_api_key_file %%PREFIX%%/api.key;
        }

        location ~ ^/bad-key/v2/replicas/(?<id>[^/]*)$ {
            tavus_delete_replica $id;
            tavus_api_key kit-Wrong_Key_1;
        }
    }
HTTP

my %site = (port => $t->port('site'), method => 'DELETE');

is($t->http(%site, path => '/v2/replicas/r1')->{status}, 200, 'a delete');
is($t->http(%site, path => '/v2/replicas/r2')->{status}, 200, 'a delete');
is($t->http(%site, path => '/v2/replicas/a.b')->{status}, 400,
   'an invalid id');
is($t->http(%site, path => '/v2/replicas/r3?hard=true')->{status}, 403,
   'a hard delete, denied');
is($t->http(%site, method => 'GET', path => '/v2/replicas/r4')->{status},
   405, 'a GET');
is($t->http(%site, path => '/bad-key/v2/replicas/r5')->{status}, 502,
   'a rejected key');

my $r = $t->http(port => $t->port($mport), path => $location // '/');
is($r->{status}, 200, "the scrape of $listen$location");
my $scrape = $r->{body};

($rc, $out) = run_cmd([ $bin{promtool}, 'check', 'metrics' ], $scrape);
is($rc, 0, 'promtool check metrics accepts the live scrape') or diag($out);

my ($m, @errors) = TavusProm::parse($scrape);
is("@errors", '', 'the scrape parses (t/lib/TavusProm.pm)');

is(TavusProm::value($m, 'tavus_requests_total',
       { label => 'kit-site', outcome => 'deleted', hard => 'false' }), 2,
   'the deletes counted under the server name (tavus_metrics_label'
   . ' $server_name of the example)');

# what the scrape has: metric name => { label name => { value => 1 } }

my %live;
for my $s (@{ $m->{samples} }) {
    my $l = $live{$s->{name}} //= {};
    $l->{$_}{ $s->{labels}{$_} } = 1 for keys %{ $s->{labels} };
}

###############################################################################
# 3. the kit through promtool

for my $cmd ([ 'check', 'config', "$KIT/prometheus.yml" ],
             [ 'check', 'rules', "$KIT/tavus-alerts.yml" ],
             [ 'test', 'rules', "$KIT/tavus-alerts.test.yml" ])
{
    ($rc, $out) = run_cmd([ $bin{promtool}, @$cmd ]);
    is($rc, 0, "promtool @$cmd") or diag($out);
}

# the unit tests test the rules: every alert of the rules is tested

my $rules = $t->read_file("$REPO/$KIT/tavus-alerts.yml");
my $tests = $t->read_file("$REPO/$KIT/tavus-alerts.test.yml");
my @alerts = $rules =~ /^\s*-\s*alert:\s*(\w+)/mg;
cmp_ok(scalar @alerts, '>=', 5, "the alerts: @alerts");
for my $alert (@alerts) {
    like($tests, qr/^\s*alertname:\s*\Q$alert\E\s*$/m,
         "$alert has unit tests");
}

###############################################################################
# 4. one address

my $prom = $t->read_file("$REPO/$KIT/prometheus.yml");
my ($job) = $prom =~ /^\s*-\s*job_name:\s*(\S+)/m;
my ($path) = $prom =~ /^\s*metrics_path:\s*(\S+)/m;
my ($targets) = $prom =~ /^\s*-\s*targets:\s*\[([^\]]*)\]/m;
my @targets = map { s/^\s*['"]?|['"]?\s*$//gr } split /,/, $targets // '';

is("@targets", $listen, "prometheus.yml scrapes $listen, where"
                        . ' tavus-metrics.conf listens');
is($path, $location, "prometheus.yml: metrics_path $location, the"
                     . " location of tavus-metrics.conf");
is(join(' ', sort keys %{{ map { $_ => 1 } $rules =~ /\bjob="([^"]*)"/g }}),
   $job, "the rules name the job of prometheus.yml, $job");

my $servers = 0;
for my $file ('README.md', sort(glob('docs/*.md')), sort glob('examples/*.conf'))
{
    my $text = $t->read_file("$REPO/$file");

    for my $server (server_blocks($text)) {
        next unless $server =~ /^\s*tavus_metrics\s*;/m;
        $servers++;
        my @listen = $server =~ /^\s*listen\s+([^\s;]+)/mg;
        is("@listen", $listen, "$file: a server with tavus_metrics listens"
                               . " on $listen only");
    }

    my ($other) = $text =~ /((?:[\w.-]+:9113|gateway\.example\.internal)\b)/;
    ok(!$other, "$file: no other metrics address") or diag($other);
}
cmp_ok($servers, '>=', 3, "servers with tavus_metrics found: $servers");

###############################################################################
# 5. the dashboard and the rules use what the scrape has

my $dash = eval { JSON::PP->new->decode(
    $t->read_file("$REPO/$KIT/tavus-dashboard.json")) } // {};
ok(ref $dash eq 'HASH' && @{ $dash->{panels} // [] },
   'tavus-dashboard.json: a dashboard with panels') or diag($@);

my @vars = @{ $dash->{templating}{list} // [] };
my ($ds) = grep { ($_->{type} // '') eq 'datasource' } @vars;
is($ds && $ds->{query}, 'prometheus', 'a data source variable, Prometheus');
my $ds_ref = '${' . ($ds ? $ds->{name} : 'none') . '}';

my @exprs;       # [ where, expr ]

for my $panel (@{ $dash->{panels} // [] }) {
    my $name = "dashboard: \"$panel->{title}\"";
    is(($panel->{datasource} // {})->{uid}, $ds_ref,
       "$name: the data source of $ds_ref");
    my @targets = @{ $panel->{targets} // [] };
    ok(@targets, "$name: has queries");
    for my $target (@targets) {
        ok(defined $target->{expr} && length $target->{expr},
           "$name $target->{refId}: an expr") or next;
        push @exprs, [ "$name $target->{refId}", $target->{expr} ];
    }
}

my @templates;
for my $var (grep { ($_->{type} // '') eq 'query' } @vars) {
    my $q = ref $var->{query} ? $var->{query}{query} : $var->{query};
    my ($sel, $label) = ($q // '') =~ /^label_values\((.*),\s*(\w+)\)$/;
    ok(defined $sel, "dashboard variable $var->{name}: label_values()")
        or next;
    push @templates, [ "dashboard variable $var->{name}", $sel, $label ];
}

my @rule_exprs;
while ($rules =~ /^(\s*)expr:\s*(\|)?[ \t]*(.*)\n((?:\1\s+.*\n)*)/mg) {
    my ($inline, $block) = ($3, $4);
    push @rule_exprs, $inline eq '' ? $block : $inline;
}
is(scalar @rule_exprs, scalar @alerts, 'an expr for each alert');

my $i = 0;
for my $e (@exprs, (map { [ "rule $alerts[$i++]", $_ ] } @rule_exprs),
           (map { [ $_->[0], $_->[1] ] } @templates))
{
    check_uses(@$e);
}

for my $tpl (@templates) {
    my ($where, $sel, $label) = @$tpl;
    my ($metric) = $sel =~ /^(\w+)/;
    ok($label =~ /^(?:job|instance)$/ || $live{$metric} && $live{$metric}{$label},
       "$where: the label $label is a label of $metric");
}

# valid PromQL: as recording rules, for promtool

my $record = "groups:\n  - name: dashboard\n    rules:\n";
my $n = 0;
for my $e (@exprs) {
    $n++;
    my $expr = grafana($e->[1], rate => '5m', range => '1h');
    $expr =~ s/'/''/g;
    $record .= "      - record: dashboard:expr_$n\n        expr: '$expr'\n";
}
$t->write_file('dashboard-rules.yml', $record);
($rc, $out) = run_cmd([ $bin{promtool}, 'check', 'rules',
                        "$p/dashboard-rules.yml" ]);
is($rc, 0, "the dashboard's $n expressions are valid PromQL (promtool)")
    or diag($out);

###############################################################################
# 6. Prometheus with prometheus.yml

{
    my $conf = $prom;
    $conf =~ s/^(\s*scrape_interval:).*$/$1 1s/m or die;
    $conf =~ s/^(\s*evaluation_interval:).*$/$1 1s/m or die;
    $conf =~ s/^(\s*-\s*targets:.*)\Q$listen\E/${1}127.0.0.1:@{[
        $t->port($mport) ]}/m or die;
    $conf =~ s{^(\s*-\s*)(tavus-alerts\.yml)\s*$}{$1$REPO/$KIT/$2}m or die;
    $t->write_file('prometheus.yml', $conf);

    my $port = $t->port('prometheus');
    my $pid = TavusProc::spawn(
        group => 1, out => "$p/prometheus.log", name => 'prometheus',
        cmd => [ $bin{prometheus}, "--config.file=$p/prometheus.yml",
                 "--storage.tsdb.path=$p/prometheus-data",
                 "--web.listen-address=127.0.0.1:$port" ]);
    my $watchdog = TavusProc::watchdog($pid);     # if this test dies

    my $api = sub {
        my ($path) = @_;
        my $r = $t->http(port => $port, path => $path, no_json_check => 1,
                         timeout => 10);
        return eval { JSON::PP->new->decode($r->{body}) } // {};
    };
    my $query = sub {
        my $j = $api->('/api/v1/query?query=' . uri($_[0]));
        return ($j->{status} // '') eq 'success'
               ? $j->{data}{result} : undef;
    };

    ok($t->wait_for(sub {
        TavusProc::can_connect($port)
        && $t->http(port => $port, path => '/-/ready',
                    no_json_check => 1)->{status} == 200 }, timeout => 30),
       'Prometheus starts') or diag($t->read_file('prometheus.log'));

    my $up = $t->wait_for(sub {
        my $r = $query->("up{job=\"$job\"} == 1");
        return $r && @$r ? $r : undef }, timeout => 20);
    ok($up, "the $job target is up: Prometheus scrapes the gateway")
        or diag(JSON::PP->new->encode($api->('/api/v1/targets')));

    # a rejected key after the first scrapes: the counter goes up
    is($t->http(%site, path => '/bad-key/v2/replicas/r6')->{status}, 502,
       'a rejected key, while Prometheus scrapes');

    my $firing = $t->wait_for(sub {
        my $j = $api->('/api/v1/alerts');
        my @a = grep { $_->{labels}{alertname} eq 'TavusKeyRejected'
                       && $_->{state} eq 'firing' }
                @{ $j->{data}{alerts} // [] };
        return @a ? $a[0] : undef }, timeout => 20);
    is($firing && $firing->{labels}{label}, 'kit-site',
       'TavusKeyRejected fires for the server of the rejected key');

    my $j = $api->('/api/v1/rules');
    my @loaded = map { @{ $_->{rules} } } @{ $j->{data}{groups} // [] };
    is(join(' ', sort map { $_->{name} } @loaded), join(' ', sort @alerts),
       'Prometheus loaded the rules of tavus-alerts.yml');
    for my $rule (@loaded) {
        is($rule->{health}, 'ok', "rule $rule->{name}: evaluated, no error")
            or diag($rule->{lastError});
    }

    for my $e (@exprs) {
        my $got = $query->(grafana($e->[1], rate => '10s', range => '5m'));
        ok($got && @$got, "$e->[0]: returns data") or diag($e->[1]);
    }

    is(TavusProc::stop($pid, 'TERM', 10), 0, 'Prometheus stops');
    TavusProc::stop_watchdog($watchdog);
}

$t->stop;

done_testing;

END { TavusProc::stop_all() }

###############################################################################

# a command with some input; (exit status, output)

sub run_cmd {
    my ($cmd, $input) = @_;

    my $file = "$p/cmd.in";
    $t->write_file($file, $input // '');

    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', $file;
        open STDERR, '>&', \*STDOUT;
        exec @$cmd or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;

    return ($? >> 8, $out);
}

# the server{} blocks of an nginx text, nested braces included

sub server_blocks {
    my ($text) = @_;
    my $block = qr/(\{(?:[^{}]++|(?-1))*\})/;
    return $text =~ /^\s*server\s*$block/mg;
}

# Grafana's variables replaced: a PromQL expression for promtool or
# Prometheus

sub grafana {
    my ($expr, %o) = @_;
    $expr =~ s/\$__rate_interval\b/$o{rate}/g;
    $expr =~ s/\$__range\b/$o{range}/g;
    $expr =~ s/\$\{?\w+\}?/.*/g;
    return $expr;
}

sub uri {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

# the metric names, label names and label values an expression uses, each
# of which the live scrape must have; `up` and the labels `job` and
# `instance` are Prometheus' own

sub check_uses {
    my ($where, $expr) = @_;

    my $e = $expr;
    my (@matchers, @grouping);

    # label matchers: name op "value"
    $e =~ s#([a-zA-Z_:][\w:]*)?\s*\{([^\}]*)\}#
        my ($metric, $body) = ($1 // '', $2);
        push @matchers, [ $metric, $1, $2, $3 ]
            while $body =~ /(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g;
        "$metric "
    #ge;

    # by (...), without (...), on (...), ignoring (...)
    $e =~ s{\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)}{
        push @grouping, map { s/^\s+|\s+$//gr } split /,/, $1;
        ' '
    }ge;

    $e =~ s/\[[^\]]*\]/ /g;                 # ranges
    $e =~ s/"[^"]*"/ /g;                    # strings
    $e =~ s/\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b/ /gi;

    my %keyword = map { $_ => 1 }
        qw(and or unless bool offset by without on ignoring group_left
           group_right);
    my @metrics = grep { !$keyword{$_} }
        $e =~ /\b([a-zA-Z_:][\w:]*)\b(?!\s*\()/g;

    ok(@metrics, "$where: uses metrics (@metrics)") or return;

    my %labels = (job => 1, instance => 1);
    for my $metric (@metrics) {
        if ($metric eq 'up') {
            pass("$where: up, Prometheus' own");
            next;
        }
        ok($live{$metric}, "$where: $metric is in the live scrape")
            or next;
        $labels{$_} = 1 for keys %{ $live{$metric} };
    }

    for my $g (@grouping) {
        ok($labels{$g}, "$where: groups by $g, a label of its metrics");
    }

    for my $mt (@matchers) {
        my ($metric, $label, $op, $value) = @$mt;
        ok($labels{$label}, "$where: matches on $label, a label of its"
                            . ' metrics');
        next unless $op eq '=' || $op eq '=~';
        next if $value =~ /\$/ || $label eq 'instance';

        if ($label eq 'job') {
            is($value, $job, "$where: job=\"$value\", the job of"
                             . ' prometheus.yml');
            next;
        }

        next if $label eq 'label';              # the operator's own

        my %seen = map { %{ ($live{$_} // {})->{$label} // {} } } @metrics;
        for my $v ($op eq '=' ? ($value) : split /\|/, $value) {
            ok($seen{$v}, "$where: $label=\"$v\" is a value of the scrape");
        }
    }
}
