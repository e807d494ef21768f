"""forward: the gateway sends verified requests to the services behind it.

Real processes and real sockets: pipelines/serve with the forward stage, real backends
(a Python echo server that records what it receives and counts its accepts, nginx, a
Unix-socket server, a TLS server with its own CA, and raw-socket servers that answer
exactly the bytes a case needs), real clients (http.client)."""
import gzip
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import PIPELINES, ROOT, Service, binary, free_port, stop_group, wait_for_port
from test_redis import make_ca_and_server_cert
from test_service import dev_token

TIMEOUT = float(os.environ.get("EDGEPIPE_TEST_TIMEOUT", "10"))
BIG = 8 << 20
ROUTES_EXTRA = """
*             /api/*                     api
*             /pub/*                     pub
*             /other/*                   other
"""


# ----------------------------------------------------------------------------- backends

class Recorder:
    """What a backend saw: each request (method, target, headers, body) and each accept."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.accepts = 0

    def add(self, **r):
        with self.lock:
            self.requests.append(r)

    def accepted(self):
        with self.lock:
            self.accepts += 1


def make_echo_handler(rec, close_after=False, idle_timeout=None):
    class Echo(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = idle_timeout   # the server closes a connection idle this long

        def log_message(self, *a):
            pass

        def address_string(self):
            return "peer"

        def handle_one_request(self):
            try:
                super().handle_one_request()
            except (socket.timeout, TimeoutError):
                self.close_connection = True

        def answer(self):
            n = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(n) if n else b""
            rec.add(method=self.command, target=self.path, headers=[(k.lower(), v) for k, v in self.headers.items()], body=body)
            if self.path.startswith("/api/echo-body") or self.path.startswith("/echo-body"):
                out, ctype = body, "application/octet-stream"
            elif "/big" in self.path:
                out, ctype = bytes(range(256)) * (BIG // 256), "application/octet-stream"
            else:
                out = json.dumps({"method": self.command, "target": self.path,
                                  "headers": [[k.lower(), v] for k, v in self.headers.items()],
                                  "body_sha256": hashlib.sha256(body).hexdigest()}).encode()
                ctype = "application/json"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(out)))
            self.send_header("Set-Cookie", "a=1")
            self.send_header("Set-Cookie", "b=2")
            if close_after:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = answer

    return Echo


class CountingTCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: on a loaded machine a backend whose accept loop
    # is late would have the kernel drop connections that forward already counts as open.
    request_queue_size = 128

    def __init__(self, addr, handler, rec, tls=None):
        self.rec = rec
        self.tls = tls
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = super().get_request()
        self.rec.accepted()
        if self.tls:
            sock = self.tls.wrap_socket(sock, server_side=True)
        return sock, addr


class CountingUnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, path, handler, rec):
        self.rec = rec
        super().__init__(path, handler)

    def get_request(self):
        sock, _ = super().get_request()
        self.rec.accepted()
        return sock, ("unix", 0)


class Backend:
    """A backend in this process's threads; stopped by `stop()`."""

    def __init__(self, server, url):
        self.server = server
        self.url = url
        self.rec = server.rec
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def echo_backend(**kw):
    rec = Recorder()
    port = free_port()
    return Backend(CountingTCPServer(("127.0.0.1", port), make_echo_handler(rec, **kw), rec), f"http://127.0.0.1:{port}")


class RawBackend:
    """Reads each request (head and Content-Length body) and answers `answer(request
    bytes, connection)`: whatever bytes a case needs, garbage included."""

    def __init__(self, answer):
        self.answer = answer
        self.rec = Recorder()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.running = True
        self.acceptor = threading.Thread(target=self.accept_loop, daemon=True)
        self.acceptor.start()

    def accept_loop(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.rec.accepted()
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        conn.settimeout(15)
        buf = b""
        try:
            while self.running:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                n = int(m.group(1)) if m else 0
                while len(buf) < n:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                body, buf = buf[:n], buf[n:]
                self.rec.add(head=head, body=body)
                if self.answer(head, conn) == "close":
                    return
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self):
        # Wake the accept loop and wait for it before the descriptor is closed: a loop still
        # in accept() when the number is reused by the next test's listener would take that
        # test's connection and reset it (seen under load in CI).
        self.running = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.acceptor.join(5)
        self.sock.close()


