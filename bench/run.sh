#!/usr/bin/env bash
# make bench: the module against the proxy_pass recipe, njs, Lua and
# nginx's return, side by side on this machine (bench/README.md).  Installs the
# bench's packages (wrk, valgrind, njs, Lua with the NDK and cjson),
# needs the built module (make build), then runs bench/bench.pl; its
# header lists the BENCH_* knobs.
#
#   bash bench/run.sh                       about 4 minutes
#   BENCH_ROUNDS=5 BENCH_DURATION=10 BENCH_SOAK=60 bash bench/run.sh

set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
module=${TAVUS_MODULE:-$top/build/ngx_http_tavus_module.so}

sh "$top/scripts/deps.sh" wrk valgrind libnginx-mod-http-js \
    libnginx-mod-http-lua libnginx-mod-http-ndk lua-cjson

[ -f "$module" ] || { echo "bench: $module is missing: make build" >&2; exit 1; }

exec perl "$top/bench/bench.pl"
