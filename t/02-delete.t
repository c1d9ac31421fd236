#!/usr/bin/perl

# The happy path: a DELETE through the module to the mock Tavus API, the
# exact bytes sent upstream, what is not forwarded, the key file's newline,
# an upstream{} group (Host, keepalive).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use TavusTest qw(delete_location gateway server_block upstream_group);

my $t = TavusTest->new->require_module;

my $gw = $t->port('gw');
my $true = JSON::PP::true;
my $false = JSON::PP::false;

my @keys = qw(tavus-Key_123 wrong-Key_9 raw-Key_1 grp-Key_2);

$t->write_file('api.key', "tavus-Key_123\n");
$t->write_file('wrong.key', "wrong-Key_9\n");
$t->write_file('raw.key', "raw-Key_1\n");

sub no_key_in {
    my ($what, $text) = @_;
    my @seen = grep { index($text, $_) >= 0 } @keys;
    ok(!@seen, "no key in $what") or diag("seen: @seen");
}

###############################################################################
# through the nginx mock of Tavus

my $api_key = 'tavus_api_key_file %%PREFIX%%/api.key;';
my $to_mock = 'tavus_pass http://127.0.0.1:%%PORT_tavus%%;';

$t->run($t->mock_tavus(name => 'tavus', key => 'tavus-Key_123')
        . "    log_format gw '\$request_id';\n\n"
        . upstream_group('tavus_group', [ '127.0.0.1:%%PORT_tavus%%' ],
                         'keepalive 4;')
        . server_block('gw', 'access_log %%PREFIX%%/gw.access.log gw;',
            delete_location('replicas', $to_mock, $api_key),
            delete_location('wrong-key', $to_mock,
                            'tavus_api_key_file %%PREFIX%%/wrong.key;'),
            delete_location('group', 'tavus_pass http://tavus_group;',
                            $api_key)));

my $r = $t->http(port => $gw, method => 'DELETE',
                 path => '/replicas/rf3073f2dcc1');
my $j = $t->answer($r, 200, { replica_id => 'rf3073f2dcc1', deleted => $true,
                              hard => $false }, 'deleted',
                   keys => [qw(replica_id deleted hard)]);

my @gwlog = split /\n/, $t->read_file('gw.access.log');
is($j->{request_id}, $gwlog[-1], 'request_id is $request_id');

my @log = $t->mock_log('tavus');
is(scalar @log, 1, 'one request reached the mock');
is($log[0]{method}, 'DELETE', 'mock saw DELETE');
is($log[0]{uri}, '/v2/replicas/rf3073f2dcc1', 'mock saw the URI');
is($log[0]{key}, 'ok', 'mock saw the right key');
is($log[0]{status}, 200, 'mock answered 200');

# a client's own key and cookies change nothing

$r = $t->http(port => $gw, method => 'DELETE', path => '/replicas/r0abc',
              headers => [ 'X-Api-Key' => 'evil', Cookie => 'c=1' ]);
my $j2 = $t->answer($r, 200, { replica_id => 'r0abc', deleted => $true },
                    'client key ignored');
isnt($j2->{request_id}, $j->{request_id}, 'request ids differ');
is(($t->mock_log('tavus'))[-1]{key}, 'ok', 'mock saw the configured key');

# Tavus refuses the id

$r = $t->http(port => $gw, method => 'DELETE', path => '/replicas/not-hex');
$t->answer($r, 400, { error => 'Invalid replica_id',
                      code => 'upstream_client_error',
                      replica_id => 'not-hex' }, 'Tavus 400',
           keys => [qw(error code replica_id)]);

# Tavus refuses the key

$r = $t->http(port => $gw, method => 'DELETE', path => '/wrong-key/r1');
$t->answer($r, 502, { code => 'upstream_rejected_key', replica_id => 'r1' },
           'Tavus 401');
is(($t->mock_log('tavus'))[-1]{key}, 'bad', 'mock saw a bad key');
no_key_in('the 502 answer', $r->{raw});

# an upstream group with keepalive: one connection, requests counted

for my $id (qw(r1 r2 r3)) {
    $r = $t->http(port => $gw, method => 'DELETE', path => "/group/$id");
    $t->answer($r, 200, { replica_id => $id, deleted => $true }, "group $id");
}

