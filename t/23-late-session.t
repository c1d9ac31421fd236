#!/usr/bin/perl

# A session that a server gives out late, on a connection already in use
# (a TLSv1.3 ticket after the handshake), is kept by the delete location
# only when one of its own deletes holds the connection.  nginx's cache
# lets proxy_pass take a connection a delete opened: a ticket that then
# arrives must not reach the group's store, where the delete location's
# session id context would make proxy_pass's next handshake fail.
#
# The server is t/lib/ticket-server.c: no ticket at the handshake, one
# just before the answer to the second request on a connection, which it
# then closes.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use File::Basename ();
use POSIX ();
use TavusTest;
use TavusTLS;

my $t = TavusTest->new->require_module;

my $gw = $t->port('gw');
my $up = $t->port('up');
my $p = $t->prefix;

$t->key_file('api.key', "late-Key_1");

my $pki = TavusTLS->new($t);
$pki->ca('root');
$pki->leaf('api', issuer => 'root', names => ['tavusapi.test']);

# the server, built now

my $src = File::Basename::dirname(__FILE__) . '/lib/ticket-server.c';
my $bin = "$p/ticket-server";
my $cc = qx{cc -o '$bin' '$src' -lssl -lcrypto 2>&1};
is($?, 0, 'the ticket server builds') or diag($cc);

my $log = "$p/ticket.log";

my $pid = fork() // die "fork: $!";

if ($pid == 0) {
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', '/dev/null';
    open STDERR, '>>', "$p/ticket.err";
    exec $bin, $up, $pki->crt('api'), $pki->key('api'), $log
        or POSIX::_exit(127);
}

END { kill 'KILL', $pid if $pid; }

$t->run(<<"HTTP");
    upstream tavusapi.test {
        server 127.0.0.1:$up;
        keepalive 4;
    }

    server {
        listen 127.0.0.1:%%PORT_gw%%;

        location ~ ^/delete/(?<replica>[^/]*)\$ {
            tavus_delete_replica \$replica;
            tavus_pass https://tavusapi.test;
            tavus_api_key_file $p/api.key;
            tavus_ssl_trusted_certificate ${\ $pki->crt('root')};
        }

        location /proxy/ {
            proxy_pass https://tavusapi.test/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_protocols TLSv1.2 TLSv1.3;
        }
    }
HTTP

sub lines {
    return [ split /\n/, $t->read_file($log) ];
}

sub del {
    my ($id) = @_;
    return $t->http(port => $gw, method => 'DELETE', path => "/delete/$id")
           ->{status};
}

sub get {
    return $t->http(port => $gw, path => '/proxy/x')->{status};
}

# a delete opens the connection; proxy_pass takes it and gets the ticket;
# its next requests make new connections

is(join(' ', del('r1'), get(), get(), get(), get()), '200 200 200 200 200',
   'a ticket on a delete\'s connection held by proxy_pass: every request'
   . ' answered');

# proxy_pass's second connection is a full handshake: the ticket that
# came on the delete's connection was not saved for it; its third resumes
# the session of its own second

is_deeply(lines(), [
    'conn reused=0', 'req 1 key=yes', 'req 2 key=no',
    'conn reused=0', 'req 1 key=no', 'req 2 key=no',
    'conn reused=1', 'req 1 key=no',
], 'proxy_pass: no session of the delete location, its own resumed');

unlike($t->error_log, qr/reuse session in different context/,
       'no handshake failed for a session of another context');

# a ticket while a delete holds the connection: kept, and resumed

truncate $log, 0;

is(join(' ', del('r2'), del('r3'), del('r4')), '200 200 200',
   'a ticket on a delete\'s own connection: three deletes');

my @l = @{ lines() };
is("@l[0 .. 2]", 'conn reused=0 req 1 key=yes req 2 key=yes',
   'the ticket arrives with the second delete');
is($l[3] // '', 'conn reused=1',
   'the next delete resumes the session the ticket gave');

$t->stop;

done_testing;
