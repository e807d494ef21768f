"""CORS as browsers meet it: preflights answered by route before any token check (and
never seen by verify-jwt), Access-Control-Allow-Origin and Vary: Origin on every answer to
an allowed origin whichever stage made it, nothing for other origins, the CORS file
checked at start; then headless Chromium on one local origin calling the API on another
with an Authorization header."""
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import binary, free_port
from policy_support import get, policy_service, token

APP = "http://app.test:3000"


def cors_file(origin=APP):
    return (f"* origins={origin},https://*.example.com methods=GET,POST headers=authorization,content-type "
            "expose=retry-after credentials=true max-age=600\n"
            "healthz origins=* credentials=false\n")


def test_a_bad_cors_file_is_reported_as_file_line_by_route_check(tmp_path):
    bad = tmp_path / "cors"
    bad.write_text("# default\n* origins=* credentials=true\n")
    routes = tmp_path / "routes"
    routes.write_text("GET /x x\n")
    p = subprocess.run([binary("route"), "--table", str(routes), "--cors", str(bad), "--check"], capture_output=True, timeout=10)
    assert p.returncode == 2
    assert p.stderr.decode().startswith(f"route: {bad}:2: origins=* with credentials=true is refused"), p.stderr


def test_an_allowed_preflight_is_204_with_the_allow_headers_and_never_reaches_verify_jwt(tmp_path):
    svc = policy_service(tmp_path, cors=cors_file(), log_verify=True)
    try:
        status, h, body = get(svc, "/v1/subscription", method="OPTIONS", headers={
            "Origin": APP, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
        assert status == 204 and body == b""
        assert h["access-control-allow-origin"] == APP
        assert h["access-control-allow-methods"] == "GET, POST"
        assert h["access-control-allow-headers"] == "authorization, content-type"
        assert h["access-control-allow-credentials"] == "true"
        assert h["access-control-max-age"] == "600"
        assert "Origin" in h["vary"]

        status, h, body = get(svc, "/v1/subscription", method="OPTIONS", headers={
            "Origin": "https://evil.test", "Access-Control-Request-Method": "GET"})
        assert status == 403
        assert json.loads(body)["error"] == "cors_forbidden"
        assert "access-control-allow-origin" not in h

        status, _, body = get(svc, "/v1/subscription", method="OPTIONS", headers={
            "Origin": APP, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-secret"})
        assert status == 403 and "x-secret" in json.loads(body)["message"]
        # verify-jwt's input holds the three answers, passed through untouched; no request.
        seen = [json.loads(l) for l in svc.seen.read_text().splitlines()]
        assert [r["status"] for r in seen] == [204, 403, 403], "no preflight reached the token check unanswered"
    finally:
        svc.stop()


def test_every_answer_to_an_allowed_origin_carries_the_origin_and_vary(tmp_path):
    svc = policy_service(tmp_path, cors=cors_file(), limits="open ip 1/min\n",
                         access="subscription require email_verified=true\n")
    try:
        good = token(svc, "alice", "email_verified=true")
        unverified = token(svc, "bob")
        o = {"Origin": APP}
        cases = [
            ("/v1/subscription", {"Authorization": "Bearer " + good}, 200),
            ("/v1/subscription", {}, 401),
            ("/v1/subscription", {"Authorization": "Bearer " + unverified}, 403),
            ("/v1/nope", {}, 404),
            ("/v1/old", {}, 410),
            ("/v1/nothing", {"Authorization": "Bearer " + good}, 502),     # no stage answers it
            ("/v1/open", {}, 401),
            ("/v1/open", {}, 429),
        ]
        for path, headers, expected in cases:
            status, h, body = get(svc, path, {**o, **headers})
            assert status == expected, (path, status, body)
            assert h.get("access-control-allow-origin") == APP, (path, status, h)
            assert h.get("access-control-allow-credentials") == "true", (path, status)
            assert h.get("access-control-expose-headers") == "retry-after", (path, status)
            assert "Origin" in h.get("vary", ""), (path, status)
        status, h, _ = get(svc, "/healthz", {"Origin": "https://anyone.test"})
        assert (status, h.get("access-control-allow-origin")) == (200, "*")
        assert "access-control-allow-credentials" not in h, "never * with credentials"
        for origin in ["https://evil.test", "http://app.test:3001", "https://example.com"]:
            status, h, _ = get(svc, "/v1/subscription", {"Origin": origin})
            assert status == 401 and not any(k.startswith("access-control-") for k in h), origin
        status, h, _ = get(svc, "/v1/subscription", {"Origin": "https://a.b.example.com"})
        assert h.get("access-control-allow-origin") == "https://a.b.example.com"
    finally:
        svc.stop()


# --- a real browser ------------------------------------------------------------------------

PAGE = b"""<!doctype html><meta charset="utf-8"><title>app</title><script>
async function call(url, token) {
  try {
    const r = await fetch(url, {headers: {Authorization: 'Bearer ' + token}});
    return {status: r.status, body: await r.json()};
  } catch (e) { return {error: String(e)}; }
}
</script><p>app</p>"""


class Page(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):
        pass


def page_server():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_chromium_reads_a_200_and_a_401_body_across_origins_and_is_refused_from_another(tmp_path):
    from test_reserve_page import CHROMIUM, Browser
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    app, other = page_server(), page_server()
    app_origin = f"http://127.0.0.1:{app.server_port}"
    svc = policy_service(tmp_path, cors=cors_file(app_origin), log_verify=True)
    browser = Browser(tmp_path)
    try:
        good = token(svc, "alice")
        api = svc.url + "/v1/subscription"
        browser.open(app_origin + "/")
        ok = browser.js(f"call({json.dumps(api)}, {json.dumps(good)})")
        assert ok["status"] == 200, ok
        assert "status" in ok["body"], ok
        denied = browser.js(f"call({json.dumps(api)}, 'not-a-token')")
        assert denied["status"] == 401, denied
        assert denied["body"]["error"] == "invalid_token", denied

        browser.open(f"http://127.0.0.1:{other.server_port}/")
        refused = browser.js(f"call({json.dumps(api)}, {json.dumps(good)})")
        assert "error" in refused and "Failed to fetch" in refused["error"], refused

        seen = [json.loads(l) for l in svc.seen.read_text().splitlines()]
        preflights = [r for r in seen if r["method"] == "OPTIONS"]
        assert preflights, "the Authorization header made the browser send preflights"
        # Each answered by route before the token check: 204 for the app, 403 for the other origin.
        assert {r.get("status") for r in preflights} == {204, 403}, preflights
    finally:
        browser.quit()
        svc.stop()
        app.shutdown()
        other.shutdown()
