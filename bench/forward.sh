#!/usr/bin/env bash
# bench/forward.sh [wrk|idle|memory|stages|all] [ROUNDS]: issue 16's forwarding benchmarks, as Markdown
# on stdout. Run it on a quiet machine; results go to BENCHMARKS.md.
#
#   wrk     GET /api/x with a valid token, wrk at 1 and 16 keep-alive connections, through
#           each target in alternating rounds (ROUNDS, default 3), so that a drift in the
#           machine's load hits every target alike; then the issue's ratios per round:
#             backend      nginx answering a fixed 200 (the floor)
#             proxy_pass   nginx proxy_pass to it, no auth
#             auth_request nginx auth_request to edgepipe's auth route, then proxy_pass
#             serve        pipelines/serve (socat), forward to the backend
#             front        pipelines/front (nginx in front of read pipelines), forward
#             serve-sep, front-sep  the same with EDGEPIPE_CHAIN=0: route, verify-jwt, forward
#                          and kv serve each in a process of its own, as before chain
#   idle    what an idle forward stage (an upstreams file with no upstream) costs per
#           request: bench/lockstep.py on verify-jwt's real output, forward against cat
#   stages  callgrind's instructions per forwarded request in each stage (exact; see stages())
#   memory  a forward process's RSS before and after MEM_REQUESTS (default 100000) requests
#           on one keep-alive connection through pipelines/serve
#
# Environment: BENCH_DURATION (seconds per wrk run, default 5), AUTH_PATH (the path of
# verify-jwt's auth route, default /auth), MEM_REQUESTS.
# Needs: wrk nginx socat python3 with PyJWT; the release binaries.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
PATH=$PATH:/usr/sbin:/sbin
for tool in wrk nginx socat python3; do
    command -v "$tool" >/dev/null || { echo "bench/forward.sh: $tool is missing (apt-get install -y $tool)" >&2; exit 1; }
done
mode=${1:-all} ROUNDS=${2:-3}
AUTH_PATH=${AUTH_PATH:-/auth}
MEM_REQUESTS=${MEM_REQUESTS:-100000}
user=""; [ "$(id -u)" = 0 ] && user="user root;"

# The backend: nginx answering a fixed 200 on /api/, and an nginx proxy config in front of
# it, with and without auth_request to edgepipe.
nginx_conf() {   # dir port body-of-server-block
    mkdir -p "$1/tmp"
    cat >"$1/nginx.conf" <<EOF
$user
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $1/tmp; proxy_temp_path $1/tmp; fastcgi_temp_path $1/tmp;
    uwsgi_temp_path $1/tmp; scgi_temp_path $1/tmp;
    upstream backend { server 127.0.0.1:$BACKEND; keepalive 32; }
    upstream edgepipe { server 127.0.0.1:${SERVE:-1}; keepalive 32; }
    server {
        listen 127.0.0.1:$2;
        $3
    }
}
EOF
}

start_backend() {
    BACKEND=$(free_port)
    nginx_conf "$work/backend" "$BACKEND" 'location / { return 200 "ok\n"; }'
    start nginx -c "$work/backend/nginx.conf" -p "$work/backend"
    wait_port "$BACKEND"
    # The routes and upstreams of the forwarding targets: /api/* is forwarded to the backend.
    cp "$top/pipelines/routes" "$work/routes"
    echo '*   /api/*   api' >>"$work/routes"
    echo "api   http://127.0.0.1:$BACKEND" >"$work/upstreams"
}

