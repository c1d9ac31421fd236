#!/usr/bin/perl

# The documentation against the source and against nginx:
#
#   - every directive of the module is documented in docs/directives.md,
#     under a `### name` heading or one whose `Syntax:` line names it,
#     with Syntax, Default and Context, and the Context is the one the
#     source allows;
#     every `### tavus_*` heading there is a directive that exists;
#   - every variable of the module appears there as `$name`;
#   - the index at the top of docs/directives.md links every directive
#     and every variable of the source, and nothing else, each to its
#     heading or anchor, in alphabetical order;
#   - each Default is a directive line as nginx.org writes it, `name
#     value;` of that directive, or `—` where there is none;
#   - rendered by cmark, the CommonMark reference renderer (Debian
#     package cmark, installed by scripts/deps.sh when missing), the
#     Syntax, Default and Context of each directive are three lines of
#     one paragraph, as on nginx.org, not one line;
#   - every ```nginx block of README.md and docs/*.md whose first line is
#     `# complete example` is a whole nginx.conf that passes `nginx -t`,
#     and every `# complete example` line of those files starts such a
#     block;
#   - every upstream{} group of the Tavus API in README.md and docs/*.md
#     has `keepalive_timeout 30s` (docs/decisions.md, "Retries");
#   - README.md's site: its ```nginx blocks whose first line names a file
#     of Debian's layout, `# /etc/nginx/conf.d/NAME` or
#     `# /etc/nginx/sites-available/NAME`, hold no load_module, events or
#     http (they are pasted inside Debian's http{}); the conf.d/ file is
#     examples/tavus-upstream.conf without its comments; the install
#     section copies or links each of them; placed as Debian places them
#     (TavusSite's layout: included inside http{} as Debian's nginx.conf
#     includes conf.d/*.conf and sites-enabled/*) they pass `nginx -t`
#     with no warning, and, run, answer the install section's verifying
#     request as it says (its `# STATUS CODE:` comment).
#
# Directives are read from the source: the ngx_string("tavus_...") names
# inside the ngx_command_t arrays of ngx_tavus_module/*.c (the same
# pattern in the ngx_http_variable_t arrays names variables, not
# directives: $tavus_hard is both).  Contexts come from the NGX_HTTP_*_CONF
# flags of each command.
#
# A complete example is tested as written, except for what cannot work on
# a test machine; these rules, and only these, change its text:
#
#   1. the `load_module` line of ngx_http_tavus_module.so loads the module
#      just built (TAVUS_MODULE, as in the harness), or goes when nginx has
#      the module built in (TAVUS_MODULE=static); a relative path of
#      another module is made absolute against nginx's own prefix,
#      /usr/share/nginx, since the test runs nginx with its own prefix;
#   2. a file that a directive reads when nginx loads its configuration
#      is made by the test in its directory and named instead: the
#      argument of tavus_api_key_file (a valid key), of the *certificate
#      and *certificate_key directives (a test certificate and its key),
#      and of auth_basic_user_file; an `include` keeps a file that exists
#      on the machine (/etc/nginx/mime.types) and gets an empty one
#      otherwise;
#   3. any other absolute path under /etc, /var, /run, /srv, /opt, /home
#      or /tmp (logs, pid) moves into the test's directory, so that
#      `nginx -t` (which opens the log files and creates the pid file)
#      writes nothing on the machine; without a `pid` in the example,
#      -g sets one there;
#   4. host names that nginx resolves when loading the configuration, and
#      the test machine cannot (it has no DNS): in upstream{} blocks the
#      `server` names, and in *_pass URLs a literal host that is not an
#      upstream{} group, an address or localhost, become 127.0.0.1 (the
#      port stays); names of upstream{} groups stay, so `tavus_pass
#      https://tavusapi.com` still names `upstream tavusapi.com`;
#   5. right after `http {`, the temporary paths go to the test's
#      directory (nginx would create its compiled-in /var/lib/nginx/...).
#
# nginx -t runs with the test's directory as prefix (-p).  A failure
# names the file and line of the block, and shows nginx's message.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use POSIX ();
use Cwd ();
use TavusTest;
use TavusConf ();
use TavusSite ();
use TavusAuth qw(make_pki);

