#!/usr/bin/env bash
# make fuzz-upstream, make fuzz-upstream-long: the system fuzzer of the
# upstream answer path (scripts/chaos/fuzz-upstream.pl) with the module
# built with ASan and UBSan, build/asan, as scripts/test-asan.sh builds it.
#
#   bash scripts/chaos/fuzz-upstream.sh            fixed seed, 20,000 cases
#   bash scripts/chaos/fuzz-upstream.sh long       a new seed, 30 minutes
#
# Environment: FUZZ_UPSTREAM_SEED (1; long: the time), FUZZ_UPSTREAM_CASES
# (20000), FUZZ_UPSTREAM_SECONDS (long: 1800).  The long run writes the
# error log at the info level (a debug log of half an hour is tens of
# gigabytes); the bounded run checks the debug level for the key.

set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

mode=${1:-bounded}
so=build/asan/ngx_http_tavus_module.so

# build/asan, when missing or older than the sources: scripts/test-asan.sh
# builds it, and runs one test file here
if [ ! -f "$so" ] || [ -n "$(find config ngx_tavus_module scripts/debug-pool.h \
                               -newer "$so" -print -quit)" ]; then
    echo "fuzz-upstream: building $so (scripts/test-asan.sh)"
    mkdir -p build
    ASAN_TESTS=t/00-harness.t bash scripts/test-asan.sh \
        >build/fuzz-upstream-asan.log 2>&1 \
        || { tail -n 30 build/fuzz-upstream-asan.log; exit 1; }
fi

case $mode in
bounded)
    exec nice perl scripts/chaos/fuzz-upstream.pl --asan \
        --seed "${FUZZ_UPSTREAM_SEED:-1}" \
        --cases "${FUZZ_UPSTREAM_CASES:-20000}"
    ;;
long)
    seed=${FUZZ_UPSTREAM_SEED:-$(date +%s)}
    echo "fuzz-upstream: seed $seed"
    exec nice perl scripts/chaos/fuzz-upstream.pl --asan --seed "$seed" \
        --cases "${FUZZ_UPSTREAM_CASES:-0}" \
        --seconds "${FUZZ_UPSTREAM_SECONDS:-1800}" --log-level info
    ;;
*)
    echo "usage: $0 [bounded|long]" >&2
    exit 2
    ;;
esac
