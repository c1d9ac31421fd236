#!/usr/bin/perl

# A client that hangs up after its delete was sent upstream: by default
# nginx drops the upstream request (499, no outcome); with
# tavus_ignore_client_abort on, the answer is read and the outcome logged.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use IO::Socket::INET ();
use TavusTest qw(reply delete_location server_block);

my $t = TavusTest->new->require_module;

my $m = $t->raw_mock(port => $t->port('up'),
                     script => [ [ { sleep => 0.5 }, reply('200 OK', '{}') ] ]);

$t->run("    log_format abort '\$request_uri \$status \$tavus_outcome "
        . "\$upstream_status';\n\n"
        . server_block('gw',
            'access_log %%PREFIX%%/abort.log abort;',
            'tavus_pass http://127.0.0.1:%%PORT_up%%;',
            'tavus_api_key abort-Key_1;',
            delete_location('default'),
            delete_location('ignore', 'tavus_ignore_client_abort on;')));

# send a delete, wait until the upstream has it, then hang up

sub hang_up {
    my ($path, $n) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port('gw'))
        or die "connect: $!";

    print $s "DELETE $path HTTP/1.1\r\nHost: gw\r\n\r\n";

    $m->wait_for(request => $n);

    close $s;
}

sub log_line {
    my ($path) = @_;
    return $t->wait_log('abort.log', qr/^\Q$path\E /) // '';
}

hang_up('/default/r1', 1);
is(log_line('/default/r1'), '/default/r1 499 - -',
   'off: 499, no outcome: the upstream request was dropped');

hang_up('/ignore/r2', 2);
# the status is what nginx sent to the gone client: 200, or 499 when it
# saw the connection closed while writing

like(log_line('/ignore/r2'), qr{^/ignore/r2 (?:200|499) deleted 200$},
     'on: the answer was read: outcome deleted, upstream 200');

my @req = $m->requests;
is(scalar @req, 2, 'each delete reached the upstream once');
like($req[1] // '', qr{^DELETE /v2/replicas/r2 HTTP/1\.1\r\n},
     'on: the delete went upstream');

$t->stop;

done_testing;
