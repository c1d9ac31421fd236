#!/usr/bin/perl

# A delete whose request body is still arriving when the delete goes
# upstream.  nginx's discarding of a body that has to wait keeps a
# reference to the request and its own read handler; the module takes
# both back before the upstream starts, and leaves the rest of the body to
# nginx's lingering close after the answer:
#
#   1. a delete that takes longer than lingering_timeout is answered (the
#      discarding's timer no longer ends it);
#   2. a client that sends a FIN, then a reset: the FIN ends the request
#      as it ends one without a body (499), and the reset finds no stale
#      read handler ("http request count is zero" before);
#   3. the same with tavus_ignore_client_abort on: the delete's outcome is
#      logged, and no alert;
#   4. a body that has all come is still discarded as before, and the
#      client connection is kept alive for the next request.

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
    [ { wait => 3 }, reply('200 OK', '{}') ],        # 2: held, the FIN
    [ { sleep => 0.5 }, reply('200 OK', '{}') ],     # 3: FIN and reset
    [ reply('200 OK', '{}') ],                       # 4, 5: at once
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
is($r->{headers}{connection}, 'close',
   'the connection is not kept: the rest of the body goes to lingering'
   . ' close');
is(log_line('/default/ra'), '/default/ra 200 deleted 200',
   'the access log has the delete');

###############################################################################
# 2. a FIN, then a reset

my $s = client();
print $s head_only('/default/rb');
$m->wait_for(request => 2);

shutdown($s, 1);
ok($m->wait_for(eof => 2, 3),
   'the FIN ends the request as one without a body: the upstream'
   . ' connection is closed');

reset_close($s);

is(log_line('/default/rb'), '/default/rb 499 - -',
   'the access log: 499, no outcome, as for a delete without a body');

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
# 4. a body that has all come: discarded, the connection kept

$s = client();
print $s "DELETE /default/rd HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n"
         . "\r\n0123456789"
         . "DELETE /default/re HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
         . "\r\n";

my ($raw, $sel) = ('', IO::Select->new($s));
while ($sel->can_read(5)) {
    last unless sysread($s, my $buf, 65536);
    $raw .= $buf;
}
close $s;

my @answers = $raw =~ m{^HTTP/1\.1 (\d{3})}mg;
is("@answers", '200 200',
   'a body that has all come, then a second request on the connection:'
   . ' both answered');
like($raw, qr{"replica_id":"rd".*"replica_id":"re"}s,
     'each answer is its own delete');

###############################################################################

my @alerts = grep { /\[(?:alert|crit|emerg)\]/ } $t->new_errors;
is("@alerts", '', 'no alert, crit or emerg in the error log');

$t->stop;

done_testing;