setup_targets() {
    start_backend
    export EDGEPIPE_ROUTES=$work/routes EDGEPIPE_UPSTREAMS=$work/upstreams

    SERVE=$(free_port)
    EDGEPIPE_PORT=$SERVE start "$top/pipelines/serve" --max-connections 64
    wait_port "$SERVE"

    FRONT=$(free_port)
    EDGEPIPE_DATA=$EDGEPIPE_DATA start "$top/pipelines/front" --port "$FRONT" --tls-port "$(free_port)" \
        --upstream-port "$(free_port)" --write-upstream-port "$(free_port)"
    wait_port "$FRONT"

    SERVE_SEP=$(free_port)
    EDGEPIPE_CHAIN=0 EDGEPIPE_PORT=$SERVE_SEP start "$top/pipelines/serve" --max-connections 64
    wait_port "$SERVE_SEP"

    FRONT_SEP=$(free_port)
    EDGEPIPE_CHAIN=0 EDGEPIPE_DATA=$EDGEPIPE_DATA start "$top/pipelines/front" --port "$FRONT_SEP" --tls-port "$(free_port)" \
        --upstream-port "$(free_port)" --write-upstream-port "$(free_port)"
    wait_port "$FRONT_SEP"

    PROXY=$(free_port)
    nginx_conf "$work/proxy" "$PROXY" 'location / { proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://backend; }'
    start nginx -c "$work/proxy/nginx.conf" -p "$work/proxy"
    wait_port "$PROXY"

    AUTHREQ=$(free_port)
    nginx_conf "$work/authreq" "$AUTHREQ" "
            location / {
                auth_request /_auth;
                auth_request_set \$uid \$upstream_http_x_authenticated_uid;
                proxy_set_header X-Authenticated-UID \$uid;
                proxy_set_header Authorization \"\";
                proxy_http_version 1.1; proxy_set_header Connection \"\";
                proxy_pass http://backend;
            }
            location = /_auth {
                internal;
                proxy_http_version 1.1; proxy_set_header Connection \"\";
                proxy_pass_request_body off; proxy_set_header Content-Length \"\";
                proxy_pass http://edgepipe$AUTH_PATH;
            }"
    start nginx -c "$work/authreq/nginx.conf" -p "$work/authreq"
    wait_port "$AUTHREQ"

    declare -gA url=(
        [backend]="http://127.0.0.1:$BACKEND/api/x" [proxy_pass]="http://127.0.0.1:$PROXY/api/x"
        [auth_request]="http://127.0.0.1:$AUTHREQ/api/x" [serve]="http://127.0.0.1:$SERVE/api/x"
        [front]="http://127.0.0.1:$FRONT/api/x" [serve-sep]="http://127.0.0.1:$SERVE_SEP/api/x"
        [front-sep]="http://127.0.0.1:$FRONT_SEP/api/x")
    targets=()
    for t in backend proxy_pass auth_request serve front serve-sep front-sep; do
        if [ "$(curl -s -H "Authorization: Bearer $TOKEN" "${url[$t]}")" = ok ]; then
            targets+=("$t")
        else
            echo "bench/forward.sh: $t does not answer ok; left out (auth_request needs verify-jwt's auth route at $AUTH_PATH)" >&2
        fi
    done
}
WRK_HEADERS=(-H "Authorization: Bearer $TOKEN")

wrk_rounds() {
    echo "## wrk: GET /api/x with a valid token, keep-alive"
    echo
    echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); ${DURATION} s per run; rounds alternate the targets."
    echo
    echo "| target | mode | conns | req/s | p50 ms | p99 ms | socket errors |"
    echo "|---|---|---|---|---|---|---|"
    : >"$work/rows"
    for round in $(seq "$ROUNDS"); do
        for t in "${targets[@]}"; do
            for conns in 1 16; do
                row=$(run_wrk "$t" "${url[$t]}" keep-alive "$conns")
                echo "$row"
                echo "$round $row" >>"$work/rows"
            done
        done
    done
    echo
    echo "Per round: added p50 at 1 connection (target p50 - backend p50), as a multiple of proxy_pass's;"
    echo "requests/s at 16 connections as a share of proxy_pass's (issue 16: at most 6x; front at least 25%)."
    echo
    awk -F'|' '{ split($1, r, " "); round = r[1]; t = $2; gsub(/ /, "", t); c = $4 + 0;
                 if (c == 1) p50[round, t] = $6 + 0; else rps[round, t] = $5 + 0; rounds[round] = 1; names[t] = 1 }
        END {
            for (round in rounds) {
                base = p50[round, "backend"]; added = p50[round, "proxy_pass"] - base
                line = "round " round ":"
                for (t in names) if (t != "backend" && t != "proxy_pass") {
                    line = line " " t
                    if (added > 0) line = line sprintf(" %.1fx added p50,", (p50[round, t] - base) / added)
                    else line = line " (proxy_pass added no p50 this round),"
                    if (rps[round, "proxy_pass"] > 0) line = line sprintf(" %.0f%% of proxy_pass req/s;", 100 * rps[round, t] / rps[round, "proxy_pass"])
                }
                print "- " line
            }
        }' "$work/rows" | sort
}

