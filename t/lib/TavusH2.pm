package TavusH2;

# A minimal HTTP/2 client protocol engine for the tests, in core Perl: it
# makes the bytes to send and takes the bytes received, and the caller
# owns the socket (so that an event loop can drive many connections).
#
#     my $h2 = TavusH2->new;
#     my $out = $h2->preface;                  # preface and SETTINGS
#     my ($sid, $bytes) = $h2->request(method => 'DELETE', path => '/x',
#                                      authority => 'gw', body => undef,
#                                      headers => [ name => value, ... ]);
#     my @events = $h2->feed($received);       # and send $h2->take_output
#
# Events: [ headers => SID, { name => [ values ] }, END_STREAM ],
# [ data => SID, BYTES, END_STREAM ], [ rst => SID, CODE ],
# [ goaway => LAST_SID, CODE ], [ error => TEXT ] for a protocol error.
# $h2->data(SID, BYTES, END) and $h2->rst(SID, CODE) make more frames.
#
# HPACK (RFC 7541): requests are sent as literals without indexing and
# without Huffman coding; answers are decoded whole (static and dynamic
# tables, Huffman codes).  Flow control: the client opens its receive
# windows wide at the start and gives back what it reads; bodies it sends
# are small (below the 65,535-byte initial window).

use strict;
use warnings;

my @STATIC = (undef,
    [':authority', ''], [':method', 'GET'], [':method', 'POST'],
    [':path', '/'], [':path', '/index.html'], [':scheme', 'http'],
    [':scheme', 'https'], [':status', '200'], [':status', '204'],
    [':status', '206'], [':status', '304'], [':status', '400'],
    [':status', '404'], [':status', '500'], ['accept-charset', ''],
    ['accept-encoding', 'gzip, deflate'], ['accept-language', ''],
    ['accept-ranges', ''], ['accept', ''],
    ['access-control-allow-origin', ''], ['age', ''], ['allow', ''],
    ['authorization', ''], ['cache-control', ''],
    ['content-disposition', ''], ['content-encoding', ''],
    ['content-language', ''], ['content-length', ''],
    ['content-location', ''], ['content-range', ''], ['content-type', ''],
    ['cookie', ''], ['date', ''], ['etag', ''], ['expect', ''],
    ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''],
    ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''],
    ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
    ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
    ['proxy-authorization', ''], ['range', ''], ['referer', ''],
    ['refresh', ''], ['retry-after', ''], ['server', ''],
    ['set-cookie', ''], ['strict-transport-security', ''],
    ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''],
    ['via', ''], ['www-authenticate', '']);

