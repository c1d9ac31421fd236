#!/usr/bin/env bash
# make bench: the module against the proxy_pass recipe, njs, Lua and
# nginx's return, side by side on this machine, over plain HTTP and, for
# the module and the recipe, over TLS (bench/README.md).  Installs the
# packages of what runs (wrk, valgrind, and for (c) and (d) the njs and
# Lua modules with the NDK and cjson), needs the built module (make
# build), then runs bench/bench.pl; its header lists the BENCH_* knobs.
#
#   bash bench/run.sh                       about 5 minutes
#   BENCH_ONLY=a,b,e bash bench/run.sh      no njs or Lua packages
#   BENCH_ROUNDS=5 BENCH_DURATION=10 BENCH_SOAK=60 bash bench/run.sh

set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
module=${TAVUS_MODULE:-$top/build/ngx_http_tavus_module.so}

# BENCH_ONLY as bench.pl reads it: ids or names, any case, commas or spaces
only=,$(echo "${BENCH_ONLY:-}" | tr 'A-Z \t' 'a-z,,'),
runs() { [ "$only" = ",," ] || case $only in *,$1,*|*,$2,*) ;; *) false ;; esac; }

packages=""
[ "${BENCH_NO_WRK:-0}" = 1 ] || packages="$packages wrk"
[ "${BENCH_NO_CALLGRIND:-0}" = 1 ] || packages="$packages valgrind"
if runs c njs; then
    packages="$packages libnginx-mod-http-js"
fi
if runs d lua; then
    packages="$packages libnginx-mod-http-lua libnginx-mod-http-ndk lua-cjson"
fi

sh "$top/scripts/deps.sh" $packages

[ -f "$module" ] || { echo "bench: $module is missing: make build" >&2; exit 1; }

exec perl "$top/bench/bench.pl"
