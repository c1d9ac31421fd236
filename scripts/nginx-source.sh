#!/usr/bin/env bash
# The upstream source tarball of the nginx that a Debian release ships,
# for building nginx with the module built in (--add-module).
#
#     scripts/nginx-source.sh SUITE [CACHE]     SUITE: bookworm, trixie, sid
#                                               CACHE: default build/src
#
# The tarball comes from Debian's archive, fetched with
# `apt-get source --download-only` through a private apt configuration
# (CACHE/apt-SUITE/: its own sources.list, lists, cache and status; the
# machine's /etc/apt is only read, for its keys and settings).  Only the
# .orig tarball is kept, after its SHA-256 was checked against the
# Sources index: a .dsc that the mirror does not have does not matter.
#
# Cached as CACHE/nginx_VERSION.orig.tar.gz, with a .sha256 file beside it
# written after the check; a second run with both present and matching
# does nothing but print the path.  The last line printed is the
# tarball's path.  Exit status 3: the mirror does not have the tarball
# (it is in the Sources index, the download failed); 1: anything else,
# a checksum that does not match included.

set -euo pipefail

suite=${1:?usage: nginx-source.sh SUITE [CACHE]}
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${2:-$top/build/src}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
apt=$cache/apt-$suite

say() { echo "nginx-source: $*" >&2; }

# a tarball already checked: its .sha256 names it and matches it

for sum in "$cache"/nginx_*.orig.tar.gz.sha256; do
    [ -f "$sum" ] || continue
    grep -qx "$suite" "$sum.suite" 2>/dev/null || continue
    tarball=${sum%.sha256}
    if [ -f "$tarball" ] && (cd "$cache" && sha256sum -c --quiet "$sum"); then
        echo "$tarball"
        exit 0
    fi
    rm -f "$sum" "$sum.suite"
done

mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/get"
echo "deb-src $mirror $suite main" > "$apt/sources.list"
: > "$apt/status"

opts=(-o "Dir::Etc::sourcelist=$apt/sources.list"
      -o "Dir::Etc::sourceparts=-"
      -o "Dir::State::Lists=$apt/lists"
      -o "Dir::Cache=$apt/cache"
      -o "Dir::State::status=$apt/status"
      -o "Acquire::Check-Valid-Until=false"
      -o "APT::Sandbox::User=root")

say "reading the Sources index of $suite"
apt-get "${opts[@]}" -q update >&2

# the source package's entry: its version and the tarball's checksum
record=$(apt-cache "${opts[@]}" showsrc --only-source nginx)
version=$(awk '/^Version:/ { print $2; exit }' <<<"$record")
upstream=${version#*:}
upstream=${upstream%-*}
orig=nginx_$upstream.orig.tar.gz
sha=$(awk -v f="$orig" '
    /^Checksums-Sha256:/ { in_sums = 1; next }
    /^[^ ]/ { in_sums = 0 }
    in_sums && $3 == f { print $1; exit }' <<<"$record")

if [ -z "$sha" ]; then
    say "no $orig with a SHA-256 in the Sources index of $suite (nginx $version)"
    exit 1
fi

say "nginx $version of $suite: $orig"

# apt-get fails when any file of the source package is missing from the
# mirror; what counts is the tarball, checked below
(cd "$apt/get" && rm -f ./* && apt-get "${opts[@]}" -q source --download-only \
    "nginx=$version" >&2) || say "apt-get source failed; checking what came"

if [ ! -f "$apt/get/$orig" ]; then
    say "$orig was not downloaded: the mirror does not have it"
    exit 3
fi

got=$(sha256sum "$apt/get/$orig" | cut -d' ' -f1)
if [ "$got" != "$sha" ]; then
    say "$orig: SHA-256 $got, the Sources index says $sha"
    exit 1
fi

mv -f "$apt/get/$orig" "$cache/$orig"
rm -f "$apt/get"/*
echo "$sha  $orig" > "$cache/$orig.sha256"
echo "$suite" > "$cache/$orig.sha256.suite"
echo "$cache/$orig"
