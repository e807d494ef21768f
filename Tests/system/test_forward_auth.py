"""Forward-auth recipes, end to end: pipelines/forward-auth runs the real nginx
(auth_request) or the real Caddy (forward_auth) in front of a real Python backend that
records every request it receives, and asks the real edgepipe service (pipelines/serve
with auth pipelines) about each request first. Tokens are minted by PyJWT with a key of
the test's own, which the service knows from a JWK Set file. A proxy that is not
installed is skipped, naming its package."""
import http.client
import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import BIN, PIPELINES, Service, binary, free_port, request, run_filter, stop_group
from test_fronts import RecordingBin

TIMEOUT = float(os.environ.get("EDGEPIPE_TEST_TIMEOUT", "10"))
ISS = "https://issuer.example"
AUD = "forward-auth-tests"
CLAIM_HEADERS = "email=x-authenticated-email"


class RecordingBackend:
    """The application behind the proxy: answers {"backend": "yes"} (200, or NNN on
    /status/NNN) and keeps a copy of every request (method, target, headers in order, body)."""

    def __init__(self):
        self.received = []
        self.lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self):
                length = int(self.headers.get("content-length") or 0)
                seen = {"method": self.command, "target": self.path,
                        "headers": [[k.lower(), v] for k, v in self.headers.items()],
                        "body": self.rfile.read(length).decode(errors="replace")}
                with backend.lock:
                    backend.received.append(seen)
                # /status/NNN answers NNN: the application's own errors.
                status = int(self.path.split("/")[2]) if self.path.startswith("/status/") else 200
                out = json.dumps({"backend": "yes"}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def requests(self):
        with self.lock:
            return list(self.received)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def need(program):
    if shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        pytest.skip(f"{program} is not installed (apt-get install -y {program})")


class ForwardAuth:
    """pipelines/forward-auth with one proxy on free loopback ports, in its own session."""

    def __init__(self, tmp_path, proxy, backend_port, jwks_file, service=True, auth_port=None, bin_dir=BIN):
        need(proxy)
        for program in ("http-decode", "route", "verify-jwt", "http-encode"):
            binary(program)
        self.port, self.auth_port = free_port(), auth_port or free_port()
        self.data = tmp_path / "data"
        env = dict(os.environ)
        env.update({"EDGEPIPE_BIN": str(bin_dir), "EDGEPIPE_DATA": str(self.data), "EDGEPIPE_JWKS_FILE": str(jwks_file),
                    "EDGEPIPE_JWT_ISSUER": ISS, "EDGEPIPE_JWT_AUDIENCE": AUD, "EDGEPIPE_JWT_CLAIM_HEADERS": CLAIM_HEADERS})
        self.log_path = tmp_path / f"forward-auth-{proxy}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(PIPELINES / "forward-auth"), proxy, "--port", str(self.port), "--auth-port", str(self.auth_port),
             "--backend", f"127.0.0.1:{backend_port}", "--workers", "1", "--keepalive", "4",
             *([] if service else ["--no-service"])],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self.wait_until_it_answers(deadline=time.time() + TIMEOUT + 10)
        except AssertionError:
            self.stop()
            raise AssertionError(f"{proxy} did not answer: {self.log_path.read_text(errors='replace')}")

    def wait_until_it_answers(self, deadline):
        # A listening port is not yet the proxy: `nginx -t` binds it too, for a moment, and
        # drops what connected meanwhile. Ready means one HTTP answer (a 401: no token).
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                try:
                    conn.request("GET", "/")
                    conn.getresponse().read()
                    return
                finally:
                    conn.close()
            except (OSError, http.client.HTTPException):
                if time.time() > deadline:
                    raise AssertionError("the proxy never answered")
                time.sleep(0.1)

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

    def stop(self):
        stop_group(self.proc)
        self.log.close()


def exchange(conn, method, target, headers=None, body=None):
    """One request on an open connection: (status, response headers as [name, value], body)."""
    conn.request(method, target, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, [[k.lower(), v] for k, v in resp.getheaders()], resp.read()


def send(front, method, target, headers=None, body=None):
    conn = front.connection()
    try:
        return exchange(conn, method, target, headers, body)
    finally:
        conn.close()


def values(headers, name):
    return [v for n, v in headers if n == name]


@pytest.fixture(scope="module")
def signing_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_file(tmp_path, signing_key):
    jwk = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwk["kid"] = "fa-1"
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return path


def token(signing_key, **overrides):
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "sub": "user-7", "iat": now - 5, "exp": now + 3600, "email": "u7@example.com"}
    claims.update(overrides)
    return pyjwt.encode({k: v for k, v in claims.items() if v is not None}, signing_key, algorithm="RS256",
                        headers={"kid": "fa-1"})