my $t = TavusTest->new->require_module;
my $p = $t->prefix;
my $NGINX = $ENV{TAVUS_NGINX} // '/usr/sbin/nginx';
my %made;           # the files made for rule 2

###############################################################################
# directives and variables, from the source

my (%directives, %variables);

for my $file (glob 'ngx_tavus_module/*.c') {
    my $src = $t->read_file(Cwd::abs_path($file));

    while ($src =~ /\bngx_command_t\s+\w+\[\]\s*=\s*\{(.*?)ngx_null_command/sg)
    {
        my $commands = $1;
        while ($commands =~ /\{\s*ngx_string\("(tavus_\w+)"\),\s*([^,]+),/g) {
            my ($name, $flags) = ($1, $2);
            my @ctx;
            push @ctx, 'http' if $flags =~ /NGX_HTTP_MAIN_CONF/;
            push @ctx, 'server' if $flags =~ /NGX_HTTP_SRV_CONF/;
            push @ctx, 'location' if $flags =~ /NGX_HTTP_LOC_CONF/;
            push @ctx, 'if in server' if $flags =~ /NGX_HTTP_SIF_CONF/;
            push @ctx, 'if in location' if $flags =~ /NGX_HTTP_LIF_CONF/;
            push @ctx, 'upstream' if $flags =~ /NGX_HTTP_UPS_CONF/;
            $directives{$name} = join ', ', @ctx;
        }
    }

    while ($src =~ /\bngx_http_variable_t\s+\w+\[\]\s*=\s*\{
                    (.*?)ngx_http_null_variable/sgx)
    {
        my $vars = $1;
        $variables{$1} = 1 while $vars =~ /ngx_string\("(tavus_\w+)"\)/g;
    }
}

cmp_ok(scalar keys %directives, '>=', 20,
       'directives found in the source: ' . join(' ', sort keys %directives));
cmp_ok(scalar keys %variables, '>=', 4,
       'variables found in the source: ' . join(' ', sort keys %variables));

###############################################################################
# docs/directives.md

my $ref = $t->read_file(Cwd::abs_path('.') . '/docs/directives.md');
ok(length $ref, 'docs/directives.md exists');

# the text under each `### name` heading, up to the next heading

my %section;
while ($ref =~ /^###\s+`?(\w+)`?\s*\n(.*?)(?=^#{1,3}\s|\z)/msg) {
    $section{$1} = $2;
}

for my $name (sort keys %directives) {

    # its own section, or the section whose Syntax line names it (a group
    # of directives under one heading)
    my $text = $section{$name} // (map { $section{$_} }
        grep { $section{$_} =~ /^Syntax:.*\b\Q$name\E\b/m }
        sort keys %section)[0];

    ok(defined $text, "$name is documented") or next;

    like($text, qr/^Syntax:.*\b\Q$name\E\b/m, "$name: Syntax");
    like($text, qr/^Default:/m, "$name: Default");

    my ($ctx) = $text =~ /^Context:\s*(.*?)\s*$/m;
    $ctx //= '';
    $ctx =~ s/[`*]//g;
    $ctx = join ', ', map { s/^\s+|\s+$//gr } split /,/, $ctx;
    is($ctx, $directives{$name}, "$name: Context is the source's");
}

for my $name (sort grep { /^tavus_/ } keys %section) {
    ok($directives{$name}, "the heading $name names a directive");
}

for my $name (sort keys %variables) {
    like($ref, qr/`\$\Q$name\E`/, "\$$name is documented");
}

# the index: the list under the title, up to its first blank line

my ($index) = $ref =~ /\A#[^\n]*\n\n(.*?)\n\n/s;
my @entries = ($index // '') =~ /\[([^\]]+)\]\(#([^)]+)\)/g;
my (%indexed, %anchor_of);

while (my ($text, $anchor) = splice @entries, 0, 2) {
    next unless $text =~ /^\$?tavus_\w+$/;
    ok(!$indexed{$text}++, "index: $text once");
    $anchor_of{$text} = $anchor;
}

is(join(' ', sort grep { !/^\$/ } keys %indexed),
   join(' ', sort keys %directives),
   'index: every directive of the source, and only those');
is(join(' ', sort grep { /^\$/ } keys %indexed),
   join(' ', map { "\$$_" } sort keys %variables),
   'index: every variable of the source, and only those');

my %anchors = map { $_ => 1 } ($ref =~ /<a id="([^"]+)">/g),
    map { my $h = lc; $h =~ s/[^\w\- ]//g; $h =~ s/ /-/g; $h }
    $ref =~ /^#+\s+(.*?)\s*$/mg;

for my $text (sort keys %anchor_of) {
    my $want = $text =~ /^\$(.*)/ ? "var_$1" : $text;
    is($anchor_of{$text}, $want, "index: $text links to #$want");
    ok($anchors{$want}, "index: #$want exists");
}

for my $line (split /\n(?=- )/, $index // '') {
    my @names = $line =~ /\[(\$?tavus_\w+)\]/g;
    is("@names", join(' ', sort @names), "index: in alphabetical order:"
       . " @names[0 .. ($#names < 1 ? $#names : 1)] ...") if @names > 1;
}

# defaults as nginx.org writes them

for my $name (sort keys %section) {
    next unless $directives{$name};
    my ($default) = $section{$name} =~ /^Default:\s*(.*?)\\?\s*$/m;
    my @names = $section{$name} =~ /^Syntax:.*?`(tavus_\w+)/mg;
    my $form = join '|', map { quotemeta } $name, @names;
    like($default // '', qr/^(?:—|`(?:$form)(?: [^`]*)?;`)$/,
         "$name: Default is a directive line or —");
}

# rendered: Syntax, Default and Context on three lines of one paragraph

is(system('sh', 'scripts/deps.sh', 'cmark'), 0,
   'scripts/deps.sh cmark: the CommonMark renderer is installed');

my $html = do {
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        exec 'cmark', 'docs/directives.md' or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    $out;
};

like($html, qr{<h1>Module ngx_http_tavus_module</h1>}, 'cmark renders'
     . ' docs/directives.md');

my %rendered;
while ($html =~ m{<h3>(\w+)</h3>\s*<p>(.*?)</p>}sg) {
    $rendered{$1} = $2;
}

for my $name (sort grep { $directives{$_} } keys %section) {
    my @lines = split /<br \/>\n/, $rendered{$name} // '';
    is(join(' | ', map { /^(\w+):/ ? $1 : '?' } @lines),
       'Syntax | Default | Context',
       "$name: rendered, Syntax, Default and Context on lines of their own");
}

###############################################################################
# complete examples

my $pki = make_pki($t);
mkdir "$p/files" or die "mkdir: $!";

my @docs = ('README.md', sort glob 'docs/*.md');
ok(-f 'README.md', 'README.md exists');

# every "# complete example" line of a document starts a block that is
# checked: a block the fence parser below missed (an indented fence,
# "``` nginx") or a marker outside a block is a failure, as is a
# document set without any

my $blocks = 0;
my $marked = 0;

for my $doc (@docs) {
    my $text = $t->read_file(Cwd::abs_path('.') . "/$doc");
    my @lines = split /\n/, $text;
    my $checked = 0;

    for (my $i = 0; $i < @lines; $i++) {
        next unless $lines[$i] =~ /^```nginx\s*$/;

        my $start = $i + 1;
        my @block;
        push @block, $lines[$i] while ++$i < @lines && $lines[$i] !~ /^```/;

        next unless @block && $block[0] =~ /^#\s*complete example\s*$/;

        $checked++;
        check_block("$doc:$start", join("\n", @block) . "\n");
    }

    my $markers = () = $text =~ /^\s*#\s*complete example\s*$/mg;
    is($checked, $markers, "$doc: each of its $markers \"# complete example\""
                           . ' blocks checked');

    $blocks += $checked;
    $marked += $markers;
}

ok($blocks > 0 && $blocks == $marked,
   "complete examples checked: $blocks of $marked");

###############################################################################
# the keepalive rule

my $groups = 0;

for my $doc (@docs) {
    for my $g (TavusConf::api_groups($t->read_file(Cwd::abs_path($doc)))) {
        $groups++;
        is($g->[2] // 'none', '30s',
           "$doc: upstream $g->[0]: keepalive_timeout 30s");
    }
}
cmp_ok($groups, '>=', 10, "the API's groups of the docs: $groups");

###############################################################################
# README.md's site

my $readme = $t->read_file(Cwd::abs_path('README.md'));
my @site;           # [ kind, name, text ]

while ($readme =~ m{^```nginx\n\#\s*/etc/nginx/(conf\.d|sites-available)/(\S+)
                    \s*\n(.*?)^```}mgsx)
{
    push @site, [ $1, $2, $3 ];
}

is(join(' ', sort map { $_->[0] } @site), 'conf.d sites-available',
   "README.md: a site, and the conf.d/ file it needs");

my ($install) = $readme =~ /^## Installing on Debian\n(.*?)^## /ms;
my $example = $t->read_file(Cwd::abs_path('examples/tavus-upstream.conf'));
my @site_listen;
my %site_groups = map { $_->[0] => 1 }
                  map { TavusConf::api_groups($_->[2]) } @site;

for my $f (@site) {
    my ($kind, $name, $text) = @$f;
    my $what = "README.md: $kind/$name";

    unlike($text, qr/^\s*(?:load_module|events|http)\b/m,
           "$what: no load_module, events or http, pasted as it is");

    if ($kind eq 'conf.d') {
        like($install // '', qr{^\s*cp\s.*\\?\n?\s*/etc/nginx/conf\.d/\Q$name\E\s*$}m,
             "$what: copied there by the install section");
        is(normal($text), normal($example), "$what: examples/$name, without"
                                            . ' its comments')
            if $name eq 'tavus-upstream.conf';
    } else {
        like($install // '', qr{^\s*ln\s+-s\s+\.\./sites-available/\Q$name\E\s+
                                /etc/nginx/sites-enabled/}mx,
             "$what: linked from sites-enabled/ by the install section");
    }

    push @site_listen, $text =~ /^\s*listen\s+([^\s;]+)/mg;
    $f->[2] = site_adapt($text);
}

{
    my ($ok, $out) = $t->nginx_t(TavusSite::layout($t, @site));
    ok($ok, "README.md: the site in Debian's layout passes nginx -t")
        or diag($out);
    unlike($out, qr/\[(?:warn|emerg|alert|crit)\]/, 'README.md: the site:'
           . ' no warning') or diag($out);

    $t->run(TavusSite::layout($t, @site, inline => 1));

    my @verify = TavusSite::expectations($install // '');
    ok(@verify, 'README.md: the install section has a verifying request');

    for my $e (@verify) {
        (my $cmd = $e->{command}) =~ s{http://127\.0\.0\.1:(\d+)}{
            my $port = $1;
            my ($l) = grep { /(?:^|:)\Q$port\E$/ } @site_listen;
            'http://127.0.0.1:'
            . $t->port(TavusConf::listen_port('l', $l // $port))
        }e;
        TavusSite::check_answer($t, TavusSite::run_curl($t, $cmd), $e,
                                "README.md, install: $e->{command}");
    }

    $t->stop;
}

done_testing;

###############################################################################

sub check_block {
    my ($where, $text) = @_;

    my $conf = adapt($text);
    my $n = $where =~ s/\W/_/gr;
    $t->write_file("$n.conf", $conf);

    # nginx -t creates the pid file (empty) to check it can: rule 3 moves
    # a `pid` of the example, -g sets one where it has none
    my @pid = $conf =~ /^\s*pid\s/m ? () : ('-g', "pid $p/$n.pid;");

    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec $NGINX, '-t', '-q', '-p', "$p/", '-c', "$p/$n.conf",
             '-e', "$p/$n.error.log", @pid
            or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;

    ok($? == 0, "$where: complete example passes nginx -t")
        or diag("$out\nas tested:\n" . numbered($conf));
}

# configuration text without comments, blank lines and indentation

sub normal {
    my ($text) = @_;
    return join "\n", grep { length } map { s/^\s+|\s+$//gr }
                     map { s/#.*//r } split /\n/, $text;
}

# a README site file for a run here: the rules of adapt() below, and its
# listen moved to a free port, one an address

sub site_adapt {
    my ($text) = @_;

    return TavusConf::adapt($text,
        listen_by_address => 'l',
        paths => \&path_arg,
        upstream_servers => sub {
            my (undef, $address) = @_;
            return $address =~ s/^([^\s;:]+)/local_host($1)/er;
        },
        pass_hosts => sub { $site_groups{$_[0]} ? $_[0] : local_host($_[0]) });
}

sub numbered {
    my $i = 0;
    return join '', map { sprintf "%4d  %s\n", ++$i, $_ } split /\n/, $_[0];
}

sub adapt {
    my ($text) = @_;

    return TavusConf::adapt($text,
        module => $t->static ? '' : $t->module,         # 1
        paths => \&path_arg,                            # 2 and 3
        upstream_servers => sub {                       # 4
            my (undef, $address) = @_;
            return $address =~ s/^([^\s;:]+)/local_host($1)/er;
        },
        pass_hosts => \&local_host,
        temp_paths => $p);                              # 5
}

sub local_host {
    my ($host) = @_;
    return $host if $host eq 'localhost' || $host =~ /^[\d.]+$/
                    || $host =~ /^\[/ || $host =~ /^unix$/;
    return '127.0.0.1';
}

# a path argument of a directive: the file the test makes for it

sub path_arg {
    my ($directive, $arg) = @_;

    # load_module was set by rule 1: the built module may live anywhere,
    # /tmp included (CI clones the repository wherever it likes)

    return $arg if $directive eq 'load_module';

    my $reads = $directive =~ /^(?:tavus_api_key_file|\w*certificate(?:_key)?
                                  |auth_basic_user_file|include)$/x;
    my $abs = $arg =~ m{^/(?:etc|var|run|srv|opt|home|tmp)/};

    return $arg unless $abs || ($reads && $arg =~ m{^[\w.-]+(?:/[\w.-]+)*$}
                                && $arg =~ /\./);

    if ($directive eq 'include' && $abs && $arg !~ /[*?]/ && -r $arg) {
        return $arg;
    }

    (my $name = $arg) =~ s{^/}{};
    $name =~ s{[^\w.-]}{_}g;
    my $path = "$p/files/$name";

    return $path if $made{$path}++;

    if ($directive eq 'tavus_api_key_file') {
        $t->key_file($path, "docs-Key_0123456789");
    } elsif ($directive =~ /certificate_key$/) {
        $t->write_file($path, $t->read_file($pki->{'server.key'}));
    } elsif ($directive =~ /certificate$/) {
        $t->write_file($path, $t->read_file($pki->{'ca.crt'})
                              . $t->read_file($pki->{'server.crt'}))
            if $directive =~ /trusted|client/;
        $t->write_file($path, $t->read_file($pki->{'server.crt'}))
            unless $directive =~ /trusted|client/;
    } elsif ($reads) {
        $t->write_file($path, '');
    }

    return $path;
}
