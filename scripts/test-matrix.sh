#!/usr/bin/env bash
# make test-matrix: the suite on every nginx the module supports, loaded
# (load_module) and built in (--add-module), and the Debian package test
# on each Debian release that gets a package.
#
#     scripts/test-matrix.sh                 all of it (root, Debian 12)
#     scripts/test-matrix.sh --here STEP...  steps on this machine only
#
#   release          nginx    where               steps
#   Debian 12        1.22.1   this machine        dynamic static deb
#   Debian 13        1.26.x   build/chroot/trixie dynamic static deb
#   Debian unstable  1.30.x   build/chroot/sid    dynamic static deb
#
#   dynamic  the module built with the release's nginx-dev and its
#            conf_flags (make build), the unit tests and the whole suite
#            (prove -r t/) with load_module into the release's nginx
#   static   the release's nginx source tarball from Debian's archive
#            (scripts/nginx-source.sh), configured with the release's
#            conf_flags plus --add-module (scripts/static-nginx.sh), and
#            the whole suite against that nginx (TAVUS_MODULE=static); a
#            tarball that the Sources index names but the mirror does not
#            have (nginx-dev has headers only, nothing else to build) is
#            "unavailable" in the summary, which does not fail the run
#            unless MATRIX_STRICT=1
#   deb      the package built in the release with dh_nginx, linted,
#            installed with dpkg on the release's stock nginx.conf, used
#            and purged (make test-deb)
#
# The chroots (scripts/chroot.sh) and the tarballs are cached under
# build/, so a second run only rebuilds what changed and runs the tests.
# Each step's output is in build/matrix/logs/; a summary table closes the
# output.  A failing step does not stop the others; the exit status is
# 1 if any failed.
#
# Environment: MATRIX_RELEASES (default "bookworm trixie sid"),
# MATRIX_STEPS (default "dynamic static deb"), MATRIX_STRICT=1 (an
# unavailable tarball fails the run), MATRIX_NGINX_SOURCE_<release>
# (an nginx source tarball to build in instead of the archive's, e.g.
# MATRIX_NGINX_SOURCE_sid=nginx-1.30.4.tar.gz from nginx.org; a tarball
# of nginx's git tree, which has auto/configure only, works too),
# PROVE_JOBS (default 2).

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

jobs=${PROVE_JOBS:-2}
logs=$top/build/matrix/logs

say() { echo "matrix: $*" >&2; }

# one step here: STEP [ARG]; appends "step|source|result|seconds" to
# $results

run_step() {
    local step=$1 arg=${2:-} start rc=0 log src=''

    log=$logs/$step.log
    mkdir -p "$logs"
    start=$(date +%s)
    say "$step: $(nginx -v 2>&1 | sed 's/.*version: //') on" \
        "$(. /etc/os-release; echo "$PRETTY_NAME")"

    case $step in
        dynamic)
            src='nginx-dev'
            {
                make -s build "build/unit" &&
                prove -j"$jobs" -r t/
            } > "$log" 2>&1 || rc=$?
            ;;
        static)
            # a bare name: the tarball the mirror does not have
            if [[ $arg == nginx_* ]]; then
                echo "static|$arg not on the mirror|unavailable|0" \
                    >> "$results"
                say "static: $arg is not on the mirror"
                return
            fi
            src="tarball $(basename "$arg")"
            {
                make -s build "build/unit" &&
                nginx=$(bash scripts/static-nginx.sh "$arg" build/static |
                        tail -1) &&
                "$nginx" -v &&
                TAVUS_MODULE=static TAVUS_NGINX=$nginx \
                    prove -j"$jobs" -r t/
            } > "$log" 2>&1 || rc=$?
            # the nginx built, which need not be the release's own
            if [ -x "${nginx:-}" ]; then
                src="$src, $("$nginx" -v 2>&1 | sed 's/.*version: //')"
            fi
            ;;
        deb)
            src='dh_nginx'
            make -s test-deb > "$log" 2>&1 || rc=$?
            ;;
        *)
            say "unknown step $step"
            rc=2
            ;;
    esac

    local seconds=$(( $(date +%s) - start ))
    local result=pass

    if [ $rc != 0 ]; then
        result=FAIL
        tail -40 "$log" >&2
        say "$step failed; its log is $log"
    else
        grep -E '^(Files=|Result:)' "$log" | sed 's/^/    /' >&2 || true
    fi

    echo "$step|$src|$result|$seconds" >> "$results"
}

if [ "${1:-}" = --here ]; then
    shift
    results=${MATRIX_RESULTS:?MATRIX_RESULTS: the file for the results}
    for s in "$@"; do
        case $s in
            static=*) run_step static "${s#static=}" ;;
            *) run_step "$s" ;;
        esac
    done
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    say "needs root: chroots, and the package test installs packages"
    exit 1
