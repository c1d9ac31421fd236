#!/bin/sh
# Installs, with apt-get, only the Debian packages that are missing:
# those the build and the suite need, and any named as arguments (the
# benchmark's, the sanitizer runs').  Quick and silent when everything
# is present.  Needs root to install.

set -eu

packages="nginx nginx-dev libcjson-dev libssl-dev libpcre2-dev zlib1g-dev
          gcc make perl openssl ca-certificates curl dnsmasq-base
          debhelper dpkg-dev $*"

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
         | grep -q "install ok installed"
    then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

echo "deps: installing:$missing" >&2

if [ "$(id -u)" != 0 ]; then
    echo "deps: not root; install these packages first:$missing" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends $missing >&2