# ----------------------------------------------------------------------------- the service

class Gateway:
    def __init__(self, tmp_path, upstreams, env=None, public=("pub",), routes=""):
        table = tmp_path / "routes"
        table.write_text((PIPELINES / "routes").read_text() + ROUTES_EXTRA + routes)
        self.upstreams = tmp_path / "upstreams"
        self.upstreams.write_text(upstreams)
        full_env = {"EDGEPIPE_ROUTES": str(table), "EDGEPIPE_UPSTREAMS": str(self.upstreams),
                    "EDGEPIPE_JWT_PUBLIC_ROUTES": ",".join(("healthz", "stripe-webhook") + tuple(public))}
        full_env.update(env or {})
        self.svc = Service(tmp_path, env=full_env)
        self.port = self.svc.port

    def log(self):
        """The service's output (forward logs each upstream failure there), for assertion messages."""
        return (self.svc.data.parent / "serve.log").read_text(errors="replace")[-2000:]

    def token(self, uid="user-42"):
        return dev_token(self.svc, uid)

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

    def call(self, method, path, headers=None, body=None, conn=None, token=True):
        own = conn is None
        conn = conn or self.conn()
        h = dict(headers or {})
        if token is True:
            h.setdefault("Authorization", f"Bearer {self.token()}")
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp, data
        finally:
            if own:
                conn.close()

    def stop(self):
        self.svc.stop()


@pytest.fixture
def cleanup():
    things = []
    yield things
    for t in reversed(things):
        t.stop()


def gateway(tmp_path, cleanup, upstreams, **kw):
    g = Gateway(tmp_path, upstreams, **kw)
    cleanup.append(g)
    return g


def started(cleanup, backend):
    cleanup.append(backend)
    return backend


def all_ok(gw, method, paths, conn=None, **kw):
    """Every request answered 200, on `conn` (one client connection) or each on its own."""
    headers = {"Authorization": f"Bearer {gw.token()}"}
    for path in paths:
        status, _, data = gw.call(method, path, headers=headers, conn=conn, token=False, **kw)
        assert status == 200, (path, data, gw.log())


def error_of(data):
    body = json.loads(data)
    assert set(body) >= {"error", "message"}
    return body["error"]


# ----------------------------------------------------------------------------- identity and rewriting

def test_the_backend_sees_the_verified_uid_and_never_the_token(tmp_path, cleanup):
    be = started(cleanup, echo_backend())
    gw = gateway(tmp_path, cleanup, f"api {be.url} strip=/api\n")
    token = gw.token("user-42")
    status, resp, data = gw.call("GET", "/api/orders/caf%C3%A9%20x?x=%20&y=2", token=False,
                                 headers={"Authorization": f"Bearer {token}", "X-Authenticated-UID": "admin",
                                          "X-Forwarded-For": "6.6.6.6", "X-Custom": "kept"})
    assert status == 200, data
    seen = be.rec.requests[-1]
    headers = dict(seen["headers"])
    assert seen["target"] == "/orders/caf%C3%A9%20x?x=%20&y=2"          # raw path, strip applied, query unchanged
    assert headers["x-authenticated-uid"] == "user-42"
    assert [v for k, v in seen["headers"] if k == "x-authenticated-uid"] == ["user-42"]
    assert "authorization" not in headers and token not in json.dumps(seen["headers"])
    assert headers["x-custom"] == "kept"
    assert headers["x-forwarded-for"] == "6.6.6.6, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == f"127.0.0.1:{gw.port}"
    assert headers["host"] == be.url.removeprefix("http://")
    assert resp.getheader("content-type") == "application/json"
    assert [v for k, v in resp.getheaders() if k.lower() == "set-cookie"] == ["a=1", "b=2"]