fi

mkdir -p build/matrix
exec 9> build/matrix/lock
flock -n 9 || { say "another test-matrix runs in $top"; exit 1; }

releases=${MATRIX_RELEASES:-bookworm trixie sid}
steps=${MATRIX_STEPS:-dynamic static deb}
summary=build/matrix/summary
: > "$summary"
t0=$(date +%s)

# the host's own packages first: this is the Debian 12 machine
sh scripts/deps.sh lintian

for rel in $releases; do
    rstart=$(date +%s)
    tarball=''

    todo=()
    for s in $steps; do
        [ "$s" = static ] || { todo+=("$s"); continue; }

        # a tarball the operator gives, e.g. nginx.org's, for this release
        given=MATRIX_NGINX_SOURCE_$rel
        if [ -n "${!given:-}" ]; then
            todo+=("static=$(realpath "${!given}")")
            continue
        fi

        src_rc=0
        tarball=$(bash scripts/nginx-source.sh "$rel" build/src \
                  2> build/matrix/nginx-source-$rel.log | tail -1) || src_rc=$?
        case $src_rc in
            0) todo+=("static=$tarball") ;;
            3) todo+=("static=$(sed -n 's/.*: \(nginx_.*tar.gz\) was not.*/\1/p' \
                                 build/matrix/nginx-source-$rel.log)") ;;
            *) cat build/matrix/nginx-source-$rel.log >&2
               todo+=("static=") ;;
        esac
    done

    if [ "$rel" = bookworm ]; then
        . /etc/os-release
        if [ "${VERSION_CODENAME:-}" != bookworm ]; then
            say "bookworm runs on this machine, which is $PRETTY_NAME"
            exit 1
        fi
        results=build/matrix/results-$rel
        : > "$results"
        MATRIX_RESULTS=$top/$results bash "$0" --here "${todo[@]}"
    else
        root=build/chroot/$rel
        setup_rc=0
        bash scripts/chroot.sh "$rel" "$root" || setup_rc=$?

        if [ $setup_rc != 0 ]; then
            results=build/matrix/results-$rel
            echo "chroot|debootstrap|FAIL|$(( $(date +%s) - rstart ))" \
                > "$results"
        else
            # this tree, without build/ and .git, as /src; the chroot's own
            # build/ stays, so that make rebuilds only what changed
            mkdir -p "$root/src"
            find "$root/src" -mindepth 1 -maxdepth 1 ! -name build \
                -exec rm -rf --one-file-system {} +
            tar -C "$top" --exclude=./build --exclude=./.git -cf - . |
                tar -C "$root/src" -xf -

            inner=()
            for s in "${todo[@]}"; do
                if [[ $s == static=/* ]]; then
                    mkdir -p "$root/var/cache/tavus"
                    cp -p "${s#static=}" "$root/var/cache/tavus/"
                    s=static=/var/cache/tavus/$(basename "${s#static=}")
                fi
                inner+=("$s")
            done

            mkdir -p "$root/src/build/matrix"
            : > "$root/src/build/matrix/results"
            bash scripts/chroot.sh "$rel" "$root" -- \
                /usr/bin/env MATRIX_RESULTS=/src/build/matrix/results \
                PROVE_JOBS="$jobs" \
                sh -c 'cd /src && exec bash scripts/test-matrix.sh --here "$@"' \
                matrix "${inner[@]}" || true

            results=build/matrix/results-$rel
            cp "$root/src/build/matrix/results" "$results"
            mkdir -p "$logs/$rel"
            cp "$root"/src/build/matrix/logs/*.log "$logs/$rel/" 2>/dev/null ||
                true
        fi
    fi

    version=$(if [ "$rel" = bookworm ]; then nginx -v 2>&1;
              else chroot "build/chroot/$rel" nginx -v 2>&1 || true; fi |
              sed -n 's|.*nginx/||p')
    while IFS='|' read -r step src result seconds; do
        echo "$rel|${version:-?}|$step|$src|$result|$seconds" >> "$summary"
    done < "$results"
    say "$rel: $(( $(date +%s) - rstart )) s"
done

echo
echo "| Debian | nginx | build | source | result | seconds |"
echo "|---|---|---|---|---|---|"
failed=0
while IFS='|' read -r rel version step src result seconds; do
    echo "| $rel | $version | $step | $src | $result | $seconds |"
    case $result in
        pass) ;;
        unavailable) [ "${MATRIX_STRICT:-0}" = 1 ] && failed=1 ;;
        *) failed=1 ;;
    esac
done < "$summary"
echo
echo "test-matrix: $(( $(date +%s) - t0 )) s in all"

exit $failed
