#!/usr/bin/env bash
# make run: nginx with ngx_http_tavus_module in the foreground on
# 127.0.0.1:8080, in front of an embedded mock Tavus API on another
# loopback port, or, with TAVUS_API_KEY and TAVUS_URL set, in front of
# that API.  Ctrl-C stops everything.
#
# Environment:
#   TAVUS_API_KEY, TAVUS_URL   front a real API (e.g. https://tavusapi.com)
#   TAVUS_LISTEN               gateway address, default 127.0.0.1:8080
#   TAVUS_NGINX                nginx binary, default /usr/sbin/nginx

set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
prefix=$top/build/run
module=$top/build/ngx_http_tavus_module.so
nginx=${TAVUS_NGINX:-/usr/sbin/nginx}
listen=${TAVUS_LISTEN:-127.0.0.1:8080}

[ -f "$module" ] || { echo "run: $module is missing: make build" >&2; exit 1; }

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
load_module $module;

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

cat <<EOF
ngx_tavus_module: listening on http://$listen, in front of $mode.
Try:
    curl -i -X DELETE http://$listen/v2/replicas/rf3073f2dcc1
    curl -i -X DELETE http://$listen/v2/replicas/not-a-replica
    curl http://$listen/metrics
Ctrl-C stops it.
EOF

exec "$nginx" -p "$prefix" -c "$prefix/nginx.conf" -e /dev/stderr
