"""Helpers shared by the policy tests (limits, CORS, access rules): a service with its own
route table and policy files, a verify-jwt that logs every record it is given, and a
hammer that counts statuses over keep-alive connections."""
import http.client
import os
import subprocess
import threading
import time
from collections import Counter

from conftest import BIN, Service, binary

ROUTES = """\
GET,HEAD  /healthz           healthz       respond 200 {"status":"ok"}
GET       /v1/subscription   subscription
GET       /v1/open           open
GET       /v1/closed         closed
GET       /v1/nothing        nothing
GONE      /v1/old            removed=2025-01-01  replacement=/v1/subscription
"""


def logging_bin(tmp_path):
    """EDGEPIPE_BIN for a service whose verify-jwt appends each record it reads to a log
    before verifying it: the proof of which requests reached the token check. Only a
    verify-jwt of its own can be watched, so such a service runs with EDGEPIPE_CHAIN=0;
    test_chain.py shows chain gives the same records as those separate processes."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in os.listdir(BIN):
        if os.access(BIN / tool, os.X_OK) and not (BIN / tool).is_dir():
            os.symlink(BIN / tool, bindir / tool)
    os.unlink(bindir / "verify-jwt")
    log = tmp_path / "verify-jwt.seen"
    log.touch()
    shim = bindir / "verify-jwt"
    shim.write_text(f'#!/bin/sh\ntee -a "{log}" | exec "{BIN / "verify-jwt"}" "$@"\n')
    shim.chmod(0o755)
    return bindir, log


def policy_service(tmp_path, limits=None, cors=None, access=None, env=None, log_verify=False):
    routes = tmp_path / "routes"
    routes.write_text(ROUTES)
    full = {"EDGEPIPE_ROUTES": str(routes), "EDGEPIPE_LIMITS": "", "EDGEPIPE_CORS": "", "EDGEPIPE_JWT_ACCESS": ""}
    for name, text, var in [("limits", limits, "EDGEPIPE_LIMITS"), ("cors", cors, "EDGEPIPE_CORS"),
                            ("access", access, "EDGEPIPE_JWT_ACCESS")]:
        if text is not None:
            (tmp_path / name).write_text(text)
            full[var] = str(tmp_path / name)
    seen = None
    if log_verify:
        bindir, seen = logging_bin(tmp_path)
        full["EDGEPIPE_BIN"] = str(bindir)
        full["EDGEPIPE_CHAIN"] = "0"
    full.update(env or {})
    svc = Service(tmp_path, env=full)
    if log_verify:
        svc.seen = seen
    return svc


def token(svc, uid="alice", *claims):
    args = [binary("sign-jwt"), "dev", "--uid", uid, "--dev-keys", str(svc.data / "dev-keys")]
    for c in claims:
        args += ["--claim-json", c]
    return subprocess.run(args, capture_output=True, check=True, timeout=10).stdout.decode().strip()


def get(svc, path, headers=None, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def hammer(port, path, seconds=5.0, connections=16, headers=None):
    """`connections` keep-alive connections sending `path` back to back for `seconds`,
    timed from when every connection's pipeline is up (each first answers /healthz,
    which no limit sees). Returns a Counter of statuses."""
    counts = Counter()
    lock = threading.Lock()
    ready = threading.Barrier(connections + 1, timeout=30)
    window = {}

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        ready.wait()
        mine = Counter()
        while time.monotonic() < window["end"]:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            r.read()
            mine[r.status] += 1
            if r.getheader("connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.close()
        with lock:
            counts.update(mine)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    window["end"] = time.monotonic() + 3600
    ready.wait()
    window["end"] = time.monotonic() + seconds
    for t in threads:
        t.join(timeout=seconds + 30)
    return counts
