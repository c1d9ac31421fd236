#!/usr/bin/perl

# Hard deletes (docs/directives.md, tavus_hard and tavus_allow_hard_delete;
# docs/decisions.md, "tavus_hard accepts only true, false and empty" and
# "The switches fail safe"): "true" with permission sends ?hard=true;
# "false" or empty sends no query; any other value is a 400 invalid_hard;
# "true" without permission is a 403 hard_delete_denied, never
# downgraded; neither opens an upstream connection.
# tavus_allow_hard_delete is on/off (any case) or a value with variables
# (on, true, 1 allow; anything else denies).  $tavus_hard is logged as
# true/false, also when the request was denied.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use TavusTest qw(delete_location);

my $t = TavusTest->new->require_module;

my $KEY = 'hard-Key_1';
my $true = JSON::PP::true;
my $false = JSON::PP::false;

my $gw = $t->port('gw');
my $gw2 = $t->port('gw2');
my $up = $t->port('up');

my $m = $t->raw_mock(port => $up, script => [ [
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    . "Content-Length: 2\r\n\r\n{}"
] ]);

$t->write_file('htpasswd', "alice:{PLAIN}alice-pw\nbob:{PLAIN}bob-pw\n");

# one location a way of allowing (or not) hard deletes

my @allow = (
    [ default   => '' ],
    [ on        => 'tavus_allow_hard_delete on;' ],
    [ upper_on  => 'tavus_allow_hard_delete ON;' ],
    [ off       => 'tavus_allow_hard_delete off;' ],
    [ upper_off => 'tavus_allow_hard_delete Off;' ],
    [ role      => 'tavus_allow_hard_delete $hard_by_role;' ],
    [ user      => 'auth_basic "replicas"; '
                   . 'auth_basic_user_file %%PREFIX%%/htpasswd; '
                   . 'tavus_allow_hard_delete $hard_by_user;' ],
    [ allow_hdr => 'tavus_allow_hard_delete $http_x_allow;' ],
    [ header    => 'tavus_hard $http_x_hard; tavus_allow_hard_delete on;' ],
    [ always    => 'tavus_hard true; tavus_allow_hard_delete on;' ],
    [ always_no => 'tavus_hard true;' ],
    [ mixed     => 'tavus_hard "$http_x_hard$arg_hard"; '
                   . 'tavus_allow_hard_delete on;' ],
);

my $locations = join '', map { delete_location(@$_) } @allow;

$t->run(<<"HTTP");
    log_format hard 'rid=\$request_id hard=\$tavus_hard '
                    'outcome=\$tavus_outcome id=\$tavus_replica_id '
                    'status=\$status';

    map \$http_x_role \$hard_by_role {
        admin     on;
        ops       true;
        default   off;
    }

    map \$remote_user \$hard_by_user {
        alice     1;
        default   "";
    }

    server {
        listen 127.0.0.1:%%PORT_gw%%;
        access_log %%PREFIX%%/hard.log hard;

        tavus_pass http://127.0.0.1:%%PORT_up%%;
        tavus_api_key $KEY;

$locations
    }

    # both directives inherited from the server level, and overridden

    server {
        listen 127.0.0.1:%%PORT_gw2%%;
        access_log %%PREFIX%%/hard.log hard;

        tavus_pass http://127.0.0.1:%%PORT_up%%;
        tavus_api_key $KEY;
        tavus_hard \$http_x_hard;
        tavus_allow_hard_delete on;

        location ~ ^/inherit/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
        }

        location ~ ^/override/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_hard \$arg_hard;
            tavus_allow_hard_delete off;
        }
    }
HTTP

# the access log line of a request, by its request_id

sub log_entry {
    my ($id) = @_;
    return $t->log_entry('hard.log', undef, rid => $id);
}

my $n = 0;
my $hard_sent = 0;

# one DELETE and every check of its answer, its upstream request (or that
# there was none) and its access log line
#
#   path, port, headers, status, line (the upstream request line; undef:
#   no upstream connection), hard (the "hard" field, and $tavus_hard),
#   outcome

