package TavusConf;

# One rewriter of nginx configuration text, for the tests that run the
# configurations an operator reads, the files of examples/ (t/60-examples.t)
# and the complete examples of the documentation (t/62-docs.t), on a test
# machine: no DNS, no root paths, no fixed ports.  Each test names the
# rules it applies, and says in its header why; the text is changed by
# those rules only.
#
#     use TavusConf ();
#
#     my $conf = TavusConf::adapt($text, comments => 1, listen => 'listen',
#                                 paths => sub { my ($directive, $arg) = @_;
#                                                ... });
#
# The rules, applied in this order, each only when given:
#
#   comments => 1           comments go: whole lines, and after the end
#                           of a directive or a brace
#   module => PATH          `load_module .../ngx_http_tavus_module.so;`
#                           loads PATH, or goes when PATH is '' (an nginx
#                           with the module built in); another module's
#                           relative path is made absolute against nginx's
#                           own prefix, /usr/share/nginx (the tests run
#                           nginx with a prefix of their own)
#   listen => NAME          `listen ANYTHING [ssl];` becomes `listen
#                           127.0.0.1:%%PORT_NAMEn%% [ssl];`, n = 1, 2, ...
#                           in the order of the listens
#   listen_by_address => NAME
#                           the same, with one port an address, so that
#                           texts combined keep listening together where
#                           they did: `listen 443 ssl;` becomes `listen
#                           127.0.0.1:%%PORT_NAME_443%% ssl;`, `listen
#                           127.0.0.1:8080;` `listen
#                           127.0.0.1:%%PORT_NAME_127_0_0_1_8080%%;`
#                           (listen_port(NAME, ADDRESS) names the port)
#   paths => CODE           every argument of every directive on one line
#                           is replaced by CODE(DIRECTIVE, ARGUMENT)
#   upstream_servers => CODE
#                           in `upstream NAME { ... }`, the address of each
#                           `server` is replaced by CODE(NAME, ADDRESS)
#   pass_hosts => CODE      in `*_pass SCHEME://HOST...`, a literal HOST
#                           that is not the name of an upstream{} group of
#                           the text is replaced by CODE(HOST)
#   resolver => ADDRESS     `resolver ADDRESSES PARAMETERS;` resolves
#                           through ADDRESS; its name=value parameters stay
#   temp_paths => DIR       right after `http {`, nginx's temporary paths
#                           go to DIR (nginx would create its compiled-in
#                           /var/lib/nginx/... otherwise)

use strict;
use warnings;

sub adapt {
    my ($text, %rule) = @_;

    if ($rule{comments}) {
        $text =~ s/^\s*#.*\n//mg;
        $text =~ s/([;{}])[ \t]*#.*$/$1/mg;
    }

    if (defined(my $module = $rule{module})) {
        $text =~ s{^(\s*)load_module\s+\S*ngx_http_tavus_module\.so\s*;}
                  {length $module ? "$1load_module $module;"
                                  : "$1# built in"}mge;
        $text =~ s{^(\s*load_module\s+)(?=[^/\s])}{$1/usr/share/nginx/}mg;
    }

    if (defined(my $name = $rule{listen})) {
        my $n = 0;
        $text =~ s{^(\s*)listen\s+([^;]*);}{
            my ($indent, $args) = ($1, $2);
            $n++;
            "${indent}listen 127.0.0.1:%%PORT_$name$n%%"
            . ($args =~ /(?:^|\s)ssl(?:\s|$)/ ? ' ssl' : '') . ';'
        }mge;
    }

    if (defined(my $name = $rule{listen_by_address})) {
        $text =~ s{^(\s*)listen\s+([^\s;]+)([^;]*);}{
            my ($indent, $address, $args) = ($1, $2, $3);
            "${indent}listen 127.0.0.1:%%PORT_" . listen_port($name, $address)
            . '%%' . ($args =~ /(?:^|\s)ssl(?:\s|$)/ ? ' ssl' : '') . ';'
        }mge;
    }

    if (my $path = $rule{paths}) {
        $text =~ s{^(\s*)(\w+)([ \t]+)([^;{}\n]*)(;)}{
            my ($indent, $directive, $sp, $args, $end) = ($1, $2, $3, $4, $5);
            $args =~ s/(\S+)/$path->($directive, $1)/ge;
            "$indent$directive$sp$args$end"
        }mge;
    }

    if (my $server = $rule{upstream_servers}) {
        $text =~ s#(\bupstream\s+(\S+)\s*\{)([^\}]*)\}#
            my ($head, $group, $body) = ($1, $2, $3);
            $body =~ s/^(\s*server\s+)([^\s;]+)/$1 . $server->($group, $2)/mge;
            "$head$body}"
        #ge;
    }

    if (my $host = $rule{pass_hosts}) {
        my %groups = map { $_ => 1 } $text =~ /\bupstream\s+(\S+)\s*\{/g;

        $text =~ s{^(\s*\w+_pass\s+\w+://)([^\s;:/\$]+)}{
            $1 . ($groups{$2} ? $2 : $host->($2))
        }mge;
    }

    if (defined(my $address = $rule{resolver})) {
        $text =~ s{^(\s*)resolver\s+([^;]*);}{
            my ($indent, $args) = ($1, $2);
            "${indent}resolver $address"
            . join('', map { " $_" } grep { /=/ } split ' ', $args) . ';'
        }mge;
    }

    if (defined(my $dir = $rule{temp_paths})) {
        $text =~ s{^(\s*http\s*\{)}{$1
    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;
}m;
    }

    return $text;
}

# the name of the port that listen_by_address gives a listen address

sub listen_port {
    my ($name, $address) = @_;
    return "${name}_" . ($address =~ s/\W/_/gr);
}

# the upstream{} groups of the Tavus API in a text, those named
# tavusapi.com or with a `server tavusapi.com...`: [ NAME, BODY,
# keepalive_timeout (undef without one) ]

sub api_groups {
    my ($text) = @_;

    my @groups;

    while ($text =~ /^\s*upstream\s+(\S+)\s*\{([^\}]*)\}/mg) {
        my ($name, $body) = ($1, $2);
        next unless $name eq 'tavusapi.com'
                    || $body =~ /^\s*server\s+tavusapi\.com\b/m;
        my ($timeout) = $body =~ /^\s*keepalive_timeout\s+([^;\s]+)\s*;/m;
        push @groups, [ $name, $body, $timeout ];
    }

    return @groups;
}

1;
