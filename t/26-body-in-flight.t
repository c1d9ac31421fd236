#!/usr/bin/perl

# A delete whose request body is still arriving when the delete goes
# upstream.  nginx's discarding of such a body would, once the handler has
# returned, set a lingering_timeout timer and leave its read handler in
# place after the body's end; the module keeps discarding the body while
# the delete is in flight without either:
#
#   1. a delete that takes longer than lingering_timeout is answered (the
#      discarding's timer ended it before);
#   2. a client that sends a FIN, then a reset: the reset finds the
#      upstream's read handler, not a stale one ("http request count is
#      zero" before), and the request ends as one without a body does;
#   3. the same with tavus_ignore_client_abort on: the outcome is logged;
#   4. a body that comes in two parts, the second after the delete went
#      upstream, then a pipelined request: both answered on the one
#      connection, as nginx's discarding allows;
#   5. a body that has all come: discarded, the connection kept.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use IO::Select ();
use IO::Socket::INET ();
use Socket qw(SOL_SOCKET SO_LINGER);
use TavusTest qw(reply delete_location server_block);

my $t = TavusTest->new->require_module;

my $true = JSON::PP::true();

my $m = $t->raw_mock(port => $t->port('up'), script => [
    [ { sleep => 1 }, reply('200 OK', '{}') ],       # 1: slower than 300ms
    [ { wait => 1 }, reply('200 OK', '{}') ],        # 2: FIN and reset
    [ { sleep => 0.5 }, reply('200 OK', '{}') ],     # 3: the same, ignored
    [ { sleep => 0.5 }, reply('200 OK', '{}') ],     # 4: the body's end
    [ reply('200 OK', '{}') ],                       # and later: at once
]);

# gw: a short lingering_timeout, for 1; gw2: nginx's default, 5 s, which
# lets the reset of 2 and 3 come before that timer

my @common = ('access_log %%PREFIX%%/body.log body;',
              'tavus_pass http://127.0.0.1:%%PORT_up%%;',
              'tavus_api_key body-Key_1;',
              delete_location('default'),
              delete_location('ignore', 'tavus_ignore_client_abort on;'));

$t->run("    log_format body '\$request_uri \$status \$tavus_outcome "
        . "\$upstream_status';\n\n"
        . server_block('gw', 'lingering_timeout 300ms;', @common) . "\n"
        . server_block('gw2', @common));

sub head_only {
    my ($path) = @_;
    return "DELETE $path HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\n";
}

sub log_line {
    my ($path) = @_;
    return $t->wait_log('body.log', qr/^\Q$path\E /) // '';
}

sub client {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port('gw2'))
        or die "connect: $!";
    $s->autoflush(1);
    return $s;
}

# a FIN, then a reset: SO_LINGER with a zero timeout makes close() one

sub reset_close {
    my ($s) = @_;
    setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0))
        or die "SO_LINGER: $!";
    close $s;
}

###############################################################################
# 1. longer than lingering_timeout

my $r = $t->http(port => $t->port('gw'), raw => head_only('/default/ra'),
                 timeout => 5);

$t->answer($r, 200, { replica_id => 'ra', deleted => $true },
           'a body not sent, a delete of 1 s, lingering_timeout 300ms:'
           . ' answered');
is(log_line('/default/ra'), '/default/ra 200 deleted 200',
   'the access log has the delete');

###############################################################################
# 2. a FIN, then a reset

my $s = client();
print $s head_only('/default/rb');
$m->wait_for(request => 2);

shutdown($s, 1);
reset_close($s);

like(log_line('/default/rb'),
     qr{^/default/rb (?:499 - -|(?:200|499) deleted 200)$},
     'a FIN, then a reset: the request ends as one without a body (499,'
     . ' or the answer if it came first)');

###############################################################################
# 3. the same with tavus_ignore_client_abort on

$s = client();
print $s head_only('/ignore/rc');
$m->wait_for(request => 3);

shutdown($s, 1);
reset_close($s);

like(log_line('/ignore/rc'), qr{^/ignore/rc (?:200|499) deleted 200$},
     'ignore_client_abort: the answer was read, outcome deleted');

###############################################################################
# 4. the body's end after the delete went upstream, then a pipelined request

sub answers {
    my ($s) = @_;
    my ($raw, $sel) = ('', IO::Select->new($s));
    while ($sel->can_read(5)) {
        last unless sysread($s, my $buf, 65536);
        $raw .= $buf;
    }
    close $s;
    return $raw;
}

$s = client();
print $s head_only('/default/rd') . '01234';
$m->wait_for(request => 4);
print $s "56789DELETE /default/re HTTP/1.1\r\nHost: gw\r\n"
         . "Connection: close\r\n\r\n";

my $raw = answers($s);
is(join(' ', $raw =~ m{^HTTP/1\.1 (\d{3})}mg), '200 200',
   'the body ends while the delete is upstream, a request follows: both'
   . ' answered on the connection');
like($raw, qr{"replica_id":"rd".*"replica_id":"re"}s,
     'each answer is its own delete');

###############################################################################
# 5. a body that has all come: discarded, the connection kept

$s = client();
print $s "DELETE /default/rf HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n"
         . "\r\n0123456789"
         . "DELETE /default/rg HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
         . "\r\n";

$raw = answers($s);

my @answers = $raw =~ m{^HTTP/1\.1 (\d{3})}mg;
is("@answers", '200 200',
   'a body that has all come, then a second request on the connection:'
   . ' both answered');
like($raw, qr{"replica_id":"rf".*"replica_id":"rg"}s,
     'each answer is its own delete');

###############################################################################

my @alerts = grep { /\[(?:alert|crit|emerg)\]/ } $t->new_errors;
is("@alerts", '', 'no alert, crit or emerg in the error log');

$t->stop;

done_testing;
