"""Seeing inside the service (issue 17), with real processes, sockets and peers: request
ids from the socket to the response header, the access log and the audit line; the access
log under 16 concurrent connections and across a real logrotate run; /metrics parsed by
prometheus_client and exact while pipelines start and stop; /readyz going to 503 and back
as Redis, the JWKS endpoint, the audit directory and an upstream go away and come back;
the batch progress line on a pseudo-terminal."""
import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest
import stripe
from prometheus_client.parser import text_string_to_metric_families

from conftest import PIPELINES, Service, binary, free_port, request, run_filter, wait_for_port
from test_redis import RedisServer
from test_service import checkout_event, dev_token, webhook_secret
from test_webhook_support import batch_on_terminal, lifecycle, ndjson, run_batch

MARKER = "PLANTEDSECRET7f3a"


def get(svc, path, headers=None, conn=None):
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    if own:
        conn.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), body


def access_lines(svc, expect=None, timeout=5):
    """The access log's lines, parsed; waits (bounded) until there are `expect` of them."""
    path = svc.data / "log" / "access.log"
    deadline = time.time() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        lines = text.splitlines()
        if expect is None or len(lines) >= expect or time.time() > deadline:
            return [json.loads(l) for l in lines]
        time.sleep(0.05)


def metrics(svc):
    status, headers, body = get(svc, "/metrics")
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    values = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return values


def sample(values, name, **labels):
    return values.get((name, tuple(sorted(labels.items()))), 0)


def sign_webhook(svc, event):
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, webhook_secret(svc), timestamp=int(time.time()))
    return payload, header


# ---------------------------------------------------------------------------- request ids

