#!/usr/bin/env bash
# A Debian chroot with a release's stock nginx, for building and testing
# the module against that release's nginx-dev on this machine.
#
#     scripts/chroot.sh SUITE [DIR]          make DIR, if need be
#     scripts/chroot.sh SUITE DIR -- CMD...  and run CMD in it
#
# SUITE is a Debian suite (trixie, sid, ...); DIR defaults to
# build/chroot/SUITE.  The chroot is made with `debootstrap
# --variant=minbase` from Debian's archive (DEBIAN_MIRROR, default
# http://deb.debian.org/debian); the packages the build, the suite and the
# package tests need are then installed with the chroot's own apt-get (its
# own sources.list: the machine's /etc/apt is never touched), because
# debootstrap's --include does not resolve virtual packages such as
# nginx-dev's debhelper-compat.
#
# Cached: DIR/.tavus-chroot holds what the chroot was made from (suite,
# mirror, packages) and is written last, so a chroot whose making was cut
# short, or made from other inputs, is made again from scratch.  A new
# chroot is made in DIR.new and renamed into place when complete.  A
# cached chroot keeps the packages it was made with: remove DIR (or make
# clean) to take the release's newer ones.
#
# In the chroot nothing starts services (policy-rc.d), /proc is mounted
# for the time of each command and unmounted on every exit, the
# network is the machine's (nginx in it serves on the machine's
# loopback), and the Release file's Valid-Until is not enforced (sid's
# can be past it on a mirror).  Needs root.

set -euo pipefail

suite=${1:?usage: chroot.sh SUITE [DIR] [-- CMD...]}
shift
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$top/build/chroot/$suite
if [ $# -gt 0 ] && [ "$1" != -- ]; then
    dir=$1
    shift
fi
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# what the build, the suite (scripts/deps.sh, the tests' tools) and the
# package tests need
packages="nginx nginx-dev libcjson-dev libssl-dev libpcre2-dev zlib1g-dev
          gcc make perl openssl ca-certificates curl dnsmasq-base
          build-essential debhelper dpkg-dev lintian"

say() { echo "chroot $suite: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    say "needs root (debootstrap, chroot, mount)"
    exit 1
fi

stamp_text() {
    printf 'suite %s\nmirror %s\npackages %s\n' "$suite" "$mirror" \
        "$(echo $packages)"
}

# run a command in the chroot at $1, with /proc mounted while it runs

in_chroot() {
    local root=$1
    shift

    mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
    trap 'umount_proc "$root"' EXIT INT TERM

    local rc=0
    chroot "$root" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
        CI="${CI:-}" TAVUS_TIMEOUT="${TAVUS_TIMEOUT:-}" \
        "$@" || rc=$?

    umount_proc "$root"
    trap - EXIT INT TERM
    return $rc
}

umount_proc() {
    if mountpoint -q "$1/proc"; then
        umount "$1/proc" || umount -l "$1/proc"
    fi
}

make_chroot() {
    local new=$dir.new

    if [ -e "$new" ]; then
        umount_proc "$new"
        rm -rf --one-file-system "$new"
    fi

    if ! command -v debootstrap >/dev/null; then
        say "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends debootstrap >&2
    fi

    say "debootstrap --variant=minbase $suite from $mirror"
    mkdir -p "$(dirname "$dir")"
    debootstrap --variant=minbase "$suite" "$new" "$mirror" \
        > "$dir.debootstrap.log" 2>&1 || {
        tail -20 "$dir.debootstrap.log" >&2
        say "debootstrap failed; its log is $dir.debootstrap.log"
        exit 1
    }

    # no service starts in the chroot, whatever a postinst wants
    printf '#!/bin/sh\nexit 101\n' > "$new/usr/sbin/policy-rc.d"
    chmod 755 "$new/usr/sbin/policy-rc.d"

    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n' \
        > "$new/etc/hosts"
    echo "deb $mirror $suite main" > "$new/etc/apt/sources.list"
    echo 'Acquire::Check-Valid-Until "false";' \
        > "$new/etc/apt/apt.conf.d/90tavus-valid-until"

    say "installing:" $packages
    in_chroot "$new" sh -c "apt-get update -q &&
        apt-get install -y -q --no-install-recommends $(echo $packages)" \
        > "$dir.apt.log" 2>&1 || {
        tail -20 "$dir.apt.log" >&2
        say "apt-get failed; its log is $dir.apt.log"
        exit 1
    }

    in_chroot "$new" apt-get clean

    stamp_text > "$new/.tavus-chroot"

    if [ -e "$dir" ]; then
        umount_proc "$dir"
        rm -rf --one-file-system "$dir"
    fi
    mv "$new" "$dir"
}

if [ -f "$dir/.tavus-chroot" ] \
   && [ "$(cat "$dir/.tavus-chroot")" = "$(stamp_text)" ] \
   && [ -x "$dir/usr/sbin/nginx" ] \
   && [ -f "$dir/usr/share/nginx/src/conf_flags" ]
then
    say "cached in $dir ($(in_chroot "$dir" nginx -v 2>&1))"
else
    [ -e "$dir" ] && say "the chroot in $dir is incomplete or stale: new one"
    make_chroot
    say "made in $dir ($(in_chroot "$dir" nginx -v 2>&1))"
fi

if [ "${1:-}" = -- ]; then
    shift
    in_chroot "$dir" "$@"
fi
