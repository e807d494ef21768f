"""http-decode as a process: raw HTTP bytes in (over a pipe or a socketpair, as socat
gives it), request records out."""
import base64
import json
import os
import socket
import subprocess
import time

import pytest

from conftest import binary


def decode(data, *args, env=None, timeout=10):
    """Runs http-decode with `data` on a closed pipe; returns (records, stderr, exit status)."""
    full_env = dict(os.environ)
    for name in ("TCPREMOTEIP", "REMOTE_ADDR", "SOCAT_PEERADDR"):
        full_env.pop(name, None)
    if env:
        full_env.update(env)
    proc = subprocess.run([binary("http-decode"), *args], input=data, capture_output=True, timeout=timeout, env=full_env)
    lines = proc.stdout.decode().splitlines()
    assert proc.stdout == b"" or proc.stdout.endswith(b"\n")
    return [json.loads(l) for l in lines], proc.stderr.decode(), proc.returncode


def records(data, *args, env=None):
    recs, _, rc = decode(data, *args, env=env)
    assert rc == 0
    return recs


def error_of(record):
    return json.loads(record["body"])


class SocketDecoder:
    """http-decode with a socketpair as stdin, like socat EXEC: the test holds the other end."""

    def __init__(self, *args, env=None):
        self.ours, theirs = socket.socketpair()
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen([binary("http-decode"), *args], stdin=theirs, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=full_env)
        theirs.close()

    def records(self, timeout=5):
        out, _ = self.proc.communicate(timeout=timeout)
        return [json.loads(l) for l in out.decode().splitlines()]

    def close(self):
        self.ours.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


def test_request_record_has_every_protocol_field():
    [r] = records(b"POST /v1/x?a=1&b=2 HTTP/1.1\r\nHost: localhost:8080\r\nX-Tag: a\r\nX-Tag: b\r\n"
                  b"Content-Length: 13\r\n\r\n{\"id\":\"evt\"}\n", env={"TCPREMOTEIP": "192.0.2.1"})
    assert list(r) == ["id", "method", "path", "query", "version", "headers", "body", "remote", "keep_alive",
                       "request_id", "access"]
    request_id, access = r.pop("request_id"), r.pop("access")
    assert len(request_id) == 32 and int(request_id, 16) >= 0
    assert access["bytes_in"] == 106 and access["path"] == "/v1/x" and access["query"] == "a=1&b=2"
    assert abs(access["received_at"] / 1000 - time.time()) < 60 and access["received_us"] > 0
    assert r == {"id": "1", "method": "POST", "path": "/v1/x", "query": "a=1&b=2", "version": "HTTP/1.1",
                 "headers": [["host", "localhost:8080"], ["x-tag", "a"], ["x-tag", "b"], ["content-length", "13"]],
                 "body": "{\"id\":\"evt\"}\n", "remote": "192.0.2.1", "keep_alive": True}


def test_one_record_per_pipelined_request_in_order():
    data = b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(500))
    recs = records(data)
    assert [r["path"] for r in recs] == ["/%d" % i for i in range(500)]
    assert [r["id"] for r in recs] == [str(i + 1) for i in range(500)]