# RFC 7541, appendix B: the code and its length in bits, for bytes 0-255
my $HUFFMAN = <<'TABLE';
    1ff8:13 7fffd8:23 fffffe2:28 fffffe3:28 fffffe4:28 fffffe5:28
    fffffe6:28 fffffe7:28 fffffe8:28 ffffea:24 3ffffffc:30 fffffe9:28
    fffffea:28 3ffffffd:30 fffffeb:28 fffffec:28 fffffed:28 fffffee:28
    fffffef:28 ffffff0:28 ffffff1:28 ffffff2:28 3ffffffe:30 ffffff3:28
    ffffff4:28 ffffff5:28 ffffff6:28 ffffff7:28 ffffff8:28 ffffff9:28
    ffffffa:28 ffffffb:28 14:6 3f8:10 3f9:10 ffa:12 1ff9:13 15:6 f8:8
    7fa:11 3fa:10 3fb:10 f9:8 7fb:11 fa:8 16:6 17:6 18:6 0:5 1:5 2:5 19:6
    1a:6 1b:6 1c:6 1d:6 1e:6 1f:6 5c:7 fb:8 7ffc:15 20:6 ffb:12 3fc:10
    1ffa:13 21:6 5d:7 5e:7 5f:7 60:7 61:7 62:7 63:7 64:7 65:7 66:7 67:7
    68:7 69:7 6a:7 6b:7 6c:7 6d:7 6e:7 6f:7 70:7 71:7 72:7 fc:8 73:7 fd:8
    1ffb:13 7fff0:19 1ffc:13 3ffc:14 22:6 7ffd:15 3:5 23:6 4:5 24:6 5:5
    25:6 26:6 27:6 6:5 74:7 75:7 28:6 29:6 2a:6 7:5 2b:6 76:7 2c:6 8:5 9:5
    2d:6 77:7 78:7 79:7 7a:7 7b:7 7ffe:15 7fc:11 3ffd:14 1ffd:13
    ffffffc:28 fffe6:20 3fffd2:22 fffe7:20 fffe8:20 3fffd3:22 3fffd4:22
    3fffd5:22 7fffd9:23 3fffd6:22 7fffda:23 7fffdb:23 7fffdc:23 7fffdd:23
    7fffde:23 ffffeb:24 7fffdf:23 ffffec:24 ffffed:24 3fffd7:22 7fffe0:23
    ffffee:24 7fffe1:23 7fffe2:23 7fffe3:23 7fffe4:23 1fffdc:21 3fffd8:22
    7fffe5:23 3fffd9:22 7fffe6:23 7fffe7:23 ffffef:24 3fffda:22 1fffdd:21
    fffe9:20 3fffdb:22 3fffdc:22 7fffe8:23 7fffe9:23 1fffde:21 7fffea:23
    3fffdd:22 3fffde:22 fffff0:24 1fffdf:21 3fffdf:22 7fffeb:23 7fffec:23
    1fffe0:21 1fffe1:21 3fffe0:22 1fffe2:21 7fffed:23 3fffe1:22 7fffee:23
    7fffef:23 fffea:20 3fffe2:22 3fffe3:22 3fffe4:22 7ffff0:23 3fffe5:22
    3fffe6:22 7ffff1:23 3ffffe0:26 3ffffe1:26 fffeb:20 7fff1:19 3fffe7:22
    7ffff2:23 3fffe8:22 1ffffec:25 3ffffe2:26 3ffffe3:26 3ffffe4:26
    7ffffde:27 7ffffdf:27 3ffffe5:26 fffff1:24 1ffffed:25 7fff2:19
    1fffe3:21 3ffffe6:26 7ffffe0:27 7ffffe1:27 3ffffe7:26 7ffffe2:27
    fffff2:24 1fffe4:21 1fffe5:21 3ffffe8:26 3ffffe9:26 ffffffd:28
    7ffffe3:27 7ffffe4:27 7ffffe5:27 fffec:20 fffff3:24 fffed:20 1fffe6:21
    3fffe9:22 1fffe7:21 1fffe8:21 7ffff3:23 3fffea:22 3fffeb:22 1ffffee:25
    1ffffef:25 fffff4:24 fffff5:24 3ffffea:26 7ffff4:23 3ffffeb:26
    7ffffe6:27 3ffffec:26 3ffffed:26 7ffffe7:27 7ffffe8:27 7ffffe9:27
    7ffffea:27 7ffffeb:27 ffffffe:28 7ffffec:27 7ffffed:27 7ffffee:27
    7ffffef:27 7fffff0:27 3ffffee:26
TABLE

my %DECODE;        # "length:code" => byte

{
    my $i = 0;
    for my $e (split ' ', $HUFFMAN) {
        my ($code, $len) = split /:/, $e;
        $DECODE{"$len:" . hex $code} = chr $i++;
    }
    die 'TavusH2: the Huffman table has ' . $i . ' codes' unless $i == 256;
}

use constant {
    DATA => 0, HEADERS => 1, RST_STREAM => 3, SETTINGS => 4, PING => 6,
    GOAWAY => 7, WINDOW_UPDATE => 8, CONTINUATION => 9,
    END_STREAM => 1, ACK => 1, END_HEADERS => 4, PADDED => 8, PRIORITY => 0x20,
};

my $WINDOW = 16 * 1024 * 1024;

sub new {
    my ($class) = @_;
    return bless { next_sid => 1, in => '', out => '', dyn => [],
                   dyn_size => 0, dyn_max => 4096, hblock => undef,
                   unacked => 0 }, $class;
}

sub frame {
    my ($type, $flags, $sid, $payload) = @_;
    my $len = length $payload;
    return pack('CnCCN', $len >> 16, $len & 0xffff, $type, $flags,
                $sid & 0x7fffffff) . $payload;
}

# the connection preface, our SETTINGS (no server push, a large window)
# and a connection window as large

sub preface {
    my ($self) = @_;
    return "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
           . frame(SETTINGS, 0, 0, pack('nN', 2, 0) . pack('nN', 4, $WINDOW))
           . frame(WINDOW_UPDATE, 0, 0, pack('N', $WINDOW - 65535));
}

