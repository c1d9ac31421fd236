#!/usr/bin/env bash
# make deb: the Debian package libnginx-mod-http-tavus_<version>_<arch>.deb,
# built as Debian builds its own nginx modules (debhelper, `dh $@ --with
# nginx` from nginx-dev), against the nginx installed here: it depends on
# that nginx's ABI, and so on this Debian release.
#
#     scripts/build-deb.sh [OUTDIR]        default OUTDIR: build/deb
#
# The packaging lives in packaging/debian/.  Nothing is written to the
# repository outside OUTDIR: the sources the package needs and
# packaging/debian (as debian/) are copied to OUTDIR/<source>-<version>/
# and dpkg-buildpackage runs there, leaving the .deb (and its -dbgsym
# .deb, .buildinfo and .changes) in OUTDIR.
#
# The version is the one of packaging/debian/changelog with the release
# it is built on appended, +deb12 on Debian 12, +deb13 on Debian 13, +sid
# on unstable: one release's package is told from another's, and an
# upgrade of Debian upgrades it (an entry saying so is added to the
# copy's changelog).  The last line printed is the .deb's path.
#
# Build dependencies that are missing are installed with apt-get when
# running as root, as scripts/deps.sh does for the module itself.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/deb}

need="dpkg-dev debhelper build-essential nginx-dev libcjson-dev libssl-dev
      gcc make"
missing=""
for p in $need; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
        | grep -q "install ok installed" || missing="$missing $p"
done

if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "deb: not root; install these packages first:$missing" >&2
        exit 1
    fi
    echo "deb: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends $missing >&2
fi

changelog=$top/packaging/debian/changelog
source=$(dpkg-parsechangelog -l "$changelog" -S Source)
release_version=$(dpkg-parsechangelog -l "$changelog" -S Version)
maintainer=$(dpkg-parsechangelog -l "$changelog" -S Maintainer)
upstream=${release_version%-*}
arch=$(dpkg-architecture -q DEB_HOST_ARCH)

# the release this is built on: VERSION_ID is 12, 13, ...; unstable has none
. /etc/os-release
if [ -n "${VERSION_ID:-}" ]; then
    suffix=+deb$VERSION_ID
    distribution=$VERSION_CODENAME
    release="Debian $VERSION_ID ($VERSION_CODENAME)"
else
    suffix=+sid
    distribution=unstable
    release="Debian unstable"
fi
version=$release_version$suffix
deb=$source\_$version\_$arch.deb

mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$out/$source-$upstream

case "$src" in
    "$top"/packaging*|"$top"/ngx_tavus_module*|"$top")
        echo "deb: $out is inside the sources" >&2; exit 1 ;;
esac

rm -rf "$src" "$out/$deb" "$out/$source"[-_]*
mkdir -p "$src"

# what the package is built from: the addon script, the C sources, and
# the documentation and examples when the tree has them
for f in config ngx_tavus_module docs examples; do
    [ -e "$top/$f" ] && cp -a "$top/$f" "$src/"
done
cp -a "$top/packaging/debian" "$src/debian"

abi=$(sed -n 's/^nginx:abi=//p' /usr/share/nginx/src/debian/libnginx-mod.abisubstvars)
{
    echo "$source ($version) $distribution; urgency=medium"
    echo
    echo "  * $release_version built for $release, nginx ABI ${abi:-unknown}."
    echo
    echo " -- $maintainer  $(date -R)"
    echo
    cat "$changelog"
} > "$src/debian/changelog"

echo "deb: building $deb in $out" >&2
(cd "$src" && dpkg-buildpackage -b -us -uc -jauto) > "$out/build.log" 2>&1 || {
    tail -40 "$out/build.log" >&2
    echo "deb: dpkg-buildpackage failed; the whole log is $out/build.log" >&2
    exit 1
}

[ -f "$out/$deb" ] || { echo "deb: no $out/$deb" >&2; exit 1; }

rm -rf "$src"
echo "$out/$deb"
