#!/usr/bin/env bash
# make fuzz: builds the libFuzzer harnesses of the pure C parts with clang
# (-fsanitize=fuzzer,address,undefined) and runs each for a bounded time,
# starting from its seed corpus in fuzz/corpus/<harness>/.
#
#   fuzz_validate   replica id validation, hard and switch parsing, key check
#   fuzz_translate  upstream status + body -> answer -> JSON body
#   fuzz_utf8       UTF-8 cutting and repair of upstream messages
#   fuzz_log_escape upstream text escaped for the error log
#   fuzz_syntax     tavus_api_key and tavus_pass host[:port] syntax,
#                   numbered captures, upstream header lines
#
# It fails on a crash, a sanitizer report, a failed assertion, a timeout
# or an out-of-memory.  The input is saved as fuzz/regressions/<harness>/
# crash-<sha1>, which t/41-fuzz-regressions.t then runs in the normal
# suite (the test fails until the bug is fixed; keep the file then).
#
# Environment:
#   FUZZ_SECONDS   seconds per harness (default 60)
#   FUZZ_TARGETS   harnesses to run (default: all of them, e.g. "utf8")
#   FUZZ_JOBS      parallel fuzzing processes per harness (libFuzzer's
#                  -fork=N; default 1, no fork)
#
# The corpus that fuzzing grows stays in build/fuzz/corpus/<harness>/;
# only the small seeds are in the repository.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-validate translate utf8 log_escape syntax}
jobs=${FUZZ_JOBS:-1}
out=build/fuzz

command -v clang >/dev/null || {
    echo "fuzz: clang is missing: apt-get install clang libclang-rt-14-dev" >&2
    exit 1
}

[ -f "$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a)" ] || {
    echo "fuzz: libFuzzer is missing: apt-get install libclang-rt-14-dev" >&2
    exit 1
}

# nginx's configure, for objs/ngx_auto_config.h (the normal build's)

make -s deps
make -s build/nginx/objs/Makefile

mkdir -p "$out/crashes"

cflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
cflags="$cflags -Wall -Wno-unused-parameter -Wno-unused-function"

# the build facts of the Makefile: include paths and the pure sources
incs="-I fuzz $(make -s print-NGX_INCS)"
pure=$(make -s print-PURE)

export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1${ASAN_EXTRA:+:$ASAN_EXTRA}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

failed=()
stats=()

# the first line of a report that says what and where, addresses removed

signature() {
    grep -Em1 'runtime error:|ERROR: AddressSanitizer|fuzz assertion failed|ERROR: LeakSanitizer' \
        | sed -e 's/0x[0-9a-f]*//g' -e 's/==[0-9]*==//g' || true
}

for h in $targets; do
    [ -f "fuzz/fuzz_$h.c" ] || { echo "fuzz: no fuzz/fuzz_$h.c" >&2; exit 1; }

    clang $cflags $incs -o "$out/fuzz_$h" "fuzz/fuzz_$h.c" $pure -lcjson

    mkdir -p "$out/corpus/$h" "$out/crashes/$h"
    rm -f "$out/crashes/$h"/*

    # the signatures of the saved crashes that still fail

    : > "$out/$h.known"
    for f in fuzz/regressions/$h/*; do
        [ -f "$f" ] || continue
        "$out/fuzz_$h" "$f" 2>&1 | signature >> "$out/$h.known" || true
    done

    echo "fuzz: $h for ${seconds}s"

    fork=()
    [ "$jobs" -gt 1 ] && fork=(-fork="$jobs")

    rc=0
    "$out/fuzz_$h" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/crashes/$h/" \
        "${fork[@]}" \
        "$out/corpus/$h" "fuzz/corpus/$h" \
        >"$out/$h.log" 2>&1 || rc=$?

    execs=$(grep -ho 'stat::number_of_executed_units: *[0-9]*' "$out/$h.log" \
            | awk '{s += $2} END {print s + 0}')
    units=$(ls "$out/corpus/$h" | wc -l)
    stats+=("$h: $execs runs, corpus $units inputs, exit $rc")

    found=$(ls "$out/crashes/$h" 2>/dev/null || true)

    if [ "$rc" != 0 ] || [ -n "$found" ]; then
        failed+=("$h")
        echo "fuzz: $h FAILED (exit $rc); its log: $out/$h.log"
        grep -E 'ERROR|runtime error|assertion failed|SUMMARY|Test unit written' \
            "$out/$h.log" | head -n 20

        # a crash with the signature of a saved one that still fails is
        # that bug again, not a new regression input

        sig=$(signature < "$out/$h.log")

        if [ -n "$sig" ] && grep -qxF "$sig" "$out/$h.known"; then
            echo "fuzz: $h: the bug of a saved regression, not fixed yet:"
            echo "    $sig"
            continue
        fi

        mkdir -p "fuzz/regressions/$h"
        for f in $found; do
            sum=$(sha1sum "$out/crashes/$h/$f" | cut -c1-16)
            cp "$out/crashes/$h/$f" "fuzz/regressions/$h/crash-$sum"
            echo "fuzz: saved as fuzz/regressions/$h/crash-$sum" \
                 "(t/41-fuzz-regressions.t runs it)"
        done
    fi
done

echo
printf 'fuzz: %s\n' "${stats[@]}"

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAIL: ${failed[*]}"
    exit 1
fi

echo "fuzz: PASS"
