#!/usr/bin/env bash
# make run: nginx with ngx_http_tavus_module in the foreground on
# 127.0.0.1:8080, in front of an embedded mock Tavus API on another
# loopback port, or, with TAVUS_API_KEY and TAVUS_URL set, in front of
# that API.  Ctrl-C stops everything.
#
# It prints the requests of README.md's `make run` section, each with
# what it answers; t/64-make-run.t checks that the two agree, and runs
# them against this script's nginx.
#
# Environment:
#   TAVUS_API_KEY, TAVUS_URL   front a real API (e.g. https://tavusapi.com)
#   TAVUS_LISTEN               gateway address, default 127.0.0.1:8080
#   TAVUS_NGINX                nginx binary, default /usr/sbin/nginx
#   TAVUS_MODULE               the module to load, default
#                              build/ngx_http_tavus_module.so; "static":
#                              TAVUS_NGINX has it built in (--add-module)
#   TAVUS_RUN_DIR              nginx's prefix, default build/run

set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
prefix=${TAVUS_RUN_DIR:-$top/build/run}
module=${TAVUS_MODULE:-$top/build/ngx_http_tavus_module.so}
nginx=${TAVUS_NGINX:-/usr/sbin/nginx}
listen=${TAVUS_LISTEN:-127.0.0.1:8080}

if [ "${TAVUS_MODULE:-}" = static ]; then
    load=""
else
    [ -f "$module" ] ||
        { echo "run: $module is missing: make build" >&2; exit 1; }
    load="load_module $module;"
fi

# the suite's port policy: outside the kernel's ephemeral range (see
# t/lib/TavusProc.pm)
free_port() {
    perl -I "$top/t/lib" -MTavusProc -e 'print TavusProc::free_port(), "\n"'
}

rm -rf "$prefix"
mkdir -p "$prefix/logs" "$prefix/temp"
chmod 700 "$prefix"

if [ -n "${TAVUS_API_KEY:-}" ] && [ -n "${TAVUS_URL:-}" ]; then
    mode="the API at $TAVUS_URL"
    upstream=$TAVUS_URL
    printf '%s\n' "$TAVUS_API_KEY" > "$prefix/api.key"
    mock=""
else
    mock_port=$(free_port)
    mock_key="demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    mode="the mock Tavus API on 127.0.0.1:$mock_port"
    upstream="http://127.0.0.1:$mock_port"
    printf '%s\n' "$mock_key" > "$prefix/api.key"
    mock=$(sed -e "s/%%MOCK_NAME%%/tavus/g" \
               -e "s/%%MOCK_PORT%%/$mock_port/g" \
               -e "s/%%MOCK_KEY%%/$mock_key/g" \
               "$top/t/lib/mock-tavus.conf")
fi

chmod 600 "$prefix/api.key"

cat > "$prefix/nginx.conf" <<EOF
$load

daemon off;
worker_processes 1;
pid $prefix/nginx.pid;
error_log stderr notice;

events {
    worker_connections 256;
}

http {
    client_body_temp_path $prefix/temp/body;
    proxy_temp_path $prefix/temp/proxy;
    fastcgi_temp_path $prefix/temp/fastcgi;
    uwsgi_temp_path $prefix/temp/uwsgi;
    scgi_temp_path $prefix/temp/scgi;

    tavus_metrics_zone tavus 1m;
    tavus_metrics_label \$server_name;

    log_format tavus '\$remote_addr "\$request" \$status '
                     'outcome=\$tavus_outcome replica=\$tavus_replica_id '
                     'upstream_status=\$upstream_status '
                     'key=\$tavus_api_key_fingerprint';

    server {
        listen $listen;
        server_name gateway;
        access_log /dev/stdout tavus;

        location ~ ^/v2/replicas/(?<replica_id>[^/]*)\$ {
            tavus_delete_replica \$replica_id;
            tavus_pass $upstream;
            tavus_api_key_file $prefix/api.key;

            # ?dry_run=1: every check, nothing sent upstream
            tavus_dry_run \$arg_dry_run;
        }

        location = /metrics {
            tavus_metrics;
        }

        location / {
            default_type application/json;
            return 404 '{"error":"try DELETE /v2/replicas/{replica_id}"}\n';
        }
    }

$mock
}
EOF

"$nginx" -t -q -p "$prefix" -c "$prefix/nginx.conf" -e /dev/stderr

# README.md's lines, word for word (t/64-make-run.t)
cat <<EOF
ngx_tavus_module: listening on http://$listen, in front of $mode.
Try:
    # 200 deleted: a delete, which the mock carries out
    curl -i -X DELETE http://$listen/v2/replicas/rf3073f2dcc1
    # 400 invalid_replica_id: refused by the module itself, the mock not asked
    curl -i -X DELETE http://$listen/v2/replicas/a.b
    # 405 method_not_allowed: a GET, refused by the module
    curl -i http://$listen/v2/replicas/rf3073f2dcc1
    # 403 hard_delete_denied: a hard delete, which this location does not allow
    curl -i -X DELETE 'http://$listen/v2/replicas/rf3073f2dcc1?hard=true'
    # 200 dry_run: every check passes, and nothing is sent to the mock
    curl -i -X DELETE 'http://$listen/v2/replicas/rf3073f2dcc1?dry_run=1'
    # 200: the counters of the requests above, in Prometheus' text format
    curl -i http://$listen/metrics
Ctrl-C stops it.
EOF

exec "$nginx" -p "$prefix" -c "$prefix/nginx.conf" -e /dev/stderr
