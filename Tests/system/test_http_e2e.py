"""The HTTP adapter end to end: pipelines/serve on a loopback port (socat, and tcpserver
where it matters), real clients (curl, http.client, raw sockets for the nasty cases).

Whatever sits between http-decode and http-encode may answer a well-formed request with
any status (a pass-through route gives 502 from the encoder, the real route 200/404), so
these tests check what the adapter itself owns: framing, keep-alive, pipelining order,
the statuses the decoder produces (DECODER_ERRORS), timeouts and closing."""
import http.client
import json
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import Service
from test_http_encode import header

DECODER_ERRORS = {400, 408, 413, 414, 417, 431, 501, 505}


# The adapter three ways: a full pipeline (http-decode inside chain, http-encode a process
# after audit), a read pipeline (the whole pipeline one chain process, encoding in it), and
# every filter a process of its own (EDGEPIPE_CHAIN=0).
LAYOUTS = {"full": {}, "read": {"EDGEPIPE_PIPELINE": "read"}, "separate": {"EDGEPIPE_CHAIN": "0"}}


@pytest.fixture(scope="module", params=list(LAYOUTS))
def svc(request, tmp_path_factory):
    s = Service(tmp_path_factory.mktemp("http-e2e"), env=LAYOUTS[request.param])
    yield s
    s.stop()


@pytest.fixture(scope="module", params=list(LAYOUTS))
def impatient(request, tmp_path_factory):
    """A service with short timeouts, for slowloris and idle connections."""
    s = Service(tmp_path_factory.mktemp("http-impatient"),
                env={"EDGEPIPE_HEADER_TIMEOUT_MS": "300", "EDGEPIPE_BODY_TIMEOUT_MS": "300",
                     "EDGEPIPE_IDLE_TIMEOUT_MS": "600", **LAYOUTS[request.param]})
    yield s
    s.stop()


@pytest.fixture(scope="module", params=["socat", "tcpserver"])
def launched(request, tmp_path_factory):
    if request.param == "tcpserver" and not shutil.which("tcpserver"):
        pytest.skip("tcpserver (ucspi-tcp) is not installed")
    s = Service(tmp_path_factory.mktemp("http-" + request.param), env={"EDGEPIPE_LAUNCHER": request.param})
    yield s
    s.stop()


