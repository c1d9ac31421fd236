package TavusFuzz;

# The parts of the system fuzzer of the upstream answer path
# (scripts/chaos/fuzz-upstream.pl) that are pure functions, so that the
# fuzzer and the suite's replay of its regression cases
# (t/43-upstream-fuzz-regressions.t) share them:
#
#   TavusFuzz::Rng->new(STRING)     a deterministic generator: the same
#                                   string gives the same numbers on every
#                                   machine (MD5 in counter mode)
#   gen_case(SEED, N, %o)           case N of seed SEED: the route, the
#                                   client's behaviour, and the upstream's
#                                   answer plans (bytes, splits, delays,
#                                   how the connection ends)
#   classify(%a)                    the oracle: what the client must get
#                                   for the bytes an upstream sent, and
#                                   whether the connection may be kept
#                                   alive; written from docs/responses.md
#                                   and RFC 9112, not from the C code
#   chain_outcomes(CASE, N)         the oracle for N tries of a case
#   check_answer(%a)                the JSON contract of one answer
#   case_to_json / case_from_json   a case as a regression file
#
# The oracle's verdicts:
#   - a well-formed, complete answer is translated by the table of
#     docs/responses.md (2xx: 200 deleted; 401/403: 502
#     upstream_rejected_key; 404; 429 with Retry-After; other 4xx; 3xx,
#     5xx and any other status: 502 upstream_error);
#   - an answer the docs call invalid ("What counts as an invalid
#     answer") is 502 upstream_invalid_response; an invalid status line
#     or header line is one that RFC 9112's grammar does not allow
#     (HTTP-version = "HTTP/" DIGIT "." DIGIT, field-name = token,
#     field-value without control bytes, no obs-fold);
#   - where RFC 9112 lets a recipient choose (a bare LF as a line end,
#     no space after the status code, the syntax of chunk extensions and
#     of trailer fields), both the translation and 502
#     upstream_invalid_response are accepted;
#   - truncated: 502 upstream_invalid_response, or upstream_error when
#     not a byte arrived; an answer that stops arriving: 504
#     upstream_timeout (or 502 invalid when what had arrived was already
#     invalid or could not fit in tavus_buffer_size).
#
# Keep-alive: an answer is "exactly framed" when it is complete, valid,
# its final status line is HTTP/1.1, it has no "close" in Connection, and
# no byte followed it.  Only then may the connection carry another delete.

use strict;
use warnings;

use Digest::MD5 ();
use JSON::PP ();
use Exporter 'import';

our @EXPORT_OK = qw(gen_case classify chain_outcomes check_answer
                    case_to_json case_from_json printable);

our $MESSAGE_MAX = 512;

# the fixed messages of docs/responses.md, by code

our %FIXED = (
    not_found                 => 'replica not found',
    rate_limited              => 'rate limited by the upstream',
    upstream_rejected_key     => "the upstream rejected the gateway's API key",
    upstream_client_error     => 'the upstream rejected the request',
    upstream_error            => 'the upstream failed',
    upstream_timeout          => 'the upstream timed out',
    upstream_invalid_response => 'the upstream sent an invalid response',
);

our %STATUS_OF = (
    upstream_rejected_key     => 502,
    upstream_error            => 502,
    upstream_invalid_response => 502,
    upstream_timeout          => 504,
    not_found                 => 404,
    rate_limited              => 429,
);

# the routes of the fuzzer's nginx (see fuzz-upstream.pl): buffer size,
# keepalive, retries

our %ROUTE = (
    k => { buffer => 1024, keepalive => 1 },
    b => { buffer => 4096, keepalive => 1 },
    n => { buffer => 1024, keepalive => 0 },
    a => { buffer => 1024, keepalive => 1, ignore_abort => 1 },
    t => { buffer => 1024, keepalive => 1, short_timeout => 1 },
    r => { buffer => 1024, keepalive => 0, tries => 2 },
);

sub printable {
    my ($s) = @_;
    $s //= '';
    $s =~ s/([^\x20-\x7e]|\\)/$1 eq '\\' ? '\\\\' : sprintf('\\x%02x', ord $1)/ge;
    return $s;
}

###############################################################################
# the generator

package TavusFuzz::Rng;

sub new {
    my ($class, $key) = @_;
    return bless { key => $key, n => 0, pool => [] }, $class;
}

sub u32 {
    my ($self) = @_;
    unless (@{ $self->{pool} }) {
        $self->{pool} = [ unpack 'N4', Digest::MD5::md5(
                              $self->{key} . ':' . $self->{n}++) ];
    }
    return shift @{ $self->{pool} };
}

# 0 .. $n - 1
sub int {
    my ($self, $n) = @_;
    return 0 if $n <= 1;
    return $self->u32 % $n;
}

sub range {
    my ($self, $lo, $hi) = @_;
    return $lo + $self->int($hi - $lo + 1);
}

sub chance {
    my ($self, $p) = @_;
    return $self->u32 < $p * 4294967296;
}

sub pick {
    my ($self, @list) = @_;
    return $list[ $self->int(scalar @list) ];
}

# weighted(w1 => v1, w2 => v2, ...)
sub weighted {
    my ($self, @pairs) = @_;
    my $total = 0;
    for (my $i = 0; $i < @pairs; $i += 2) { $total += $pairs[$i] }
    my $x = $self->int($total);
    for (my $i = 0; $i < @pairs; $i += 2) {
        return $pairs[$i + 1] if ($x -= $pairs[$i]) < 0;
    }
    return $pairs[-1];
}

# $n characters, each one of @chars (default: letters and digits)
sub chars {
    my ($self, $n, @chars) = @_;
    return join '', map { $chars[ $self->int(scalar @chars) ] } 1 .. $n;
}

sub text {
    my ($self, $n, $alphabet) = @_;
    $alphabet //= 'abcdefghijklmnopqrstuvwxyz0123456789';
    return join '', map { substr($alphabet, $self->int(length $alphabet), 1) }
                    1 .. $n;
}

package TavusFuzz;

my @GOOD_2XX = (200, 200, 200, 200, 201, 202, 204, 204, 206, 299);
my @OTHER = (300, 301, 302, 304, 307, 400, 401, 403, 404, 404, 405, 409,
             410, 418, 422, 429, 429, 451, 499, 500, 500, 502, 503, 503,
             504, 599, 600, 699, 999, 0, 99, 199);

my %REASON = (200 => 'OK', 201 => 'Created', 202 => 'Accepted',
              204 => 'No Content', 400 => 'Bad Request',
              401 => 'Unauthorized', 403 => 'Forbidden',
              404 => 'Not Found', 429 => 'Too Many Requests',
              500 => 'Internal Server Error', 502 => 'Bad Gateway',
              503 => 'Service Unavailable', 100 => 'Continue',
              101 => 'Switching Protocols', 102 => 'Processing',
              103 => 'Early Hints');

# case N of a seed: the replica id carries the seed and the number, so
# that the mock finds the case of every request it gets

sub case_id {
    my ($seed, $n) = @_;
    return "fz${seed}-$n";
}

sub parse_case_id {
    my ($id) = @_;
    return $id =~ /^fz(\d+)-(\d+)\z/ ? ($1, $2) : ();
}