def test_one_request_id_in_the_response_header_the_access_log_and_the_audit_line(service):
    payload, signature = sign_webhook(service, checkout_event("rid-user", int(time.time())))
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    conn.request("POST", "/v1/webhooks/stripe", body=payload,
                  headers={"Stripe-Signature": signature, "Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    assert r.status == 200
    rid = r.getheader("x-request-id")
    assert rid and len(rid) == 32 and all(c in "0123456789abcdef" for c in rid)
    [line] = [l for l in access_lines(service, expect=1) if l["route"] == "stripe-webhook"]
    assert line["request_id"] == rid and line["status"] == 200 and line["method"] == "POST"
    audit = [json.loads(l) for l in (service.data / "audit" / "audit.log").read_text().splitlines()]
    assert [a["request_id"] for a in audit if a.get("kind") == "stripe"] == [rid]


def test_ids_differ_per_request_and_a_trusted_proxy_id_is_kept_when_well_formed(tmp_path):
    svc = Service(tmp_path, env={"EDGEPIPE_TRUSTED_PROXIES": "127.0.0.1"})
    try:
        ids = {get(svc, "/healthz")[1]["x-request-id"] for _ in range(5)}
        assert len(ids) == 5
        assert get(svc, "/healthz", {"X-Request-Id": "lb-42:abc.DEF_9"})[1]["x-request-id"] == "lb-42:abc.DEF_9"
        for bad in ["a" * 129, "has space", "semi;colon", "quote\"d"]:
            got = get(svc, "/healthz", {"X-Request-Id": bad})[1]["x-request-id"]
            assert got != bad and len(got) == 32
    finally:
        svc.stop()


def test_an_untrusted_peer_cannot_choose_its_request_id(service):
    assert get(service, "/healthz", {"X-Request-Id": "chosen-by-client"})[1]["x-request-id"] != "chosen-by-client"


# ------------------------------------------------------------------------------ access log

def test_access_log_lines_carry_route_status_sizes_duration_uid_and_agent(service):
    token = dev_token(service, "alice")
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    conn.request("GET", "/v1/subscription", headers={"Authorization": f"Bearer {token}", "User-Agent": "probe/1.0"})
    r = conn.getresponse(); r.read()
    conn.request("GET", "/v1/subscription", headers={"Authorization": "Bearer not.a.jwt"})
    r2 = conn.getresponse(); r2.read()
    assert (r.status, r2.status) == (200, 401)
    ok, refused = access_lines(service, expect=2)
    assert ok["route"] == "subscription" and ok["status"] == 200 and ok["uid"] == "alice"
    assert ok["user_agent"] == "probe/1.0" and ok["remote"] == "127.0.0.1" and ok["path"] == "/v1/subscription"
    assert ok["bytes_in"] > 100 and ok["bytes_out"] > 100 and 0 < ok["duration_ms"] < 10_000
    assert ok["time"].endswith("Z") and len(ok["time"]) == len("2026-01-01T00:00:00.000Z")
    assert refused["status"] == 401 and refused["auth_error"] == "malformed" and "uid" not in refused


def test_access_log_never_holds_a_token_cookie_authorization_or_query(service):
    token = dev_token(service, MARKER)   # the marker is the uid: it must show as uid only
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    for path, headers in [
        (f"/v1/subscription?token={MARKER}q", {"Authorization": f"Bearer {token}", "Cookie": f"session={MARKER}c"}),
        (f"/healthz?secret={MARKER}q", {"Authorization": f"Basic {MARKER}b", "Proxy-Authorization": f"{MARKER}p"}),
        ("/v1/subscription", {"Authorization": f"Bearer {MARKER}t.x.y"}),
    ]:
        conn.request("GET", path, headers=headers)
        conn.getresponse().read()
    lines = access_lines(service, expect=3)
    text = (service.data / "log" / "access.log").read_text()
    assert len(lines) == 3
    assert token not in text
    for suffix in ["q", "c", "b", "p", "t"]:
        assert MARKER + suffix not in text
    assert all("query" not in l for l in lines)


def test_the_query_is_logged_only_when_asked_for(tmp_path):
    record = {**request(path="/x", query=f"a={MARKER}"), "status": 200, "body": "",
              "access": {"received_at": 1, "received_us": 1, "bytes_in": 10, "path": "/x", "query": f"a={MARKER}"}}
    for flag, present in [((), False), (("--access-log-query",), True)]:
        log = tmp_path / f"access-{present}.log"
        subprocess.run([binary("http-encode"), "--access-log", str(log), *flag], input=(json.dumps(record) + "\n").encode(),
                       capture_output=True, timeout=10, env={**os.environ, "EDGEPIPE_METRICS": "off"})
        [line] = [json.loads(l) for l in log.read_text().splitlines()]
        assert (line.get("query") == f"a={MARKER}") == present


def test_a_forwarded_response_logs_and_counts_its_upstream(tmp_path):
    metrics_file = tmp_path / "metrics"
    log = tmp_path / "access.log"
    record = {**request(path="/orders/1"), "status": 201, "body": "{}", "request_id": "r-1",
              "access": {"received_at": 1, "received_us": 1, "bytes_in": 10, "path": "/orders/1"},
              "annotations": {"route": {"name": "orders", "params": {}},
                              "upstream": {"name": "orders", "address": "http://127.0.0.1:9001", "status": 201, "ms": 12.5}}}
    env = {**os.environ, "EDGEPIPE_METRICS": str(metrics_file)}
    p = subprocess.run([binary("http-encode"), "--access-log", str(log)], input=(json.dumps(record) + "\n").encode(),
                       capture_output=True, timeout=10, env=env)
    assert p.stdout.startswith(b"HTTP/1.1 201 Created\r\n") and b"x-request-id: r-1\r\n" in p.stdout
    [line] = [json.loads(l) for l in log.read_text().splitlines()]
    assert line["upstream"] == {"name": "orders", "status": 201, "ms": 12.5}
    assert "address" not in line["upstream"]
    # The same file read through verify-jwt's /metrics route.
    req = request(remote="127.0.0.1", annotations={"route": {"name": "metrics"}})
    [out], _ = run_filter("verify-jwt", [req], "--dev-keys", str(tmp_path / "keys"), env={"EDGEPIPE_METRICS": str(metrics_file)})
    text = out["body"]
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for f in text_string_to_metric_families(text) for s in f.samples}
    assert values[("edgepipe_upstream_requests_total", (("status", "201"), ("upstream", "orders")))] == 1
    assert values[("edgepipe_upstream_duration_seconds_bucket", (("le", "0.025"), ("upstream", "orders")))] == 1
    assert values[("edgepipe_upstream_duration_seconds_sum", (("upstream", "orders"),))] == pytest.approx(0.0125)


def test_sixteen_connections_lose_no_line_and_interleave_none(service):
    per_connection = 40
    seen_ids = []
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
        mine = []
        for _ in range(per_connection):
            conn.request("GET", "/healthz", headers={"User-Agent": "x" * 300})   # long lines
            r = conn.getresponse(); r.read()
            assert r.status == 200
            mine.append(r.getheader("x-request-id"))
        conn.close()
        with lock:
            seen_ids.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads: t.start()
    for t in threads: t.join(60)
    lines = access_lines(service, expect=16 * per_connection)
    assert len(seen_ids) == 16 * per_connection
    assert len(lines) == 16 * per_connection, "one line per response, none lost"
    assert sorted(l["request_id"] for l in lines) == sorted(seen_ids), "every response's id exactly once"
    assert all(l["user_agent"] == "x" * 300 for l in lines), "no line torn or interleaved"


def test_logrotate_without_copytruncate_loses_no_line(service):
    if shutil.which("logrotate") is None:
        pytest.fail("logrotate is missing: apt-get install -y logrotate")
    log = service.data / "log" / "access.log"
    conf = service.data / "logrotate.conf"
    conf.write_text(f"{log} {{\n  rotate 3\n  missingok\n  nocompress\n  create 0640\n}}\n")
    state = service.data / "logrotate.state"
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)   # a pipeline that lives across the rotation
    sent = 0
    for round in range(3):
        for _ in range(20):
            conn.request("GET", "/healthz"); conn.getresponse().read(); sent += 1
            get(service, "/healthz"); sent += 1                                  # new pipelines too
        subprocess.run(["logrotate", "-f", "-s", str(state), str(conf)], check=True, timeout=30)
        time.sleep(1.1)   # the writers notice a rotation within a second
    for _ in range(20):
        conn.request("GET", "/healthz"); conn.getresponse().read(); sent += 1
    files = [log] + [log.with_name(f"access.log.{i}") for i in (1, 2, 3)]
    total = 0
    deadline = time.time() + 5
    while time.time() < deadline:
        total = sum(len(f.read_text().splitlines()) for f in files if f.exists())
        if total >= sent:
            break
        time.sleep(0.1)
    assert total == sent
    assert len(log.read_text().splitlines()) == 20, "the kept-alive pipeline writes to the new file after rotation"
    for f in files:
        if f.exists():
            for l in f.read_text().splitlines():
                json.loads(l)