def test_a_public_forwarded_route_passes_no_token_and_no_claimed_identity(tmp_path, cleanup):
    be = started(cleanup, echo_backend())
    gw = gateway(tmp_path, cleanup, f"pub {be.url}\n")
    status, _, data = gw.call("GET", "/pub/x", token=False,
                              headers={"Authorization": "Bearer not.a.token", "X-Authenticated-UID": "admin",
                                       "X-Authenticated-Email": "a@b"})
    assert status == 200, data
    names = [k for k, _ in be.rec.requests[-1]["headers"]]
    assert "authorization" not in names
    assert not [n for n in names if n.startswith("x-authenticated-")]


def test_a_protected_forwarded_route_without_a_token_never_reaches_the_backend(tmp_path, cleanup):
    be = started(cleanup, echo_backend())
    gw = gateway(tmp_path, cleanup, f"api {be.url}\n")
    status, _, data = gw.call("GET", "/api/x", token=False)
    assert status == 401 and error_of(data) == "unauthorized"
    assert be.rec.requests == [] and be.rec.accepts == 0


def test_routes_not_listed_are_served_as_before(tmp_path, cleanup):
    be = started(cleanup, echo_backend())
    gw = gateway(tmp_path, cleanup, f"api {be.url}\n")
    status, _, data = gw.call("GET", "/healthz", token=False)
    assert status == 200 and json.loads(data) == {"status": "ok"}
    status, _, data = gw.call("GET", "/v1/subscription")
    assert status == 200 and json.loads(data)["uid"] == "user-42"
    assert be.rec.requests == []


# ----------------------------------------------------------------------------- connection reuse

def test_1000_requests_on_one_client_connection_use_one_backend_connection(tmp_path, cleanup):
    be = started(cleanup, echo_backend())
    gw = gateway(tmp_path, cleanup, f"api {be.url}\n")
    conn = gw.conn()
    all_ok(gw, "GET", [f"/api/n/{i}" for i in range(1000)], conn=conn)
    conn.close()
    assert len(be.rec.requests) == 1000
    assert [r["target"] for r in be.rec.requests[:3]] == ["/api/n/0", "/api/n/1", "/api/n/2"]
    assert be.rec.accepts == 1


def test_a_backend_closing_idle_connections_after_100ms_causes_no_client_error(tmp_path, cleanup):
    be = started(cleanup, echo_backend(idle_timeout=0.1))
    gw = gateway(tmp_path, cleanup, f"api {be.url}\n")
    conn = gw.conn()
    for i in range(15):
        all_ok(gw, "GET", [f"/api/idle/{i}"], conn=conn)
        time.sleep(0.15 if i % 2 else 0.12)
    # A POST after the idle close is not lost either: the stale connection is noticed first.
    all_ok(gw, "POST", ["/api/p"], conn=conn, body=b"x")
    conn.close()
    assert be.rec.accepts >= 15
    assert [r["method"] for r in be.rec.requests].count("POST") == 1


def test_a_backend_answering_connection_close_causes_no_client_error(tmp_path, cleanup):
    be = started(cleanup, echo_backend(close_after=True))
    gw = gateway(tmp_path, cleanup, f"api {be.url}\n")
    conn = gw.conn()
    auth = {"Authorization": f"Bearer {gw.token()}"}
    for i in range(50):
        status, resp, data = gw.call("GET", f"/api/c/{i}", headers=auth, conn=conn, token=False)
        assert status == 200, data
        assert resp.getheader("connection") != "close"      # the client's connection stays open
    conn.close()
    assert be.rec.accepts == 50


# ----------------------------------------------------------------------------- response shapes

