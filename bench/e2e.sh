#!/usr/bin/env bash
# bench/e2e.sh [gone|memory|all]: what bench/http.sh (issue 10) does not cover.
#
#   gone    wrk against GET /v1/profile (410 Gone, answered by route: the cheapest path
#           through the pipeline) on pipelines/serve under socat, against nginx returning a
#           fixed 200 and the Python reference (bench/python_reference.py, which answers
#           the path with a 404: the same work), in the same run: keep-alive with 1 and 16
#           connections and a new connection per request (Connection: close)
#   memory  the resident memory of one connection's pipeline (the 7 filters, the sh that
#           runs pipelines/connection and socat's relay), from /proc/PID/status VmRSS while
#           a keep-alive connection is open: after 1 request and after 2,000 more (it must
#           not grow)
#
#   EDGEPIPE_BIN    the release binaries (default .build/release)
#   BENCH_DURATION  seconds per wrk run (default 5)
# Needs wrk, nginx, socat, python3 with PyJWT. Prints Markdown on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
what=${1:-all}
PATH=$PATH:/usr/sbin:/sbin
bench_target() {   # label url expected-status
    local got
    got=$(curl -s -o /dev/null -w '%{http_code}' "$2")
    [ "$got" = "$3" ] || { echo "e2e.sh: $2 answered $got, not $3" >&2; exit 1; }
    for mode in keep-alive close; do
        for conns in 1 16; do run_wrk "$1" "$2" "$mode" "$conns"; done
    done
}

gone() {
    echo "wrk against \`GET /v1/profile\` (410 from route), ${DURATION} s a run:"
    echo "\`wrk -t1 -c1\` or \`-t2 -c16\`, \`--latency\`; *close* adds \`-H 'Connection: close'\`. wrk shares"
    echo "the 2 cores with the server. Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| target | mode | conns | req/s | p50 ms | p99 ms | socket errors |"
    echo "|---|---|---|---|---|---|---|"
    local p
    p=$(free_port)
    start env EDGEPIPE_PORT="$p" "$top/pipelines/serve" --max-connections 256
    wait_port "$p"; bench_target "edgepipe (socat)" "http://127.0.0.1:$p/v1/profile" 410; stop_last

    p=$(free_port)
    start python3 "$top/bench/python_reference.py" --port "$p" --jwks "$EDGEPIPE_DEV_KEYS/jwks.json" --kv "$EDGEPIPE_KV"
    wait_port "$p"; bench_target "Python reference (404)" "http://127.0.0.1:$p/v1/profile" 404; stop_last

    p=$(free_port)
    mkdir -p "$work/nginx/tmp"
    cat >"$work/nginx/nginx.conf" <<CONF
$([ "$(id -u)" = 0 ] && echo "user $(id -un) $(id -gn);")
worker_processes $(nproc);
pid $work/nginx/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/tmp/body; proxy_temp_path $work/nginx/tmp/proxy;
    fastcgi_temp_path $work/nginx/tmp/fastcgi; uwsgi_temp_path $work/nginx/tmp/uwsgi; scgi_temp_path $work/nginx/tmp/scgi;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:$p;
        location / { default_type application/json; return 200 '{"status":"ok"}'; }
    }
}
CONF
    start nginx -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" -g 'daemon off;'
    wait_port "$p"; bench_target "nginx, fixed 200 (upper bound)" "http://127.0.0.1:$p/v1/profile" 200; stop_last
    echo
}

memory() {
    local p
    p=$(free_port)
    start env EDGEPIPE_PORT="$p" "$top/pipelines/serve"
    wait_port "$p"
    echo "Resident memory of one connection's processes (\`VmRSS\` in \`/proc/PID/status\`), with one"
    echo "keep-alive connection open doing \`GET /v1/subscription\` with a valid token:"
    echo
    python3 - "$p" "$EDGEPIPE_DATA" "$TOKEN" <<'PY'
import os, re, socket, sys
port, data, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sock = socket.create_connection(("127.0.0.1", port))
request = f"GET /v1/subscription HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
def exchange():
    sock.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(rest) < length:
        rest += sock.recv(65536)
def pipeline():
    rows = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue   # this client
        try:
            if f"EDGEPIPE_DATA={data}\0".encode() not in open(f"/proc/{pid}/environ", "rb").read():
                continue
            status = open(f"/proc/{pid}/status").read()
            name = re.search(r"Name:\s*(\S+)", status).group(1)
            ppid = int(re.search(r"PPid:\s*(\d+)", status).group(1))
            rss = int(re.search(r"VmRSS:\s*(\d+)", status).group(1))
            parent = re.search(r"Name:\s*(\S+)", open(f"/proc/{ppid}/status").read()).group(1)
        except (OSError, AttributeError):
            continue
        if name == "socat" and parent != "socat":
            continue   # the listener, shared by all connections
        if name == "socat":
            name = "socat (relay)"
        rows[name] = rows.get(name, 0) + rss
    return rows
exchange()
after_one = pipeline()
for _ in range(2000):
    exchange()
after_many = pipeline()
order = ["socat (relay)", "connection", "sh", "http-decode", "route", "verify-jwt", "kv", "apply-webhook", "audit", "http-encode"]
names = sorted(after_one, key=lambda n: order.index(n) if n in order else 99)
print("| process | VmRSS KiB after 1 request | after 2,001 |")
print("|---|---|---|")
for n in names:
    print(f"| {n} | {after_one[n]} | {after_many.get(n, 0)} |")
filters = [n for n in names if n in order[3:]]
print(f"| **the 7 filters** | **{sum(after_one[n] for n in filters)}** | **{sum(after_many.get(n, 0) for n in filters)}** |")
print(f"| **all** | **{sum(after_one.values())}** | **{sum(after_many.values())}** |")
print()
PY
    stop_last
}

case "$what" in
    gone) gone ;;
    memory) memory ;;
    all) gone; memory ;;
    *) echo "usage: bench/e2e.sh [gone|memory|all]" >&2; exit 2 ;;
esac
