#!/usr/bin/env python3
"""Soak and connection-flood test of pipelines/serve; run through bench/soak.sh.

Drives the service on loopback with a mix of traffic for DURATION seconds, checking every
single response against what that request must get, then checks what the run left behind:
processes, the listener's open files, the audit chain, every webhook's effect in the KV
store and in the audit log. Then floods a second service (small max-children) with
connections. Prints a JSON summary on stdout (with --json, also to a file), a human summary
on stderr; exits 0 when every check passed, 1 otherwise.

Why not wrk: every response is checked against its own request (a read must return the
token's own uid, a webhook must be answered 200 and later be found applied exactly once),
and every webhook needs a fresh Stripe signature (HMAC) over a distinct event; wrk's Lua
sees responses without their requests and has no HMAC.
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import stripe   # pip install -r Tests/system/requirements.txt

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("EDGEPIPE_BIN", ROOT / ".build" / "release"))

# Share of each kind of request in the mix (weights).
MIX = {"read": 36, "no_token": 4, "bad_token": 12, "webhook": 12, "redelivery": 3, "bad_signature": 3,
       "gone": 10, "healthz": 10, "not_found": 4, "bad_path": 3, "malformed": 3}

# Requests http-decode refuses, with the status each must get; the connection is then closed.
MALFORMED = [
    (b"GET /healthz HTTP/1.1\nHost: soak\n\n", 400),                                        # bare LF
    (b"POST /v1/webhooks/stripe HTTP/1.1\r\nHost: soak\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),                                   # CL + TE
    (b"GET /healthz HTTP/1.1\r\nHost: soak\r\nX-A: a\r\n b\r\n\r\n", 400),                  # obs-fold
    (b"G(ET /healthz HTTP/1.1\r\nHost: soak\r\n\r\n", 400),                                 # bad method
    (b"GET /healthz HTTP/1.1\r\n\r\n", 400),                                                # no Host
    (b"POST /v1/webhooks/stripe HTTP/1.1\r\nHost: soak\r\nContent-Length: +5\r\n\r\nhello", 400),
    (b"GET /healthz HTTP/2.0\r\nHost: soak\r\n\r\n", 505),
    (b"GET /healthz HTTP/1.1\r\nHost: soak\r\nX-Big: " + b"v" * 40000 + b"\r\n\r\n", 431),
    (b"POST /v1/webhooks/stripe HTTP/1.1\r\nHost: soak\r\nContent-Length: 2000000\r\n\r\n", 413),
]
BAD_PATHS = ["/v1/%2e%2e/subscription", "/healthz/../v1/subscription", "/v1//subscription", "/v1/a%2Fb"]


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000, 2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def stripe_header(payload, secret):
    """A fresh Stripe-Signature, made by Stripe's own Python library."""
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=int(time.time()))


# ------------------------------------------------------------------------------ the service