idle() {
    echo "## An idle forward stage"
    echo
    local dir=$work/stages
    stage_inputs "$dir"
    : >"$work/empty-upstreams"
    # DIR/3 is what verify-jwt writes: forward's real input on the read path.
    local c f
    c=$(python3 "$top/bench/lockstep.py" cat "$dir/3" 20000 2>&1 >/dev/null | awk '{print $1, $2}')
    f=$(python3 "$top/bench/lockstep.py" "$BIN/forward --upstreams $work/empty-upstreams" "$dir/3" 20000 2>&1 >/dev/null | awk '{print $1, $2}')
    echo "- lock-step, 20,000 records of verify-jwt's output: cat $c; forward (no upstream) $f"
    python3 -c "import sys; r = open(sys.argv[1], 'rb').readline(); open(sys.argv[2], 'wb').write(r * 200000)" "$dir/3" "$work/many"
    local t0 t1
    t0=$( { /usr/bin/time -f '%U %S' cat <"$work/many" >/dev/null; } 2>&1 )
    t1=$( { /usr/bin/time -f '%U %S' "$BIN/forward" --upstreams "$work/empty-upstreams" <"$work/many" >/dev/null; } 2>&1 )
    echo "- CPU for 200,000 records in one stream (user sys, seconds): cat $t0; forward (no upstream) $t1"
    local s
    s=$(free_port)
    : >"$work/none"
    echo "- GET /v1/subscription through pipelines/serve at 1 connection, with the forward stage (no upstream):"
    echo
    echo "| target | mode | conns | req/s | p50 ms | p99 ms | socket errors |"
    echo "|---|---|---|---|---|---|---|"
    EDGEPIPE_PORT=$s EDGEPIPE_UPSTREAMS=$work/none start "$top/pipelines/serve" --max-connections 64
    wait_port "$s"
    run_wrk "serve, idle forward" "http://127.0.0.1:$s/v1/subscription" keep-alive 1
    stop_last
}

memory() {
    echo "## forward's memory over $MEM_REQUESTS requests (in the connection's chain process, or its own)"
    echo
    python3 - "$SERVE" "$TOKEN" "$MEM_REQUESTS" <<'EOF'
import http.client, subprocess, sys
port, token, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
def run(k):
    for _ in range(k):
        conn.request("GET", "/api/x", headers={"Authorization": f"Bearer {token}"})
        r = conn.getresponse(); r.read()
        assert r.status == 200, r.status
run(1000)
name = "chain"
pids = subprocess.run(["pgrep", "-n", "-x", name], capture_output=True, text=True).stdout.split()
if not pids:
    name = "forward"
    pids = subprocess.run(["pgrep", "-n", "-x", name], capture_output=True, text=True).stdout.split()
def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
before = rss(pids[0])
run(n)
after = rss(pids[0])
print(f"- RSS of the connection's {name} process: {before} KiB after 1,000 requests, {after} KiB after {n + 1000:,}")
EOF
}