sub gen_case {
    my ($seed, $n, %o) = @_;

    my $key = $o{key} // die 'gen_case: no key';
    my $rng = TavusFuzz::Rng->new("$seed/$n");

    my $c = { seed => $seed, n => $n, id => case_id($seed, $n) };

    # the answers first: a hang needs the route with a short timeout

    my $route = $rng->weighted(30 => 'k', 15 => 'b', 10 => 'n', 12 => 'a',
                               15 => 'r', 6 => 't');
    $c->{route} = $route;

    my $tries = $route eq 'r' ? 3 : 1;
    $c->{plans} = [ map { gen_plan($rng, $route, $key, $c->{id}) } 1 .. $tries ];

    # the client

    $c->{proto} = $rng->chance(0.25) ? 'h2' : 'h1';
    $c->{group} = $rng->weighted(80 => 1, 12 => 2, 6 => 3, 2 => 4);
    $c->{abort} = $rng->weighted(88 => 'none', 3 => 'partial_request',
                                 4 => 'after_send', 5 => 'after_delay');
    $c->{abort_ms} = $rng->range(1, 120);
    $c->{body} = $rng->weighted(80 => 'none', 7 => 'length', 4 => 'chunked',
                                3 => 'large', 3 => 'expect', 3 => 'unsent');
    $c->{body_len} = $rng->range(1, 300);
    $c->{client_keep} = $rng->chance(0.5) ? 1 : 0;
    $c->{client_key} = $rng->chance(0.15) ? 1 : 0;
    $c->{hard} = 0;

    # a client that goes away does so once the upstream has the delete,
    # at once or after its delay, while nginx waits for the answer: before
    # its first byte or in its middle there is a pause longer than the
    # client's delay (so that the same seed gives the same run); an
    # HTTP/2 client has no half request, it resets the stream instead
    if ($c->{abort} ne 'none' && $c->{abort} ne 'partial_request'
        || $c->{abort} eq 'partial_request' && $c->{proto} eq 'h2')
    {
        my $ms = ($c->{abort} eq 'after_delay' ? $c->{abort_ms} : 0) + 150;
        for my $p (@{ $c->{plans} }) {
            my $parts = $p->{parts};
            # in the middle only when the client waits long enough for
            # the first bytes to have made their effect
            my $at = $rng->chance(0.5) || $ms < 200 ? 0
                     : $rng->int(scalar @$parts);
            $parts->[$at][0] += $ms;
        }
    }

    return $c;
}

# one answer of the upstream: its bytes, where they are cut into writes,
# the pauses between the writes, and how the connection ends

sub gen_plan {
    my ($rng, $route, $key, $id) = @_;

    my $buffer = $ROUTE{$route}{buffer};
    my $kind = $rng->weighted(40 => 'good', 16 => 'framing', 10 => 'chunked',
                              9 => 'header', 6 => 'status', 10 => 'interim',
                              5 => 'size', 4 => 'garbage');

    my $p = { kind => $kind };
    my $answer = gen_answer($rng, $kind, $buffer, $key, $id);

    # stray bytes glued to the last write, a cut, an end

    my $stray = '';
    if ($rng->chance(0.08)) {
        $stray = $rng->weighted(3 => "\r\n", 3 => 'HTTP/1.1 200 OK',
                                2 => "x$key", 2 => $rng->text(
                                    $rng->range(1, 40), "abc\r\n\0\xff "));
    }

    my $end = $route eq 't'
              ? $rng->weighted(70 => 'hang', 20 => 'keep', 10 => 'fin')
              : $rng->weighted(72 => 'keep', 16 => 'fin', 12 => 'rst');

    my $bytes = $answer . $stray;

    if ($end ne 'keep' && $rng->chance(0.35) && length $bytes) {
        # cut before the end: a truncated answer
        $bytes = substr($bytes, 0, $rng->int(length $bytes));
        $p->{cut} = 1;
    } elsif ($end eq 'hang' && length $bytes) {
        $bytes = substr($bytes, 0, $rng->int(length $bytes));
        $p->{cut} = 1;
    }

    # a RST after a whole answer that nginx may keep alive: nginx may take
    # the connection for the next delete before the RST comes, which HTTP
    # allows and no oracle can tell; there the end is a FIN, which the
    # mock sends with the answer's last byte
    if ($end eq 'rst' && $ROUTE{$route}{keepalive}
        && classify(bytes => $bytes, end => 'keep', buffer =>
                    $ROUTE{$route}{buffer}, key => $key)->{keepable})
    {
        $end = 'fin';
    }

    $p->{bytes} = $bytes;
    $p->{end} = $end;

    # writes: split at random offsets, with pauses (ms)

    # stray bytes go with the answer's last byte, in one write: nginx sees
    # them with the end of the answer (later, they would be the start of
    # the next answer, for nginx as for any HTTP client)
    my @cuts;
    my $len = length $bytes;
    my $cut_max = $len - 1;
    {
        # bytes past the framed end of the answer (a Content-Length short
        # of the body, a 204's body) are stray bytes too
        my $r = parse_answer($bytes, $key);
        $cut_max = $r->{length} - 1
            if $r->{state} eq 'complete' && $r->{length} < $len;
    }
    my $style = $rng->weighted(35 => 'whole', 45 => 'split', 8 => 'bytewise',
                               12 => 'slow');
    $style = 'split' if $style eq 'bytewise' && $len > 160;

    if ($style eq 'split' || $style eq 'slow') {
        my $k = $rng->range(1, $style eq 'slow' ? 3 : 6);
        my %at = map { ($rng->range(1, $cut_max > 1 ? $cut_max : 1)) => 1 }
                 1 .. $k;
        @cuts = sort { $a <=> $b } grep { $_ <= $cut_max && $_ < $len }
                keys %at;
    } elsif ($style eq 'bytewise') {
        @cuts = 1 .. $cut_max;
    }

    my @parts;
    my $prev = 0;
    for my $at (@cuts, $len) {
        my $delay = $style eq 'whole' ? 0
                    : $style eq 'bytewise' ? $rng->int(2)
                    : $style eq 'slow' ? $rng->range(20, 60)
                    : $rng->weighted(50 => 0, 30 => 1, 15 => 5, 5 => 25);
        push @parts, [ @parts ? $delay : $rng->weighted(70 => 0, 30 => 3),
                       substr($bytes, $prev, $at - $prev) ];
        $prev = $at;
    }
    @parts = ([ 0, '' ]) unless @parts;

    $p->{parts} = \@parts;
    # a pause before the FIN or RST that cuts an answer; after a whole
    # answer the close follows at once (a pause would let nginx send the
    # next delete on a connection about to close, as HTTP allows)
    my $delay = $rng->weighted(60 => 0, 30 => 2, 10 => 20);
    $p->{end_delay} = parse_answer($bytes, $key)->{state} eq 'complete'
                      ? 0 : $delay;

    return $p;
}

sub crlf { join '', map { "$_\r\n" } @_ }

sub reason {
    my ($rng, $status) = @_;
    return $rng->weighted(85 => $REASON{$status} // 'Whatever', 5 => '',
                          5 => 'caf\xc3\xa9', 5 => 'OK OK');
}

# a body of an error answer, and what the message must be is left to the
# oracle

