"""http-encode as a process: response records in, HTTP/1.1 bytes out."""
import base64
import json
import os
import socket
import subprocess

import pytest

from conftest import binary


def parse_responses(data, head_requests=()):
    """Splits a byte stream into responses [(status, [(name, value)], body)], framing by
    Content-Length (bodiless for 204/304 and for the indexes in `head_requests`). Fails on
    anything that is not exactly a sequence of well-framed responses."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete head: {data[:200]!r}"
        lines = head.split(b"\r\n")
        version, code, _reason = lines[0].decode().split(" ", 2)
        assert version == "HTTP/1.1"
        status = int(code)
        headers = []
        for line in lines[1:]:
            name, colon, value = line.decode().partition(":")
            assert colon and name == name.strip() and name == name.lower(), line
            headers.append((name, value.strip()))
        names = [n for n, _ in headers]
        if status in (204, 304) or len(out) in head_requests:
            length = 0
        else:
            assert names.count("content-length") == 1, headers
            length = int(dict(headers)["content-length"])
        assert len(rest) >= length, "body shorter than content-length"
        out.append((status, headers, rest[:length]))
        data = rest[length:]
    return out


def header(response, name):
    values = [v for n, v in response[1] if n == name]
    assert len(values) <= 1, f"{name} repeated"
    return values[0] if values else None


def encode(lines, env=None):
    data = b""
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line, separators=(",", ":"))
        if isinstance(line, str):
            line = line.encode()
        data += line + b"\n"
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([binary("http-encode")], input=data, capture_output=True, timeout=10, env=full_env)
    return proc.stdout, proc.stderr.decode(), proc.returncode


def response(id="1", status=200, body="", keep_alive=True, method="GET", version="HTTP/1.1", headers=None, **extra):
    rec = {"id": id, "method": method, "version": version, "keep_alive": keep_alive, "status": status,
           "headers": headers if headers is not None else [["content-type", "application/json"]], "body": body}
    rec.update(extra)
    return rec


def test_one_response_per_record_in_order():
    out, _, rc = encode([response(id=str(i), body=json.dumps({"n": i})) for i in range(50)])
    assert rc == 0
    rs = parse_responses(out)
    assert [json.loads(b)["n"] for _, _, b in rs] == list(range(50))


def test_every_response_has_date_length_and_type():
    out, _, _ = encode([response(body="{}"), response(body="x", headers=[]), response(status=404, body="")])
    for r in parse_responses(out):
        assert header(r, "date").endswith(" GMT")
        assert header(r, "content-length") == str(len(r[2]))
        assert header(r, "content-type")
    assert header(parse_responses(out)[1], "content-type") == "application/octet-stream"


def test_exact_body_bytes_from_base64():
    body = bytes(range(256))
    rec = response()
    del rec["body"]
    rec["body_base64"] = base64.b64encode(body).decode()
    out, _, _ = encode([rec])
    [r] = parse_responses(out)
    assert r[0] == 200 and r[2] == body


def test_utf8_body_bytes_exact():
    text = '{"a":"Zoë \U0001F600"}'
    out, _, _ = encode([response(body=text)])
    [r] = parse_responses(out)
    assert r[2] == text.encode() and header(r, "content-length") == str(len(text.encode()))


def test_head_response_has_length_but_no_body():
    out, _, _ = encode([response(method="HEAD", body="hello"), response(body="next")])
    rs = parse_responses(out, head_requests=(0,))
    assert header(rs[0], "content-length") == "5" and rs[0][2] == b""
    assert rs[1][2] == b"next"


def test_stops_after_a_closing_response():
    out, _, rc = encode([response(id="1", body="a"), response(id="2", body="b", keep_alive=False), response(id="3", body="c")])
    assert rc == 0
    rs = parse_responses(out)
    assert [b for _, _, b in rs] == [b"a", b"b"]
    assert header(rs[1], "connection") == "close"
    assert header(rs[0], "connection") is None


def test_http10_keep_alive_gets_a_connection_header():
    out, _, _ = encode([response(version="HTTP/1.0", body="a")])
    assert header(parse_responses(out)[0], "connection") == "keep-alive"


def test_filter_framing_headers_are_ignored():
    out, _, _ = encode([response(body="abc", headers=[["transfer-encoding", "chunked"], ["connection", "close"],
                                                       ["content-length", "1"], ["x-ok", "1"]])])
    [r] = parse_responses(out)
    assert r[2] == b"abc"
    assert header(r, "transfer-encoding") is None and header(r, "connection") is None
    assert header(r, "content-length") == "3" and header(r, "x-ok") == "1"


def test_unanswered_request_becomes_502_json():
    req = {"id": "4", "method": "GET", "path": "/x", "query": "", "version": "HTTP/1.1",
           "headers": [["host", "h"]], "body": "", "keep_alive": True}
    out, stderr, rc = encode([req, response(body="after")])
    rs = parse_responses(out)
    assert rs[0][0] == 502 and header(rs[0], "content-type") == "application/json"
    assert set(json.loads(rs[0][2])) >= {"error", "message"}
    assert rs[1][2] == b"after"
    assert "no filter answered" in stderr


def test_unanswered_request_names_its_route():
    """A request whose route no stage of this pipeline serves (a webhook sent to read
    pipelines) says which route, to the client and in the log."""
    req = {"id": "5", "method": "POST", "path": "/v1/webhooks/stripe", "query": "", "version": "HTTP/1.1",
           "headers": [["host", "h"]], "body": "{}", "keep_alive": True,
           "annotations": {"route": {"name": "stripe-webhook", "params": {}}}}
    out, stderr, rc = encode([req])
    [r] = parse_responses(out)
    assert r[0] == 502
    assert json.loads(r[2]) == {"error": "no_response",
                                "message": "no filter of this pipeline answers route stripe-webhook"}
    assert "no filter answered request 5 (route stripe-webhook)" in stderr


def test_malformed_line_becomes_500_and_closes():
    out, stderr, rc = encode(["{not json", response(body="never")])
    assert rc == 0
    [r] = parse_responses(out)
    assert r[0] == 500 and header(r, "connection") == "close"
    assert json.loads(r[2])["error"] == "internal_error"
    assert stderr.strip()


def test_response_splitting_refused():
    out, _, _ = encode([response(headers=[["x-a", "b\r\nset-cookie: evil=1"]], body="")])
    [r] = parse_responses(out)
    assert r[0] == 500 and b"set-cookie" not in out


def strace_works():
    try:
        return subprocess.run(["strace", "-o", "/dev/null", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not strace_works(), reason="strace is not installed or cannot trace here")
def test_one_write_per_response(tmp_path):
    trace = tmp_path / "trace"
    data = "".join(json.dumps(response(id=str(i), body="x" * 3000)) + "\n" for i in range(3)).encode()
    proc = subprocess.run(["strace", "-e", "trace=write,writev,sendto,sendmsg", "-o", str(trace), binary("http-encode")],
                          input=data, capture_output=True, timeout=10)
    assert len(parse_responses(proc.stdout)) == 3
    writes = [l for l in trace.read_text().splitlines() if l.startswith(("write(1,", "writev(1,", "sendto(1,", "sendmsg(1,"))]
    assert len(writes) == 3, writes


def test_half_closes_the_socket_after_the_last_response():
    # The other holders of the socket (the decoder, the shell) may live on: the client
    # must see EOF right after the closing response anyway.
    ours, theirs = socket.socketpair()
    keep = os.dup(theirs.fileno())   # another process's copy of the socket
    try:
        proc = subprocess.Popen([binary("http-encode")], stdin=subprocess.PIPE, stdout=theirs)
        theirs.close()
        proc.stdin.write((json.dumps(response(keep_alive=False, body="bye")) + "\n").encode())
        proc.stdin.flush()
        ours.settimeout(2)
        got = b""
        while True:
            chunk = ours.recv(65536)
            if not chunk:
                break
            got += chunk
        assert parse_responses(got)[0][2] == b"bye"
        assert proc.wait(timeout=2) == 0
    finally:
        os.close(keep)
        ours.close()


def test_help():
    proc = subprocess.run([binary("http-encode"), "--help"], capture_output=True)
    assert proc.returncode == 0 and b"usage" in proc.stdout and b"exit status" in proc.stdout
