#!/usr/bin/env python3
"""bench/records.py KIND N > FILE: N request records for the throughput benchmarks.

KIND
  request   what http-decode writes for `GET /v1/subscription` from wrk/curl with a
            bearer token (about 1 KB: the token dominates), before route
  routed    the same after route (annotations.route = subscription), before verify-jwt
  authed    after verify-jwt: token replaced by x-authenticated-uid, annotations.auth;
            what `kv serve` answers with one key read (uids user0..user99)
  other     like authed but routed to "stripe-webhook": `kv serve` passes it on

Each record has its own id; uids cycle through 100 users so that the KV reads hit the
page cache, as a busy service's would.
"""
import base64, json, sys

kind, n = sys.argv[1], int(sys.argv[2])
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
# A token of the real shape and size (RS256 signature: 342 characters); not verified here.
header = b64(b'{"alg":"RS256","kid":"linRkzOCR4gCK1SA-22s4GRTWskReZMlxzGUYzb5NP4","typ":"JWT"}')
out = sys.stdout
write = out.write
for i in range(n):
    uid = f"user{i % 100}"
    r = {"id": str(i + 1), "method": "GET", "path": "/v1/subscription", "query": "", "version": "HTTP/1.1"}
    headers = [["host", "localhost:8080"], ["user-agent", "wrk"], ["accept", "*/*"]]
    if kind in ("request", "routed"):
        payload = b64(json.dumps({"iss": "edgepipe-dev", "aud": "edgepipe-dev", "sub": uid, "iat": 1795460632,
                                  "exp": 1798052632, "auth_time": 1795460632}, separators=(",", ":")).encode())
        headers.append(["authorization", f"Bearer {header}.{payload}." + "A" * 342])
    else:
        headers.append(["x-authenticated-uid", uid])
    r["headers"] = headers
    r["body"] = ""
    r["remote"] = "127.0.0.1"
    r["keep_alive"] = True
    if kind == "routed":
        r["annotations"] = {"route": {"name": "subscription", "params": {}}}
    elif kind == "authed":
        r["annotations"] = {"route": {"name": "subscription", "params": {}}, "auth": {"uid": uid}}
    elif kind == "other":
        r["annotations"] = {"route": {"name": "stripe-webhook", "params": {}}, "auth": {"uid": uid}}
    elif kind != "request":
        sys.exit(f"records.py: unknown kind {kind}")
    write(json.dumps(r, separators=(",", ":")) + "\n")