def test_non_utf8_body_bytes_preserved_as_base64():
    body = bytes(range(256)) * 4
    [r] = records(b"PUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert "body" not in r
    assert base64.b64decode(r["body_base64"]) == body


def test_utf8_body_bytes_preserved_exactly():
    body = '{"name": "Zoë", "emoji": "\U0001F600", "nl": "a\\nb"}\r\n'.encode()
    [r] = records(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert r["body"].encode() == body


def test_chunked_body_is_decoded_and_trailers_dropped():
    [r, nxt] = records(b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n" + GET)
    assert r["body"] == "hello world"
    assert ["x-trailer", "t"] not in r["headers"]
    assert nxt["id"] == "2"


def test_http10_closes_unless_keep_alive():
    [r] = records(b"GET / HTTP/1.0\r\n\r\nGET /never HTTP/1.0\r\n\r\n")
    assert r["version"] == "HTTP/1.0" and r["keep_alive"] is False
    recs = records(b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n")
    assert [(r["path"], r["keep_alive"]) for r in recs] == [("/1", True), ("/2", False)]


def test_connection_close_is_the_last_request():
    recs = records(b"GET /1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" + GET)
    assert [(r["path"], r["keep_alive"]) for r in recs] == [("/1", False)]


def test_error_is_a_response_record_and_drops_what_follows():
    recs, stderr, rc = decode(GET + b"GET /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + GET)
    assert rc == 0
    assert len(recs) == 2
    err = recs[1]
    assert err["id"] == "2" and err["status"] == 400 and err["keep_alive"] is False
    assert ["content-type", "application/json"] in err["headers"]
    assert error_of(err)["error"] == "bad_request" and error_of(err)["message"]
    assert "400" in stderr


def test_error_to_head_request_keeps_the_method():
    [err] = records(b"HEAD / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n")
    assert err["method"] == "HEAD" and err["status"] == 400


@pytest.mark.parametrize("option,env,data,status", [
    ("--max-request-line=100", "EDGEPIPE_MAX_REQUEST_LINE", b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
    ("--max-header-bytes=100", "EDGEPIPE_MAX_HEADER_BYTES", b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 200 + b"\r\n\r\n", 431),
    ("--max-headers=3", "EDGEPIPE_MAX_HEADERS", b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431),
    ("--max-body=10", "EDGEPIPE_MAX_BODY", b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world", 413),
])
def test_limits_configurable_by_option_and_environment(option, env, data, status):
    name, value = option.split("=")
    for args, environment in (([option], None), ([name, value], None), ([], {env: value})):
        recs = records(data, *args, env=environment)
        assert [r.get("status") for r in recs] == [status], (args, environment)
        assert recs[0]["keep_alive"] is False
    # Under the default limits the same request is fine.
    assert "status" not in records(data)[0]


def test_default_body_limit_is_one_mebibyte():
    ok = records(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n" + b"x" * 1048576)
    assert len(ok[0]["body"]) == 1048576
    [err] = records(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n")
    assert err["status"] == 413 and error_of(err)["error"] == "body_too_large"


def test_remote_from_launcher_environment():
    assert records(GET, env={"SOCAT_PEERADDR": "198.51.100.4"})[0]["remote"] == "198.51.100.4"
    assert records(GET, env={"REMOTE_ADDR": "::ffff:198.51.100.5"})[0]["remote"] == "198.51.100.5"
    assert "remote" not in records(GET)[0]


def test_truncated_request_at_end_of_input_is_400():
    [err] = records(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    assert err["status"] == 400


def test_continue_is_an_interim_record_for_http_encode_not_a_write_to_the_socket():
    d = SocketDecoder()
    try:
        d.ours.sendall(b"PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        # The interim record comes out before the body is sent: the client may wait for it.
        first = json.loads(d.proc.stdout.readline())
        assert first == {"id": "1", "version": "HTTP/1.1", "keep_alive": True, "status": 100, "interim": True}
        d.ours.sendall(b"hello")
        d.ours.shutdown(socket.SHUT_WR)
        [r] = d.records()
        assert r["id"] == "1" and r["body"] == "hello" and "status" not in r
        # One writer per socket: http-decode wrote nothing back to the client.
        d.ours.settimeout(2)
        assert d.ours.recv(100) == b""
    finally:
        d.close()


def test_header_timeout_answers_408():
    d = SocketDecoder(env={"EDGEPIPE_HEADER_TIMEOUT_MS": "200", "EDGEPIPE_LINGER_MS": "0"})
    try:
        start = time.monotonic()
        d.ours.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n")
        [r] = d.records()
        assert r["status"] == 408 and r["keep_alive"] is False
        assert error_of(r)["error"] == "request_timeout"
        assert time.monotonic() - start < 2
    finally:
        d.close()


def test_body_timeout_answers_408():
    d = SocketDecoder("--body-timeout-ms", "200", "--linger-ms", "0")
    try:
        d.ours.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
        [r] = d.records()
        assert r["status"] == 408
    finally:
        d.close()


def test_idle_timeout_exits_without_a_record():
    d = SocketDecoder(env={"EDGEPIPE_IDLE_TIMEOUT_MS": "200"})
    try:
        d.ours.sendall(GET)
        start = time.monotonic()
        recs = d.records()
        assert len(recs) == 1 and "status" not in recs[0]
        assert time.monotonic() - start < 2
        assert d.proc.returncode == 0
    finally:
        d.close()


def test_output_ends_at_once_after_the_last_request():
    # The client keeps the connection open: the records (and their EOF) must still flow
    # down the pipeline at once, not after the linger.
    d = SocketDecoder(env={"EDGEPIPE_LINGER_MS": "3000"})
    try:
        d.ours.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        start = time.monotonic()
        out = d.proc.stdout.read()
        assert time.monotonic() - start < 1
        assert json.loads(out)["keep_alive"] is False
    finally:
        d.close()


def test_help_and_bad_usage():
    proc = subprocess.run([binary("http-decode"), "--help"], capture_output=True)
    assert proc.returncode == 0
    for word in (b"usage", b"EDGEPIPE_HEADER_TIMEOUT_MS", b"exit status"):
        assert word in proc.stdout
    assert subprocess.run([binary("http-decode"), "--bogus"], capture_output=True).returncode == 2
    assert subprocess.run([binary("http-decode"), "--max-body", "0"], capture_output=True).returncode == 2


# ---------------------------------------------------------------------------------------
# A connection that never starts a request (issue 19 §6): its own, short limit.


def test_a_connection_that_sends_nothing_is_closed_after_the_first_byte_timeout():
    d = SocketDecoder(env={"EDGEPIPE_FIRST_BYTE_TIMEOUT_MS": "300"})
    try:
        start = time.monotonic()
        assert d.records() == []
        assert time.monotonic() - start < 2
        assert d.proc.returncode == 0
    finally:
        d.close()


def test_the_first_byte_timeout_is_an_option_too():
    d = SocketDecoder("--first-byte-timeout-ms", "300", env={"EDGEPIPE_FIRST_BYTE_TIMEOUT_MS": "60000"})
    try:
        start = time.monotonic()
        assert d.records() == []
        assert time.monotonic() - start < 2
    finally:
        d.close()


def test_line_breaks_before_a_request_are_a_started_head_with_its_own_timeout():
    # RFC 9112 §2.2 lets a client send empty lines before a request: they are bytes, so
    # the head's timeout (408) applies, not the first-byte one.
    d = SocketDecoder(env={"EDGEPIPE_FIRST_BYTE_TIMEOUT_MS": "200", "EDGEPIPE_HEADER_TIMEOUT_MS": "1000",
                           "EDGEPIPE_LINGER_MS": "0"})
    try:
        start = time.monotonic()
        d.ours.sendall(b"\r\n")
        [r] = d.records()
        assert r["status"] == 408
        assert 0.9 <= time.monotonic() - start < 3
    finally:
        d.close()


def test_a_keep_alive_connection_between_requests_keeps_the_idle_timeout():
    d = SocketDecoder(env={"EDGEPIPE_FIRST_BYTE_TIMEOUT_MS": "200", "EDGEPIPE_IDLE_TIMEOUT_MS": "1500"})
    try:
        d.ours.sendall(GET)
        time.sleep(0.8)   # past the first-byte limit, within the idle one
        d.ours.sendall(GET)
        recs = d.records()
        assert [r["id"] for r in recs] == ["1", "2"]
    finally:
        d.close()


def test_a_started_request_gets_the_header_timeout_not_the_first_byte_one():
    d = SocketDecoder(env={"EDGEPIPE_FIRST_BYTE_TIMEOUT_MS": "200", "EDGEPIPE_HEADER_TIMEOUT_MS": "1500",
                           "EDGEPIPE_LINGER_MS": "0"})
    try:
        d.ours.sendall(b"GET / HTTP/1.1\r\n")
        time.sleep(0.6)
        d.ours.sendall(b"Host: h\r\n\r\n")
        d.ours.shutdown(socket.SHUT_WR)
        [r] = d.records()
        assert "status" not in r and r["path"] == "/"
    finally:
        d.close()


def test_the_first_byte_timeout_defaults_to_a_few_seconds_and_must_be_positive():
    help_text = subprocess.run([binary("http-decode"), "--help"], capture_output=True, text=True).stdout
    assert "--first-byte-timeout-ms" in help_text and "EDGEPIPE_FIRST_BYTE_TIMEOUT_MS" in help_text
    d = SocketDecoder()
    try:
        start = time.monotonic()
        assert d.records(timeout=15) == []
        assert 2 <= time.monotonic() - start < 10
    finally:
        d.close()
    bad = subprocess.run([binary("http-decode"), "--first-byte-timeout-ms", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--first-byte-timeout-ms" in bad.stderr


# ---------------------------------------------------------------------------------------
# Every accepted body fits in a record (issue 19 §7): JSON escaping costs up to six bytes
# a byte, base64 four for three, and a record is at most 16 MiB.

RECORD_MAX = 16 << 20


def largest_max_body():
    """The largest --max-body http-decode accepts with its default limits."""
    low, high = 1, RECORD_MAX
    while low < high:
        mid = (low + high + 1) // 2
        ok = subprocess.run([binary("http-decode"), "--max-body", str(mid)], input=b"", capture_output=True).returncode == 0
        low, high = (mid, high) if ok else (low, mid - 1)
    return low


def test_a_max_body_that_cannot_fit_in_a_record_is_refused_with_one_line():
    proc = subprocess.run([binary("http-decode"), "--max-body", str(12 << 20)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "--max-body" in proc.stderr
    env_proc = subprocess.run([binary("http-decode")], capture_output=True, text=True,
                              env={**os.environ, "EDGEPIPE_MAX_BODY": str(12 << 20)})
    assert env_proc.returncode == 2


@pytest.mark.parametrize("fill", [b"\x01", b'"', b"\\", b"\xff", b"\x1f\xc3\xa9"], ids=["control", "quote", "backslash", "not-utf8", "mixed"])
def test_the_worst_body_at_the_largest_limit_fits_in_one_record(fill):
    limit = largest_max_body()
    assert limit >= 11 << 20   # the documented "about 11 MiB"
    body = (fill * (limit // len(fill) + 1))[:limit]
    data = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    proc = subprocess.run([binary("http-decode"), "--max-body", str(limit)], input=data, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.splitlines()
    assert len(line) + 1 <= RECORD_MAX
    record = json.loads(line)
    got = record["body"].encode() if "body" in record else base64.b64decode(record["body_base64"])
    assert got == body