@pytest.fixture
def shapes(tmp_path, cleanup):
    """One raw backend per response shape; (payload, whether the backend closes after it)."""
    cases = {
        "chunked": (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\nX-Trailer: dropped\r\n\r\n", False),
        "close": (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close", True),
        "interim": (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                    b"HTTP/1.1 201 Created\r\nContent-Length: 7\r\n\r\ncreated", False),
        "nocontent": (b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", False),
        "notmodified": (b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n", False),
        "cookies": (b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2\r\nSet-Cookie: c=3\r\n"
                    b"Content-Length: 0\r\n\r\n", False),
        "binary": (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 256\r\n\r\n"
                   + bytes(range(256)), False),
        "head": (b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", False),
    }

    def answer(payload, close):
        return lambda head, conn: conn.sendall(payload) or ("close" if close else None)

    backends = {name: started(cleanup, RawBackend(answer(*case))) for name, case in cases.items()}
    gw = gateway(tmp_path, cleanup, "".join(f"{name} {be.url}\n" for name, be in backends.items()),
                 public=tuple(cases), routes="".join(f"*  /{name}  {name}\n" for name in cases))
    return gw, backends


def test_response_shapes_reach_the_client_exactly(shapes):
    gw, _ = shapes
    conn = gw.conn()
    status, _, data = gw.call("GET", "/chunked", conn=conn, token=False)
    assert (status, data) == (200, b"hello, world")
    status, resp, data = gw.call("GET", "/close", conn=conn, token=False)
    assert (status, data) == (200, b"until the close")
    status, resp, data = gw.call("POST", "/interim", body=b"x", conn=conn, token=False)
    assert (status, data) == (201, b"created")
    status, resp, data = gw.call("GET", "/nocontent", conn=conn, token=False)
    assert (status, data, resp.getheader("x-a")) == (204, b"", "1")
    status, resp, data = gw.call("GET", "/notmodified", conn=conn, token=False)
    assert (status, data, resp.getheader("etag")) == (304, b"", '"v1"')
    status, resp, data = gw.call("GET", "/cookies", conn=conn, token=False)
    assert [v for k, v in resp.getheaders() if k.lower() == "set-cookie"] == ["a=1; Path=/", "b=2", "c=3"]
    status, resp, data = gw.call("GET", "/binary", conn=conn, token=False)
    assert (status, data) == (200, bytes(range(256)))
    status, resp, data = gw.call("HEAD", "/head", conn=conn, token=False)
    assert (status, data) == (200, b"")
    # After all of that, the client's connection still works.
    status, _, data = gw.call("GET", "/healthz", conn=conn, token=False)
    assert status == 200
    conn.close()


def test_8_mib_bodies_both_ways(tmp_path, cleanup):
    be = started(cleanup, echo_backend())
    gw = gateway(tmp_path, cleanup, f"api {be.url}\n", env={"EDGEPIPE_MAX_BODY": str(9 << 20)})
    payload = os.urandom(BIG)
    conn = gw.conn()
    status, _, data = gw.call("POST", "/api/echo-body", body=payload, conn=conn,
                              headers={"Content-Type": "application/octet-stream"})
    assert status == 200, (data[:200], gw.log())
    assert be.rec.requests[-1]["body"] == payload
    assert data == payload
    status, _, data = gw.call("GET", "/api/big", conn=conn)
    assert status == 200 and data == bytes(range(256)) * (BIG // 256), (status, data[:200], gw.log())
    conn.close()


def test_upgrade_is_501_json(tmp_path, cleanup):
    be = started(cleanup, echo_backend())
    gw = gateway(tmp_path, cleanup, f"api {be.url}\n")
    status, _, data = gw.call("GET", "/api/ws", headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                                          "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert status == 501 and error_of(data) == "upgrade_not_supported"
    assert be.rec.requests == []


# ----------------------------------------------------------------------------- failures

def test_a_hanging_backend_is_504_within_the_timeout(tmp_path, cleanup):
    be = started(cleanup, RawBackend(lambda head, conn: time.sleep(20) or "close"))
    gw = gateway(tmp_path, cleanup, f"api {be.url} timeout=1\n")
    t0 = time.monotonic()
    status, _, data = gw.call("GET", "/api/slow")
    took = time.monotonic() - t0
    assert status == 504 and error_of(data) == "upstream_timeout"
    assert 0.9 < took < 3, took


def test_a_dead_backend_is_502_json(tmp_path, cleanup):
    port = free_port()   # nothing listens there
    gw = gateway(tmp_path, cleanup, f"api http://127.0.0.1:{port}\n")
    t0 = time.monotonic()
    status, _, data = gw.call("GET", "/api/x")
    assert status == 502 and error_of(data) == "upstream_unavailable"
    assert time.monotonic() - t0 < 3


def test_the_log_line_about_a_failed_request_ends_with_its_request_id(tmp_path, cleanup):
    port = free_port()   # nothing listens there
    gw = gateway(tmp_path, cleanup, f"api http://127.0.0.1:{port}\n")
    status, resp, _ = gw.call("GET", "/api/x")
    rid = resp.getheader("x-request-id")
    assert status == 502 and rid
    lines = [l for l in gw.log().splitlines() if l.startswith("forward: ")]
    assert lines and all(l.endswith(f" request_id={rid}") for l in lines), gw.log()


def test_a_connect_timeout_is_504(tmp_path, cleanup):
    # A listener whose accept queue is full: Linux drops the SYN, so the connect hangs.
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    for _ in range(20):                 # fill it until a connect hangs: then it is full
        s = socket.socket()
        s.settimeout(0.3)
        try:
            s.connect(("127.0.0.1", port))
            fillers.append(s)
        except (socket.timeout, TimeoutError):
            s.close()
            break
    else:
        pytest.fail("the accept queue never filled")
    try:
        gw = gateway(tmp_path, cleanup, f"api http://127.0.0.1:{port} connect-timeout=300\n")
        t0 = time.monotonic()
        status, _, data = gw.call("GET", "/api/x")
        assert status == 504 and error_of(data) == "upstream_timeout"
        assert time.monotonic() - t0 < 3
    finally:
        for s in fillers:
            s.close()
        lst.close()


@pytest.mark.parametrize("name,payload", [
    ("garbage", b"this is not http\r\n\r\n"),
    ("smuggling", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("badchunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
    ("negative", b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello"),
    ("barelf", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
])
def test_malformed_responses_are_502_and_the_connection_is_not_reused(tmp_path, cleanup, name, payload):
    be = started(cleanup, RawBackend(lambda head, conn: conn.sendall(payload)))
    gw = gateway(tmp_path, cleanup, f"api {be.url}\n")
    conn = gw.conn()
    for _ in range(3):
        status, _, data = gw.call("GET", "/api/x", conn=conn)
        assert status == 502 and error_of(data) == "bad_upstream_response", gw.log()
    conn.close()
    assert be.rec.accepts == 3          # each request on a fresh connection


def test_a_response_over_max_response_is_502(tmp_path, cleanup):
    be = started(cleanup, echo_backend())
    gw = gateway(tmp_path, cleanup, f"api {be.url} max-response=1000\n")
    status, _, data = gw.call("GET", "/api/big")
    assert status == 502 and error_of(data) == "upstream_response_too_large", (data, gw.log())
    status, _, data = gw.call("GET", "/api/small")
    assert status == 200, (data, gw.log())


def test_with_two_addresses_and_one_down_every_request_succeeds(tmp_path, cleanup):
    be = started(cleanup, echo_backend())
    dead = free_port()
    gw = gateway(tmp_path, cleanup, f"api http://127.0.0.1:{dead} {be.url}\n")
    all_ok(gw, "GET", [f"/api/{i}" for i in range(20)])     # new client connections: new pipelines, new turns
    conn = gw.conn()
    all_ok(gw, "POST", [f"/api/{i}" for i in range(20)], conn=conn, body=b"once")
    conn.close()
    assert len(be.rec.requests) == 40


def test_requests_are_spread_over_two_live_addresses(tmp_path, cleanup):
    a, b = started(cleanup, echo_backend()), started(cleanup, echo_backend())
    gw = gateway(tmp_path, cleanup, f"api {a.url} {b.url}\n")
    conn = gw.conn()
    all_ok(gw, "GET", [f"/api/{i}" for i in range(10)], conn=conn)
    conn.close()
    assert len(a.rec.requests) == 5 and len(b.rec.requests) == 5
    assert a.rec.accepts == 1 and b.rec.accepts == 1


# ----------------------------------------------------------------------------- other transports

def test_a_unix_socket_backend(tmp_path, cleanup):
    rec = Recorder()
    path = str(tmp_path / "be.sock")
    server = CountingUnixServer(path, make_echo_handler(rec), rec)
    be = started(cleanup, Backend(server, f"unix:{path}"))
    gw = gateway(tmp_path, cleanup, f"api unix:{path}\n")
    conn = gw.conn()
    all_ok(gw, "GET", [f"/api/u{i}" for i in range(5)], conn=conn)
    conn.close()
    assert dict(rec.requests[-1]["headers"])["host"] == "localhost"
    assert rec.accepts == 1


def test_a_tls_backend_with_its_own_ca_is_verified(tmp_path, cleanup):
    files = make_ca_and_server_cert(tmp_path, ["localhost"])
    ca = files["ca"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files["cert"], files["key"])
    rec = Recorder()
    port = free_port()
    started(cleanup, Backend(CountingTCPServer(("127.0.0.1", port), make_echo_handler(rec), rec, tls=ctx), ""))
    gw = gateway(tmp_path, cleanup, f"api https://localhost:{port} ca={ca}\n"
                                    f"other https://localhost:{port}\n")
    conn = gw.conn()
    all_ok(gw, "GET", [f"/api/t{i}" for i in range(5)], conn=conn)
    assert rec.accepts == 1
    assert dict(rec.requests[-1]["headers"])["host"] == f"localhost:{port}"
    # Not signed by a CA the system trusts: refused, never sent.
    status, _, data = gw.call("GET", "/other/x", conn=conn)
    assert status == 502 and error_of(data) == "upstream_unavailable"
    conn.close()
    assert len(rec.requests) == 5


NGINX_BACKEND = """
{user}
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
        gzip on; gzip_min_length 1; gzip_types text/plain;
        location = /api/fixed {{ return 200 "fixed\\n"; }}
    }}
}}
"""


def test_nginx_as_a_backend_static_files_and_chunked(tmp_path, cleanup):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        pytest.fail("nginx is missing (apt-get install nginx)")
    d = tmp_path / "nginx"
    (d / "www" / "api").mkdir(parents=True)
    (d / "tmp").mkdir()
    text = ("line of static text\n" * 4000).encode()
    (d / "www" / "api" / "file.txt").write_bytes(text)
    (d / "www" / "api" / "blob.bin").write_bytes(bytes(range(256)) * 64)
    port = free_port()
    (d / "nginx.conf").write_text(NGINX_BACKEND.format(dir=d, port=port,
                                                        # the test's files are private to its user
                                                        user="user root;" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen([nginx, "-c", str(d / "nginx.conf"), "-p", str(d)], stderr=subprocess.DEVNULL,
                            start_new_session=True)
    cleanup.append(type("P", (), {"stop": lambda self: stop_group(proc)})())
    wait_for_port(port)
    gw = gateway(tmp_path, cleanup, f"api http://127.0.0.1:{port}\n")
    conn = gw.conn()
    status, resp, data = gw.call("GET", "/api/file.txt", conn=conn)
    assert status == 200 and data == text
    status, resp, data = gw.call("GET", "/api/blob.bin", conn=conn)
    assert status == 200 and data == bytes(range(256)) * 64
    # gzip on the fly: nginx answers chunked; the client gets the whole compressed body.
    status, resp, data = gw.call("GET", "/api/file.txt", headers={"Accept-Encoding": "gzip"}, conn=conn)
    assert status == 200 and resp.getheader("content-encoding") == "gzip"
    assert gzip.decompress(data) == text
    status, resp, data = gw.call("GET", "/api/fixed", conn=conn)
    assert (status, data) == (200, b"fixed\n")
    status, resp, data = gw.call("GET", "/api/missing", conn=conn)
    assert status == 404
    conn.close()


# ----------------------------------------------------------------------------- the upstreams file

def test_forward_check_reports_file_and_line_and_exits_2(tmp_path):
    good = tmp_path / "good"
    good.write_text("# none\norders http://127.0.0.1:9001 strip=/v1\n")
    p = subprocess.run([binary("forward"), "--upstreams", str(good), "--check"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    bad = tmp_path / "bad"
    bad.write_text("# none\n\norders http://127.0.0.1:9001 retries=3\n")
    p = subprocess.run([binary("forward"), "--check"], capture_output=True, text=True, timeout=10,
                       env={**os.environ, "EDGEPIPE_UPSTREAMS": str(bad)})
    assert p.returncode == 2
    assert p.stderr.startswith(f"forward: {bad}:3: unknown option retries=")
    p = subprocess.run([binary("forward"), "--upstreams", str(PIPELINES / "upstreams"), "--check"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr


def test_a_bad_upstreams_file_fails_the_connection_not_silently(tmp_path, cleanup):
    gw = gateway(tmp_path, cleanup, "api ftp://nowhere\n")
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        gw.call("GET", "/healthz", token=False)


# ----------------------------------------------------------------------------- memory

def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_forward_process_rss_stays_flat_over_20000_requests(tmp_path, cleanup):
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"
    be = started(cleanup, RawBackend(lambda head, conn: conn.sendall(answer)))
    up = tmp_path / "upstreams"
    up.write_text(f"api {be.url}\n")
    proc = subprocess.Popen([binary("forward"), "--upstreams", str(up)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        def run(n, start):
            for i in range(start, start + n):
                rec = {"id": str(i), "method": "POST", "path": f"/api/{i}", "query": "", "version": "HTTP/1.1",
                       "headers": [["host", "h"], ["x-authenticated-uid", "u"]], "body": "x" * (i % 700),
                       "keep_alive": True, "remote": "127.0.0.1",
                       "annotations": {"route": {"name": "api", "params": {}}, "auth": {"uid": "u"}}}
                proc.stdin.write(json.dumps(rec).encode() + b"\n")
                proc.stdin.flush()
                out = json.loads(proc.stdout.readline())
                assert out["status"] == 200 and out["id"] == str(i), out
        run(2000, 0)
        warm = rss_kib(proc.pid)
        run(18000, 2000)
        end = rss_kib(proc.pid)
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert be.rec.accepts == 1
    assert end - warm < 512, f"RSS grew from {warm} KiB to {end} KiB"


# ----------------------------------------------------------------------------- behind pipelines/front

def test_behind_the_front_backend_connections_are_pooled_and_the_scheme_is_the_clients(tmp_path, cleanup, monkeypatch):
    from test_fronts import Front
    from conftest import BIN
    be = started(cleanup, echo_backend())
    routes = tmp_path / "routes"
    routes.write_text((PIPELINES / "routes").read_text() + ROUTES_EXTRA)
    upstreams = tmp_path / "upstreams"
    upstreams.write_text(f"api {be.url}\n")
    monkeypatch.setenv("EDGEPIPE_ROUTES", str(routes))
    monkeypatch.setenv("EDGEPIPE_UPSTREAMS", str(upstreams))
    front = Front(tmp_path, "nginx", BIN)
    cleanup.append(front)
    token = subprocess.run([binary("sign-jwt"), "dev", "--uid", "front-user"], capture_output=True, text=True, check=True,
                           env={**os.environ, "EDGEPIPE_DATA": str(front.data)}).stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    for tls in (False, True):
        for _ in range(5):                 # new client connections each time
            conn = front.connection(tls)
            for i in range(6):
                conn.request("GET", f"/api/{i}", headers=auth)
                resp = conn.getresponse()
                assert resp.status == 200, (resp.read(), front.diagnostics())
                resp.read()
            conn.close()
        headers = dict(be.rec.requests[-1]["headers"])
        assert headers["x-forwarded-proto"] == ("https" if tls else "http")
        assert headers["x-authenticated-uid"] == "front-user"
        assert headers["x-forwarded-for"] == "127.0.0.1"
    assert len(be.rec.requests) == 60
    # 10 client connections, but the proxy keeps at most 4 pipelines per worker, each with one
    # backend connection.
    assert be.rec.accepts <= 4, be.rec.accepts