@log = ($t->mock_log('tavus'))[-3 .. -1];
is(join(' ', map { $_->{uri} } @log),
   '/v2/replicas/r1 /v2/replicas/r2 /v2/replicas/r3', 'group: mock saw 3');
is(join(' ', map { $_->{reqs} } @log), '1 2 3',
   'group: requests 1, 2, 3 on a connection (keepalive)');
is(scalar(keys %{{ map { $_->{conn} => 1 } @log }}), 1,
   'group: one connection');

no_key_in('the error log', $t->error_log);

$t->stop;

###############################################################################
# exact upstream bytes, with a raw mock

my $ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
         . "Content-Length: 2\r\n\r\n{}";

my $m = $t->raw_mock(port => $t->port('up'), script => [ [ $ok ] ]);
my $up = $t->port('up');

my $raw_key = 'tavus_api_key_file %%PREFIX%%/raw.key;';

$t->run(server_block('gw',
    delete_location('replicas', 'tavus_pass http://127.0.0.1:%%PORT_up%%;',
                    $raw_key),
    delete_location('slash', 'tavus_pass http://127.0.0.1:%%PORT_up%%/;',
                    $raw_key)));

my $expect = "DELETE /v2/replicas/r1 HTTP/1.1\r\n"
             . "Host: 127.0.0.1:$up\r\n"
             . "x-api-key: raw-Key_1\r\n\r\n";

$r = $t->http(port => $gw, method => 'DELETE', path => '/replicas/r1?foo=bar',
              headers => [ 'X-Api-Key' => 'evil-Client-Key',
                           Cookie => 'c=1',
                           Authorization => 'Basic ZXZpbDpldmls',
                           'X-Forwarded-For' => '192.0.2.1',
                           'Content-Type' => 'text/plain' ],
              body => 'BODY-BYTES');
$t->answer($r, 200, { replica_id => 'r1', deleted => $true }, 'raw 200');

my @req = $m->requests;
is(scalar @req, 1, 'one upstream request');
is($t->printable($req[0] // ''), $t->printable($expect),
   'exact upstream request (key file newline dropped)');
unlike($req[0] // '', qr/evil|c=1|Authorization|192\.0\.2\.1|foo=bar|BODY/i,
       'no client header, query or body upstream');
is($t->printable($m->received), $t->printable($expect),
   'nothing else sent upstream');

$r = $t->http(port => $gw, method => 'DELETE', path => '/slash/r2');
$t->answer($r, 200, { replica_id => 'r2', deleted => $true },
           'lone trailing slash');
is($t->printable(($m->requests)[1] // ''),
   $t->printable("DELETE /v2/replicas/r2 HTTP/1.1\r\nHost: 127.0.0.1:$up\r\n"
                 . "x-api-key: raw-Key_1\r\n\r\n"),
   'lone trailing slash: exact upstream request');

no_key_in('the error log', $t->error_log);

$t->stop;

###############################################################################
# an upstream{} group: Host is the group name; keepalive with a raw mock

$m = $t->raw_mock(port => $t->port('up2'), script => [ [ $ok ] ]);

$t->run(upstream_group('tavusapi.com', [ '127.0.0.1:%%PORT_up2%%' ],
                       'keepalive 4;')
        . gateway('tavus_pass http://tavusapi.com;',
                  'tavus_api_key grp-Key_2;'));

for my $id (qw(rA rB)) {
    $r = $t->http(port => $gw, method => 'DELETE', path => "/replicas/$id");
    $t->answer($r, 200, { replica_id => $id, deleted => $true }, "group $id");
}

@req = $m->requests;
is(scalar @req, 2, 'group: two upstream requests');
is($t->printable($req[1] // ''),
   $t->printable("DELETE /v2/replicas/rB HTTP/1.1\r\nHost: tavusapi.com\r\n"
                 . "x-api-key: grp-Key_2\r\n\r\n"),
   'group: exact upstream request, Host is the group name');
is($m->connections, 1, 'group: one upstream connection (keepalive)');

no_key_in('the error log', $t->error_log);

$t->stop;

done_testing;