class Conn:
    """A raw client connection that reads responses one at a time."""

    def __init__(self, svc, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", svc.port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed; buffered {self.buf[:200]!r}")
        self.buf += chunk

    def response(self, head=False):
        """(status, headers, body) of the next response; HEAD responses have no body."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        raw, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        version, code, _ = lines[0].split(" ", 2)
        assert version == "HTTP/1.1"
        status = int(code)
        headers = [(n, v.strip()) for n, _, v in (l.partition(":") for l in lines[1:])]
        assert all(n == n.lower() and n.strip() == n for n, _ in headers)
        length = 0 if head or status in (204, 304) else int(dict(headers)["content-length"])
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def closed(self, timeout=3):
        """True when the server closes the connection (EOF) with nothing more to read."""
        self.sock.settimeout(timeout)
        try:
            data = self.buf or self.sock.recv(65536)
        except TimeoutError:
            return False
        return data == b""

    def close(self):
        self.sock.close()


def assert_framed(response):
    status, headers, body = response
    assert 200 <= status <= 599
    assert header(response, "date", ) and header(response, "content-type")
    if status not in (204, 304):
        assert header(response, "content-length") is not None


def assert_decoder_error(response, status):
    assert response[0] == status, response
    assert header(response, "connection") == "close"
    assert header(response, "content-type") == "application/json"
    err = json.loads(response[2])
    assert err["error"] and err["message"]


def get(path="/healthz", extra=b""):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n" + extra + b"\r\n"


# --- keep-alive and pipelining -------------------------------------------------------

def test_several_requests_on_one_keep_alive_connection(launched):
    c = Conn(launched)
    try:
        for i in range(5):
            c.send(get(f"/healthz?n={i}"))
            r = c.response()
            assert_framed(r)
            assert r[0] not in DECODER_ERRORS
            assert header(r, "connection") is None
        assert not c.closed(timeout=0.3)
    finally:
        c.close()


def test_http_client_reuses_the_connection(service):
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=5)
    try:
        sockets = set()
        for path in ("/healthz", "/nope", "/healthz"):
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            assert len(body) == int(resp.getheader("content-length"))
            assert resp.status not in DECODER_ERRORS
            sockets.add(id(conn.sock))
        assert len(sockets) == 1
    finally:
        conn.close()


def test_pipelined_requests_answered_in_order(launched):
    c = Conn(launched)
    try:
        # HEAD in the middle: if answers were reordered, the bodiless one would be misframed.
        c.send(get("/a") + b"HEAD /b HTTP/1.1\r\nHost: localhost\r\n\r\n" + get("/c") + get("/d", b"Connection: close\r\n"))
        first = c.response()
        head = c.response(head=True)
        third = c.response()
        last = c.response()
        for r in (first, head, third, last):
            assert_framed(r)
        assert head[2] == b"" and header(head, "content-length") is not None
        assert header(last, "connection") == "close"
        assert c.closed()
    finally:
        c.close()


def test_error_after_pipelined_requests_comes_last(svc):
    c = Conn(svc)
    try:
        c.send(get("/1") + get("/2") + b"GET /3 HTTP/1.1\r\nHost: localhost\r\nBad Header: x\r\n\r\n" + get("/4"))
        assert c.response()[0] not in DECODER_ERRORS
        assert c.response()[0] not in DECODER_ERRORS
        assert_decoder_error(c.response(), 400)
        assert c.closed()
    finally:
        c.close()


def test_client_half_close_still_gets_every_answer(launched):
    c = Conn(launched)
    try:
        c.send(get("/1") + get("/2") + get("/3"))
        c.sock.shutdown(socket.SHUT_WR)
        for _ in range(3):
            assert_framed(c.response())
        assert c.closed()
    finally:
        c.close()


def test_http10_without_keep_alive_closes(svc):
    c = Conn(svc)
    try:
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        r = c.response()
        assert_framed(r)
        assert header(r, "connection") == "close"
        assert c.closed()
    finally:
        c.close()


def test_http10_keep_alive_stays_open(svc):
    c = Conn(svc)
    try:
        for _ in range(2):
            c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            r = c.response()
            assert_framed(r)
            assert header(r, "connection") == "keep-alive"
        assert not c.closed(timeout=0.3)
    finally:
        c.close()


def test_connection_close_closes_after_the_response(svc):
    c = Conn(svc)
    try:
        start = time.monotonic()
        c.send(get("/healthz", b"Connection: close\r\n"))
        r = c.response()
        assert header(r, "connection") == "close"
        assert c.closed()
        assert time.monotonic() - start < 1
    finally:
        c.close()


def test_head_response_has_length_and_no_body(svc):
    c = Conn(svc)
    try:
        c.send(b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n" + get("/healthz"))
        head = c.response(head=True)
        after = c.response()
        assert head[0] == after[0]
        assert header(head, "content-length") == header(after, "content-length")
    finally:
        c.close()


# --- bodies ----------------------------------------------------------------------------

def run_curl(*args, timeout=10):
    start = time.monotonic()
    proc = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *args],
                          capture_output=True, timeout=timeout)
    return proc, time.monotonic() - start


def test_chunked_upload_with_curl(service, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(bytes(range(256)) * 200)
    proc, _ = run_curl("-H", "Transfer-Encoding: chunked", "--data-binary", f"@{body}", f"{service.url}/upload")
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) not in DECODER_ERRORS


def test_http_client_chunked_upload(service):
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=5)
    try:
        conn.request("POST", "/upload", body=iter([b"part one, ", b"part two"]), encode_chunked=True,
                     headers={"Content-Type": "text/plain"})
        resp = conn.getresponse()
        assert len(resp.read()) == int(resp.getheader("content-length"))
        assert resp.status not in DECODER_ERRORS
    finally:
        conn.close()


def test_raw_chunked_upload_keeps_connection_usable(svc):
    c = Conn(svc)
    try:
        c.send(b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nTrailer: t\r\n\r\n" + get("/healthz"))
        assert c.response()[0] not in DECODER_ERRORS
        assert c.response()[0] not in DECODER_ERRORS
    finally:
        c.close()


def test_expect_100_continue_with_curl_is_fast(launched, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(b"x" * 100_000)
    proc, elapsed = run_curl("-v", "-H", "Expect: 100-continue", "-T", str(body), f"{launched.url}/upload")
    assert proc.returncode == 0, proc.stderr
    assert b"HTTP/1.1 100 Continue" in proc.stderr
    assert int(proc.stdout) not in DECODER_ERRORS
    assert elapsed < 0.8, f"curl waited {elapsed:.2f}s for 100 Continue"


def test_expect_100_continue_interim_response_on_the_wire(svc):
    c = Conn(svc)
    try:
        c.send(b"PUT /u HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        c.sock.settimeout(1)
        while len(c.buf) < 25:
            c._fill()
        assert c.buf.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        c.buf = c.buf[25:]
        c.send(b"hello")
        assert c.response()[0] not in DECODER_ERRORS
    finally:
        c.close()


def test_too_large_body_refused_before_continue(svc):
    c = Conn(svc)
    try:
        c.send(b"PUT /u HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n")
        assert_decoder_error(c.response(), 413)
        assert c.closed()
    finally:
        c.close()


def test_too_large_body_sent_anyway_still_gets_413(launched):
    # The client sends the whole body before reading: the server must drain it rather
    # than close on unread data (a RST would destroy the 413 before the client reads it).
    c = Conn(launched, timeout=10)
    try:
        sender = threading.Thread(target=lambda: c.send(
            b"POST /u HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3000000\r\n\r\n" + b"z" * 3_000_000))
        sender.start()
        sender.join(timeout=10)
        assert_decoder_error(c.response(), 413)
    finally:
        c.close()


def test_large_body_under_the_limit_passes(svc):
    c = Conn(svc)
    try:
        body = bytes(range(256)) * 4000
        c.send(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(body) + body + get("/healthz"))
        assert c.response()[0] not in DECODER_ERRORS
        assert c.response()[0] not in DECODER_ERRORS
    finally:
        c.close()


# --- limits and malformed requests ---------------------------------------------------

LIMITS = {
    "uri_too_long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414),
    "headers_too_large": (b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"v" * 40000 + b"\r\n\r\n", 431),
    "too_many_headers": (b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n", 431),
    "body_too_large": (b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1048577\r\n\r\n", 413),
    "chunked_too_large": (b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n100001\r\n", 413),
    "unknown_coding": (b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    "http2": (b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n", 505),
    "http09": (b"GET /\r\n", 505),
    "expectation": (b"PUT / HTTP/1.1\r\nHost: localhost\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417),
}

SMUGGLING = {
    "cl_and_te": b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_and_cl": b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "cl_plus": b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello",
    "cl_list": b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5,6\r\n\r\nhello!",
    "cl_duplicate": b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "cl_empty": b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: \r\n\r\n",
    "cl_hex": b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0x5\r\n\r\nhello",
    "obs_fold": b"GET / HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n b\r\n\r\n",
    "space_before_colon": b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length : 5\r\n\r\nhello",
    "bare_cr": b"GET / HTTP/1.1\r\nHost: localhost\r\nX-A: a\rX-B: b\r\n\r\n",
    "bare_lf": b"GET / HTTP/1.1\nHost: localhost\n\n",
    "nul_in_value": b"GET / HTTP/1.1\r\nHost: localhost\r\nX-A: a\x00b\r\n\r\n",
    "control_in_value": b"GET / HTTP/1.1\r\nHost: localhost\r\nX-A: a\x1bb\r\n\r\n",
    "bad_method": b"G(ET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "bad_header_name": b"GET / HTTP/1.1\r\nHost: localhost\r\nX@A: b\r\n\r\n",
    "te_on_http10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_twice": b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_leading_comma": b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n",
    "chunk_size_0x": b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    "chunk_size_underscore": b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0_2e\r\n\r\n",
    "chunk_cr_in_extension": b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\r;a\r\nhello\r\n0\r\n\r\n",
    "missing_host": b"GET / HTTP/1.1\r\n\r\n",
    "two_hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_limit_answered_with_its_status_and_close(svc, name):
    data, status = LIMITS[name]
    c = Conn(svc)
    try:
        c.send(data + get("/after"))
        assert_decoder_error(c.response(), status)
        assert c.closed()
    finally:
        c.close()


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_smuggling_attempt_answered_400_and_closed(svc, name):
    c = Conn(svc)
    try:
        # A request hidden behind the bad one must never be answered.
        c.send(SMUGGLING[name] + get("/smuggled"))
        assert_decoder_error(c.response(), 400)
        assert c.closed()
    finally:
        c.close()


def test_long_url_with_curl_is_414(service):
    proc, _ = run_curl(f"{service.url}/" + "a" * 10000)
    assert proc.stdout == b"414"


# --- timeouts --------------------------------------------------------------------------

def test_slowloris_head_times_out_with_408(impatient):
    c = Conn(impatient)
    try:
        start = time.monotonic()
        c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        for _ in range(3):
            time.sleep(0.05)
            c.send(b"X-Slow: 1\r\n")
        assert_decoder_error(c.response(), 408)
        assert c.closed()
        assert time.monotonic() - start < 2
    finally:
        c.close()


def test_slow_body_times_out_with_408(impatient):
    c = Conn(impatient)
    try:
        c.send(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nabc")
        assert_decoder_error(c.response(), 408)
        assert c.closed()
    finally:
        c.close()


def test_idle_connection_closed_silently(impatient):
    c = Conn(impatient)
    try:
        c.send(get("/healthz"))
        assert c.response()[0] not in DECODER_ERRORS
        start = time.monotonic()
        assert c.closed(timeout=3)
        assert 0.4 < time.monotonic() - start < 2.5
    finally:
        c.close()


def test_requests_within_the_timeouts_are_served(impatient):
    c = Conn(impatient)
    try:
        for _ in range(3):
            time.sleep(0.2)
            c.send(get("/healthz"))
            assert c.response()[0] not in DECODER_ERRORS
    finally:
        c.close()