def test_a_failed_write_is_counted_and_reported_once(tmp_path):
    records = [json.dumps({**request(id=str(i)), "status": 200, "body": ""}) for i in range(1, 4)]
    env = {**os.environ, "EDGEPIPE_METRICS": str(tmp_path / "metrics")}
    # /dev/full refuses every write with ENOSPC.
    p = subprocess.run([binary("http-encode"), "--access-log", "/dev/full"], input=("\n".join(records) + "\n").encode(),
                       capture_output=True, timeout=10, env=env)
    assert p.stdout.count(b"HTTP/1.1 200 OK") == 3, "responses are not held up"
    assert p.stderr.decode().count("access log") == 1
    req = request(remote="127.0.0.1", annotations={"route": {"name": "metrics"}})
    [out], _ = run_filter("verify-jwt", [req], "--dev-keys", str(tmp_path / "keys"), env={"EDGEPIPE_METRICS": str(tmp_path / "metrics")})
    assert "edgepipe_access_log_write_errors_total 3\n" in out["body"]


# --------------------------------------------------------------------------------- metrics

def test_metrics_parse_and_count_exactly_while_pipelines_start_and_stop(service):
    # Earlier connections (the fixture's port probe among them) may still be starting their
    # pipelines: settled once two scrapes in a row differ by the second one's own pipeline.
    before = metrics(service)
    for _ in range(50):
        time.sleep(0.1)
        again = metrics(service)
        settled = sample(again, "edgepipe_pipelines_started_total") - sample(before, "edgepipe_pipelines_started_total") == 1
        before = again
        if settled:
            break
    n_threads, per_thread, per_connection = 16, 30, 5
    errors = []

    def client():
        try:
            conn = None
            for i in range(per_thread):
                if i % per_connection == 0:   # a new pipeline every few requests
                    if conn: conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
                conn.request("GET", "/healthz")
                r = conn.getresponse(); r.read()
                if r.status != 200: errors.append(r.status)
            conn.close()
        except Exception as e:   # reported below, with the count
            errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(n_threads)]
    for t in threads: t.start()
    for t in threads: t.join(120)
    assert not errors
    n = n_threads * per_thread
    # The last pipelines count after their response is out: wait for the counters (bounded).
    # Each scrape is a connection, so a pipeline of its own: counted below.
    deadline = time.time() + 5
    scrapes = 0
    while True:
        after = metrics(service)
        scrapes += 1
        got = sample(after, "edgepipe_http_requests_total", route="healthz", status="200") - \
            sample(before, "edgepipe_http_requests_total", route="healthz", status="200")
        if got >= n or time.time() > deadline:
            break
        time.sleep(0.1)
    assert got == n
    durations = sample(after, "edgepipe_http_request_duration_seconds_count", route="healthz") - \
        sample(before, "edgepipe_http_request_duration_seconds_count", route="healthz")
    assert durations == n
    connections = n_threads * per_thread // per_connection
    started = sample(after, "edgepipe_pipelines_started_total") - sample(before, "edgepipe_pipelines_started_total")
    assert started == connections + scrapes, "every connection's pipeline, and each scrape's"
    # The scrape's own pipeline is the one open now (the gauge may lag a closing one briefly).
    assert sample(after, "edgepipe_connections_open") >= 1