sub gen_error_body {
    my ($rng, $key) = @_;

    my $msg = $rng->weighted(
        30 => 'Invalid replica_id',
        10 => 'caf' . "\xc3\xa9" . ' ' . "\xe2\x82\xac" . ' ok',
        6  => $rng->chars($rng->range(170, 530), 'a', 'b', ' ', "\xc3\xa9",
                          "\xe2\x82\xac", "\xf0\x9f\x98\x80"),
        6  => "contains the key $key here",
        4  => "quote \\\" and \\\\ and \\n and \\u00e9 and \\ud83d\\ude00",
        4  => "bad \xff byte",
        4  => '',
        4  => $rng->text($rng->range(1, 30)),
    );

    return $rng->weighted(
        30 => qq({"error":"$msg"}),
        15 => qq({"message":"$msg"}),
        6  => qq({"error":"","message":"$msg"}),
        4  => qq({"error":7,"message":"$msg"}),
        4  => qq( { "code" : 1 , "error" : "$msg" , "x" : [1,{"a":null}] } ),
        4  => qq(["$msg"]),
        4  => qq("$msg"),
        4  => qq({"error":"$msg"),
        4  => qq({"error":"$msg"} trailing),
        6  => '<html><body><h1>Error</h1></body></html>',
        6  => '',
        3  => "not json at all $key",
        3  => qq({"error":"$msg"}\n),
    );
}

sub gen_headers {
    my ($rng, $key, $id) = @_;

    my @h;
    push @h, 'Content-Type: application/json' if $rng->chance(0.7);
    push @h, 'Server: mock' if $rng->chance(0.3);
    push @h, 'Date: Sun, 06 Nov 1994 08:49:37 GMT' if $rng->chance(0.2);
    push @h, "X-Fuzz-Leak: $id" if $rng->chance(0.3);
    push @h, "X-Echo: $key" if $rng->chance(0.05);
    push @h, 'X_Under_Score: 1' if $rng->chance(0.05);
    push @h, 'X-' . ('n' x $rng->range(30, 70)) . ': long name'
        if $rng->chance(0.05);
    push @h, 'Connection: ' . $rng->pick('keep-alive', 'close', 'Close',
                                         'keep-alive, close', 'upgrade')
        if $rng->chance(0.15);
    push @h, 'Set-Cookie: a=b' if $rng->chance(0.05);
    push @h, 'Cache-Control: public, max-age=3600' if $rng->chance(0.05);
    push @h, 'Expires: Thu, 01 Dec 2044 16:00:00 GMT' if $rng->chance(0.03);
    push @h, 'Empty:' if $rng->chance(0.03);
    push @h, 'Spaces:    value   ' if $rng->chance(0.03);

    return @h;
}

sub retry_after_header {
    my ($rng, $key) = @_;
    return 'Retry-After: ' . $rng->weighted(
        30 => $rng->range(0, 3600), 10 => '00000000000',
        5 => '123456789012', 15 => 'Sun, 06 Nov 1994 08:49:37 GMT',
        5 => 'soon', 5 => '-1', 5 => '1.5', 5 => $key, 5 => '',
        5 => "12 $key");
}

# a body framed by Content-Length or chunked, well-formed

sub frame {
    my ($rng, $body, $how) = @_;

    $how //= $rng->weighted(70 => 'length', 30 => 'chunked');

    return ("Content-Length: " . length($body), $body) if $how eq 'length';

    my $out = '';
    my $rest = $body;
    while (length $rest) {
        my $n = $rng->range(1, length($rest) > 40 ? 40 : length $rest);
        my $size = sprintf($rng->pick('%x', '%X', '%03x'), $n);
        $size .= $rng->weighted(85 => '', 10 => ';ext=1', 5 => ';a="b c"');
        $out .= "$size\r\n" . substr($rest, 0, $n, '') . "\r\n";
    }
    $out .= $rng->weighted(85 => '0', 10 => '000', 5 => '0;last') . "\r\n";
    $out .= 'X-Trailer: yes' . "\r\n" if $rng->chance(0.1);
    $out .= "\r\n";

    return ('Transfer-Encoding: ' . $rng->weighted(90 => 'chunked',
                                                   10 => 'Chunked'), $out);
}

sub status_body {
    my ($rng, $status, $key) = @_;
    return '' if $status == 204 || $status == 304;
    return $rng->weighted(60 => '{"message":"Replica deleted successfully"}',
                          20 => '', 10 => '{}', 10 => 'OK')
        if $status >= 200 && $status < 300;
    return gen_error_body($rng, $key);
}

sub good_answer {
    my ($rng, $key, $id, %o) = @_;

    my $status = $o{status} // ($rng->chance(0.55) ? $rng->pick(@GOOD_2XX)
                                                   : $rng->pick(@OTHER));
    my $version = $o{version} // $rng->weighted(90 => '1.1', 10 => '1.0');
    my @h = gen_headers($rng, $key, $id);
    push @h, retry_after_header($rng, $key)
        if $rng->chance($status == 429 ? 0.8 : 0.05);
    my $body = $o{body} // status_body($rng, $status, $key);

    my (@framing, $framed);
    if ($status == 204 || $status == 304) {
        @framing = ('Content-Length: 0') if $rng->chance(0.2);
        $framed = '';
    } else {
        my $f;
        ($f, $framed) = frame($rng, $body, $o{how});
        @framing = ($f);
    }

    my @all = (@h, @framing);
    # framing anywhere among the other headers
    my $at = $rng->int(scalar @all);
    @all[$at, -1] = @all[-1, $at] if @all;

    return "HTTP/$version $status " . reason($rng, $status) . "\r\n"
           . crlf(@all) . "\r\n" . $framed;
}

