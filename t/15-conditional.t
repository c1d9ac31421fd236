#!/usr/bin/perl

# Conditional and range headers never change an answer of the module:
# If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, Range
# and If-Range get exactly the JSON answer they would get without them
# (never nginx's 412 page or an empty 304), for every kind of answer the
# module makes itself (a dry run, each refusal, a misconfigured key) and
# for a translated upstream answer.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use TavusTest;

my $t = TavusTest->new->require_module;

my $KEY = 'cond-Key_99';
my $gw = $t->port('gw');
my $true = JSON::PP::true;
my $false = JSON::PP::false;

$t->key_file('api.key', $KEY);

$t->run($t->mock_tavus(name => 'tavus', key => $KEY) . <<'HTTP');
    log_format gw '$uri outcome=$tavus_outcome status=$status';

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        access_log %%PREFIX%%/gw.access.log gw;

        tavus_pass http://127.0.0.1:%%PORT_tavus%%;
        tavus_api_key_file %%PREFIX%%/api.key;

        location ~ ^/dry/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
            tavus_dry_run on;
        }

        location ~ ^/del/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
        }

        location ~ ^/nokey/(?<replica>[^/]*)$ {
            tavus_delete_replica $replica;
            tavus_api_key $http_x_no_such_header;
        }
    }
HTTP

my $date = 'Tue, 01 Dec 2026 00:00:00 GMT';
my $old = 'Thu, 01 Jan 1970 00:00:01 GMT';

my @headers = (
    [ 'If-Match' => '"x"' ],
    [ 'If-Match' => '*' ],
    [ 'If-None-Match' => '*' ],
    [ 'If-None-Match' => '"x"' ],
    [ 'If-Modified-Since' => $date ],
    [ 'If-Unmodified-Since' => $old ],
    [ 'Range' => 'bytes=0-3' ],
    [ 'Range' => 'bytes=0-3', 'If-Range' => '"x"' ],
    [ 'If-Match' => '"x"', 'If-None-Match' => '*',
      'If-Modified-Since' => $date, 'If-Unmodified-Since' => $old,
      'Range' => 'bytes=1-2' ],
);

# [ name, method, path, status, fields, outcome ]
my @answers = (
    [ 'dry run', 'DELETE', '/dry/r1', 200,
      { replica_id => 'r1', deleted => $false, dry_run => $true,
        hard => $false }, 'dry_run' ],
    [ 'invalid id', 'DELETE', '/del/a.b', 400,
      { code => 'invalid_replica_id', replica_id => undef },
      'invalid_replica_id' ],
    [ 'invalid hard', 'DELETE', '/del/r1?hard=yes', 400,
      { code => 'invalid_hard', replica_id => 'r1' }, 'invalid_hard' ],
    [ 'hard denied', 'DELETE', '/del/r1?hard=true', 403,
      { code => 'hard_delete_denied', replica_id => 'r1' },
      'hard_delete_denied' ],
    [ 'wrong method', 'GET', '/del/r1', 405,
      { code => 'method_not_allowed' }, 'method_not_allowed' ],
    [ 'misconfigured key', 'DELETE', '/nokey/r1', 500,
      { code => 'gateway_misconfigured', replica_id => 'r1' },
      'gateway_misconfigured' ],
    [ 'deleted', 'DELETE', '/del/r2', 200,
      { replica_id => 'r2', deleted => $true, hard => $false }, 'deleted' ],
);

for my $a (@answers) {
    my ($name, $method, $path, $status, $fields, $outcome) = @$a;

    my $base = $t->http(port => $gw, method => $method, path => $path);
    my $j = $t->answer($base, $status, $fields, "$name, no condition");
    my @keys = sort keys %$j;

    for my $h (@headers) {
        my $label = "$name, " . join ', ', map { "$h->[2 * $_]:"
                                                 . " $h->[2 * $_ + 1]" }
                                           0 .. $#$h / 2;

        my $r = $t->http(port => $gw, method => $method, path => $path,
                         headers => [ @$h ]);

        my $got = $t->answer($r, $status, $fields, $label,
                             keys => [ grep { $_ ne 'request_id' } @keys ]);

        is($r->{headers}{'content-length'}, length $r->{body},
           "$label: the whole body");
        ok(!exists $r->{headers}{'content-range'}, "$label: no range");

        my $line = (split /\n/, $t->read_file('gw.access.log'))[-1];
        like($line, qr/ outcome=$outcome status=$status$/,
             "$label: the log agrees");
    }
}

is(scalar(grep { $_->{method} eq 'DELETE' } $t->mock_log),
   1 + @headers, 'the upstream got the deletes only');

$t->stop;

done_testing;