@pytest.fixture
def backend():
    b = RecordingBackend()
    yield b
    b.stop()


@pytest.fixture(params=["nginx", "caddy"])
def front(request, tmp_path, backend, jwks_file):
    f = ForwardAuth(tmp_path, request.param, backend.port, jwks_file)
    yield f
    f.stop()


def assert_no_token_and_only_the_verified_identity(seen, uid, email):
    names = [n for n, _ in seen["headers"]]
    assert "authorization" not in names, seen
    assert values(seen["headers"], "x-authenticated-uid") == [uid], seen
    assert values(seen["headers"], "x-authenticated-email") == [email], seen


# ----------------------------------------------------------------------------- a valid token

def test_a_valid_token_reaches_the_backend_as_the_verified_uid_without_the_token(front, backend, signing_key):
    good = token(signing_key, sub="alice", email="alice@example.com")
    cases = [("GET", "/orders/1?expand=items", None), ("POST", "/orders?x=1", b'{"item":"book"}'),
             ("PUT", "/orders/1", b"replaced"), ("PATCH", "/orders/1", b"patched"), ("DELETE", "/orders/1", None)]
    for method, target, body in cases:
        status, headers, answer = send(front, method, target, {"Authorization": f"Bearer {good}"}, body)
        assert status == 200, (method, answer)
        assert json.loads(answer) == {"backend": "yes"}, "the backend's answer, not the auth answer"
    seen = backend.requests()
    assert [(s["method"], s["target"], s["body"]) for s in seen] == [
        (m, t, (b or b"").decode()) for m, t, b in cases], "method, target and body reach the backend unchanged"
    for s in seen:
        assert_no_token_and_only_the_verified_identity(s, "alice", "alice@example.com")
        assert good not in json.dumps(s)


def test_head_and_options_with_a_valid_token_reach_the_backend(front, backend, signing_key):
    good = token(signing_key)
    for method in ("HEAD", "OPTIONS"):
        status, _, answer = send(front, method, "/things", {"Authorization": f"Bearer {good}"})
        assert status == 200, (method, answer)
    assert [s["method"] for s in backend.requests()] == ["HEAD", "OPTIONS"]
    for s in backend.requests():
        assert_no_token_and_only_the_verified_identity(s, "user-7", "u7@example.com")


def test_the_applications_own_401_and_500_reach_the_client_as_they_are(front, backend, signing_key):
    """The recipe's handling of edgepipe's refusals never catches the application's answers."""
    good = token(signing_key)
    for status in (401, 500, 503):
        got, headers, body = send(front, "GET", f"/status/{status}", {"Authorization": f"Bearer {good}"})
        assert (got, json.loads(body)) == (status, {"backend": "yes"})
        assert values(headers, "www-authenticate") == []
    assert [s["target"] for s in backend.requests()] == ["/status/401", "/status/500", "/status/503"]


def test_a_claim_the_token_lacks_reaches_the_backend_empty_or_not_at_all(front, backend, signing_key):
    status, _, _ = send(front, "GET", "/x", {"Authorization": f"Bearer {token(signing_key, email=None)}"})
    assert status == 200
    [seen] = backend.requests()
    assert values(seen["headers"], "x-authenticated-uid") == ["user-7"]
    # nginx drops an empty header; Caddy sets it empty (never its placeholder text).
    assert values(seen["headers"], "x-authenticated-email") in ([], [""])


# ----------------------------------------------------------------------------- refusals