sub gen_answer {
    my ($rng, $kind, $buffer, $key, $id) = @_;

    if ($kind eq 'good') {
        return good_answer($rng, $key, $id);
    }

    if ($kind eq 'interim') {
        my $pre = '';
        for (1 .. $rng->range(1, 3)) {
            my $s = $rng->weighted(40 => 100, 15 => 102, 25 => 103, 5 => 199,
                                   5 => 101, 5 => 150);
            $pre .= "HTTP/1.1 $s " . ($REASON{$s} // 'Info') . "\r\n";
            $pre .= "Link: </a.css>; rel=preload\r\n" if $rng->chance(0.4);
            $pre .= "X-Interim: $key\r\n" if $rng->chance(0.1);
            $pre .= "\r\n";
        }
        return $pre if $rng->chance(0.1);        # interim answers only
        return $pre . good_answer($rng, $key, $id);
    }

    if ($kind eq 'size') {
        # the whole answer at the edge of tavus_buffer_size
        my $total = $buffer + $rng->pick(-1, 0, 1, -1, 0, 1, -20, 40);
        my $status = $rng->pick(200, 200, 404, 429, 500);
        my $body = $status == 200 ? '' : '{"error":"at the edge"}';
        my $chunked = $rng->chance(0.3);
        my $tail = $chunked
                   ? "\r\n\r\n" . ($body eq '' ? '' : sprintf("%x\r\n%s\r\n",
                                                     length $body, $body))
                     . "0\r\n\r\n"
                   : "\r\n\r\n$body";
        my $head = "HTTP/1.1 $status X\r\n"
                   . ($chunked ? "Transfer-Encoding: chunked\r\n"
                               : 'Content-Length: ' . length($body) . "\r\n")
                   . 'X-Pad: ';
        my $pad = $total - length($head) - length($tail);
        $pad = 1 if $pad < 1;
        return $head . ('p' x $pad) . $tail;
    }

    if ($kind eq 'framing') {
        my $status = $rng->chance(0.6) ? $rng->pick(200, 201, 204)
                                       : $rng->pick(@OTHER);
        my $body = status_body($rng, $status, $key);
        $body = '{}' if $body eq '' && $rng->chance(0.5);
        my $len = length $body;
        my ($chunked_h, $chunked_b) = frame($rng, $body, 'chunked');
        # each framing of the answer: the header it announces, the body
        my %framing = (
            both => sub { ("Content-Length: $len\r\n$chunked_h", $chunked_b) },
            two_equal => sub {
                ("Content-Length: $len\r\nContent-Length: $len", $body) },
            two_differ => sub {
                ("Content-Length: $len\r\ncontent-length: " . ($len + 1),
                 $body) },
            bad_value => sub {
                ('Content-Length: ' . $rng->pick('foo', "+$len", '-1',
                 "$len $len", "$len,$len", '0x2', '', '1e3',
                 '99999999999999999999', "$len;"), $body) },
            neither => sub { ('X-None: 1', $body) },
            # announced more than sent: the connection is then closed
            short => sub {
                ('Content-Length: ' . ($len + $rng->range(1, 20)), $body) },
            # more sent than announced: the rest is stray
            long => sub {
                ('Content-Length: ' . ($len > 0 ? $len - 1 : 0), $body) },
            te_gzip => sub { ('Transfer-Encoding: gzip, chunked', $chunked_b) },
            te_twice => sub {
                ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
                 $chunked_b) },
            te_list => sub {
                ('Transfer-Encoding: chunked, chunked', $chunked_b) },
            te_identity => sub { ('Transfer-Encoding: identity', $body) },
            te_space => sub {
                ('Transfer-Encoding:   chunked   ', $chunked_b) },
            te_tab => sub { ("Transfer-Encoding:\tchunked", $chunked_b) },
            cl_tab => sub { ("Content-Length:\t$len\t", $body) },
            cl_space => sub { ("Content-Length:  $len  ", $body) },
            zero_lead => sub { ("Content-Length: 000$len", $body) },
        );
        # the order of the names is the seed's: keep it
        my ($h, $b) = $framing{ $rng->pick(qw(both two_equal two_differ
            bad_value neither short long te_gzip te_twice te_list te_identity
            te_space te_tab cl_tab cl_space zero_lead)) }->();
        $b = '' if $status == 204 && $rng->chance(0.5);
        return "HTTP/1.1 $status X\r\n" . join('', map { "$_\r\n" }
                   gen_headers($rng, $key, $id)) . "$h\r\n\r\n$b";
    }

    if ($kind eq 'chunked') {
        my $status = $rng->chance(0.7) ? 200 : $rng->pick(400, 404, 429, 500);
        my $body = $status == 200 ? '{"message":"ok"}' : '{"error":"chunky"}';
        my $f = $rng->pick(qw(bad_hex overflow big no_crlf_after_data
                              no_last no_final_crlf ext_junk ext_space
                              size_space lf_only trailer trailer_junk
                              trailer_no_colon empty_chunk_size negative
                              cr_only zero_ext many_small huge_max));
        my $c;
        my $n = length $body;
        my $hex = sprintf '%x', $n;
        if ($f eq 'bad_hex') {
            $c = "g$hex\r\n$body\r\n0\r\n\r\n";
        } elsif ($f eq 'overflow') {
            $c = "10000000000000000\r\n$body\r\n0\r\n\r\n";
        } elsif ($f eq 'big') {
            $c = sprintf("%x\r\n", 100000) . "$body\r\n0\r\n\r\n";
        } elsif ($f eq 'no_crlf_after_data') {
            $c = "$hex\r\n${body}0\r\n\r\n";
        } elsif ($f eq 'no_last') {
            $c = "$hex\r\n$body\r\n\r\n";
        } elsif ($f eq 'no_final_crlf') {
            $c = "$hex\r\n$body\r\n0\r\n";
        } elsif ($f eq 'ext_junk') {
            $c = "$hex;;;\x01=\r\n$body\r\n0\r\n\r\n";
        } elsif ($f eq 'ext_space') {
            $c = "$hex ;a=b\r\n$body\r\n0\r\n\r\n";
        } elsif ($f eq 'size_space') {
            $c = "$hex \r\n$body\r\n0 \r\n\r\n";
        } elsif ($f eq 'lf_only') {
            $c = "$hex\n$body\n0\n\n";
        } elsif ($f eq 'trailer') {
            $c = "$hex\r\n$body\r\n0\r\nX-T: 1\r\nY-T: 2\r\n\r\n";
        } elsif ($f eq 'trailer_junk') {
            $c = "$hex\r\n$body\r\n0\r\n\x01\x02 junk\r\n\r\n";
        } elsif ($f eq 'trailer_no_colon') {
            $c = "$hex\r\n$body\r\n0\r\nnocolon\r\n\r\n";
        } elsif ($f eq 'empty_chunk_size') {
            $c = "\r\n$body\r\n0\r\n\r\n";
        } elsif ($f eq 'negative') {
            $c = "-$hex\r\n$body\r\n0\r\n\r\n";
        } elsif ($f eq 'cr_only') {
            $c = "$hex\r$body\r\n0\r\n\r\n";
        } elsif ($f eq 'zero_ext') {
            $c = "$hex\r\n$body\r\n0;a=b;c\r\n\r\n";
        } elsif ($f eq 'many_small') {
            $c = join('', map { "1\r\n$_\r\n" } split //, $body) . "0\r\n\r\n";
        } else {
            $c = "7fffffffffffffff\r\n$body\r\n0\r\n\r\n";
        }
        return "HTTP/1.1 $status X\r\nTransfer-Encoding: chunked\r\n"
               . join('', map { "$_\r\n" } gen_headers($rng, $key, $id))
               . "\r\n$c";
    }

    if ($kind eq 'header') {
        my $status = $rng->chance(0.7) ? 200 : $rng->pick(404, 429, 500);
        my $good = good_answer($rng, $key, $id, status => $status,
                               version => '1.1');
        my $f = $rng->pick(qw(nul obs_fold space_in_name no_colon
                              bad_name_char ctl_in_value del_in_value
                              cr_in_value lf_only colon_first
                              http_line empty_name long_line high_bytes
                              space_before_colon tab_in_name));
        my $line = {
            nul                => "X-A: a\0b",
            obs_fold           => "X-A: a\r\n  folded",
            space_in_name      => 'X A: b',
            no_colon           => 'NoColonHere',
            bad_name_char      => 'X@Y: b',
            ctl_in_value       => "X-A: a\x01b",
            del_in_value       => "X-A: a\x7fb",
            cr_in_value        => "X-A: a\rb",
            colon_first        => ': novalue',
            http_line          => 'HTTP/1.1 200 OK',
            empty_name         => ':',
            long_line          => 'X-Long: ' . ('l' x $rng->range(900, 5000)),
            high_bytes         => "X-A: caf\xc3\xa9 \xff",
            space_before_colon => 'X-A : b',
            tab_in_name        => "X\tA: b",
        }->{$f};

        if ($f eq 'lf_only') {
            (my $lf = $good) =~ s/\r\n/\n/g;
            return $lf;
        }

        # after the status line, before the end of the headers
        $good =~ s/\r\n/\r\n$line\r\n/;
        return $good;
    }

    if ($kind eq 'status') {
        my $rest = "Content-Length: 2\r\n\r\n{}";
        return $rng->pick(
            "HTTP/2.0 200 OK\r\n$rest", "HTTP/1.2 200 OK\r\n$rest",
            "HTTP/0.9 200 OK\r\n$rest", "HTTP/1.10 200 OK\r\n$rest",
            "HTTP/1.1 20 OK\r\n$rest", "HTTP/1.1 2000 OK\r\n$rest",
            "http/1.1 200 OK\r\n$rest", "\r\nHTTP/1.1 200 OK\r\n$rest",
            "HTTP/1.1  200 OK\r\n$rest", "HTTP/1.1 200\r\n$rest",
            "HTTP/1.1 200 \r\n$rest", "HTTP/1.1 200 O\x01K\r\n$rest",
            "HTTP/1.1 200 OK\n$rest", "HTTP/11 200 OK\r\n$rest",
            "HTTP/1.1 200.5 OK\r\n$rest", "HTTP/1.1 2x0 OK\r\n$rest",
            " HTTP/1.1 200 OK\r\n$rest", "HTTP/1.1\t200 OK\r\n$rest",
            "HTTP/1.1 200 OK\r\r\n$rest", "HTTP/1.01 200 OK\r\n$rest",
            "HTTP/1.1 200 OK $key\r\n$rest");
    }

    # garbage: no HTTP at all, HTTP/0.9, a TLS alert, bytes
    return $rng->pick('{"message":"Replica deleted successfully"}',
                      "\x15\x03\x03\x00\x02\x02\x28", '', "\0\0\0\0",
                      "<html>200 OK</html>\r\n",
                      $rng->text($rng->range(1, 200), "HTP/1. 20\r\n\0\xff"));
}

###############################################################################
# the oracle

# the outcome sets: [ { status, code, message (undef: not checked),
# retry_after (undef: absent, '*': either) } ... ]

sub outcome {
    my ($code, %o) = @_;
    return { code => $code, status => $o{status} // $STATUS_OF{$code},
             message => exists $o{message} ? $o{message} : $FIXED{$code},
             retry_after => $o{retry_after},
             why => $o{why} };
}

my $TCHAR = qr/[!#\$%&'*+\-.^_`|~0-9A-Za-z]/;

# what can begin a valid status line, or a header line, or the empty line
my $STATUS_PREFIX = qr{\A(?:H(?:T(?:T(?:P(?:/(?:1(?:\.(?:\d(?: (?:\d(?:\d(?:\d(?: [\t \x21-\x7e\x80-\xff]*)?\r?)?)?)?)?)?)?)?)?)?)?)?)?\z};
my $HEADER_PREFIX = qr{\A(?:\r|$TCHAR+(?::[ \t]*[\t \x21-\x7e\x80-\xff]*\r?)?)?\z};

# reads one line at $pos: (content, next position, 'crlf'|'lf') or () when
# the line is not complete yet

sub read_line {
    my ($bytes, $pos) = @_;
    my $lf = index($bytes, "\n", $pos);
    return () if $lf < 0;
    my $line = substr($bytes, $pos, $lf - $pos);
    my $eol = 'lf';
    if ($line =~ s/\r\z//) {
        $eol = 'crlf';
    }
    return ($line, $lf + 1, $eol);
}

# classify(bytes => ..., end => keep|fin|rst|hang, buffer => N, key => ...)

sub classify {
    my (%a) = @_;

    my $bytes = $a{bytes};
    my $end = $a{end};
    my $buffer = $a{buffer};
    my $key = $a{key};

    my $r = parse_answer($bytes, $key);
    my $len = length $bytes;

    my $invalid = outcome('upstream_invalid_response', why => $r->{why});
    my $timeout = outcome('upstream_timeout', why => 'no complete answer');

    # what arrived does not fit: the module fails once its buffer is full
    # (or earlier, as soon as the announced size cannot fit)

    if ($r->{state} eq 'complete' && $r->{length} > $buffer) {
        return { outcomes => [ $invalid ], keepable => 0,
                 why => "the answer is $r->{length} bytes, more than"
                        . " $buffer" };
    }

    if ($r->{state} ne 'complete' && $r->{state} ne 'invalid'
        && (($r->{needs} // 0) > $buffer || $len >= $buffer))
    {
        return { outcomes => [ $invalid ], keepable => 0,
                 why => 'the answer cannot fit in the buffer' }
            if $len >= $buffer || $end ne 'hang' && $end ne 'keep';
        return { outcomes => [ $invalid, $timeout ], keepable => 0,
                 why => 'the answer cannot fit in the buffer, and stops' };
    }

    if ($r->{state} eq 'invalid') {
        my @o = ($invalid);
        # what is invalid may be seen only once more bytes come
        push @o, $timeout if ($end eq 'hang' || $end eq 'keep')
                             && $r->{late};
        return { outcomes => \@o, keepable => 0, why => $r->{why} };
    }

    if ($r->{state} eq 'incomplete') {
        if ($end eq 'hang' || $end eq 'keep') {
            my @o = ($timeout);
            push @o, $invalid if $r->{lenient};
            return { outcomes => \@o, keepable => 0,
                     why => 'incomplete, the upstream stops sending' };
        }
        my $o = $len ? $invalid : outcome('upstream_error');
        my @o = ($o);
        return { outcomes => \@o, keepable => 0,
                 why => ($len ? 'truncated' : 'closed before any byte') };
    }

    # complete

    my @o = translate($r, $key, $a{id});
    push @o, $invalid if $r->{lenient};

    # a lenient line the module accepts frames the answer as exactly as
    # a strict one
    my $keepable = $r->{version} eq '1.1' && !$r->{close}
                   && $r->{length} == $len && $end eq 'keep';

    return { outcomes => \@o, keepable => $keepable ? 1 : 0,
             why => "complete $r->{status}" . ($r->{lenient}
                                               ? " (lenient: $r->{lenient})"
                                               : '')
                    . ($r->{length} < $len ? ', then '
                       . ($len - $r->{length}) . ' stray bytes' : '') };
}

# digits of 19 or more places, leading zeros aside: past 2^63 - 1, or
# close enough that a refusal is as fair as an acceptance

sub long_number {
    my ($n) = @_;
    return $n =~ /\A\d+\z/ && ($n =~ s/\A0+(?=\d)//r) =~ /\A\d{19,}\z/;
}

# a strict parse of the bytes: state complete | incomplete | invalid,
# with the final status, headers, body; lenient says what RFC 9112 lets a
# recipient accept or refuse; late: the fault is in a line not yet ended

sub parse_answer {
    my ($bytes, $key) = @_;

    my $pos = 0;
    my %r = (state => 'incomplete', lenient => '');

    my $fail = sub { %r = (%r, state => 'invalid', why => $_[0],
                           late => $_[1] // 0); \%r };
    my $lenient = sub { $r{lenient} .= ($r{lenient} ? ', ' : '') . $_[0] };

    while (1) {
        # the status line

        my ($line, $next, $eol) = read_line($bytes, $pos);

        unless (defined $line) {
            # what has come already cannot begin a valid status line
            return $fail->('no valid HTTP/1.x status line', 1)
                unless substr($bytes, $pos) =~ $STATUS_PREFIX;
            return \%r;
        }

        $lenient->('a bare LF') if $eol eq 'lf';

        my ($version, $status, $rest);
        if ($line =~ m{\AHTTP/1\.(\d) (\d\d\d) [\t \x21-\x7e\x80-\xff]*\z}) {
            ($version, $status) = ($1 ? '1.1' : '1.0', $2);
        } elsif ($line =~ m{\AHTTP/1\.(\d) (\d\d\d)\z}) {
            ($version, $status) = ($1 ? '1.1' : '1.0', $2);
            $lenient->('no space after the status code');
        } else {
            return $fail->('no valid HTTP/1.x status line: "'
                           . printable(substr($line, 0, 40)) . '"');
        }

        $pos = $next;

        # the header lines

        my @headers;
        while (1) {
            my ($h, $n, $e) = read_line($bytes, $pos);
            unless (defined $h) {
                return $fail->('an invalid header line', 1)
                    unless substr($bytes, $pos) =~ $HEADER_PREFIX;
                # what the header lines so far already make invalid
                my @cl = map { $_->[1] } grep { $_->[0] eq 'content-length' }
                         @headers;
                my @te = map { $_->[1] }
                         grep { $_->[0] eq 'transfer-encoding' } @headers;
                return $fail->('invalid framing headers', 1)
                    if @cl > 1 || grep({ !/\A\d+\z/ } @cl) || @te > 1
                       || grep({ !/\Achunked\z/i } @te);
                # a length past 2^63 may be refused as soon as its line
                # has come, as nginx's ngx_atoof() refuses it
                $lenient->('a Content-Length past 2^63')
                    if grep { long_number($_) } @cl;
                return \%r;
            }
            $lenient->('a bare LF') if $e eq 'lf';
            $pos = $n;
            last if $h eq '';

            return $fail->('obs-fold') if $h =~ /\A[ \t]/;
            my ($name, $value) = $h =~ /\A($TCHAR+):[ \t]*(.*?)[ \t]*\z/s
                or return $fail->('an invalid header line: "'
                                  . printable(substr($h, 0, 40)) . '"');
            return $fail->("a control byte in the value of $name")
                if $value =~ /[\x00-\x08\x0a-\x1f\x7f]/;
            push @headers, [ lc $name, $value ];
        }

        my @cl = map { $_->[1] } grep { $_->[0] eq 'content-length' } @headers;
        my @te = map { $_->[1] } grep { $_->[0] eq 'transfer-encoding' }
                 @headers;

        $r{close} = 1 if grep { $_->[0] eq 'connection'
                                && $_->[1] =~ /(?:\A|[ \t,])close(?:\z|[ \t,])/i }
                         @headers;

        if ($status >= 100 && $status < 200) {
            return $fail->('101 Switching Protocols') if $status == 101;
            # an interim answer: its framing headers mean nothing, but the
            # docs list them as invalid; either is accepted
            $lenient->('framing headers in an interim answer')
                if @cl > 1 || grep({ !/\A\d+\z/ } @cl)
                   || @te > 1 || grep({ !/\Achunked\z/i } @te);
            next;
        }

        $r{version} = $version;
        $r{status} = 0 + $status;
        $r{headers} = \@headers;

        # a number larger than any length: refusing it is fair too
        $lenient->('a Content-Length past 2^63')
            if @cl == 1 && long_number($cl[0]);

        return $fail->('more than one Content-Length') if @cl > 1;
        return $fail->('an invalid Content-Length') if @cl && $cl[0] !~ /\A\d+\z/;
        return $fail->('more than one Transfer-Encoding') if @te > 1;
        return $fail->('a Transfer-Encoding other than chunked')
            if @te && $te[0] !~ /\Achunked\z/i;
        return $fail->('both Content-Length and Transfer-Encoding')
            if @cl && @te;

        if ($status == 204 || $status == 304) {
            $r{body} = '';
            $r{length} = $pos;
            $r{state} = 'complete';
            return \%r;
        }

        if (@te) {
            return parse_chunked($bytes, $pos, \%r, $fail, $lenient);
        }

        return $fail->('a body delimited by connection close') unless @cl;

        my $n = $cl[0];
        $n =~ s/\A0+(?=\d)//;
        # a number of more digits than any buffer is "larger"
        $r{needs} = length($n) > 15 ? 9e15 : $pos + $n;

        if (length($n) > 15 || length($bytes) < $pos + $n) {
            return \%r;
        }

        $r{body} = substr($bytes, $pos, $n);
        $r{length} = $pos + $n;
        $r{state} = 'complete';
        return \%r;
    }
}

# RFC 9112, 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF;
# chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ); the extension
# and trailer syntax are the recipient's choice (lenient)

sub parse_chunked {
    my ($bytes, $pos, $r, $fail, $lenient) = @_;

    my $body = '';

    while (1) {
        my ($line, $next, $eol) = read_line($bytes, $pos);

        unless (defined $line) {
            my $part = substr($bytes, $pos);
            return $fail->('an invalid chunk size', 1)
                if length $part && $part !~ /\A[0-9a-fA-F]/;
            # a CR that no LF follows ends no line
            return $fail->('a bare CR in a chunk size line', 1)
                if $part =~ /\r[^\n]/;
            if ($part =~ /\A([0-9a-fA-F]+)/ && length $1 > 15) {
                $r->{needs} = 9e15;
            }
            return $r;
        }

        $lenient->('a bare LF in the chunked body') if $eol eq 'lf';

        my ($hex, $ext) = $line =~ /\A([0-9a-fA-F]+)(.*)\z/s
            or return $fail->('an invalid chunk size: "'
                              . printable(substr($line, 0, 20)) . '"');

        if ($ext ne '') {
            if ($ext !~ /\A(?:[ \t]*;[ \t]*$TCHAR+(?:[ \t]*=[ \t]*(?:$TCHAR+|"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\.)*"))?)+\z/) {
                return $fail->('a control byte in a chunk extension')
                    if $ext =~ /[\x00-\x08\x0a-\x1f\x7f]/ && $ext !~ /\A[ \t;]/;
                $lenient->('an odd chunk extension');
            }
        }

        (my $digits = $hex) =~ s/\A0+(?=.)//;
        if (length $digits > 15) {
            # larger than any buffer
            $r->{needs} = 9e15;
            return $fail->('an invalid chunk size (overflow)')
                if length $digits > 16 || hex(substr($digits, 0, 1)) > 7;
            return $r;
        }
        my $size = hex $digits;
        $pos = $next;

        if ($size == 0) {
            # the trailer section
            while (1) {
                my ($t, $n, $e) = read_line($bytes, $pos);
                unless (defined $t) {
                    # a CR that no LF follows ends nothing
                    return $fail->('a bare CR in the trailer section', 1)
                        if substr($bytes, $pos) =~ /\r[^\n]/;
                    return $r;
                }
                $lenient->('a bare LF in the trailer section') if $e eq 'lf';
                $pos = $n;
                last if $t eq '';
                $lenient->('an odd trailer field')
                    unless $t =~ /\A$TCHAR+:[ \t]*[\t \x21-\x7e\x80-\xff]*\z/;
            }
            $r->{body} = $body;
            $r->{length} = $pos;
            $r->{state} = 'complete';
            return $r;
        }

        $r->{needs} = $pos + $size + 2;
        return $r if length($bytes) < $pos + $size + 1;

        $body .= substr($bytes, $pos, $size);
        $pos += $size;

        if (substr($bytes, $pos, 2) eq "\r\n") {
            $pos += 2;
        } elsif (substr($bytes, $pos, 1) eq "\n") {
            $lenient->('a bare LF after chunk data');
            $pos += 1;
        } elsif (length($bytes) == $pos + 1 && substr($bytes, $pos) eq "\r") {
            return $r;
        } else {
            return $fail->('no CRLF after the chunk data');
        }
    }
}

# the translation of a complete answer: docs/responses.md's table

sub translate {
    my ($r, $key, $id) = @_;

    my $s = $r->{status};

    return { code => 'deleted', status => 200 } if $s >= 200 && $s < 300;
    return outcome('upstream_rejected_key') if $s == 401 || $s == 403;

    if ($s == 404 || $s == 429 || ($s >= 400 && $s < 500)) {
        my $code = $s == 404 ? 'not_found' : $s == 429 ? 'rate_limited'
                   : 'upstream_client_error';
        my %seen;
        my @m = grep { !$seen{$_ // ''}++ } message_of($r->{body}, $key);
        my @ra = $s == 429 ? retry_after_of($r->{headers}, $key) : (undef);
        my @o;
        for my $m (@m) {
            for my $ra (@ra) {
                push @o, outcome($code, status => $s, message => $m // $FIXED{$code},
                                 retry_after => $ra);
            }
        }
        return @o;
    }

    return outcome('upstream_error');
}

# "Retry-After ... passed on only if its value is a number of seconds (at
# most 11 digits) or an HTTP date, and does not contain the API key";
# with several, any valid one

sub retry_after_of {
    my ($headers, $key) = @_;

    my @valid;
    for my $h (@$headers) {
        next unless $h->[0] eq 'retry-after';
        my $v = $h->[1];
        next if index($v, $key) >= 0;
        push @valid, $v if $v =~ /\A\d{1,11}\z/
                          || $v =~ /\A(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT\z/;
    }

    return (undef) unless @valid;
    return @valid;
}

# the message of an error body (docs: "How the message is found"):
# returns the expected messages (undef: the fixed one)

sub message_of {
    my ($body, $key) = @_;

    return (undef) unless defined $body && length $body;

    my $j = parse_json($body);
    return (undef) unless ref $j eq 'HASH';

    my $m;

    for my $name ('error', 'message') {
        next unless exists $j->{$name};
        my $v = $j->{$name};
        next unless ref $v eq 'SCALAR';
        next unless length $$v;
        $m = $$v;
        last;
    }

    return (undef) unless defined $m;
    return (undef) if index($m, $key) >= 0;

    # cut at 512 bytes, at a character boundary; invalid bytes replaced
    my $clean = utf8_clean($m);
    return (cut_utf8($clean, $MESSAGE_MAX), utf8_clean(cut_utf8($m, $MESSAGE_MAX)));
}

# invalid UTF-8 bytes replaced with U+FFFD, one a byte

sub utf8_clean {
    my ($s) = @_;
    my $out = '';
    while (length $s) {
        if ($s =~ s/\A([\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})//) {
            $out .= $1;
        } else {
            substr($s, 0, 1, '');
            $out .= "\xef\xbf\xbd";
        }
    }
    return $out;
}

sub cut_utf8 {
    my ($s, $max) = @_;
    return $s if length $s <= $max;
    my $cut = substr($s, 0, $max);
    # not in the middle of a character
    if (substr($s, $max, 1) =~ /[\x80-\xbf]/) {
        $cut =~ s/[\xc0-\xff][\x80-\xbf]*\z//;
    }
    return $cut;
}

# a strict JSON parser (RFC 8259) over bytes; strings are kept as bytes
# (invalid UTF-8 kept as it is), returned as \ "string"; undef when the
# text is not JSON

sub parse_json {
    my ($text) = @_;
    my $pos = 0;
    my $v = eval {
        my $v = _json_value(\$text, \$pos, 0);
        _json_ws(\$text, \$pos);
        die "trailing\n" if $pos != length $text;
        $v;
    };
    return $v;
}

sub _json_ws {
    my ($t, $p) = @_;
    pos($$t) = $$p;
    $$t =~ /\G[ \t\r\n]*/gc;
    $$p = pos($$t);
}

sub _json_value {
    my ($t, $p, $depth) = @_;
    die "deep\n" if $depth > 100;
    _json_ws($t, $p);
    my $c = substr($$t, $$p, 1);
    if ($c eq '{') {
        $$p++;
        my %o;
        _json_ws($t, $p);
        if (substr($$t, $$p, 1) eq '}') { $$p++; return \%o }
        while (1) {
            _json_ws($t, $p);
            die "key\n" unless substr($$t, $$p, 1) eq '"';
            my $k = _json_string($t, $p);
            _json_ws($t, $p);
            die "colon\n" unless substr($$t, $$p++, 1) eq ':';
            my $v = _json_value($t, $p, $depth + 1);
            $o{$$k} = $v unless exists $o{$$k};
            _json_ws($t, $p);
            my $s = substr($$t, $$p++, 1);
            return \%o if $s eq '}';
            die "comma\n" unless $s eq ',';
        }
    }
    if ($c eq '[') {
        $$p++;
        my @a;
        _json_ws($t, $p);
        if (substr($$t, $$p, 1) eq ']') { $$p++; return \@a }
        while (1) {
            push @a, _json_value($t, $p, $depth + 1);
            _json_ws($t, $p);
            my $s = substr($$t, $$p++, 1);
            return \@a if $s eq ']';
            die "comma\n" unless $s eq ',';
        }
    }
    return _json_string($t, $p) if $c eq '"';
    pos($$t) = $$p;
    if ($$t =~ /\G(-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/gc) {
        $$p = pos($$t);
        return [ $1 ];
    }
    die "value\n";
}

sub _json_string {
    my ($t, $p) = @_;
    $$p++;
    my $s = '';
    while (1) {
        die "eof\n" if $$p >= length $$t;
        my $c = substr($$t, $$p++, 1);
        return \$s if $c eq '"';
        die "control\n" if ord($c) < 0x20;
        if ($c ne '\\') { $s .= $c; next }
        my $e = substr($$t, $$p++, 1);
        if ($e =~ m{["\\/]}) { $s .= $e }
        elsif ($e eq 'b') { $s .= "\b" }
        elsif ($e eq 'f') { $s .= "\f" }
        elsif ($e eq 'n') { $s .= "\n" }
        elsif ($e eq 'r') { $s .= "\r" }
        elsif ($e eq 't') { $s .= "\t" }
        elsif ($e eq 'u') {
            my $h = substr($$t, $$p, 4);
            die "u\n" unless $h =~ /\A[0-9a-fA-F]{4}\z/;
            $$p += 4;
            my $cp = hex $h;
            if ($cp >= 0xd800 && $cp <= 0xdbff) {
                my $l = substr($$t, $$p, 6);
                die "surrogate\n" unless $l =~ /\A\\u([dD][c-fC-F][0-9a-fA-F]{2})\z/;
                $$p += 6;
                $cp = 0x10000 + (($cp - 0xd800) << 10) + (hex($1) - 0xdc00);
            } elsif ($cp >= 0xdc00 && $cp <= 0xdfff) {
                die "surrogate\n";
            }
            die "nul\n" if $cp == 0;
            my $u = chr $cp;
            utf8::encode($u);
            $s .= $u;
        }
        else { die "escape\n" }
    }
}

# several tries of a case (the retry route): each try that failed in a
# way tavus_next_upstream retries passes the delete on; the last decides

# the outcomes when the upstream received $tries requests of the case:
# [ outcomes of the final answer ], or an empty list when the chain is
# impossible (a try that would not have been retried, followed by one)

sub chain_outcomes {
    my ($c, $tries, %o) = @_;

    my @plans = @{ $c->{plans} };
    my $route = $ROUTE{ $c->{route} };
    my @final;

    for my $i (1 .. $tries) {
        my $plan = $plans[ $i - 1 ] // $plans[-1];
        my $v = classify(bytes => $plan->{bytes}, end => $plan->{end},
                         buffer => $route->{buffer}, key => $o{key});
        # the upstream's real status decides for 500 and 503 (http_500,
        # http_503), the failure for the others
        my @next = grep { retry_of($_, $plan) } @{ $v->{outcomes} };
        if ($i < $tries) {
            return () unless @next;
        }
        @final = @{ $v->{outcomes} };
    }

    return \@final;
}

# whether the retry route passes an answer on to the next server: error,
# timeout, invalid_response, http_500, http_503

sub retry_of {
    my ($o, $plan) = @_;
    return 1 if $o->{code} eq 'upstream_invalid_response'
                || $o->{code} eq 'upstream_timeout';
    if ($o->{code} eq 'upstream_error') {
        my $r = parse_answer($plan->{bytes}, '');
        return 1 if $r->{state} ne 'complete';
        return $r->{status} == 500 || $r->{status} == 503;
    }
    return 0;
}

###############################################################################
# the client's side: one answer against the contract

# check_answer(status =>, headers => { lc name => [values] }, body =>,
#              id =>, outcomes => [...], key =>, proto => h1|h2)
# returns () when the answer is right, else what is wrong

sub check_answer {
    my (%a) = @_;

    my @wrong;
    my $h = $a{headers};
    my $body = $a{body} // '';

    my $one = sub {
        my ($name) = @_;
        my $v = $h->{$name} // [];
        return @$v == 1 ? $v->[0] : undef;
    };

    push @wrong, 'Content-Type is not exactly application/json: '
                 . join(', ', @{ $h->{'content-type'} // [] })
        unless ($one->('content-type') // '') eq 'application/json';
    push @wrong, 'Cache-Control is not exactly no-store: '
                 . join(', ', @{ $h->{'cache-control'} // [] })
        unless ($one->('cache-control') // '') eq 'no-store';
    push @wrong, 'no Content-Length, or not the length of the body'
        unless ($one->('content-length') // -1) == length $body;
    push @wrong, 'a header of the upstream passed on: ' . $_
        for grep { $h->{$_} } qw(x-fuzz-leak x-echo set-cookie expires
                                 x-trailer x-t x-interim link x_under_score
                                 transfer-encoding);
    push @wrong, 'the key in the answer'
        if index(join("\n", map { @{ $h->{$_} } } keys %$h) . $body,
                 $a{key}) >= 0;

    my $j = eval { JSON::PP->new->utf8->decode($body) };
    unless (ref $j eq 'HASH' && $body =~ /\}\n\z/) {
        push @wrong, 'the body is not one JSON object and a newline: '
                     . printable(substr($body, 0, 200));
        return @wrong;
    }

    push @wrong, 'request_id is not 32 hex digits'
        unless ($j->{request_id} // '') =~ /\A[0-9a-f]{32}\z/;
    push @wrong, 'replica_id is not the id'
        unless ($j->{replica_id} // '') eq $a{id};

    # which of the acceptable outcomes is it

    my @match;
    for my $o (@{ $a{outcomes} }) {
        my @w;
        push @w, "status $a{status}, not $o->{status}"
            if $a{status} != $o->{status};
        if ($o->{code} eq 'deleted') {
            push @w, 'not exactly the success body'
                unless $body =~ /\A\{"replica_id":"\Q$a{id}\E","deleted":true,"hard":false,"request_id":"[0-9a-f]{32}"\}\n\z/;
            push @w, 'Retry-After on a success' if $h->{'retry-after'};
        } else {
            push @w, "code " . ($j->{code} // 'none') . ", not $o->{code}"
                unless ($j->{code} // '') eq $o->{code};
            push @w, 'not the error body\'s members in order'
                unless $body =~ /\A\{"error":"(?:[^"\\]|\\.)*","code":"[a-z_]+","replica_id":"\Q$a{id}\E","request_id":"[0-9a-f]{32}"\}\n\z/;
            if (defined $o->{message}) {
                my $got = $j->{error} // '';
                utf8::encode($got);
                push @w, 'message "' . printable($got) . '", not "'
                         . printable($o->{message}) . '"'
                    unless $got eq $o->{message};
            }
            my $ra = $h->{'retry-after'};
            if (defined $o->{retry_after}) {
                push @w, 'Retry-After ' . join(', ', @{ $ra // [] })
                         . ", not $o->{retry_after}"
                    unless $ra && @$ra == 1 && $ra->[0] eq $o->{retry_after};
            } else {
                push @w, 'a Retry-After: ' . join(', ', @$ra) if $ra;
            }
        }
        return @wrong unless @w;
        push @match, join('; ', @w);
    }

    push @wrong, 'not one of the expected answers: ' . join(' | ', map {
        "$_->{status} $_->{code}" } @{ $a{outcomes} }) . ' (' . join(' | ', @match) . ')';

    return @wrong;
}

###############################################################################
# regression files: a case as JSON, bytes as \xNN-escaped strings

sub _esc { my ($s) = @_; $s =~ s/([^\x20-\x5b\x5d-\x7e])/sprintf('\\x%02x', ord $1)/ge; $s }
sub _unesc { my ($s) = @_; $s =~ s/\\x([0-9a-f]{2})/chr hex $1/ge; $s }

sub case_to_json {
    my ($c, %o) = @_;

    my $copy = { %$c, plans => [ map { { %$_, bytes => _esc($_->{bytes}),
                                         parts => [ map { [ $_->[0], _esc($_->[1]) ] }
                                                    @{ $_->{parts} } ] } }
                                 @{ $c->{plans} } ] };
    $copy->{note} = $o{note} if defined $o{note};
    return JSON::PP->new->canonical->pretty->encode($copy);
}

sub case_from_json {
    my ($text) = @_;
    my $c = JSON::PP->new->decode($text);
    for my $p (@{ $c->{plans} }) {
        $p->{bytes} = _unesc($p->{bytes});
        $_->[1] = _unesc($_->[1]) for @{ $p->{parts} };
    }
    return $c;
}

1;