def test_metrics_show_refusals_webhooks_store_and_audit(service):
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    for auth in ["Bearer not.a.jwt", "Basic abc"]:
        conn.request("GET", "/v1/subscription", headers={"Authorization": auth}); conn.getresponse().read()
    conn.request("GET", "/v1/subscription"); conn.getresponse().read()
    payload, signature = sign_webhook(service, checkout_event("metrics-user", int(time.time())))
    conn.request("POST", "/v1/webhooks/stripe", body=payload, headers={"Stripe-Signature": signature})
    assert json.loads(conn.getresponse().read()) == {"received": True}
    m = metrics(service)
    assert sample(m, "edgepipe_token_refusals_total", reason="malformed") == 1
    assert sample(m, "edgepipe_token_refusals_total", reason="not_bearer") == 1
    assert sample(m, "edgepipe_token_refusals_total", reason="missing_token") == 1
    assert sample(m, "edgepipe_http_requests_total", route="subscription", status="401") == 3
    assert sample(m, "edgepipe_webhook_events_total", type="checkout.session.completed", outcome="applied") == 1
    assert sample(m, "edgepipe_audit_appends_total") == 1
    store_ops = {dict(labels)["operation"]: v for (name, labels), v in m.items()
                 if name == "edgepipe_store_operations_total" and dict(labels)["backend"] == "directory"}
    assert store_ops.get("get", 0) >= 1 and sum(store_ops.values()) >= 2, store_ops
    assert sample(m, "edgepipe_store_errors_total", backend="directory") == 0


def test_metrics_are_refused_outside_the_allow_list(tmp_path):
    svc = Service(tmp_path, env={"EDGEPIPE_METRICS_ALLOW": "10.0.0.0/8"})
    try:
        status, _, body = get(svc, "/metrics")
        assert status == 403 and json.loads(body)["error"] == "forbidden"
    finally:
        svc.stop()


def test_a_restart_resets_the_counters(tmp_path):
    svc = Service(tmp_path)
    get(svc, "/healthz")
    svc.stop()
    svc = Service(tmp_path)
    try:
        assert sample(metrics(svc), "edgepipe_http_requests_total", route="healthz", status="200") == 0
    finally:
        svc.stop()


# ------------------------------------------------------------------------------- readiness

def ready(svc):
    status, _, body = get(svc, "/readyz")
    return status, json.loads(body)


def wait_ready(svc, want, timeout=15):
    deadline = time.time() + timeout
    while True:
        status, body = ready(svc)
        if status == want or time.time() > deadline:
            return status, body
        time.sleep(0.2)


def test_readyz_is_ready_and_healthz_stays_liveness_only(service):
    status, body = ready(service)
    assert status == 200 and body["status"] == "ready"
    # The service's upstreams file (pipelines/upstreams, no upstream in it) is checked too.
    assert set(body["checks"]) == {"keys", "store", "audit", "upstreams"}
    assert all(c["ok"] for c in body["checks"].values())


def test_readyz_follows_redis_down_and_back(tmp_path):
    redis = RedisServer(tmp_path)
    svc = Service(tmp_path, env={"EDGEPIPE_KV": redis.url})
    try:
        assert wait_ready(svc, 200)[0] == 200
        redis.kill()
        status, body = wait_ready(svc, 503)
        assert status == 503 and body["error"] == "not_ready" and "store" in body["message"]
        assert body["checks"]["store"]["ok"] is False and body["checks"]["keys"]["ok"] is True
        assert get(svc, "/healthz")[0] == 200, "liveness does not depend on the store"
        redis.start()
        assert wait_ready(svc, 200)[0] == 200
        # A replica is not ready: writes would fail.
        other = RedisServer(tmp_path / "..")
        try:
            redis.cli("REPLICAOF", "127.0.0.1", str(other.port))
            status, body = wait_ready(svc, 503)
            assert status == 503 and "not the master" in body["checks"]["store"]["error"]
            redis.cli("REPLICAOF", "NO", "ONE")
            assert wait_ready(svc, 200)[0] == 200
        finally:
            other.kill()
    finally:
        svc.stop()
        redis.kill()


