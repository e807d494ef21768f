#!/usr/bin/env bash
# bench/forward-auth.sh: what forward-auth costs (docs/forward-auth.md). wrk GETs a fixed
# 200 from an nginx backend with a valid token, at 1 and 16 keep-alive connections:
#
#   direct          straight to the backend (the floor)
#   nginx proxy     nginx proxy_pass, no auth (what forwarding alone costs)
#   nginx fa        pipelines/forward-auth nginx: auth_request to edgepipe's auth
#                   pipelines, then proxy_pass
#   caddy fa        pipelines/forward-auth caddy: forward_auth, then reverse_proxy
#
#   BENCH_DURATION  seconds per wrk run (default 5)
# Needs wrk, nginx (and caddy for its rows). Prints Markdown on stdout. Numbers only mean
# something on a quiet machine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
PATH=$PATH:/usr/sbin:/sbin

backend_port=$(free_port) proxy_port=$(free_port)
user_line=
[ "$(id -u)" = 0 ] && user_line="user $(id -un) $(id -gn);"
# One worker each: the backend and the proxy must not take the CPUs edgepipe measures on.
nginx_conf() {   # DIR SERVER-BLOCK
    mkdir -p "$1/tmp"
    cat >"$1/nginx.conf" <<EOF
$user_line
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $1/tmp/body; proxy_temp_path $1/tmp/proxy; fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi; scgi_temp_path $1/tmp/scgi;
    keepalive_requests 1000000;
    upstream backend { server 127.0.0.1:$backend_port; keepalive 32; }
    $2
}
EOF
}
nginx_conf "$work/backend" "server { listen 127.0.0.1:$backend_port; location / { return 200 'ok'; } }"
start nginx -p "$work/backend" -c "$work/backend/nginx.conf" -g 'daemon off;'
wait_port "$backend_port"

WRK_HEADERS=(-H "Authorization: Bearer $TOKEN")
echo "wrk GET with a valid token, keep-alive, ${DURATION} s a run; machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| path | mode | conns | req/s | p50 ms | p99 ms | socket errors |"
echo "|---|---|---|---|---|---|---|"
rows() { for conns in 1 16; do run_wrk "$1" "$2" keep-alive "$conns"; done; }
rows direct "http://127.0.0.1:$backend_port/"

nginx_conf "$work/proxy" "server { listen 127.0.0.1:$proxy_port; location / {
        proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://backend; } }"
start nginx -p "$work/proxy" -c "$work/proxy/nginx.conf" -g 'daemon off;'
wait_port "$proxy_port"
rows "nginx proxy" "http://127.0.0.1:$proxy_port/"
stop_last

for proxy in nginx caddy; do
    command -v "$proxy" >/dev/null || { echo "| $proxy fa | ($proxy not installed) | | | | | |"; continue; }
    port=$(free_port) auth_port=$(free_port)
    start "$top/pipelines/forward-auth" "$proxy" --port "$port" --auth-port "$auth_port" \
        --backend "127.0.0.1:$backend_port" --workers 1 --keepalive 32
    wait_port "$port"
    # The first answers may come from `nginx -t`'s moment on the port: wait for a 200.
    for _ in $(seq 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/")" = 200 ] && break
        sleep 0.1
    done
    rows "$proxy fa" "http://127.0.0.1:$port/"
    stop_last
done