sub check {
    my ($name, %c) = @_;

    my $id = 'r' . sprintf('%x', ++$n);
    (my $path = $c{path}) =~ s/ID/$id/;

    my $conns = $m->connections;
    my $reqs = () = $m->requests;

    my $r = $t->http(port => $c{port} // $gw, method => 'DELETE',
                     path => $path, headers => $c{headers} // []);

    my $j;

    if ($c{status} == 200) {
        $j = $t->answer($r, 200, { replica_id => $id, deleted => $true,
                                   hard => $c{hard} ? $true : $false },
                        $name, keys => [qw(replica_id deleted hard)]);
    } else {
        $j = $t->answer($r, $c{status}, { code => $c{outcome},
                                          replica_id => $id,
                                          error => qr/\S/ }, $name);
    }

    if (defined $c{line}) {
        $hard_sent++ if $c{line} =~ /hard=true/;
        (my $line = $c{line}) =~ s/ID/$id/;
        my @req = $m->requests;

        is($m->connections, $conns + 1, "$name: one upstream connection");
        is(scalar @req, $reqs + 1, "$name: one upstream request");
        is((split /\r\n/, $req[-1] // '')[0], $line,
           "$name: upstream request line");

    } else {
        is($m->connections, $conns, "$name: no upstream connection");
        is(scalar(() = $m->requests), $reqs, "$name: no upstream request");
    }

    my $log = log_entry($j->{request_id});

    if (defined $c{hard}) {
        is($log->{hard}, $c{hard} ? 'true' : 'false', "$name: \$tavus_hard");
    } else {
        # an invalid flag is never logged as a hard delete
        like($log->{hard} // 'missing', qr/^(?:false|-)\z/,
             "$name: \$tavus_hard not true");
    }

    is($log->{outcome}, $c{outcome}, "$name: \$tavus_outcome");
    is($log->{id}, $id, "$name: \$tavus_replica_id");
    is($log->{status}, $c{status}, "$name: logged status");

    return $r;
}

my $SOFT = 'DELETE /v2/replicas/ID HTTP/1.1';
my $HARD = 'DELETE /v2/replicas/ID?hard=true HTTP/1.1';

my %deleted = (status => 200, outcome => 'deleted');
my %soft = (%deleted, hard => 0, line => $SOFT);
my %hard = (%deleted, hard => 1, line => $HARD);
my %denied = (status => 403, outcome => 'hard_delete_denied', hard => 1,
              line => undef);
my %invalid = (status => 400, outcome => 'invalid_hard', hard => undef,
               line => undef);

###############################################################################
# the default: tavus_hard $arg_hard, hard deletes not allowed

check('default, no flag', path => '/default/ID', %soft);
check('default, hard=false', path => '/default/ID?hard=false', %soft);
check('default, hard= (empty)', path => '/default/ID?hard=', %soft);
check('default, other arguments only', path => '/default/ID?hardness=true',
      %soft);
check('default, hard=true: denied', path => '/default/ID?hard=true', %denied);
check('default, hard=true among others: denied',
      path => '/default/ID?a=1&hard=true&b=2', %denied);

# values that are not booleans: a 400 before the permission is looked at

for my $value ('TRUE', 'True', '1', 'yes', 'on', '0', 'no', 'FALSE', 'tru',
               'truee', 'true%20', '%20true', '%74rue', 'true,true', '"true"')
{
    check("default, hard=$value: invalid", path => "/default/ID?hard=$value",
          %invalid);
}

###############################################################################
# allowed: on (a static value is a flag, in any case, as nginx's are)

for my $loc (qw(on upper_on)) {
    check("$loc: hard=true", path => "/$loc/ID?hard=true", %hard);
    check("$loc: hard=false", path => "/$loc/ID?hard=false", %soft);
    check("$loc: hard=", path => "/$loc/ID?hard=", %soft);
    check("$loc: no flag", path => "/$loc/ID", %soft);
}

# the exact request of a hard delete: only the query is added

{
    my $r = check('on: exact hard request', path => '/on/ID?hard=true', %hard);
    my $id = 'r' . sprintf('%x', $n);

    is($t->printable(($m->requests)[-1] // ''),
       $t->printable("DELETE /v2/replicas/$id?hard=true HTTP/1.1\r\n"
                     . "Host: 127.0.0.1:$up\r\nx-api-key: $KEY\r\n\r\n"),
       'on: exact upstream request of a hard delete');
}

# allowed or not, a value that is not a boolean is a 400

for my $value (qw(TRUE 1 yes)) {
    check("on, hard=$value: invalid", path => "/on/ID?hard=$value", %invalid);
}

###############################################################################
# denied: off

for my $loc (qw(off upper_off)) {
    check("$loc: hard=true denied", path => "/$loc/ID?hard=true", %denied);
    check("$loc: hard=false deleted", path => "/$loc/ID?hard=false", %soft);
}

###############################################################################
# permission from a map on a header

for my $role (qw(admin ops)) {
    check("role $role: hard", path => '/role/ID?hard=true',
          headers => [ 'X-Role' => $role ], %hard);
}

check('role guest: denied', path => '/role/ID?hard=true',
      headers => [ 'X-Role' => 'guest' ], %denied);
check('no role: denied', path => '/role/ID?hard=true', %denied);
check('role guest: soft delete', path => '/role/ID',
      headers => [ 'X-Role' => 'guest' ], %soft);

# permission from a map on $remote_user (auth_basic)

use MIME::Base64 ();

sub basic {
    return (Authorization => 'Basic ' . MIME::Base64::encode_base64($_[0], ''));
}

check('user alice: hard', path => '/user/ID?hard=true',
      headers => [ basic('alice:alice-pw') ], %hard);
check('user bob: denied', path => '/user/ID?hard=true',
      headers => [ basic('bob:bob-pw') ], %denied);
check('user bob: soft delete', path => '/user/ID?hard=false',
      headers => [ basic('bob:bob-pw') ], %soft);

{
    # no credentials: auth_basic's own 401, before the module
    my $conns = $m->connections;
    my $r = $t->http(port => $gw, method => 'DELETE',
                     path => '/user/r1?hard=true');
    is($r->{status}, 401, 'user, no credentials: auth_basic 401');
    like($r->{headers}{'www-authenticate'} // '', qr/^Basic/,
         'user, no credentials: WWW-Authenticate');
    is($m->connections, $conns, 'user, no credentials: no upstream connection');
}

# permission straight from a header variable (empty when absent): on,
# true and 1 allow, anything else denies

for my $value (qw(on true 1)) {
    check("X-Allow: $value", path => '/allow_hdr/ID?hard=true',
          headers => [ 'X-Allow' => $value ], %hard);
}

for my $value (qw(off false 0 yes On ON TRUE onx 11)) {
    check("X-Allow: $value: denied", path => '/allow_hdr/ID?hard=true',
          headers => [ 'X-Allow' => $value ], %denied);
}

check('no X-Allow: denied', path => '/allow_hdr/ID?hard=true', %denied);

###############################################################################
# tavus_hard from another variable, or constant

check('X-Hard: true', path => '/header/ID',
      headers => [ 'X-Hard' => 'true' ], %hard);
check('X-Hard: false', path => '/header/ID',
      headers => [ 'X-Hard' => 'false' ], %soft);
check('X-Hard absent, hard=true in the query: ignored',
      path => '/header/ID?hard=true', %soft);
for my $value (qw(yes TRUE)) {
    check("X-Hard: $value", path => '/header/ID',
          headers => [ 'X-Hard' => $value ], %invalid);
}

check('tavus_hard true, allowed', path => '/always/ID?hard=false', %hard);
check('tavus_hard true, not allowed: denied', path => '/always_no/ID',
      %denied);

# a value made of two variables: "truetrue" is not a boolean

check('mixed: query only', path => '/mixed/ID?hard=true', %hard);
check('mixed: header only', path => '/mixed/ID',
      headers => [ 'X-Hard' => 'true' ], %hard);
check('mixed: both', path => '/mixed/ID?hard=true',
      headers => [ 'X-Hard' => 'true' ], %invalid);

###############################################################################
# inherited from the server level, and overridden in a location

check('inherited: X-Hard: true, allowed', port => $gw2, path => '/inherit/ID',
      headers => [ 'X-Hard' => 'true' ], %hard);
check('inherited: the query is not the flag', port => $gw2,
      path => '/inherit/ID?hard=true', %soft);
check('overridden: X-Hard ignored', port => $gw2, path => '/override/ID',
      headers => [ 'X-Hard' => 'true' ], %soft);
check('overridden: hard=true denied', port => $gw2,
      path => '/override/ID?hard=true', %denied);

###############################################################################
# $tavus_hard is the flag requested also when the request is refused for
# another reason

{
    my $conns = $m->connections;

    for my $c ([ 'GET', '/on/r1?hard=true', 405, 'method_not_allowed', 'true' ],
               [ 'GET', '/on/r1', 405, 'method_not_allowed', 'false' ],
               [ 'DELETE', '/on/r.1?hard=true', 400, 'invalid_replica_id',
                 'true' ],
               [ 'DELETE', '/default/r.1?hard=true', 400,
                 'invalid_replica_id', 'true' ])
    {
        my ($method, $path, $status, $outcome, $hard) = @$c;
        my $name = "$method $path";

        my $r = $t->http(port => $gw, method => $method, path => $path);
        my $j = $t->answer($r, $status, { code => $outcome }, $name);
        my $log = log_entry($j->{request_id});

        is($log->{hard}, $hard, "$name: \$tavus_hard $hard");
        is($log->{outcome}, $outcome, "$name: \$tavus_outcome");
    }

    is($m->connections, $conns, 'refused requests: no upstream connection');
}

###############################################################################
# a static value other than on or off is refused at load: a typo must not
# allow (or silently deny) irrevocable deletes

sub allow_conf {
    my ($value) = @_;

    return <<"HTTP";
    server {
        listen 127.0.0.1:%%PORT_gw%%;
        location ~ ^/r/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_pass http://127.0.0.1:%%PORT_up%%;
            tavus_api_key $KEY;
            tavus_allow_hard_delete $value;
        }
    }
HTTP
}

for my $value ('true', '1', 'yes', '0', 'false', '""', 'onn') {
    my ($ok, $out) = $t->nginx_t(allow_conf($value));

    ok(!$ok, "nginx -t: tavus_allow_hard_delete $value refused");
    like($out, qr/"tavus_allow_hard_delete" directive must be "on", "off"/,
         "nginx -t: tavus_allow_hard_delete $value: the reason");
}

for my $value ('on', 'OFF', '$http_x_allow', '"${http_x_allow}x"') {
    my ($ok, $out) = $t->nginx_t(allow_conf($value));

    ok($ok, "nginx -t: tavus_allow_hard_delete $value accepted") or diag($out);
}

###############################################################################
# every upstream request was a DELETE of a validated id, hard only when
# allowed; nothing else reached the mock

my @req = $m->requests;
my @hard = grep { /\?hard=true / } @req;
my $line = qr{^DELETE /v2/replicas/r[0-9a-f]+(?:\?hard=true)? HTTP/1\.1\r\n};
is(scalar(grep { !/$line/ } @req), 0,
   'every upstream request is a DELETE of a replica');
is(scalar @hard, $hard_sent, "$hard_sent hard deletes sent upstream, no more");
is(scalar @hard, scalar(grep { /hard=true outcome=deleted / } split /\n/,
                        $t->read_file('hard.log')),
   'as many hard deletes upstream as logged with hard=true and deleted')
    or diag(join "\n", split /\n/, $t->read_file('hard.log'));

unlike($t->error_log, qr/\Q$KEY\E/, 'no key in the error log');

$t->stop;

done_testing;