class JWKSServer:
    """A JWK Set on a loopback port that can be taken away and brought back."""

    def __init__(self, document, port):
        self.document, self.port, self.server = document, port, None

    def start(self):
        doc = self.document

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "max-age=3600")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_readyz_follows_the_jwks_endpoint_with_nothing_cached(tmp_path):
    keys = tmp_path / "devkeys"
    subprocess.run([binary("sign-jwt"), "dev", "--init", "--dev-keys", str(keys)], check=True, capture_output=True)
    jwks = JWKSServer(json.loads((keys / "jwks.json").read_text()), free_port())
    svc = Service(tmp_path, env={"EDGEPIPE_JWKS_URL": f"http://127.0.0.1:{jwks.port}/jwks",
                                 "EDGEPIPE_JWT_ISSUER": "edgepipe-dev", "EDGEPIPE_JWT_AUDIENCE": "edgepipe-dev",
                                 "EDGEPIPE_JWKS_COOLDOWN": "0", "EDGEPIPE_JWKS_TIMEOUT_MS": "300"})
    try:
        status, body = ready(svc)
        assert status == 503 and "keys" in body["message"] and body["checks"]["keys"]["ok"] is False
        jwks.start()
        status, body = wait_ready(svc, 200)
        assert status == 200, body
        m = metrics(svc)
        assert sample(m, "edgepipe_jwks_fetches_total", outcome="ok") >= 1
        assert sample(m, "edgepipe_jwks_fetches_total", outcome="network_error") >= 1
        assert 0 <= sample(m, "edgepipe_jwks_age_seconds") < 60
        jwks.stop()
        assert ready(svc)[0] == 200, "a cached set within its max-age keeps the gateway ready"
    finally:
        svc.stop()


def test_readyz_follows_a_read_only_audit_directory(tmp_path):
    svc = Service(tmp_path)
    audit = svc.data / "audit"
    try:
        assert ready(svc)[0] == 200
        if subprocess.run(["mount", "--bind", str(audit), str(audit)], capture_output=True).returncode != 0:
            pytest.skip("no read-only directory can be made here: root without mount rights")
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(audit)], check=True)
            status, body = ready(svc)
            assert status == 503 and body["message"] == "failing: audit"
            assert "Read-only" in body["checks"]["audit"]["error"]
        finally:
            subprocess.run(["umount", "-l", str(audit)], check=False)
        assert ready(svc)[0] == 200
    finally:
        svc.stop()


def test_readyz_follows_an_upstream_and_caches_the_check(tmp_path):
    port, spare = free_port(), free_port()
    upstreams = tmp_path / "upstreams"
    upstreams.write_text(f"# NAME URL...\norders http://127.0.0.1:{port} http://127.0.0.1:{spare} strip=/v1\n"
                         f"billing unix:{tmp_path}/billing.sock\n")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(tmp_path / "billing.sock")); unix.listen(16)
    listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port)); listener.listen(64)
    svc = Service(tmp_path, env={"EDGEPIPE_UPSTREAMS": str(upstreams), "EDGEPIPE_READY_CACHE_MS": "1000"})
    try:
        status, body = ready(svc)
        assert status == 200 and body["checks"]["upstreams"]["ok"], body
        listener.close()
        status, body = wait_ready(svc, 503)
        assert status == 503 and "upstream orders" in body["checks"]["upstreams"]["error"]
        listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", spare)); listener.listen(64)   # the second address is enough
        assert wait_ready(svc, 200)[0] == 200
        unix.close(); os.unlink(tmp_path / "billing.sock")
        status, body = wait_ready(svc, 503)
        assert "upstream billing" in body["checks"]["upstreams"]["error"]
    finally:
        svc.stop()
        listener.close()


# ---------------------------------------------------------------------------- batch progress

def test_batch_progress_on_a_terminal_and_nothing_extra_elsewhere(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text(ndjson(lifecycle()))
    status, seen, _ = batch_on_terminal(tmp_path, "--no-verify-signatures", str(events), kv=tmp_path / "kv1")
    assert status == 0
    assert b"\r" in seen and b"10 events" in seen, seen
    progress = seen.split(b"\r")[1]
    assert b"/10 events (" in progress and b"/s" in progress and b"ETA" in progress, "done, total, rate, time left"
    assert seen.rstrip().endswith(b"pending events drained"), "the summary comes last"
    plain = run_batch(tmp_path, "--no-verify-signatures", str(events), kv=tmp_path / "kv2")
    assert b"\r" not in plain.stderr and b"/s" not in plain.stderr and b"ETA" not in plain.stderr
