"""Faults injected into the running service (pipelines/serve on loopback): a filter killed
with SIGKILL in the middle of a request, a key endpoint that is down, slow or serving
garbage, a full disk and a read-only data directory followed by Stripe-like retries,
a shifted clock; and the soak and connection flood of bench/soak.sh, shortened for CI.
Figures and what each fault shows: docs/reliability.md."""
import fcntl
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt as pyjwt
import pytest
import stripe
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import BIN, ROOT, Service, binary, free_port
from test_service import checkout_event, dev_token, webhook_secret
from test_verify_jwt import public_jwk

TIMEOUT = float(os.environ.get("EDGEPIPE_TEST_TIMEOUT", "10"))
SOAK_SECONDS = os.environ.get("EDGEPIPE_SOAK_SECONDS", "20")
# The processes of a full pipeline: by default http-decode, route, verify-jwt, forward and
# kv run in one process, chain; with EDGEPIPE_CHAIN=0 each runs in its own.
CHAINED = ["chain", "apply-webhook", "audit", "http-encode"]
SEPARATE = ["http-decode", "route", "verify-jwt", "forward", "kv", "apply-webhook", "audit", "http-encode"]


# ----------------------------------------------------------------------------- helpers

def call(svc, method, path, headers=None, body=None):
    """(status, headers, parsed JSON body) of one request on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(data) if data else None
    finally:
        conn.close()


def read_subscription(svc, uid, token=None):
    status, headers, body = call(svc, "GET", "/v1/subscription",
                                 {"Authorization": f"Bearer {token or dev_token(svc, uid)}"})
    return status, body


def delivery(svc, event, timestamp=None):
    """A webhook request as Stripe sends it: the exact body and a fresh signature."""
    payload = json.dumps(event, separators=(",", ":"))
    header = stripe.WebhookSignature.generate_signature_header(payload, webhook_secret(svc),
                                                               timestamp=timestamp or int(time.time()))
    return payload, {"Content-Type": "application/json", "Stripe-Signature": header}


def deliver(svc, event, timestamp=None):
    payload, headers = delivery(svc, event, timestamp)
    status, _, body = call(svc, "POST", "/v1/webhooks/stripe", headers, payload)
    return status, body


def event_for(uid, suffix=""):
    event = checkout_event(uid, int(time.time()))
    event["id"] += suffix
    return event


def audit_lines(svc):
    log = svc.data / "audit" / "audit.log"
    return [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []


def outcomes(svc, event_id):
    return [l["outcome"] for l in audit_lines(svc) if l.get("event_id") == event_id]


def applications(svc, event_id):
    """The audit lines that record the event's application: its `applied` line, or a
    redelivery's `duplicate` line repeating it (`original`, docs/audit.md)."""
    return [l for l in audit_lines(svc) if l.get("event_id") == event_id
            and "applied" in (l.get("outcome"), (l.get("original") or {}).get("outcome"))]


