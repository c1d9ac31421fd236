#!/usr/bin/perl

# Subrequests (SSI includes, mirror) that reach a delete location: the
# delete is reported by the subrequest that made it, and by no other
# request: not by the page that included it, not by a sibling include,
# not by the client's request that was mirrored.  The variables in the
# access log (log_subrequest on) and the metrics both say so.  An
# internal redirect, unlike a subrequest, keeps its request's outcome.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use TavusTest;

my $t = TavusTest->new->require_module;

my $KEY = 'sub-Key_4242';
my $gw = $t->port('gw');

$t->key_file('api.key', $KEY);

mkdir $t->prefix . '/html';
$t->write_file('html/static.txt', "S");
$t->write_file('html/mirrored.txt', "M");
$t->write_file('html/page.html',
               'A<!--# include virtual="/int/r5b1" -->B'
               . '<!--# include virtual="/static.txt" -->C');
$t->write_file('html/two.html',
               '<!--# include virtual="/int/r5b2" -->'
               . '<!--# include virtual="/int/bad.id" -->');

$t->run($t->mock_tavus(name => 'tavus', key => $KEY) . <<'HTTP');
    tavus_metrics_zone tavus 1m;

    log_format gw 'uri=$uri outcome=$tavus_outcome rid=$tavus_replica_id '
                  'hard=$tavus_hard status=$status';

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        root %%PREFIX%%/html;

        access_log %%PREFIX%%/gw.access.log gw;
        log_subrequest on;

        tavus_pass http://127.0.0.1:%%PORT_tavus%%;
        tavus_api_key_file %%PREFIX%%/api.key;

        location / {
            ssi on;
        }

        location ~ ^/int/(?<replica>[^/]*)$ {
            internal;
            tavus_delete_replica $replica;
        }

        location = /mirrored.txt {
            mirror /int/r5b3;
        }

        location /metrics {
            tavus_metrics;
        }
    }
HTTP

# the access log lines of one client request: those that come after the
# previous request's, subrequests first (they finish first)

my $seen = 0;

sub lines {
    my @all = split /\n/, $t->read_file('gw.access.log');
    my @new = @all[$seen .. $#all];
    $seen = @all;
    return [ sort @new ];
}

sub deleted_total {
    my $m = $t->http(port => $gw, path => '/metrics');
    $seen++;    # its own access log line
    my ($n) = $m->{body}
              =~ /^tavus_requests_total\{label="",outcome="deleted",(?#
                   )hard="false"\} (\d+)$/m;
    return $n // 'none';
}

###############################################################################
# an SSI page: a delete, then a static file

my $r = $t->http(port => $gw, path => '/page.html');
is($r->{status}, 200, 'SSI page: 200');
like($r->{body}, qr/^A\{"replica_id":"r5b1","deleted":true[^\n]*\}\nBSC\z/,
     'SSI page: the delete\'s answer where it was included');

is_deeply(lines(), [
    'uri=/int/r5b1 outcome=deleted rid=r5b1 hard=false status=200',
    'uri=/page.html outcome=- rid=- hard=- status=200',
    'uri=/static.txt outcome=- rid=- hard=- status=200',
], 'SSI page: only the include that deleted reports the delete');

is(scalar(grep { $_->{method} eq 'DELETE' } $t->mock_log), 1,
   'SSI page: the upstream got one delete');
is(deleted_total(), 1, 'SSI page: the metrics count one delete');

###############################################################################
# two deletes on one page: each include reports its own

$r = $t->http(port => $gw, path => '/two.html');
is($r->{status}, 200, 'two includes: 200');

is_deeply(lines(), [
    'uri=/int/bad.id outcome=invalid_replica_id rid=- hard=false status=400',
    'uri=/int/r5b2 outcome=deleted rid=r5b2 hard=false status=200',
    'uri=/two.html outcome=- rid=- hard=- status=200',
], 'two includes: each its own outcome, the page none');

is(deleted_total(), 2, 'two includes: the metrics count the one delete');

###############################################################################
# mirror: the mirrored request itself reports nothing

$r = $t->http(port => $gw, path => '/mirrored.txt');
is("$r->{status} $r->{body}", '200 M', 'mirror: the client\'s answer');

is_deeply(lines(), [
    'uri=/int/r5b3 outcome=deleted rid=r5b3 hard=false status=200',
    'uri=/mirrored.txt outcome=- rid=- hard=- status=200',
], 'mirror: the mirror subrequest reports its delete, the client\'s'
   . ' request nothing');

is(deleted_total(), 3, 'mirror: the metrics count its delete once');

is(scalar(grep { $_->{method} eq 'DELETE' } $t->mock_log), 3,
   'the upstream got three deletes in all');

$t->stop;

done_testing;
