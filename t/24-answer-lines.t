#!/usr/bin/perl

# The lines of an upstream answer, read as RFC 9112 writes them, whatever
# the reads they arrive in:
#
#   - what a real HTTP/1.1 server or an intermediary may send is taken:
#     an empty reason phrase, obs-text in it, bare LF line ends, UTF-8 and
#     HTAB in values, 1xx answers before the final one, chunk extensions
#     and trailers, a long header line over two reads;
#   - what the grammar refuses is refused, also when nginx's parser
#     would skip it at the end of a read: obs-fold, a control byte in a
#     value, a status line among the header lines;
#   - an operator's error_page that falls back to another delete location
#     after the first upstream stopped inside a line: the fallback reads
#     its own answer from its first byte (the parser's state of the first
#     request is not carried over).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use JSON::PP ();
use TavusTest qw(delete_location);

my $t = TavusTest->new->require_module;

my $KEY = 'lines-Key_1';
my $gw = $t->port('gw');
my $tail = "Content-Length: 2\r\n\r\n{}";

# name => [ script entry, status ]
my @cases = (
    [ empty_reason => [ "HTTP/1.1 200\r\n$tail" ], 200 ],
    [ empty_reason_sp => [ "HTTP/1.1 200 \r\n$tail" ], 200 ],
    [ obs_text_reason => [ "HTTP/1.1 200 \xc3\x93K\r\n$tail" ], 200 ],
    [ lf_only => [ "HTTP/1.1 200 OK\nContent-Length: 2\n\n{}" ], 200 ],
    [ utf8_value => [ "HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9\r\n$tail" ],
      200 ],
    [ htab_value => [ "HTTP/1.1 200 OK\r\nContent-Length:\t2\t\r\n\r\n{}" ],
      200 ],
    [ early_hints => [ "HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload"
                       . "\r\n\r\nHTTP/1.1 200 OK\r\n$tail" ], 200 ],
    [ continue_split => [ "HTTP/1.1 100 Continue\r\n\r\n", { sleep => 0.1 },
                          "HTTP/1.1 200 OK\r\n$tail" ], 200 ],
    [ continue_bytewise => [ { bytewise => 1 }, "HTTP/1.1 100 Continue\r\n\r\n"
                             . "HTTP/1.1 204 No Content\r\n\r\n" ], 200 ],
    [ chunk_ext_trailer => [ { bytewise => 1 }, "HTTP/1.1 200 OK\r\n"
                             . "Transfer-Encoding: chunked\r\n\r\n1;a=b\r\n{"
                             . "\r\n1\r\n}\r\n0;x\r\nT: v\r\n\r\n" ], 200 ],
    [ long_line_split => [ "HTTP/1.1 200 OK\r\nX-Long: " . ('a' x 1500),
                           { sleep => 0.1 }, ('b' x 1500) . "\r\n$tail" ],
      200 ],
    [ split_after_lf => [ "HTTP/1.1 200 OK\r\n", { sleep => 0.1 }, "X-A: 1\r\n",
                          { sleep => 0.1 }, $tail ], 200 ],
    [ tchar_name => [ "HTTP/1.1 200 OK\r\n!#\$%&'*+.^`|~: v\r\n$tail" ], 200 ],
    [ name_not_token => [ "HTTP/1.1 200 OK\r\nX\@Y: b\r\n$tail" ], 502 ],
    [ no_colon => [ "HTTP/1.1 200 OK\r\nNoColonHere\r\n$tail" ], 502 ],
    [ del_in_value => [ "HTTP/1.1 200 OK\r\nX-D: a\x7fb\r\n$tail" ], 502 ],
    [ obs_fold => [ "HTTP/1.1 200 OK\r\nX-F: a\r\n b\r\n$tail" ], 502 ],
    [ ctl_in_value => [ "HTTP/1.1 200 OK\r\nX-C: a\x01b\r\n$tail" ], 502 ],
    [ status_line_twice => [ "HTTP/1.1 200 OK\r\nHTTP/1.1 200 OK\r\n$tail" ],
      502 ],
    [ status_line_twice_split => [ "HTTP/1.1 200 OK\r\nHTTP/1.1 200 OK\r\n",
                                   { sleep => 0.1 }, $tail ], 502 ],
    [ garbage_line_split => [ "HTTP/1.1 200 OK\r\nHTTP/\x01\x02 x\r\n",
                              { sleep => 0.1 }, $tail ], 502 ],
);

my @locations;

for my $case (@cases) {
    my ($name, $entry) = @$case;
    $t->raw_mock(port => $t->port($name), script => [ $entry ]);
    push @locations, delete_location($name,
                                     "tavus_pass http://127.0.0.1:%%PORT_$name%%;");
}

# the fallback: the first upstream stops inside its status line or a
# header line and times out; error_page goes on to another delete location

my %first = (
    in_reason => [ "HTTP/1.1 200 O", { hang => 1 } ],
    in_value => [ "HTTP/1.1 200 OK\r\nX-A: 1", { hang => 1 } ],
);

for my $name (sort keys %first) {
    $t->raw_mock(port => $t->port("first_$name"), script => [ $first{$name} ]);
    push @locations, "        location /fallback_$name/ {\n"
                     . "            error_page 504 = \@second;\n"
                     . "            tavus_read_timeout 300ms;\n"
                     . "            tavus_delete_replica r1;\n"
                     . "            tavus_pass http://127.0.0.1:"
                     . "%%PORT_first_$name%%;\n"
                     . "        }\n";
}

$t->raw_mock(port => $t->port('second'),
             script => [ [ "HTTP/1.1 200 OK\r\n$tail" ] ]);

$t->run(<<"HTTP");
    server {
        listen 127.0.0.1:%%PORT_gw%%;
        tavus_api_key $KEY;
        tavus_read_timeout 2s;
        tavus_buffer_size 8k;

@locations
        location \@second {
            tavus_delete_replica r1;
            tavus_pass http://127.0.0.1:%%PORT_second%%;
        }
    }
HTTP

for my $case (@cases) {
    my ($name, undef, $status) = @$case;

    my $r = $t->http(port => $gw, method => 'DELETE', path => "/$name/r1");

    if ($status == 200) {
        $t->answer($r, 200, { replica_id => 'r1', deleted => JSON::PP::true },
                   $name);
    } else {
        $t->answer($r, 502, { code => 'upstream_invalid_response',
                              replica_id => 'r1' }, $name);
    }
}

for my $name (sort keys %first) {
    my $r = $t->http(port => $gw, method => 'DELETE',
                     path => "/fallback_$name/r1");
    $t->answer($r, 200, { replica_id => 'r1', deleted => JSON::PP::true },
               "a fallback after a stop $name");
}

$t->stop;

done_testing;