def assert_audit_chain_valid(svc):
    proc = subprocess.run([binary("audit"), "verify", str(svc.data / "audit" / "audit.log")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def kv_entries(svc):
    """Every KV entry, read strictly: any file that is not one whole entry fails the test,
    and so does a temporary file left behind."""
    entries = {}
    for root, dirs, files in os.walk(svc.data / "kv"):
        dirs[:] = [d for d in dirs if d != "locks"]
        for name in files:
            assert not name.startswith("."), f"temporary file left in the store: {root}/{name}"
            doc = json.loads(Path(root, name).read_bytes())
            assert {"key", "version", "value"} <= doc.keys(), f"{root}/{name} is not a whole entry"
            entries[doc["key"]] = doc
    return entries


def assert_applied_state(svc, uid, event_id):
    state = kv_entries(svc)[f"sub/{uid}"]["value"]
    assert (state["status"], state["last_event_id"]) == ("active", event_id)
    assert f"event/{event_id}" in kv_entries(svc)


# ----------------------------------------------------------------------------- kill -9 of a filter

def pipeline_processes(svc, client_port):
    """{program name: pid} of the pipeline serving the connection from client_port: socat
    gives each connection's script SOCAT_PEERPORT, and every filter inherits it."""
    found = {}
    marker = f"SOCAT_PEERPORT={client_port}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if marker not in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                continue
            argv0 = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        found[os.path.basename(argv0)] = int(entry)
    return found


def pending_input(pid):
    """Bytes waiting in a process's standard input pipe (opening /proc/PID/fd/0 opens the
    same pipe; FIONREAD counts what is unread)."""
    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    finally:
        os.close(fd)


def served(sock, data):
    sock.sendall(data)
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response"
        reply += chunk
    return int(reply.split(b" ", 2)[1])


def receives_no_response(sock, timeout):
    """True when the server ends the connection (EOF or reset) without a response byte."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: faults\r\n\r\n"
IDLE_MS = 4000


def kill_service(tmp_path_factory, **env):
    """One service for every kill: it must keep serving after each. A short idle timeout
    bounds how long a pipeline whose last stage died keeps the client waiting; a long head
    timeout lets a connection sit mid-request however slow the machine is."""
    return Service(tmp_path_factory.mktemp("kill"), env={"EDGEPIPE_IDLE_TIMEOUT_MS": str(IDLE_MS),
                                                         "EDGEPIPE_HEADER_TIMEOUT_MS": "60000", **env})


@pytest.fixture(scope="module")
def killable(tmp_path_factory):
    svc = kill_service(tmp_path_factory)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def killable_separate(tmp_path_factory):
    svc = kill_service(tmp_path_factory, EDGEPIPE_CHAIN="0")
    yield svc
    svc.stop()


# What the audit log holds for the event after the retry, by the filter that was killed
# while the delivery was waiting at its input: (applied lines, duplicate lines).
# Killed before apply-webhook ran: the retry applies it. Killed at audit: the state was
# written but its "applied" line was not; the retry finds the event done, and its
# "duplicate" line repeats the application ("original"), so the log still records it
# (see docs/reliability.md). Killed at http-encode: applied and audited, the 200 lost; the
# retry is a duplicate repeating it too.
AFTER_RETRY = {"http-decode": (1, 0), "chain": (1, 0), "route": (1, 0), "verify-jwt": (1, 0), "forward": (1, 0),
               "kv": (1, 0), "apply-webhook": (1, 0), "audit": (0, 1), "http-encode": (1, 1)}


@pytest.mark.parametrize("layout,victim", [("chained", v) for v in CHAINED]
                         + [("separate", v) for v in SEPARATE if v not in CHAINED])
def test_kill_9_of_a_filter_mid_request_fails_only_that_connection(request, layout, victim):
    svc = request.getfixturevalue("killable" if layout == "chained" else "killable_separate")
    filters = CHAINED if layout == "chained" else SEPARATE
    other = socket.create_connection(("127.0.0.1", svc.port), timeout=TIMEOUT)
    conn = socket.create_connection(("127.0.0.1", svc.port), timeout=TIMEOUT)
    try:
        uid = f"killed-at-{victim}"
        event = event_for(uid)
        payload, headers = delivery(svc, event)
        request = (f"POST /v1/webhooks/stripe HTTP/1.1\r\nHost: faults\r\nContent-Length: {len(payload)}\r\n"
                   + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n" + payload).encode()
        # Both pipelines up, and both connections inside a request (so that no idle
        # timeout can end them while the machine is slow): a request needs its last byte.
        assert served(other, HEALTHZ) == 200
        other.sendall(HEALTHZ[:20])
        assert served(conn, HEALTHZ) == 200
        conn.sendall(request[:20])
        port = conn.getsockname()[1]
        procs = pipeline_processes(svc, port)
        assert set(filters) <= set(procs), procs
        # Stop the victim, send the rest of the webhook, wait until it sits at the
        # victim's input (mid-stream), kill.
        os.kill(procs[victim], signal.SIGSTOP)
        conn.sendall(request[20:])
        deadline = time.time() + TIMEOUT
        if victim in ("http-decode", "chain"):
            time.sleep(0.2)      # its input is the socket itself
        else:
            while pending_input(procs[victim]) == 0:
                assert time.time() < deadline, "the request never reached the stopped filter"
                time.sleep(0.02)
        os.kill(procs[victim], signal.SIGKILL)

        # The service keeps serving: the connection that was mid-request, and new ones.
        assert served(other, HEALTHZ[20:]) == 200
        # That connection fails: closed without a response (every stage exits once one
        # has died; the idle timeout only bounds the test if that ever fails).
        assert receives_no_response(conn, IDLE_MS / 1000 + 3)
        assert read_subscription(svc, "bystander")[0] == 200
        # Nothing of the dead pipeline stays behind once its client is gone.
        conn.close()
        deadline = time.time() + IDLE_MS / 1000 + 5
        while pipeline_processes(svc, port):
            assert time.time() < deadline, "the killed connection's pipeline did not exit"
            time.sleep(0.1)

        # Stripe retries the delivery it got no answer to: applied exactly once.
        assert deliver(svc, event) == (200, {"received": True})
        applied, duplicate = AFTER_RETRY[victim]
        assert sorted(outcomes(svc, event["id"])) == ["applied"] * applied + ["duplicate"] * duplicate
        # No applied event without an audit entry recording the application.
        assert applications(svc, event["id"]), f"the application of {event['id']} is not in the audit log"
        assert_applied_state(svc, uid, event["id"])
        assert read_subscription(svc, uid)[1]["status"] == "active"
        assert_audit_chain_valid(svc)
    finally:
        other.close()
        conn.close()


def test_kill_9_of_the_last_stage_closes_an_idle_keep_alive_connection_at_once(tmp_path):
    # Every stage before http-encode notices that its output is gone while it waits for
    # input, so the whole pipeline exits and the client sees the close now, not after
    # the idle timeout (a minute here).
    svc = Service(tmp_path, env={"EDGEPIPE_IDLE_TIMEOUT_MS": "60000"})
    conn = socket.create_connection(("127.0.0.1", svc.port), timeout=TIMEOUT)
    try:
        assert served(conn, HEALTHZ) == 200
        port = conn.getsockname()[1]
        procs = pipeline_processes(svc, port)
        os.kill(procs["http-encode"], signal.SIGKILL)
        started = time.time()
        assert receives_no_response(conn, 10)
        assert time.time() - started < 5
        deadline = time.time() + 5
        while pipeline_processes(svc, port):
            assert time.time() < deadline, "the pipeline outlived its last stage"
            time.sleep(0.05)
        assert read_subscription(svc, "after-the-kill")[0] == 200
    finally:
        conn.close()
        svc.stop()



def payment_failed_event(uid, created):
    return {"id": f"evt_{uid}_failed", "object": "event", "type": "invoice.payment_failed",
            "created": created, "api_version": "2025-03-31.basil",
            "data": {"object": {"id": f"in_{uid}", "object": "invoice", "customer": f"cus_{uid}",
                                "billing_reason": "subscription_cycle", "amount_paid": 0,
                                "parent": {"type": "subscription_details",
                                           "subscription_details": {"subscription": f"sub_{uid}"}},
                                "lines": {"data": [{"period": {"end": created + 2_592_000}}]}}}}


def test_audit_killed_after_the_kv_write_the_redelivery_puts_the_application_in_the_log(killable):
    # The known loss: apply-webhook wrote the state and the event's marker, then audit died
    # before appending. Stripe got no 2xx and re-delivers; the redelivery is a duplicate,
    # and its audit line carries the first application (before, after, uid) as "original".
    svc = killable
    uid = "audit-killed-after-kv"
    assert deliver(svc, event_for(uid)) == (200, {"received": True})
    event = payment_failed_event(uid, int(time.time()) + 5)
    payload, headers = delivery(svc, event)
    request = (f"POST /v1/webhooks/stripe HTTP/1.1\r\nHost: faults\r\nContent-Length: {len(payload)}\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n" + payload).encode()
    conn = socket.create_connection(("127.0.0.1", svc.port), timeout=TIMEOUT)
    try:
        assert served(conn, HEALTHZ) == 200
        procs = pipeline_processes(svc, conn.getsockname()[1])
        os.kill(procs["audit"], signal.SIGSTOP)
        conn.sendall(request)
        # apply-webhook writes its answer only after the KV writes: once it waits at
        # audit's input, the event is applied and marked.
        deadline = time.time() + TIMEOUT
        while pending_input(procs["audit"]) == 0:
            assert time.time() < deadline, "the answer never reached audit"
            time.sleep(0.02)
        os.kill(procs["audit"], signal.SIGKILL)
        assert receives_no_response(conn, IDLE_MS / 1000 + 3)
    finally:
        conn.close()
    assert kv_entries(svc)[f"sub/{uid}"]["value"]["status"] == "past_due"
    assert applications(svc, event["id"]) == [], "the applied line was lost with audit"

    assert deliver(svc, event) == (200, {"received": True})
    lines = [l for l in audit_lines(svc) if l.get("event_id") == event["id"]]
    assert [l["outcome"] for l in lines] == ["duplicate"]
    assert lines[0]["original"] == {"uid": uid, "outcome": "applied", "before": "active", "after": "past_due"}
    # At least once: every later redelivery repeats it; readers count an event once.
    assert deliver(svc, event) == (200, {"received": True})
    assert len(applications(svc, event["id"])) == 2
    assert read_subscription(svc, uid)[1]["status"] == "past_due"
    assert_audit_chain_valid(svc)

# ----------------------------------------------------------------------------- the key endpoint
# Filter-level cases are in test_verify_jwt.py (down with and without a cache, a silent
# endpoint bounded by the fetch timeout, the refetch cooldown); these run the service.

ISS, AUD = "https://issuer.faults.example", "faults-project"


class FlakyKeys:
    """A JWK Set endpoint on loopback whose answer the test switches: "ok", "slow" (answers
    after `delay` seconds), or a garbage answer (status, body)."""

    def __init__(self, jwks):
        self.jwks = json.dumps(jwks).encode()
        self.mode, self.delay, self.hits = "ok", 0, 0
        keys = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                keys.hits += 1
                status, body, max_age = 200, keys.jwks, 1
                if keys.mode == "slow":
                    time.sleep(keys.delay)
                elif keys.mode != "ok":
                    status, body = keys.mode
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Cache-Control", f"max-age={max_age}")
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass          # the client gave up (the slow case)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/keys"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = FlakyKeys({"keys": [public_jwk(key, "k1")]})
    svc = Service(tmp_path_factory.mktemp("jwks"), env={
        "EDGEPIPE_JWKS_URL": keys.url, "EDGEPIPE_JWT_ISSUER": ISS, "EDGEPIPE_JWT_AUDIENCE": AUD,
        "EDGEPIPE_JWKS_TIMEOUT_MS": "500", "EDGEPIPE_JWKS_COOLDOWN": "0"})
    yield svc, keys, key
    svc.stop()
    keys.stop()


def issued_token(key, sub="jwks-user"):
    now = int(time.time())
    return pyjwt.encode({"iss": ISS, "aud": AUD, "sub": sub, "iat": now, "exp": now + 600}, key,
                        algorithm="RS256", headers={"kid": "k1"})


def cache_files(svc):
    return sorted((svc.data / "jwks").glob("keys-*.json"))


GARBAGE = {
    "html error page": (500, b"<html><body>Internal Server Error</body></html>"),
    "not json": (200, b"this is not json"),
    "truncated json": (200, b'{"keys":[{"kty":"RSA","kid":"k1","n":"'),
    "keys not a list": (200, b'{"keys":"k1"}'),
    "over one mebibyte": (200, b'{"keys":[],"pad":"' + b"x" * (1 << 20) + b'"}'),
}


@pytest.mark.parametrize("garbage", sorted(GARBAGE))
def test_key_endpoint_serving_garbage_with_nothing_cached_is_503_then_recovers(issuer, garbage):
    svc, keys, key = issuer
    for path in cache_files(svc):
        path.unlink()
    keys.mode = GARBAGE[garbage]
    status, headers, body = call(svc, "GET", "/v1/subscription", {"Authorization": f"Bearer {issued_token(key)}"})
    assert (status, body["error"]) == (503, "keys_unavailable")
    assert "retry-after" in headers
    assert cache_files(svc) == [], "a bad answer was cached"
    assert call(svc, "GET", "/healthz")[0] == 200       # public routes need no keys
    keys.mode = "ok"
    status, _, body = call(svc, "GET", "/v1/subscription", {"Authorization": f"Bearer {issued_token(key)}"})
    assert (status, body["uid"]) == (200, "jwks-user")


def test_key_endpoint_turning_to_garbage_never_replaces_the_cached_keys(issuer):
    svc, keys, key = issuer
    keys.mode = "ok"
    token = issued_token(key)
    assert call(svc, "GET", "/v1/subscription", {"Authorization": f"Bearer {token}"})[0] == 200
    [cache] = cache_files(svc)
    good = json.loads(cache.read_text())
    keys.mode = GARBAGE["not json"]
    time.sleep(1.2)                       # past the cached set's max-age (1 s): every request refetches
    hits = keys.hits
    for _ in range(3):
        status, _, body = call(svc, "GET", "/v1/subscription", {"Authorization": f"Bearer {token}"})
        assert (status, body["uid"]) == (200, "jwks-user")
    assert keys.hits > hits, "the stale set was refetched"
    assert json.loads(cache.read_text())["keys"] == good["keys"]


def test_key_endpoint_down_answers_503_to_tokens_and_serves_everything_else(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    svc = Service(tmp_path, env={"EDGEPIPE_JWKS_URL": f"http://127.0.0.1:{free_port()}/keys",
                                 "EDGEPIPE_JWT_ISSUER": ISS, "EDGEPIPE_JWT_AUDIENCE": AUD})
    try:
        status, headers, body = call(svc, "GET", "/v1/subscription", {"Authorization": f"Bearer {issued_token(key)}"})
        assert (status, body["error"]) == (503, "keys_unavailable") and "retry-after" in headers
        assert call(svc, "GET", "/v1/subscription")[0] == 401          # no token: still the client's fault
        assert call(svc, "GET", "/healthz")[0] == 200
        assert deliver(svc, event_for("keys-down")) == (200, {"received": True})
    finally:
        svc.stop()


def test_slow_key_endpoint_costs_one_fetch_timeout_and_stalls_no_other_connection(issuer):
    svc, keys, key = issuer
    for path in cache_files(svc):
        path.unlink()
    keys.mode, keys.delay = "slow", 3
    result = {}

    def slow_request():
        start = time.monotonic()
        result["status"] = call(svc, "GET", "/v1/subscription", {"Authorization": f"Bearer {issued_token(key)}"})[0]
        result["seconds"] = time.monotonic() - start

    t = threading.Thread(target=slow_request)
    t.start()
    time.sleep(0.1)
    start = time.monotonic()
    assert call(svc, "GET", "/healthz")[0] == 200
    assert call(svc, "GET", "/v1/profile")[0] == 410
    others = time.monotonic() - start
    t.join(TIMEOUT)
    assert result["status"] == 503
    assert result["seconds"] < 0.5 + 2.0, "bounded by EDGEPIPE_JWKS_TIMEOUT_MS (500 ms) plus start-up"
    assert others < 2.0
    keys.mode = "ok"


# ----------------------------------------------------------------------------- full and read-only disks

def mount(*args):
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def small_data_disk(tmp_path):
    """The service's data directory on its own 2 MiB tmpfs (root with mount rights, else skipped)."""
    data = tmp_path / "data"
    data.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; test_kv.py and test_audit.py cover full and read-only disks per tool")
    done = mount("-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(data))
    if done.returncode != 0:
        pytest.skip(f"mount is not permitted here: {done.stderr.strip()}")
    yield data
    subprocess.run(["umount", "-l", str(data)], capture_output=True)


def fill(directory):
    subprocess.run(["dd", "if=/dev/zero", f"of={directory / 'filler'}", "bs=64k"], capture_output=True)
    # tmpfs may keep a partial page: fill it byte-wise until the disk refuses.
    with open(directory / "filler2", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


def test_disk_full_answers_503_to_writes_keeps_reads_and_a_retry_applies_once(tmp_path, small_data_disk):
    svc = Service(tmp_path)
    try:
        before = event_for("full-reader")
        assert deliver(svc, before) == (200, {"received": True})
        token = dev_token(svc, "full-reader")
        stored = kv_entries(svc)
        fill(small_data_disk)

        event = event_for("full-writer")
        status, body = deliver(svc, event)
        assert (status, body["error"]) == (503, "store_unavailable")
        assert body["message"]
        # Reads and everything that writes nothing keep working.
        status, body = read_subscription(svc, "full-reader", token)
        assert (status, body["status"]) == (200, "active")
        assert call(svc, "GET", "/healthz")[0] == 200
        # Nothing half-written: the store holds exactly what it held, no temporary file.
        assert kv_entries(svc) == stored

        (small_data_disk / "filler").unlink()
        (small_data_disk / "filler2").unlink()
        assert deliver(svc, event) == (200, {"received": True})        # Stripe's retry
        assert deliver(svc, event) == (200, {"received": True})        # and a late duplicate
        assert outcomes(svc, event["id"]).count("applied") == 1
        assert_applied_state(svc, "full-writer", event["id"])
        assert_audit_chain_valid(svc)
        # The 503 itself is audited: in the log when the log's last page still had room,
        # else (no room for the spill file either) on the service's stderr.
        assert ("error" in outcomes(svc, event["id"])
                or f'"event_id":"{event["id"]}"' in (tmp_path / "serve.log").read_text())
    finally:
        svc.stop()


def test_read_only_data_directory_answers_503_to_writes_keeps_reads_and_a_retry_applies_once(tmp_path, small_data_disk):
    svc = Service(tmp_path)
    try:
        assert deliver(svc, event_for("ro-reader")) == (200, {"received": True})
        token, nobody = dev_token(svc, "ro-reader"), dev_token(svc, "ro-nobody")
        stored = kv_entries(svc)
        assert mount("-o", "remount,ro", str(small_data_disk)).returncode == 0
        try:
            event = event_for("ro-writer")
            status, body = deliver(svc, event)
            assert (status, body["error"]) == (503, "store_unavailable")
            assert "Read-only" in body["message"] or "read-only" in body["message"]
            status, body = read_subscription(svc, "ro-reader", token)
            assert (status, body["status"]) == (200, "active")
            assert read_subscription(svc, "ro-nobody", nobody)[1]["status"] == "none"
            assert call(svc, "GET", "/v1/profile")[0] == 410
            assert kv_entries(svc) == stored
        finally:
            assert mount("-o", "remount,rw", str(small_data_disk)).returncode == 0
        assert deliver(svc, event) == (200, {"received": True})
        assert outcomes(svc, event["id"]).count("applied") == 1
        assert_applied_state(svc, "ro-writer", event["id"])
        assert_audit_chain_valid(svc)
    finally:
        svc.stop()


# ----------------------------------------------------------------------------- clock skew
# The boundaries themselves are unit- and filter-tested (test_verify_jwt.py::test_clock_skew_beyond_the_leeway,
# test_webhook_signature.py::test_clock_offset_moves_the_tolerance_window); here the whole
# service runs on a shifted clock against a token and a delivery made on the true one.

@pytest.mark.parametrize("offset,token,webhook", [
    (-30, 200, 200),       # our clock behind: a token issued "in the future", within the 60 s leeway
    (-120, 401, 200),      # beyond the leeway: refused; Stripe timestamps in the future pass (as in its libraries)
    (250, 200, 200),       # ahead: the delivery is 250 s old, within the 300 s tolerance
    (3600 + 30, 200, 400),  # the token expired 30 s ago (leeway); the delivery is an hour old
    (3600 + 90, 401, 400),  # expired beyond the leeway
])
def test_shifted_service_clock_applies_the_leeway_and_the_tolerance(tmp_path, offset, token, webhook):
    svc = Service(tmp_path, env={"EDGEPIPE_CLOCK_OFFSET": str(offset)})
    try:
        true_clock = dict(svc.env, EDGEPIPE_CLOCK_OFFSET="0")
        fresh = subprocess.run([binary("sign-jwt"), "dev", "--uid", "skewed"], env=true_clock,
                               capture_output=True, text=True, check=True).stdout.strip()
        status, body = read_subscription(svc, "skewed", fresh)
        assert status == token, body
        if status == 401:
            assert body["message"] in ("token expired", "token issued in the future")
        event = event_for("skewed", f"_{offset}")
        status, body = deliver(svc, event)
        assert status == webhook, body
        if status == 400:
            assert body["check"] == "timestamp_outside_tolerance"
            assert "sub/skewed" not in kv_entries(svc)
    finally:
        svc.stop()


# ----------------------------------------------------------------------------- soak and flood

@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    """bench/soak.sh for EDGEPIPE_SOAK_SECONDS (20) of mixed load, then a flood of 100
    connections against max-children 4: one run, its summary checked by the tests below."""
    out = tmp_path_factory.mktemp("soak") / "summary.json"
    proc = subprocess.run([str(ROOT / "bench" / "soak.sh"), SOAK_SECONDS, "--flood", "100", "--json", str(out)],
                          env={**os.environ, "EDGEPIPE_BIN": str(BIN)}, capture_output=True, text=True,
                          timeout=float(SOAK_SECONDS) + 240)
    assert out.exists(), proc.stderr
    summary = json.loads(out.read_text())
    summary["exit"] = proc.returncode
    return summary


def test_soak_every_response_is_the_expected_one(soak):
    assert soak["requests"] > 0
    assert soak["unexpected"] == 0, soak["unexpected_examples"]
    assert set(soak["statuses"]) <= {"200", "400", "401", "404", "410", "413", "431", "505"}
    assert all(soak["by_kind"][k]["count"] > 0 for k in ("read", "bad_token", "webhook", "gone", "malformed"))


def test_soak_leaks_no_process_and_no_open_file(soak):
    assert soak["processes"]["after"] == soak["processes"]["before"] == 1
    assert soak["processes"]["zombies_after"] == 0
    assert soak["listener"]["fds_after"] == soak["listener"]["fds_before"]


def test_soak_applies_every_webhook_exactly_once_and_keeps_the_audit_chain(soak):
    hooks = soak["webhooks"]
    assert hooks["delivered"] > 0 and hooks["redelivered"] > 0
    assert hooks["applied_lines"] == hooks["delivered"]
    assert hooks["duplicate_lines"] == hooks["redelivered"]
    assert hooks["invalid_lines"] == hooks["bad_signature"]
    for problem in ("missing", "applied_twice", "wrong_state", "wrong_duplicates", "applied_without_200"):
        assert hooks[problem] == [], problem
    assert soak["audit"]["verify_exit"] == 0, soak["audit"]["verify"]
    assert soak["kv"]["torn"] == [] and soak["kv"]["temporary_files"] == 0
    assert soak["stderr"]["crash_lines"] == []


def test_connection_flood_beyond_max_children_is_served_or_refused_cleanly_and_recovers(soak):
    flood = soak["flood"]
    # Served, refused, or still queued when the client gave up: never half an answer.
    clean = sum(flood["outcomes"].get(k, 0) for k in ("served", "refused", "reset", "gave_up_waiting"))
    assert clean == flood["connections"] == 100, flood["outcomes"]
    assert flood["outcomes"].get("served", 0) > 0
    assert flood["peak_pipelines"] <= flood["max_connections"]
    assert flood["held_connection_served_during_flood"] is True
    assert flood["served_after_flood"] == "10/10"
    assert flood["processes_after"] == 1


def test_soak_script_passed_as_a_whole(soak):
    assert soak["exit"] == 0 and soak["ok"], soak["problems"]