sub _int {
    my ($value, $bits, $first) = @_;
    my $max = (1 << $bits) - 1;
    return chr($first | $value) if $value < $max;
    my $s = chr($first | $max);
    $value -= $max;
    while ($value >= 128) {
        $s .= chr(($value & 0x7f) | 0x80);
        $value >>= 7;
    }
    return $s . chr $value;
}

sub _literal {
    my ($name, $value) = @_;
    # literal header field without indexing, new name, no Huffman
    return "\0" . _int(length $name, 7, 0) . $name
           . _int(length $value, 7, 0) . $value;
}

# a request on a new stream: (stream id, bytes); the body, if any, in
# DATA frames of at most 16,384 bytes (end => 0 leaves the stream open)

sub request {
    my ($self, %a) = @_;

    my $sid = $self->{next_sid};
    $self->{next_sid} += 2;

    my $block = _literal(':method', $a{method} // 'GET')
                . _literal(':scheme', 'http')
                . _literal(':authority', $a{authority} // 'localhost')
                . _literal(':path', $a{path} // '/');

    my @h = @{ $a{headers} // [] };
    while (my ($n, $v) = splice @h, 0, 2) {
        $block .= _literal(lc $n, $v);
    }

    my $body = $a{body};
    my $end = $a{end} // 1;
    my $bytes = frame(HEADERS, END_HEADERS | (!defined $body && $end
                                              ? END_STREAM : 0),
                      $sid, $block);

    $bytes .= $self->data($sid, $body, $end) if defined $body;

    return ($sid, $bytes);
}

sub data {
    my ($self, $sid, $body, $end) = @_;
    my $bytes = '';
    do {
        my $part = substr($body, 0, 16384, '');
        $bytes .= frame(DATA, (length $body == 0 && $end) ? END_STREAM : 0,
                        $sid, $part);
    } while (length $body);
    return $bytes;
}

sub rst {
    my ($self, $sid, $code) = @_;
    return frame(RST_STREAM, 0, $sid, pack('N', $code // 8));
}

sub goaway {
    my ($self) = @_;
    return frame(GOAWAY, 0, 0, pack('NN', 0, 0));
}

sub take_output {
    my ($self) = @_;
    my $out = $self->{out};
    $self->{out} = '';
    return $out;
}

# the bytes received: the events they complete

sub feed {
    my ($self, $bytes) = @_;

    $self->{in} .= $bytes;
    my @events;

    while (length $self->{in} >= 9) {
        my ($l1, $l2, $type, $flags, $sid) = unpack 'CnCCN', $self->{in};
        my $len = ($l1 << 16) | $l2;
        last if length $self->{in} < 9 + $len;

        my $payload = substr($self->{in}, 9, $len);
        substr($self->{in}, 0, 9 + $len, '');
        $sid &= 0x7fffffff;

        if (defined $self->{hblock} && $type != CONTINUATION) {
            push @events, [ error => 'a frame in the middle of a header block' ];
            return @events;
        }

        if ($type == SETTINGS) {
            $self->{out} .= frame(SETTINGS, ACK, 0, '') unless $flags & ACK;

        } elsif ($type == PING) {
            $self->{out} .= frame(PING, ACK, 0, $payload) unless $flags & ACK;

        } elsif ($type == GOAWAY) {
            my ($last, $code) = unpack 'NN', $payload;
            push @events, [ goaway => $last & 0x7fffffff, $code ];

        } elsif ($type == RST_STREAM) {
            push @events, [ rst => $sid, unpack('N', $payload) ];

        } elsif ($type == WINDOW_UPDATE) {
            # our bodies fit in the initial windows

        } elsif ($type == HEADERS || $type == CONTINUATION) {
            if ($type == HEADERS) {
                if ($flags & PADDED) {
                    my $pad = ord $payload;
                    $payload = substr($payload, 1, length($payload) - 1 - $pad);
                }
                $payload = substr($payload, 5) if $flags & PRIORITY;
                $self->{hblock} = [ $sid, $payload, $flags & END_STREAM ];
            } else {
                unless ($self->{hblock} && $self->{hblock}[0] == $sid) {
                    push @events, [ error => 'an unexpected CONTINUATION' ];
                    return @events;
                }
                $self->{hblock}[1] .= $payload;
            }

            if ($flags & END_HEADERS) {
                my ($s, $block, $end) = @{ delete $self->{hblock} };
                my $h = eval { $self->_decode($block) };
                unless ($h) {
                    push @events, [ error => "HPACK: $@" ];
                    return @events;
                }
                push @events, [ headers => $s, $h, $end ? 1 : 0 ];
            }

        } elsif ($type == DATA) {
            my $data = $payload;
            if ($flags & PADDED) {
                my $pad = ord $data;
                $data = substr($data, 1, length($data) - 1 - $pad);
            }
            push @events, [ data => $sid, $data, $flags & END_STREAM ? 1 : 0 ];

            # give the windows back once half of them is used
            $self->{unacked} += $len;
            if ($self->{unacked} > $WINDOW / 2) {
                $self->{out} .= frame(WINDOW_UPDATE, 0, 0,
                                      pack('N', $self->{unacked}));
                $self->{unacked} = 0;
            }
            $self->{out} .= frame(WINDOW_UPDATE, 0, $sid, pack('N', $len))
                if $len && !($flags & END_STREAM);
        }
    }

    return @events;
}

# HPACK

sub _read_int {
    my ($block, $pos, $bits) = @_;
    my $max = (1 << $bits) - 1;
    my $v = ord(substr($$block, $$pos++, 1)) & $max;
    return $v if $v < $max;
    my $shift = 0;
    while (1) {
        die "integer past the end\n" if $$pos >= length $$block;
        my $b = ord substr($$block, $$pos++, 1);
        $v += ($b & 0x7f) << $shift;
        $shift += 7;
        return $v unless $b & 0x80;
        die "integer too large\n" if $shift > 28;
    }
}

sub _read_string {
    my ($block, $pos) = @_;
    die "string past the end\n" if $$pos >= length $$block;
    my $huff = ord(substr($$block, $$pos, 1)) & 0x80;
    my $len = _read_int($block, $pos, 7);
    die "string past the end\n" if $$pos + $len > length $$block;
    my $s = substr($$block, $$pos, $len);
    $$pos += $len;
    return $huff ? _huffman($s) : $s;
}

sub _huffman {
    my ($s) = @_;
    my $bits = unpack 'B*', $s;
    my ($out, $code, $len) = ('', 0, 0);
    for my $bit (split //, $bits) {
        $code = ($code << 1) | $bit;
        $len++;
        if (defined(my $c = $DECODE{"$len:$code"})) {
            $out .= $c;
            ($code, $len) = (0, 0);
        }
        die "Huffman code too long\n" if $len > 30;
    }
    # padding: at most 7 bits, all ones (the start of EOS)
    die "bad Huffman padding\n" if $len > 7 || $code != (1 << $len) - 1;
    return $out;
}

sub _entry {
    my ($self, $i) = @_;
    return $STATIC[$i] if $i >= 1 && $i < @STATIC;
    my $e = $self->{dyn}[ $i - @STATIC ];
    die "no table entry $i\n" unless $e;
    return $e;
}

sub _add {
    my ($self, $name, $value) = @_;
    my $size = 32 + length($name) + length($value);
    unshift @{ $self->{dyn} }, [ $name, $value ];
    $self->{dyn_size} += $size;
    $self->_evict;
}

sub _evict {
    my ($self) = @_;
    while ($self->{dyn_size} > $self->{dyn_max} && @{ $self->{dyn} }) {
        my $e = pop @{ $self->{dyn} };
        $self->{dyn_size} -= 32 + length($e->[0]) + length($e->[1]);
    }
}

sub _decode {
    my ($self, $block) = @_;
    my $pos = 0;
    my %h;

    while ($pos < length $block) {
        my $b = ord substr($block, $pos, 1);
        my ($name, $value);

        if ($b & 0x80) {
            ($name, $value) = @{ $self->_entry(_read_int(\$block, \$pos, 7)) };
        } elsif (($b & 0xc0) == 0x40) {
            my $i = _read_int(\$block, \$pos, 6);
            $name = $i ? $self->_entry($i)->[0] : _read_string(\$block, \$pos);
            $value = _read_string(\$block, \$pos);
            $self->_add($name, $value);
        } elsif (($b & 0xe0) == 0x20) {
            $self->{dyn_max} = _read_int(\$block, \$pos, 5);
            $self->_evict;
            next;
        } else {
            my $i = _read_int(\$block, \$pos, 4);
            $name = $i ? $self->_entry($i)->[0] : _read_string(\$block, \$pos);
            $value = _read_string(\$block, \$pos);
        }

        push @{ $h{$name} }, $value;
    }

    return \%h;
}

1;
