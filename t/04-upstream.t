#!/usr/bin/perl

# How each upstream status and body is translated for the client.  One raw
# mock upstream a case, each behind its own location, so a case cannot
# disturb another.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP;
use Encode ();
use TavusTest qw(reply);

my $t = TavusTest->new->require_module;

my $KEY = 'ups-Key_1';

my $json = 'Content-Type';
my $long = 'x' x 2000;
my $e_acute = "\xc3\xa9" x 600;     # 1200 bytes of UTF-8

# name => [ upstream answer, status, fields expected, extra check ]

my @cases = (
    [ ok200 => reply('200 OK', '{"message":"Replica deleted successfully"}',
                     $json => 'application/json'),
      200, { replica_id => 'r1', deleted => JSON::PP::true,
             hard => JSON::PP::false } ],

    [ ok200_not_json => reply('200 OK', 'deleted, thanks', $json => 'text/plain'),
      200, { replica_id => 'r1', deleted => JSON::PP::true } ],

    [ ok200_empty => reply('200 OK', ''),
      200, { replica_id => 'r1', deleted => JSON::PP::true } ],

    [ ok204 => "HTTP/1.1 204 No Content\r\n\r\n",
      200, { replica_id => 'r1', deleted => JSON::PP::true } ],

    [ bad400 => reply('400 Bad Request', '{"error":"Invalid replica_id"}',
                      $json => 'application/json'),
      400, { code => 'upstream_client_error', error => 'Invalid replica_id',
             replica_id => 'r1' }, [qw(error code replica_id)] ],

    [ bad400_not_json => reply('400 Bad Request',
                               '<html><body>Bad Request</body></html>',
                               $json => 'text/html'),
      400, { code => 'upstream_client_error', error => qr/\S/,
             replica_id => 'r1' } ],

    [ bad400_no_error_field => reply('400 Bad Request', '{"detail":"nope"}',
                                     $json => 'application/json'),
      400, { code => 'upstream_client_error', error => qr/\S/ } ],

    [ bad400_error_not_string => reply('400 Bad Request', '{"error":{"a":1}}',
                                       $json => 'application/json'),
      400, { code => 'upstream_client_error', error => qr/\S/ } ],

    [ bad400_quotes => reply('400 Bad Request',
                             '{"error":"say \"no\" \\\\ \\t\\u0001 done"}',
                             $json => 'application/json'),
      400, { code => 'upstream_client_error',
             error => "say \"no\" \\ \t\x{1} done" } ],

    [ bad400_long => reply('400 Bad Request', qq({"error":"$long"}),
                           $json => 'application/json'),
      400, { code => 'upstream_client_error' },
      sub {
          my ($j, $name) = @_;
          ok(length($j->{error} // '') > 0 && length($j->{error}) <= 512,
             "$name: message cut to 512 bytes")
              or diag('length ' . length($j->{error} // ''));
          like($long, qr/^\Q$j->{error}\E/, "$name: a prefix of the message");
      } ],

    [ bad400_long_utf8 => reply('400 Bad Request', qq({"error":"$e_acute"}),
                                $json => 'application/json'),
      400, { code => 'upstream_client_error' },
      sub {
          my ($j, $name) = @_;
          my $bytes = Encode::encode('UTF-8', $j->{error} // '');
          ok(length($bytes) > 0 && length($bytes) <= 512,
             "$name: message cut to 512 bytes")
              or diag('length ' . length($bytes));
          like($j->{error} // '', qr/^(?:\x{e9})+\z/,
               "$name: cut at a character boundary");
      } ],

    [ bad400_invalid_utf8 => reply('400 Bad Request',
                                   qq({"error":"bad \xff\xfe bytes"}),
                                   $json => 'application/json'),
      400, { code => 'upstream_client_error', error => qr/^bad .* bytes\z/ } ],

    [ bad400_key_in_message => reply('400 Bad Request',
                                     qq({"error":"key $KEY is wrong"}),
                                     $json => 'application/json'),
      400, { code => 'upstream_client_error', error => qr/\S/ } ],

    [ unauthorized401 => reply('401 Unauthorized',
                               '{"message":"Invalid access token"}',
                               $json => 'application/json'),
      502, { code => 'upstream_rejected_key', replica_id => 'r1',
             error => qr/\S/ } ],

    [ forbidden403 => reply('403 Forbidden', '{"message":"Forbidden"}',
                            $json => 'application/json'),
      502, { code => 'upstream_rejected_key', replica_id => 'r1' } ],

    [ notfound404 => reply('404 Not Found', '{"message":"Replica not found"}',
                           $json => 'application/json'),
      404, { code => 'not_found', replica_id => 'r1', error => qr/\S/ } ],

    [ ratelimit429 => reply('429 Too Many Requests',
                            '{"message":"Too many requests"}',
                            $json => 'application/json', 'Retry-After' => 7),
      429, { code => 'rate_limited', replica_id => 'r1' },
      sub {
          my ($j, $name, $r) = @_;
          is($r->{headers}{'retry-after'}, '7', "$name: Retry-After: 7");
      } ],

    [ ratelimit429_no_retry => reply('429 Too Many Requests', ''),
      429, { code => 'rate_limited' },
      sub {
          my ($j, $name, $r) = @_;
          ok(!exists $r->{headers}{'retry-after'}, "$name: no Retry-After");
      } ],

    [ teapot418 => reply("418 I'm a teapot", '{"error":"short and stout"}',
                         $json => 'application/json'),
      418, { code => 'upstream_client_error', replica_id => 'r1' } ],

    [ conflict409 => reply('409 Conflict', '{"error":"in use"}',
                           $json => 'application/json'),
      409, { code => 'upstream_client_error' } ],

    [ error500 => reply('500 Internal Server Error', '{"error":"oops"}',
                        $json => 'application/json'),
      502, { code => 'upstream_error', replica_id => 'r1' } ],

    [ unavailable503 => reply('503 Service Unavailable',
                              '<html>down for maintenance</html>',
                              $json => 'text/html', 'Retry-After' => 30),
      502, { code => 'upstream_error' } ],

    [ gateway504 => reply('504 Gateway Timeout', ''),
      502, { code => 'upstream_error' } ],
);

my @locations;
my %mock;

for my $case (@cases) {
    my ($name, $answer) = @$case;

    $mock{$name} = $t->raw_mock(port => $t->port($name),
                                script => [ [ $answer ] ]);

    push @locations, <<"LOCATION";
        location ~ ^/$name/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_pass http://127.0.0.1:%%PORT_$name%%;
        }
LOCATION
}

$t->run(<<"HTTP");
    server {
        listen 127.0.0.1:%%PORT_gw%%;
        tavus_api_key $KEY;
        tavus_read_timeout 3s;

@locations
    }
HTTP

for my $case (@cases) {
    my ($name, $answer, $status, $fields, $more) = @$case;

    my $r = $t->http(port => $t->port('gw'), method => 'DELETE',
                     path => "/$name/r1");

    my $j = $t->answer($r, $status, $fields, $name,
                       ref $more eq 'ARRAY' ? (keys => $more) : ());

    $more->($j, $name, $r) if ref $more eq 'CODE';

    unlike($r->{raw}, qr/\Q$KEY\E/, "$name: no key in the answer");
    is($mock{$name}->connections, 1, "$name: one upstream connection");
    is(scalar($mock{$name}->requests), 1, "$name: one upstream request");
}

unlike($t->error_log, qr/\Q$KEY\E/, 'no key in the error log');

$t->stop;

done_testing;
