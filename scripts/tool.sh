#!/bin/sh
# Prints the path of a program from a Debian package without installing
# the package: the .deb is downloaded with apt-get into build/tools/debs
# and unpacked with dpkg-deb into build/tools/PACKAGE, once.  For tools
# the tests need whose package would change the machine if installed
# (prometheus enables and starts a service).
#
#     scripts/tool.sh PROGRAM PACKAGE...    e.g. promtool promtool prometheus
#
# The packages are tried in turn, since releases split them differently:
# Debian 12's prometheus ships promtool, Debian 13's has it in a package
# of its own.  It needs the package lists; as root it runs `apt-get
# update` once if no package could be downloaded.

set -eu

prog=$1
shift
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$top/build/tools

# unpacked already

for pkg in "$@"; do
    if [ -x "$dir/$pkg/usr/bin/$prog" ]; then
        echo "$dir/$pkg/usr/bin/$prog"
        exit 0
    fi
done

mkdir -p "$dir/debs"
cd "$dir/debs"

# the first package this release has, downloaded once, then unpacked

fetch() {
    for pkg in "$@"; do
        ls "$pkg"_*.deb >/dev/null 2>&1 \
            || apt-get download -q "$pkg" >&2 2>/dev/null \
            || continue

        rm -rf "$dir/$pkg.tmp"
        dpkg-deb -x "$(ls "$pkg"_*.deb | head -1)" "$dir/$pkg.tmp"
        rm -rf "$dir/$pkg"
        mv "$dir/$pkg.tmp" "$dir/$pkg"

        if [ -x "$dir/$pkg/usr/bin/$prog" ]; then
            echo "$dir/$pkg/usr/bin/$prog"
            return 0
        fi
    done

    return 1
}

fetch "$@" && exit 0

if [ "$(id -u)" = 0 ]; then
    apt-get update -q >&2
    fetch "$@" && exit 0
fi

echo "tool: no $prog in the packages $* (apt-get update first?)" >&2
exit 1