class Service:
    """pipelines/serve on a free loopback port, in its own session (so that every process
    it ever starts can be counted by session id and stopped together)."""

    def __init__(self, work, max_connections, env=None):
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.data = self.work / "data"
        self.env = dict(os.environ)
        self.env.update({"EDGEPIPE_PORT": str(self.port), "EDGEPIPE_DATA": str(self.data),
                         "EDGEPIPE_BIN": str(BIN), "EDGEPIPE_MAX_CONNECTIONS": str(max_connections)})
        self.env.update(env or {})
        self.log_path = self.work / "serve.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(ROOT / "pipelines" / "serve")], env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"soak: the service did not start: {self.log_path.read_text(errors='replace')}")
                time.sleep(0.05)
        self.pid = self.proc.pid      # serve execs socat: the listener keeps this pid
        self.secret = (self.data / "stripe-webhook-secrets").read_text().split()[0]

    def processes(self):
        """(pid, state, ppid, name) of every process in the service's session."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) == self.pid:
                found.append((int(entry), fields[0], int(fields[1]), name))
        return found

    def live(self):
        """The session's processes but the dead ones handed to init: a pipeline outliving
        its socat child is reparented to PID 1, and reaping it is then init's business (some
        container inits are slow at it); zombies of the service's own processes count."""
        procs = self.processes()
        pids = {p[0] for p in procs}
        return [p for p in procs if p[1] != "Z" or p[2] in pids]

    def children(self):
        return [p for p in self.processes() if p[2] == self.pid]

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_kb(self):
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return None

    def wait_idle(self, timeout=20.0):
        """Waits until only the listener is left; returns the processes still there."""
        deadline = time.time() + timeout
        while True:
            procs = self.live()
            if len(procs) <= 1 or time.time() > deadline:
                return procs
            time.sleep(0.1)

    def sign_jwt(self, uid, offset=None):
        env = dict(self.env)
        if offset is not None:
            env["EDGEPIPE_CLOCK_OFFSET"] = str(offset)
        return subprocess.run([str(BIN / "sign-jwt"), "dev", "--uid", uid], env=env, capture_output=True,
                              text=True, check=True).stdout.strip()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class Conn:
    """A raw HTTP/1.1 client connection reading one response at a time."""

    def __init__(self, port, timeout=15.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed before a whole response")
        self.buf += chunk

    def exchange(self, data):
        self.sock.sendall(data)
        return self.response()

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def closed_by_server(self, timeout=5.0):
        self.sock.settimeout(timeout)
        try:
            return self.buf == b"" and self.sock.recv(1) == b""
        except OSError:
            return False

    def close(self):
        self.sock.close()


def http(method, path, headers=(), body=b"", close=False):
    lines = [f"{method} {path} HTTP/1.1", "Host: soak"] + [f"{n}: {v}" for n, v in headers]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ------------------------------------------------------------------------------ the soak

class Soak:
    def __init__(self, svc, workers, seed):
        self.svc = svc
        self.workers = workers
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.run_id = f"{int(time.time())}{os.getpid()}"
        self.latency = {k: [] for k in MIX}
        self.statuses = {}
        self.unexpected = []
        self.unexpected_count = 0
        self.requests = 0
        self.connections = 0
        self.next_event = 0
        self.acked = {}                 # event id -> uid, first delivery answered 200
        self.redelivered = {}           # event id -> redeliveries answered 200
        self.bad_signatures = 0
        self.webhook_responses = 0
        self.stop = threading.Event()
        # Readers: half have an active subscription (applied during warm-up), half none.
        self.readers = [(f"soak-reader-{i}", svc.sign_jwt(f"soak-reader-{i}")) for i in range(12)]
        self.reader_status = {uid: ("active" if i % 2 == 0 else "none") for i, (uid, _) in enumerate(self.readers)}
        good = self.readers[0][1]
        h, p, s = good.split(".")
        self.bad_tokens = [
            f"{h}.{p}.{('A' if s[0] != 'A' else 'B') + s[1:]}",                  # signature altered
            f"{h}.{p[:-4]}AAAA.{s}",                                            # payload altered
            svc.sign_jwt("soak-expired", offset=-7200),                          # expired an hour ago
            "not.a.token", "a" * 9000, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",     # junk, huge, alg none
        ]

    def record(self, kind, seconds, status, problem=None):
        with self.lock:
            self.requests += 1
            self.latency[kind].append(seconds)
            self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
            if problem:
                self.unexpected_count += 1
                if len(self.unexpected) < 25:
                    self.unexpected.append(f"{kind}: {problem}")

    def new_event(self, uid=None):
        with self.lock:
            self.next_event += 1
            n = self.next_event
        uid = uid or f"wh-{self.run_id}-{n}"
        event = {"id": f"evt_soak_{self.run_id}_{n}", "object": "event", "type": "checkout.session.completed",
                 "created": int(time.time()), "api_version": "2025-03-31.basil",
                 "data": {"object": {"id": f"cs_soak_{n}", "object": "checkout.session", "mode": "subscription",
                                     "client_reference_id": uid, "customer": f"cus_soak_{self.run_id}_{n}",
                                     "subscription": f"sub_soak_{n}", "payment_status": "paid",
                                     "status": "complete"}}}
        return event, uid

    def webhook_request(self, payload, secret=None):
        header = stripe_header(payload, secret or self.svc.secret)
        return http("POST", "/v1/webhooks/stripe", [("Content-Type", "application/json"),
                                                    ("Stripe-Signature", header)], payload.encode())

    def one(self, conn, kind, rng):
        """Sends one request of `kind` on `conn`; returns False when the connection must end."""
        expect_close, check = False, None
        if kind == "read":
            uid, token = rng.choice(self.readers)
            data = http("GET", "/v1/subscription", [("Authorization", f"Bearer {token}")])
            want = 200

            def check(body):
                doc = json.loads(body)
                if doc.get("uid") != uid:
                    return f"read for {uid} answered uid {doc.get('uid')!r}"
                if doc.get("status") != self.reader_status[uid]:
                    return f"read for {uid}: status {doc.get('status')!r}, expected {self.reader_status[uid]!r}"
        elif kind == "no_token":
            data, want = http("GET", "/v1/subscription", [("X-Authenticated-Uid", "soak-reader-0")]), 401
            check = lambda body: None if json.loads(body)["error"] == "unauthorized" else body
        elif kind == "bad_token":
            data = http("GET", "/v1/subscription", [("Authorization", f"Bearer {rng.choice(self.bad_tokens)}")])
            want = 401
            check = lambda body: None if json.loads(body)["error"] in ("invalid_token", "invalid_request") else body
        elif kind == "webhook":
            event, uid = self.new_event()
            payload = dumps(event)
            data, want = self.webhook_request(payload), 200

            def check(body):
                if json.loads(body) != {"received": True}:
                    return body
                with self.lock:
                    self.acked[event["id"]] = (uid, payload)
        elif kind == "redelivery":
            with self.lock:
                if not self.acked:
                    return True
                event_id = rng.choice(list(self.acked))
                _, payload = self.acked[event_id]
            data, want = self.webhook_request(payload), 200     # Stripe re-signs each attempt

            def check(body):
                if json.loads(body) != {"received": True}:
                    return body
                with self.lock:
                    self.redelivered[event_id] = self.redelivered.get(event_id, 0) + 1
        elif kind == "bad_signature":
            event, _ = self.new_event()
            data, want = self.webhook_request(dumps(event), secret="whsec_not_the_secret"), 400

            def check(body):
                if json.loads(body)["error"] != "invalid_signature":
                    return body
                with self.lock:
                    self.bad_signatures += 1
        elif kind == "gone":
            data, want = http("GET", rng.choice(["/v1/profile", "/v1/subscription/legacy"])), 410
            check = lambda body: None if json.loads(body)["replacement"] == "/v1/subscription" else body
        elif kind == "healthz":
            data, want = http("GET", "/healthz"), 200
            check = lambda body: None if body == b'{"status":"ok"}' else body
        elif kind == "not_found":
            data, want = http("GET", f"/nope/{rng.randrange(1000)}"), 404
        elif kind == "bad_path":
            data, want = http("GET", rng.choice(BAD_PATHS)), 400
            check = lambda body: None if json.loads(body)["error"] == "bad_path" else body
        else:
            data, want = rng.choice(MALFORMED)
            expect_close = True
        start = time.monotonic()
        try:
            status, headers, body = conn.exchange(data)
        except (OSError, EOFError, ValueError, IndexError) as e:
            self.record(kind, time.monotonic() - start, "error", f"{type(e).__name__}: {e}")
            return False
        elapsed = time.monotonic() - start
        problem = None
        if status != want:
            problem = f"status {status}, expected {want}: {body[:200]!r}"
        elif status >= 400 and not (headers.get("content-type") == "application/json" and json.loads(body).get("error")):
            problem = f"error response without a JSON error body: {body[:200]!r}"
        elif check:
            try:
                problem = check(body)
            except (ValueError, KeyError, TypeError) as e:
                problem = f"unreadable body {body[:200]!r}: {e}"
        if kind in ("webhook", "redelivery", "bad_signature"):
            with self.lock:
                self.webhook_responses += 1
        if expect_close and not problem:
            if headers.get("connection") != "close" or not conn.closed_by_server():
                problem = "the connection stayed open after a refused request"
        self.record(kind, elapsed, status, problem)
        return not expect_close and not problem

    def worker(self, seed):
        rng = random.Random(seed)
        kinds, weights = list(MIX), list(MIX.values())
        while not self.stop.is_set():
            try:
                conn = Conn(self.svc.port)
            except OSError as e:
                self.record("healthz", 0, "error", f"connect: {e}")
                time.sleep(0.1)
                continue
            with self.lock:
                self.connections += 1
            try:
                for _ in range(rng.randint(1, 25)):
                    if self.stop.is_set() or not self.one(conn, rng.choices(kinds, weights)[0], rng):
                        break
            finally:
                conn.close()

    def warm_up(self):
        conn = Conn(self.svc.port)
        try:
            for uid, status in self.reader_status.items():
                if status == "active":
                    event, _ = self.new_event(uid)
                    st, _, body = conn.exchange(self.webhook_request(dumps(event)))
                    if (st, body) != (200, b'{"received":true}'):
                        raise SystemExit(f"soak: warm-up webhook answered {st} {body!r}")
                    self.acked[event["id"]] = (uid, dumps(event))
                    self.webhook_responses += 1
            for uid, token in self.readers:
                st, _, body = conn.exchange(http("GET", "/v1/subscription", [("Authorization", f"Bearer {token}")]))
                if st != 200 or json.loads(body)["status"] != self.reader_status[uid]:
                    raise SystemExit(f"soak: warm-up read for {uid} answered {st} {body!r}")
        finally:
            conn.close()

    def run(self, duration):
        threads = [threading.Thread(target=self.worker, args=(i,), daemon=True) for i in range(self.workers)]
        peak = {"processes": 0, "children": 0}

        def monitor():
            while not self.stop.is_set():
                procs = self.svc.live()
                peak["processes"] = max(peak["processes"], len(procs))
                peak["children"] = max(peak["children"], sum(1 for p in procs if p[2] == self.svc.pid))
                time.sleep(0.5)

        mon = threading.Thread(target=monitor, daemon=True)
        start = time.monotonic()
        for t in threads + [mon]:
            t.start()
        self.stop.wait(duration)
        self.stop.set()
        for t in threads:
            t.join(60)
        elapsed = time.monotonic() - start
        mon.join(5)
        return elapsed, peak


def read_kv(kv):
    """Every entry of a KV directory, read strictly: a file that is not a whole entry is torn."""
    entries, torn, temps = {}, [], []
    for root, dirs, files in os.walk(kv):
        dirs[:] = [d for d in dirs if d != "locks"]
        for name in files:
            path = Path(root, name)
            if name.startswith("."):
                temps.append(str(path))
                continue
            try:
                doc = json.loads(path.read_bytes())
                assert isinstance(doc, dict) and {"key", "version", "value"} <= doc.keys()
            except (ValueError, AssertionError, OSError) as e:
                torn.append(f"{path}: {e}")
                continue
            entries[doc["key"]] = doc
    return entries, torn, temps


def check_aftermath(svc, soak, result, problems):
    """What the soak left: the audit chain, every webhook's effect once, the KV store."""
    log = svc.data / "audit" / "audit.log"
    verify = subprocess.run([str(BIN / "audit"), "verify", str(log)], capture_output=True, text=True)
    lines = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
    stripe_lines = [l for l in lines if l.get("kind") == "stripe"]
    applied, duplicates, invalid = {}, {}, 0
    for l in stripe_lines:
        if l["outcome"] == "applied":
            applied[l["event_id"]] = applied.get(l["event_id"], 0) + 1
        elif l["outcome"] == "duplicate":
            duplicates[l["event_id"]] = duplicates.get(l["event_id"], 0) + 1
        elif l["outcome"] == "invalid":
            invalid += 1
    spill = Path(str(log) + ".spill")
    result["audit"] = {"verify_exit": verify.returncode, "verify": (verify.stdout + verify.stderr).strip(),
                       "entries": len(lines), "gap_lines": sum(1 for l in lines if l.get("kind") == "gap"),
                       "spilled_bytes": spill.stat().st_size if spill.exists() else 0}
    if verify.returncode != 0:
        problems.append(f"audit verify failed: {verify.stdout}{verify.stderr}")
    if result["audit"]["gap_lines"] or result["audit"]["spilled_bytes"]:
        problems.append("audit entries were spilled")
    if len(lines) != soak.webhook_responses:
        problems.append(f"{len(lines)} audit lines for {soak.webhook_responses} webhook responses")

    entries, torn, temps = read_kv(svc.data / "kv")
    missing, twice, wrong_state, wrong_dups = [], [], [], []
    for event_id, (uid, _) in soak.acked.items():
        if applied.get(event_id, 0) == 0:
            missing.append(event_id)
        elif applied[event_id] > 1:
            twice.append(event_id)
        state = entries.get(f"sub/{uid}", {}).get("value") or {}
        if state.get("status") != "active" or state.get("last_event_id") != event_id:
            wrong_state.append(f"{uid}: {state.get('status')!r} {state.get('last_event_id')!r}")
        if f"event/{event_id}" not in entries:
            wrong_state.append(f"event/{event_id} marker missing")
        if duplicates.get(event_id, 0) != soak.redelivered.get(event_id, 0):
            wrong_dups.append(f"{event_id}: {duplicates.get(event_id, 0)} duplicate lines for "
                              f"{soak.redelivered.get(event_id, 0)} redeliveries")
    unacked = sorted(set(applied) - set(soak.acked))
    result["webhooks"] = {"delivered": len(soak.acked), "redelivered": sum(soak.redelivered.values()),
                          "bad_signature": soak.bad_signatures, "applied_lines": sum(applied.values()),
                          "duplicate_lines": sum(duplicates.values()), "invalid_lines": invalid,
                          "missing": missing[:10], "applied_twice": twice[:10], "wrong_state": wrong_state[:10],
                          "wrong_duplicates": wrong_dups[:10], "applied_without_200": unacked[:10]}
    result["kv"] = {"entries": len(entries), "torn": torn[:10], "temporary_files": len(temps)}
    for name, items in [("webhooks missing from the audit log", missing), ("webhooks applied twice", twice),
                        ("webhook effects wrong in the KV store", wrong_state),
                        ("redeliveries not audited as duplicates", wrong_dups),
                        ("events applied without a 200", unacked), ("torn KV entries", torn),
                        ("temporary KV files left", temps)]:
        if items:
            problems.append(f"{len(items)} {name}: {items[:3]}")
    if invalid != soak.bad_signatures:
        problems.append(f"{invalid} invalid audit lines for {soak.bad_signatures} bad signatures")


def check_log(svc, result, problems):
    text = svc.log_path.read_text(errors="replace")
    lines = text.splitlines()
    crashes = [l for l in lines if any(w in l for w in ("Fatal error", "fatal error", "Segmentation", "Illegal instruction",
                                                        "internal_error", "Trace/breakpoint", "Aborted"))]
    result["stderr"] = {"lines": len(lines), "crash_lines": crashes[:10]}
    if crashes:
        problems.append(f"{len(crashes)} crash or internal-error lines in the service's stderr: {crashes[:3]}")


def soak_phase(work, duration, workers, max_connections, seed, result, problems):
    svc = Service(Path(work) / "soak", max_connections)
    try:
        soak = Soak(svc, workers, seed)
        soak.warm_up()
        idle = svc.wait_idle()
        before = {"processes": len(idle), "fds": svc.fds(), "rss_kb": svc.rss_kb()}
        elapsed, peak = soak.run(duration)
        idle = svc.wait_idle()
        after = {"processes": len(idle), "fds": svc.fds(), "rss_kb": svc.rss_kb(),
                 "zombies": sum(1 for p in idle if p[1] == "Z"), "left": [p[3] for p in idle[1:]][:10],
                 "orphans_awaiting_init": len(svc.processes()) - len(svc.live())}
        result.update({
            "duration_s": round(elapsed, 1), "workers": workers, "max_connections": max_connections,
            "requests": soak.requests, "requests_per_s": round(soak.requests / elapsed, 1),
            "connections": soak.connections, "unexpected": soak.unexpected_count,
            "unexpected_examples": soak.unexpected, "statuses": dict(sorted(soak.statuses.items())),
            "by_kind": {k: {"count": len(v), "p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99),
                            "max_ms": percentile(v, 100)} for k, v in soak.latency.items()},
            "latency_ms": {"p50": percentile(sum(soak.latency.values(), []), 50),
                           "p99": percentile(sum(soak.latency.values(), []), 99)},
            "processes": {"before": before["processes"], "after": after["processes"], "peak": peak["processes"],
                          "peak_pipelines": peak["children"], "zombies_after": after["zombies"],
                          "left_after": after["left"], "orphans_awaiting_init": after["orphans_awaiting_init"]},
            "listener": {"fds_before": before["fds"], "fds_after": after["fds"],
                         "rss_kb_before": before["rss_kb"], "rss_kb_after": after["rss_kb"]},
        })
        if soak.unexpected_count:
            problems.append(f"{soak.unexpected_count} unexpected responses, e.g. {soak.unexpected[:3]}")
        if after["processes"] != before["processes"]:
            problems.append(f"processes: {before['processes']} before, {after['processes']} after: {after['left']}")
        if after["fds"] != before["fds"]:
            problems.append(f"listener open files: {before['fds']} before, {after['fds']} after")
        if soak.requests == 0:
            problems.append("no request was served")
        check_aftermath(svc, soak, result, problems)
        check_log(svc, result, problems)
    finally:
        svc.stop()


def flood_phase(work, n, max_connections, timeout, result, problems):
    """n connections at once against max-children = max_connections, one slot held by a
    keep-alive connection: each connection must be served, refused, or left waiting until
    the client gives up (after `timeout` seconds), never get half or a wrong response; the
    held one is served meanwhile; the service recovers."""
    svc = Service(Path(work) / "flood", max_connections)
    outcomes = [None] * n
    barrier = threading.Barrier(n + 1)
    peak = {"children": 0}

    def one(i):
        barrier.wait()
        start = time.monotonic()
        data = b""
        try:
            with socket.create_connection(("127.0.0.1", svc.port), timeout=timeout) as s:
                s.sendall(http("GET", "/healthz", close=True))
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except ConnectionRefusedError:
            outcomes[i] = ("refused", time.monotonic() - start)
            return
        except ConnectionResetError:
            outcomes[i] = ("reset" if not data else "broken", time.monotonic() - start)
            return
        except TimeoutError:
            # Still queued (SYN retries past the backlog, or accepted by the kernel but not
            # yet by socat) when this client stopped waiting: clean, as long as no byte came.
            outcomes[i] = ("gave_up_waiting" if not data else "broken", time.monotonic() - start)
            return
        except OSError as e:
            outcomes[i] = (f"error: {e}", time.monotonic() - start)
            return
        ok = data.startswith(b"HTTP/1.1 200 ") and data.endswith(b'{"status":"ok"}')
        outcomes[i] = ("served" if ok else f"bad: {data[:80]!r}", time.monotonic() - start)

    try:
        svc.wait_idle()          # the start-up probe's pipeline has ended
        held = Conn(svc.port)
        held_ok = held.exchange(http("GET", "/healthz"))[0] == 200
        # The start-up probe's connection may still be in the backlog when wait_idle looks,
        # its short-lived pipeline starting only now: give it time to go, so what is counted
        # is the held connection's pipelines (one, or the check below fails).
        deadline = time.time() + 5
        while len(svc.children()) > 1 and time.time() < deadline:
            time.sleep(0.05)
        base_children = len(svc.children())
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        start = time.monotonic()
        barrier.wait()
        held_during = None
        while any(t.is_alive() for t in threads) and time.monotonic() - start < 2 * timeout + 10:
            peak["children"] = max(peak["children"], len(svc.children()))
            # At once, while the flood's connections are arriving: with a pipeline in one
            # process (chain) the whole flood can be over in less than a few tenths of a second.
            if held_during is None:
                try:
                    held_during = held.exchange(http("GET", "/nope"))[0] == 404
                except (OSError, EOFError):
                    held_during = False
            time.sleep(0.02)
        for t in threads:
            t.join(5)
        elapsed = time.monotonic() - start
        held.close()
        recovered = 0
        for _ in range(10):
            c = Conn(svc.port)
            try:
                recovered += c.exchange(http("GET", "/healthz", close=True))[0] == 200
            finally:
                c.close()
        idle = svc.wait_idle()
        kinds = {}
        for o in outcomes:
            key = "hung" if o is None else o[0]
            kinds[key] = kinds.get(key, 0) + 1
        waits = [o[1] for o in outcomes if o and o[0] == "served"]
        result["flood"] = {"connections": n, "max_connections": max_connections, "outcomes": kinds,
                           "seconds": round(elapsed, 2), "longest_wait_s": round(max(waits), 2) if waits else None,
                           "peak_pipelines": peak["children"], "held_connection_served_during_flood": held_during,
                           "served_after_flood": f"{recovered}/10", "processes_after": len(idle)}
        clean = sum(kinds.get(k, 0) for k in ("served", "refused", "reset", "gave_up_waiting"))
        if clean != n:
            problems.append(f"flood: connections neither served nor refused cleanly: {kinds}")
        if not held_ok or not held_during:
            problems.append("flood: the held keep-alive connection was not served during the flood")
        if peak["children"] > max_connections:
            problems.append(f"flood: {peak['children']} pipelines at once, limit {max_connections}")
        if recovered != 10:
            problems.append(f"flood: only {recovered}/10 requests served after the flood")
        if len(idle) != 1:
            problems.append(f"flood: {len(idle)} processes left after the flood: {[p[3] for p in idle]}")
        if base_children != 1:
            problems.append(f"flood: {base_children} pipelines for one held connection")
        check_log(svc, {}, problems)
    finally:
        svc.stop()


def main():
    ap = argparse.ArgumentParser(description="soak and connection flood of pipelines/serve")
    ap.add_argument("duration", type=float, help="seconds of mixed load")
    ap.add_argument("--workers", type=int, default=6, help="concurrent client connections (6)")
    ap.add_argument("--max-connections", type=int, default=64, help="the soaked service's max-children (64)")
    ap.add_argument("--flood", type=int, default=150, help="connections opened at once in the flood (150; 0: none)")
    ap.add_argument("--flood-max-connections", type=int, default=4, help="the flooded service's max-children (4)")
    ap.add_argument("--flood-timeout", type=float, default=60, help="seconds a flooding client waits (60)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="also write the summary to this file")
    ap.add_argument("--keep", help="work directory to keep (data, logs); default: a temporary one, removed")
    args = ap.parse_args()
    for tool in ("http-decode", "route", "verify-jwt", "sign-jwt", "kv", "apply-webhook", "audit", "http-encode"):
        if not (BIN / tool).exists():
            raise SystemExit(f"soak: {BIN / tool} is missing (swift build -c release -Xswiftc -static-executable)")
    work = args.keep or tempfile.mkdtemp(prefix="edgepipe-soak.")
    result, problems = {}, []
    try:
        if args.duration > 0:
            soak_phase(work, args.duration, args.workers, args.max_connections, args.seed, result, problems)
        if args.flood > 0:
            flood_phase(work, args.flood, args.flood_max_connections, args.flood_timeout, result, problems)
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", work])
    result["problems"] = problems
    result["ok"] = not problems
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    if "requests" in result:
        print(f"soak: {result['requests']} requests on {result['connections']} connections in {result['duration_s']} s "
              f"({result['requests_per_s']}/s), {result['unexpected']} unexpected; webhooks "
              f"{result['webhooks']['delivered']} delivered, {result['webhooks']['redelivered']} redelivered, "
              f"{result['webhooks']['applied_lines']} applied; processes {result['processes']['before']} -> "
              f"{result['processes']['after']}; listener fds {result['listener']['fds_before']} -> "
              f"{result['listener']['fds_after']}", file=sys.stderr)
    if "flood" in result:
        print(f"flood: {result['flood']['outcomes']} in {result['flood']['seconds']} s, "
              f"peak {result['flood']['peak_pipelines']} pipelines", file=sys.stderr)
    print("soak: " + ("ok" if not problems else "FAILED: " + "; ".join(problems)), file=sys.stderr)
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
