#!/bin/sh
# Prints the path of a program from a Debian package without installing
# the package: the .deb is downloaded with apt-get into build/tools/debs
# and unpacked with dpkg-deb into build/tools/PACKAGE, once.  For tools
# the tests need whose package would change the machine if installed
# (prometheus enables and starts a service).
#
#     scripts/tool.sh PACKAGE PROGRAM       e.g. prometheus promtool
#
# It needs the package lists; as root it runs `apt-get update` once if
# the download fails.

set -eu

pkg=$1
prog=$2
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$top/build/tools
bin=$dir/$pkg/usr/bin/$prog

if [ ! -x "$bin" ]; then
    mkdir -p "$dir/debs"
    cd "$dir/debs"

    if ! ls "$pkg"_*.deb >/dev/null 2>&1; then
        if ! apt-get download -q "$pkg" >&2; then
            [ "$(id -u)" = 0 ] || {
                echo "tool: cannot download $pkg (apt-get update first)" >&2
                exit 1
            }
            apt-get update -q >&2
            apt-get download -q "$pkg" >&2
        fi
    fi

    rm -rf "$dir/$pkg.tmp"
    dpkg-deb -x "$(ls "$pkg"_*.deb | head -1)" "$dir/$pkg.tmp"
    rm -rf "$dir/$pkg"
    mv "$dir/$pkg.tmp" "$dir/$pkg"

    [ -x "$bin" ] || { echo "tool: $pkg has no /usr/bin/$prog" >&2; exit 1; }
fi

echo "$bin"
