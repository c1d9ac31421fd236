#!/usr/bin/env bash
# nginx with the module built in (--add-module), for the suite's static
# runs (TAVUS_MODULE=static TAVUS_NGINX=OUT/objs/nginx).
#
#     scripts/static-nginx.sh SOURCE OUT
#
# SOURCE is an nginx source tarball (scripts/nginx-source.sh) or an nginx
# source directory.  It is configured as the machine's Debian nginx was:
# nginx-dev's /usr/share/nginx/src/conf_flags, without the options only
# Debian's patched configure knows (--override-*), the CFLAGS, CPPFLAGS
# and LDFLAGS of dpkg-buildflags as Debian builds nginx, and
# --add-module=<this repository>.  nginx's own warning flags, -Werror
# included, apply.  The last line printed is the nginx binary's path.
#
# OUT/.configured records the source, the arguments and the module's
# config file: unchanged, only `make` runs again (and recompiles what
# changed); changed, OUT is made anew.

set -euo pipefail

source=${1:?usage: static-nginx.sh SOURCE OUT}
out=${2:?usage: static-nginx.sh SOURCE OUT}
top=$(cd "$(dirname "$0")/.." && pwd)
flags_file=${NGX_CONF_FLAGS_FILE:-/usr/share/nginx/src/conf_flags}

say() { echo "static-nginx: $*" >&2; }

# shellcheck source=/dev/null
. "$flags_file"

args=()
for f in "${NGX_CONF_FLAGS[@]}"; do
    case $f in
        --override-*|--with-cc-opt=*|--with-ld-opt=*) ;;
        *) args+=("$f") ;;
    esac
done
args+=("--with-cc-opt=$(dpkg-buildflags --get CFLAGS) -fPIC $(dpkg-buildflags --get CPPFLAGS)"
       "--with-ld-opt=$(dpkg-buildflags --get LDFLAGS) -fPIC"
       "--add-module=$top")

if [ -d "$source" ]; then
    id="directory $(cd "$source" && pwd)"
else
    id="tarball $(sha256sum "$source" | cut -d' ' -f1)"
fi

want=$(printf '%s\n' "$id" "${args[@]}" "$(sha256sum "$top/config")")

if [ ! -f "$out/.configured" ] || [ "$(cat "$out/.configured")" != "$want" ]
then
    rm -rf "$out"
    mkdir -p "$out"
    out=$(cd "$out" && pwd)

    if [ -d "$source" ]; then
        say "copying $source"
        cp -a "$source/." "$out/"
    else
        say "unpacking $(basename "$source")"
        tar -xzf "$source" -C "$out" --strip-components=1
    fi

    # a release tarball has ./configure; nginx's git tree auto/configure
    configure=./configure
    [ -x "$out/configure" ] || configure=auto/configure

    say "configuring in $out"
    (cd "$out" && $configure "${args[@]}") > "$out/configure.log" 2>&1 || {
        tail -30 "$out/configure.log" >&2
        say "configure failed; its log is $out/configure.log"
        exit 1
    }

    echo "$want" > "$out/.configured"
fi

say "building $out/objs/nginx"
# objs/Makefile's binary target: nginx-dev's tree has no man page and
# no top Makefile
make -C "$out" -f objs/Makefile -j"${MAKE_JOBS:-2}" binary \
    > "$out/make.log" 2>&1 || {
    grep -E 'error|warning' "$out/make.log" | head -30 >&2
    tail -10 "$out/make.log" >&2
    say "make failed; its log is $out/make.log"
    exit 1
}

echo "$(cd "$out" && pwd)/objs/nginx"
