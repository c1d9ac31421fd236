#!/usr/bin/env bash
# make test-valgrind: the black-box suite (t/*.t) with every nginx the
# harness starts, and every `nginx -t` it runs, under valgrind memcheck.
#
# The module is built into build/valgrind (-O1 -g, and scripts/debug-pool.h
# so that each of its pool allocations is a malloc of its own that valgrind
# can see the ends of).  nginx runs with `master_process off` (the
# harness's TAVUS_MASTER=off) except in the test files that need a master
# and its workers (reloads, several workers): there the master and the
# workers it forks all run under valgrind.
#
# It fails when a test fails, or when any nginx process reports an invalid
# read or write, a use of uninitialised memory, an invalid free, or a
# definite leak, except the few leaks of nginx itself listed, each with
# its reason, in scripts/valgrind.supp, or when a process was killed
# before valgrind could write its summary (then it was not checked),
# unless its test killed it on purpose (t/44 kills a worker with
# SIGKILL: the harness's kill_worker names it in $TAVUS_KILLED).  A
# binary upgrade's new master is checked as well: valgrind follows the
# exec (--trace-children=yes).  The build/unit unit tests run under
# valgrind too.
#
# Environment:
#   TAVUS_TIMEOUT     the harness's seconds for nginx to start, answer and
#                     stop (default here 30: valgrind is 20-50x slower)
#   VALGRIND_TESTS    test files to run (default t/*.t)
#   VALGRIND_EXCLUDE  test files not to run (default none; the Debian
#                     package's test is not in t/: make test-deb)
#   VALGRIND_MASTER_TESTS  files run with a master process (default: the
#                     files that mention worker_processes =>, reload or
#                     master_pid)
#   VALGRIND_OPTS     more valgrind options, e.g. --gen-suppressions=all
#   PROVE_JOBS        prove -j (default 2)
#   VALGRIND_BUILD    build directory (default build/valgrind)
#
# Logs: one file per nginx process, build/valgrind/logs/<test>.<pid>.log.

set -euo pipefail

. "$(dirname "$0")/instrumented.sh"

build=${VALGRIND_BUILD:-build/valgrind}
logs=$top/$build/logs

need valgrind valgrind

# the module: rebuilt from scratch when the flags change

flags="-g -O1 -fno-omit-frame-pointer -fPIC -Wformat -Werror=format-security"
flags="$flags -include $top/scripts/debug-pool.h"

instrumented_build "$build" "$flags"

# the wrapper the harness runs instead of nginx: the log is named after
# the test file

rm -rf "$logs"
mkdir -p "$logs"

nginx_wrapper "$build/nginx-valgrind" scripts/test-valgrind.sh \
    "exec valgrind --tool=memcheck --error-exitcode=99 \\" \
    "    --trace-children=yes \\" \
    "    --leak-check=full --show-leak-kinds=definite \\" \
    "    --errors-for-leak-kinds=definite --track-origins=yes \\" \
    "    --num-callers=40 --suppressions=$top/scripts/valgrind.supp \\" \
    "    --log-file=$logs/\$test.%p.log ${VALGRIND_OPTS:-} \\" \
    "    $nginx \"\$@\""

# which files, and which of them need a master process

select_tests "${VALGRIND_TESTS:-}" "${VALGRIND_EXCLUDE-}"

if [ -n "${VALGRIND_MASTER_TESTS+set}" ]; then
    master_tests=$VALGRIND_MASTER_TESTS
else
    master_tests=$(grep -lE 'worker_processes[[:space:]]*=>|->reload|master_pid' \
                   "${selected[@]}" 2>/dev/null || true)
fi

single=() master=()
for f in "${selected[@]}"; do
    case " $(echo $master_tests) " in
        *" $f "*) master+=("$f") ;;
        *) single+=("$f") ;;
    esac
done

export TAVUS_NGINX=$top/$build/nginx-valgrind
export TAVUS_MODULE=$top/$build/ngx_http_tavus_module.so
export TAVUS_TIMEOUT=${TAVUS_TIMEOUT:-30}
export TAVUS_KILLED=$top/$build/killed
: > "$TAVUS_KILLED"

prove_rc=0

if [ ${#single[@]} -gt 0 ]; then
    echo "test-valgrind: ${#single[@]} files, master_process off"
    TAVUS_MASTER=off prove -j "${PROVE_JOBS:-2}" "${single[@]}" || prove_rc=1
fi

if [ ${#master[@]} -gt 0 ]; then
    echo "test-valgrind: ${#master[@]} files with a master process:" \
         "${master[@]}"
    TAVUS_MASTER=on prove -j "${PROVE_JOBS:-2}" "${master[@]}" || prove_rc=1
fi

# the unit tests of the pure parts, under valgrind as well

unit_rc=0
valgrind --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --track-origins=yes \
    --log-file="$logs/unit.%p.log" build/unit >/dev/null || unit_rc=1

# every log: errors, and whether valgrind got to write its summary.  A
# process killed with SIGKILL leaves none (the harness's last resort for
# an nginx that does not stop in TAVUS_TIMEOUT, or its watchdog when a
# test died): what it did last was never checked, which fails the run as
# an error does.

procs=0 bad=0 killed=() on_purpose=0

for log in "$logs"/*.log; do
    [ -e "$log" ] || continue
    procs=$((procs + 1))

    summary=$(grep -o 'ERROR SUMMARY: [0-9]*' "$log" | tail -n 1 || true)
    command=$(grep -m1 'Command:' "$log" | sed 's/^==[0-9]*== //' || true)

    if [ -z "$summary" ]; then
        pid=${log%.log}
        pid=${pid##*.}
        if grep -qx "$pid" "$TAVUS_KILLED"; then
            on_purpose=$((on_purpose + 1))
        else
            killed+=("$(basename "$log") (${command:-no command line})")
        fi
        continue
    fi

    if [ "${summary#ERROR SUMMARY: }" != 0 ]; then
        bad=$((bad + 1))
        echo
        echo "=== $(basename "$log"): ${summary#ERROR SUMMARY: } errors" \
             "($command)"
        sed -e 's/^==[0-9]*== //' "$log" \
            | awk '/^(Invalid|Conditional|Use of uninit|Syscall param|Mismatched|Source and destination)/ || /definitely lost/ {p=1}
                   p && /^$/ {print "---"; p=0}
                   p {print}' \
            | head -n 200
    fi
done

elapsed=$(( $(date +%s) - start ))

echo
echo "test-valgrind: $procs processes under valgrind, $bad with errors," \
     "${#killed[@]} killed before valgrind's summary (not checked)," \
     "$on_purpose killed by their test on purpose;" \
     "${elapsed}s; logs in $logs"

if [ ${#killed[@]} -gt 0 ]; then
    echo "test-valgrind: killed before valgrind's summary, so not checked" \
         "(the harness kills an nginx that does not stop in" \
         "TAVUS_TIMEOUT=${TAVUS_TIMEOUT}s: a longer timeout or PROVE_JOBS=1" \
         "gives it the time):"
    printf '    %s\n' "${killed[@]}"
fi

[ "$unit_rc" = 0 ] || echo "test-valgrind: build/unit failed under valgrind"
[ "$prove_rc" = 0 ] || echo "test-valgrind: the suite failed"

if [ "$prove_rc" != 0 ] || [ "$unit_rc" != 0 ] || [ "$bad" != 0 ] \
   || [ ${#killed[@]} != 0 ]
then
    echo "test-valgrind: FAIL"
    exit 1
fi

echo "test-valgrind: PASS"