def test_an_invalid_token_is_401_json_to_the_client_and_the_backend_is_never_called(front, backend, signing_key):
    good = token(signing_key)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "expired": (token(signing_key, exp=int(time.time()) - 3600), "token expired"),
        "wrong audience": (token(signing_key, aud="someone-else"), "wrong audience"),
        "forged signature": (pyjwt.encode({"iss": ISS, "aud": AUD, "sub": "admin", "iat": int(time.time()),
                                           "exp": int(time.time()) + 60}, other_key, algorithm="RS256",
                                          headers={"kid": "fa-1"}), "bad signature"),
        "tampered": (good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB"), "bad signature"),
    }
    for name, (bad, reason) in cases.items():
        for method in ("GET", "POST"):
            status, headers, body = send(front, method, "/orders", {"Authorization": f"Bearer {bad}"},
                                         b"{}" if method == "POST" else None)
            assert status == 401, (name, method, body)
            assert json.loads(body) == {"error": "invalid_token", "message": reason}, name
            assert values(headers, "www-authenticate") == [
                f'Bearer error="invalid_token", error_description="{reason}"'], (name, headers)
            assert values(headers, "content-type") == ["application/json"]
    assert backend.requests() == []


def test_a_missing_token_is_401_json_and_the_backend_is_never_called(front, backend):
    for method, headers in [("GET", {}), ("POST", {}), ("GET", {"Authorization": "Basic dTpw"})]:
        status, answer_headers, body = send(front, method, "/orders", headers, b"x" if method == "POST" else None)
        assert status == 401, body
        assert json.loads(body)["error"] == "unauthorized"
        assert values(answer_headers, "www-authenticate") == ["Bearer"]
    status, _, body = send(front, "HEAD", "/orders")
    assert (status, body) == (401, b"")
    assert backend.requests() == []


def test_client_sent_identity_headers_never_reach_the_backend(front, backend, signing_key):
    good = token(signing_key)
    spoofs = [{"X-Authenticated-Uid": "root"}, {"x-authenticated-uid": "root"}, {"X-Authenticated-Email": "root@x"},
              {"X-Authenticated-Role": "root"}]
    for spoof in spoofs:
        for auth in ({"Authorization": f"Bearer {good}"}, {}):
            status, _, body = send(front, "GET", "/orders", {**spoof, **auth})
            assert status == 400, (spoof, body)
            assert json.loads(body)["error"] == "invalid_request"
            assert b"root" not in body
    assert backend.requests() == []
    # And on an accepted request the identity headers are the proxy's alone.
    assert send(front, "GET", "/orders", {"Authorization": f"Bearer {good}"})[0] == 200
    [seen] = backend.requests()
    assert [n for n, _ in seen["headers"] if n.startswith("x-authenticated-")] in (
        ["x-authenticated-uid", "x-authenticated-email"], ["x-authenticated-email", "x-authenticated-uid"])


def test_one_client_connection_mixes_accepted_and_refused_requests(front, backend, signing_key):
    """Refusals are answered on the same keep-alive connection, refused bodies included;
    each request gets its own answer."""
    good, expired = token(signing_key, sub="kept"), token(signing_key, exp=int(time.time()) - 3600)
    conn = front.connection()
    try:
        statuses = []
        for i in range(12):
            headers = [{"Authorization": f"Bearer {good}"}, {"Authorization": f"Bearer {expired}"}, {}][i % 3]
            method, body = ("POST", b"b" * 5000 + str(i).encode()) if i % 2 else ("GET", None)
            status, _, answer = exchange(conn, method, f"/item/{i}", headers, body)
            statuses.append(status)
            json.loads(answer)
    finally:
        conn.close()
    assert statuses == [200, 401, 401] * 4
    assert [(s["method"], s["target"], len(s["body"])) for s in backend.requests()] == [
        ("GET", "/item/0", 0), ("POST", "/item/3", 5001), ("GET", "/item/6", 0), ("POST", "/item/9", 5001)]
    assert {values(s["headers"], "x-authenticated-uid")[0] for s in backend.requests()} == {"kept"}


@pytest.mark.parametrize("proxy", ["nginx", "caddy"])
def test_the_proxy_keeps_its_connection_to_edgepipe(tmp_path, proxy, backend, jwks_file, signing_key):
    """Every connection to edgepipe is a pipeline start (several ms): accepted and refused
    requests alike must reuse one. This is why the 200 has no body and nginx asks with HEAD:
    an answer not read to its end closes the connection."""
    recording = RecordingBin(tmp_path)
    # The start-up probe's request (a 401) opens the connection: one pipeline, then no other.
    front = ForwardAuth(tmp_path, proxy, backend.port, jwks_file, bin_dir=recording.path)
    good, expired = token(signing_key), token(signing_key, exp=int(time.time()) - 3600)
    conn = front.connection()
    try:
        statuses = [exchange(conn, "GET", f"/n/{i}", [{"Authorization": f"Bearer {good}"},
                                                      {"Authorization": f"Bearer {expired}"}, {}][i % 3])[0]
                    for i in range(30)]
    finally:
        conn.close()
        front.stop()
    assert statuses == [200, 401, 401] * 10
    assert len(backend.requests()) == 10
    assert len(recording.start_lines()) == 1, recording.start_lines()