# stages: callgrind's instructions per forwarded request in each stage of the read pipeline
# (exact, whatever the machine's load): N and 10N identical GET /api/x records through each
# stage alone, the stage's input being what the stage before it wrote; metrics and the access
# log on (the defaults) and off.
stages() {
    command -v valgrind >/dev/null || { echo "bench/forward.sh: stages needs valgrind" >&2; exit 1; }
    start_backend
    local pipeline=("http-decode" "route --table $work/routes" "verify-jwt" "forward --upstreams $work/upstreams"
                    "kv serve --route subscription" "http-encode")
    local n i st dir
    for n in 200 2000; do
        dir=$work/stages-$n
        mkdir -p "$dir"
        : >"$dir/0"
        for _ in $(seq "$n"); do
            printf 'GET /api/x HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\nAuthorization: Bearer %s\r\n\r\n' "$TOKEN" >>"$dir/0"
        done
        i=0
        for st in "${pipeline[@]}"; do
            # shellcheck disable=SC2086
            EDGEPIPE_LINGER_MS=0 "$BIN"/$st <"$dir/$i" >"$dir/$((i + 1))"
            i=$((i + 1))
        done
    done
    grep -q '^ok$' "$dir/$i" || { echo "bench/forward.sh: the forwarded request was not answered ok" >&2; exit 1; }
    ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null | awk '/Collected/ {print $NF}'; }
    echo "## Instructions per forwarded request, by stage (callgrind: (2000 records - 200 records) / 1800)"
    echo
    echo "| stage | metrics and access log on | off |"
    echo "|---|---|---|"
    local on off total_on=0 total_off=0
    i=0
    for st in "${pipeline[@]}"; do
        # shellcheck disable=SC2086
        on=$(( ($(EDGEPIPE_LINGER_MS=0 ir "$BIN"/$st <"$work/stages-2000/$i") - $(EDGEPIPE_LINGER_MS=0 ir "$BIN"/$st <"$work/stages-200/$i")) / 1800 ))
        # shellcheck disable=SC2086
        off=$(( ($(EDGEPIPE_METRICS=off EDGEPIPE_ACCESS_LOG=off EDGEPIPE_LINGER_MS=0 ir "$BIN"/$st <"$work/stages-2000/$i") -
                 $(EDGEPIPE_METRICS=off EDGEPIPE_ACCESS_LOG=off EDGEPIPE_LINGER_MS=0 ir "$BIN"/$st <"$work/stages-200/$i")) / 1800 ))
        echo "| ${st%% *} | $on | $off |"
        total_on=$((total_on + on)) total_off=$((total_off + off))
        i=$((i + 1))
    done
    echo "| all six | $total_on | $total_off |"
    # chain runs route, verify-jwt, forward and kv serve in one process: the same four on
    # route's input, once.
    local args=(route --table "$work/routes" '|' verify-jwt '|' forward --upstreams "$work/upstreams"
                '|' kv serve --route subscription)
    on=$(( ($(EDGEPIPE_LINGER_MS=0 ir "$BIN"/chain "${args[@]}" <"$work/stages-2000/1") - $(EDGEPIPE_LINGER_MS=0 ir "$BIN"/chain "${args[@]}" <"$work/stages-200/1")) / 1800 ))
    off=$(( ($(EDGEPIPE_METRICS=off EDGEPIPE_ACCESS_LOG=off EDGEPIPE_LINGER_MS=0 ir "$BIN"/chain "${args[@]}" <"$work/stages-2000/1") -
             $(EDGEPIPE_METRICS=off EDGEPIPE_ACCESS_LOG=off EDGEPIPE_LINGER_MS=0 ir "$BIN"/chain "${args[@]}" <"$work/stages-200/1")) / 1800 ))
    echo "| chain (route to kv serve in one process) | $on | $off |"
    # And the whole read pipeline in one process, on http-decode's input (the raw requests).
    args=(http-decode '|' "${args[@]}" '|' http-encode)
    on=$(( ($(EDGEPIPE_LINGER_MS=0 ir "$BIN"/chain "${args[@]}" <"$work/stages-2000/0") - $(EDGEPIPE_LINGER_MS=0 ir "$BIN"/chain "${args[@]}" <"$work/stages-200/0")) / 1800 ))
    off=$(( ($(EDGEPIPE_METRICS=off EDGEPIPE_ACCESS_LOG=off EDGEPIPE_LINGER_MS=0 ir "$BIN"/chain "${args[@]}" <"$work/stages-2000/0") -
             $(EDGEPIPE_METRICS=off EDGEPIPE_ACCESS_LOG=off EDGEPIPE_LINGER_MS=0 ir "$BIN"/chain "${args[@]}" <"$work/stages-200/0")) / 1800 ))
    echo "| chain (the whole read pipeline, http-decode to http-encode) | $on | $off |"
    stop_last
}

case "$mode" in
    wrk) setup_targets; wrk_rounds ;;
    stages) stages ;;
    idle) idle ;;
    memory) setup_targets; memory ;;
    all) setup_targets; wrk_rounds; echo; idle; echo; memory ;;
    *) echo "usage: bench/forward.sh [wrk|idle|memory|stages|all] [ROUNDS]" >&2; exit 2 ;;
esac
