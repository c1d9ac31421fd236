#!/usr/bin/perl

# Upstream text in the error log cannot forge a line: the message of an
# upstream error or of a rejected key is cut as the client's would be
# (512 bytes at a UTF-8 boundary), and then every byte of a control
# character becomes \xNN as in nginx's access log (C0 with CR and LF, DEL,
# C1, and the characters that break or reorder a line: U+2028, U+202E,
# ...), as do '"' and '\', so that it stays inside its own line and no
# control sequence reaches a terminal.  Other characters stay readable.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use TavusTest qw(reply gateway);

my $t = TavusTest->new->require_module;

my $KEY = 'esc-Key_1';
my $gw = $t->port('gw');

$t->key_file('api.key', $KEY);

my $forged = '{"error":"boom\n2026/12/01 00:00:00 [emerg] 1#1: forged'
             . '\u001b[31m\r\"q\\\\b\u007f\u009b1m\u202eZ\u2028\u00e9"}';
my $long = '{"message":"' . ("\x{e9}" x 300) . '\n[emerg] late"}';
utf8::encode($long);

my $up = $t->raw_mock(port => $t->port('up'), script => [
    [ reply('500 Internal Server Error', $forged) ],
    [ reply('401 Unauthorized', $forged) ],
    [ reply('503 Service Unavailable', $long) ],
]);

$t->run(gateway('tavus_pass http://127.0.0.1:%%PORT_up%%;',
                'tavus_api_key_file %%PREFIX%%/api.key;'));

my $escaped = 'boom\x0a2026/12/01 00:00:00 [emerg] 1#1: forged\x1b[31m'
              . '\x0d\x22q\x5cb\x7f\xc2\x9b1m\xe2\x80\xaeZ\xe2\x80\xa8'
              . "\xc3\xa9";

for my $case ([ 500, 'upstream answered 500, message: "' ],
              [ 401, 'upstream rejected the API key with fingerprint' ])
{
    my ($status, $prefix) = @$case;

    $t->new_errors;
    my $r = $t->http(port => $gw, method => 'DELETE', path => '/replicas/r1');
    is($r->{status}, 502, "$status: 502");

    my @lines = $t->new_errors;
    my @ours = grep { /\Q$prefix\E/ } @lines;

    is(scalar @ours, 1, "$status: one line");
    like($ours[0] // '', qr/^\d{4}\/\d\d\/\d\d [\d:]+ \[error\] .*(?#
                            )message: "\Q$escaped\E" while/,
         "$status: the message escaped, inside the line");
    ok(!grep({ /^2026\/12\/01 00:00:00/ } @lines),
       "$status: no forged line");
}

# cut at 512 bytes, a whole character, before the newline, then escaped

$t->new_errors;
my $r = $t->http(port => $gw, method => 'DELETE', path => '/replicas/r2');
is($r->{status}, 502, 'long message: 502');

my ($line) = grep { /upstream answered 503/ } $t->new_errors;
my ($msg) = ($line // '') =~ /message: "([^"]*)"/;
is($msg, "\xc3\xa9" x 256, 'long message: 256 characters (512 bytes),'
                            . ' readable');

my $log = $t->error_log;
unlike($log, qr/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\xc2[\x80-\x9f]|(?#
                )\xe2\x80[\xa8-\xae]/,
       'the error log has no control character (but the CR LF of nginx\'s'
       . ' own debug lines)');
unlike(join("\n", grep { /^\S+ \S+ \[(?!debug)/ } split /\n/, $log), qr/\r/,
       'no CR in a line above debug level');
unlike($log, qr/^\S+ \S+ \[emerg\]/m, 'no [emerg] line in the error log');
ok(index($log, $KEY) < 0, 'no key in the error log');

$t->stop;

done_testing;