@pytest.mark.parametrize("proxy", ["nginx", "caddy"])
def test_no_signing_keys_is_edgepipes_own_503_with_its_body(tmp_path, proxy, backend, signing_key):
    """nginx turns any auth answer but 2xx, 401 and 403 into a bare 500; the recipe still
    hands the client edgepipe's answer."""
    front = ForwardAuth(tmp_path, proxy, backend.port, tmp_path / "no-such-jwks.json")
    try:
        status, headers, body = send(front, "GET", "/orders", {"Authorization": f"Bearer {token(signing_key)}"})
    finally:
        front.stop()
    assert status == 503, body
    assert json.loads(body)["error"] == "keys_unavailable"
    assert values(headers, "retry-after") != []
    assert backend.requests() == []


@pytest.mark.parametrize("proxy", ["nginx", "caddy"])
def test_edgepipe_down_is_a_json_502_and_the_backend_is_never_called(tmp_path, proxy, backend, jwks_file, signing_key):
    front = ForwardAuth(tmp_path, proxy, backend.port, jwks_file, service=False, auth_port=free_port())
    try:
        status, headers, body = send(front, "GET", "/orders", {"Authorization": f"Bearer {token(signing_key)}"})
    finally:
        front.stop()
    assert status == 502, body
    assert values(headers, "content-type") == ["application/json"]
    assert json.loads(body)["error"] in ("auth_unavailable", "bad_gateway")
    assert backend.requests() == []


# ----------------------------------------------------------------------------- the shipped pieces

def test_the_route_table_sends_every_method_on_auth_to_the_auth_route():
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"]
    out, _ = run_filter("route", [request(id=m, method=m, path="/auth") for m in methods],
                        "--table", str(PIPELINES / "routes"))
    assert [(r["id"], r.get("status"), r["annotations"]["route"]["name"]) for r in out] == [
        (m, None, "auth") for m in methods]


def test_the_default_service_answers_the_auth_route(tmp_path, signing_key, jwks_file):
    """pipelines/serve's full pipelines answer /auth too: a proxy may ask the main service."""
    svc = Service(tmp_path, env={"EDGEPIPE_JWKS_FILE": str(jwks_file), "EDGEPIPE_JWT_ISSUER": ISS,
                                 "EDGEPIPE_JWT_AUDIENCE": AUD})
    try:
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=TIMEOUT)
        status, headers, body = exchange(conn, "POST", "/auth", {"Authorization": f"Bearer {token(signing_key)}"})
        assert (status, body) == (200, b"")
        assert values(headers, "x-authenticated-uid") == ["user-7"]
        assert values(headers, "cache-control") == ["no-store"]
        status, headers, body = exchange(conn, "GET", "/auth", {"X-Forwarded-Uri": "/orders"})
        assert (status, json.loads(body)["error"]) == (401, "unauthorized")
        conn.close()
    finally:
        svc.stop()


def test_forward_auth_refuses_bad_arguments(tmp_path):
    env = {**os.environ, "EDGEPIPE_BIN": str(BIN), "EDGEPIPE_DATA": str(tmp_path / "data")}
    for args, message in [([], "name the proxy"), (["apache"], "unknown option apache"),
                          (["nginx", "--backend", "a b"], "--backend wants HOST:PORT"),
                          (["nginx", "--port", "x"], "'x' is not a number")]:
        out = subprocess.run([str(PIPELINES / "forward-auth"), *args], env=env, capture_output=True, text=True,
                             timeout=TIMEOUT)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr, (args, out.stderr)
    bad_claims = {**env, "EDGEPIPE_JWT_CLAIM_HEADERS": "email"}
    if shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
        out = subprocess.run([str(PIPELINES / "forward-auth"), "nginx"], env=bad_claims, capture_output=True,
                             text=True, timeout=TIMEOUT)
        assert out.returncode == 2 and "claim=header-name" in out.stderr
