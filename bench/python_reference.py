#!/usr/bin/env python3
"""The Python reference for bench/http.sh: a minimal http.server doing edgepipe's read path,
GET /v1/subscription: verify the RS256 bearer token with PyJWT on every request (issuer and
audience as `sign-jwt dev` mints them) and read one JSON file, the user's KV entry
($DATA/kv/ns/sub/<uid>, as edgepipe's directory store lays it out). GET /healthz answers
{"status":"ok"}. HTTP/1.1 keep-alive, one thread per connection (ThreadingHTTPServer).

    python3 bench/python_reference.py --port 8090 --jwks DATA/dev-keys/jwks.json --kv DATA/kv
"""
import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

ISSUER = AUDIENCE = "edgepipe-dev"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--jwks", required=True, help="the JWK Set the tokens are signed for")
    ap.add_argument("--kv", required=True, help="the KV directory (sub/<uid> entries)")
    args = ap.parse_args()

    with open(args.jwks) as f:
        keys = {k.key_id: k.key for k in jwt.PyJWKSet.from_dict(json.load(f)).keys}
    kv = args.kv

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK hold each keep-alive response 40 ms.
        disable_nagle_algorithm = True

        def log_message(self, *_):   # no per-request log line: edgepipe writes none either
            pass

        def answer(self, status, body, extra=()):
            data = json.dumps(body, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in extra:
                self.send_header(name, value)
            if self.close_connection:   # the client asked for it: say so, as edgepipe does
                self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/healthz":
                return self.answer(200, {"status": "ok"})
            if self.path != "/v1/subscription":
                return self.answer(404, {"error": "not_found", "message": "no route for " + self.path})
            auth = self.headers.get("authorization", "")
            if not auth.startswith("Bearer "):
                return self.answer(401, {"error": "unauthorized", "message": "a Bearer token is required"},
                                   [("www-authenticate", "Bearer")])
            token = auth[7:]
            try:
                kid = jwt.get_unverified_header(token).get("kid")
                claims = jwt.decode(token, keys[kid], algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER,
                                    options={"require": ["exp", "iat", "sub"]})
            except (jwt.PyJWTError, KeyError):
                return self.answer(401, {"error": "unauthorized", "message": "invalid token"},
                                   [("www-authenticate", "Bearer")])
            uid = claims["sub"]
            if "/" in uid or uid.startswith("."):
                return self.answer(400, {"error": "bad_request", "message": "bad uid"})
            try:
                with open(os.path.join(kv, "ns", "sub", uid)) as f:
                    value = json.load(f)["value"]
            except FileNotFoundError:
                value = {}
            self.answer(200, {"uid": uid, "status": value.get("status", "none"), "plan": value.get("plan"),
                              "expires_at": value.get("current_period_end"),
                              "cancel_at_period_end": value.get("cancel_at_period_end", False)},
                        [("cache-control", "no-store")])

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
