#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ (committed; re-run after editing this).

    fuzz/seeds.py [TARGET...]     (default: every target; tokens are re-signed on every run)

The seeds are the inputs the unit and system tests use, in the shape each harness reads:
HTTP streams (smuggling attempts included), record lines, tokens, Stripe-Signature
headers, route tables (optionally followed by NUL and "METHOD PATH" lines) and KV keys
(two keys separated by a 0xFF byte). Tokens are signed with throw-away keys: the harness
has its own keys, so only their shape matters.
"""
import base64, hashlib, hmac, json, os, pathlib, shutil, sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"


ONLY = set(sys.argv[1:])


def write(target, items):
    if ONLY and target not in ONLY:
        return
    d = ROOT / target
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    seen = set()
    for item in items:
        data = item.encode() if isinstance(item, str) else bytes(item)
        name = hashlib.sha1(data).hexdigest()[:16]
        if name in seen:
            continue
        seen.add(name)
        (d / name).write_bytes(data)
    print(f"{target}: {len(seen)} seeds")


# ---------------------------------------------------------------- HTTP
H = "Host: h\r\n"
http = [
    "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /a/b%20c?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nX-Tag: a\r\nX-TAG:  b \t\r\n\r\n",
    "GET /p?a?b=/c HTTP/1.1\r\n" + H + "\r\n",
    "PROPFIND / HTTP/1.1\r\n" + H + "\r\n",
    "GET http://example.com:8080/x/y?z=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
    "GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\n" + H + "\r\n",
    "\r\n\r\nGET / HTTP/1.1\r\n" + H + "\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\u00e9\r\nX-Empty:\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
    "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
    # pipelined
    "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    "POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\nGET /4 HTTP/1.1\r\nHost: h\r\n\r\n",
    "PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\n\xff\xfe\x00\x01\x80z",
    "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 003\r\n\r\nabc",
    "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 03\r\nContent-Length: 3\r\n\r\nabc",
    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:  Chunked \r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=1;q=\"a\\\"b\"\r\nx\r\n0\r\nVary: *\r\nContent-Length: 99\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n",
    "POST /v1/webhooks/stripe HTTP/1.1\r\nHost: localhost:8080\r\nContent-Type: application/json\r\n"
    "Stripe-Signature: t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd\r\n"
    "Content-Length: 14\r\n\r\n{\"id\":\"evt_1\"}",
    "GET /v1/subscription HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYSJ9.e30.c2ln\r\n\r\n",
    "POST /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    "POST /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "POST /x HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n",
    "GET / HTTP/1.2\r\nHost: h\r\n\r\n",
    "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    "GET /\r\n\r\n",
    # smuggling and malformed heads (all refused by the parser)
    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 0\r\n\r\nZ",
    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\nContent-Length: 43\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\nhello",
    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFF\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX :y\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
    "GET / HTTP/1.1\r\n Host: h\r\n\r\n",
    "GET / HTTP/1.1\r\n\tContent-Length: 1\r\nHost: h\r\n\r\nX",
    "GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\nhello",
    "GET / HTTP/1.1\r\nHost: h\r\nVisible: :/\rSmuggled: :)\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\n\rZGET /evil: HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET / HTTP/1.1\nHost: h\n\n",
    "GET / HTTP/1.1\r\nHost: h\r\nx:x\nTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-\r\nEncoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "GET / HTTP/1.1\r\n\r\n",
    "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET http://user@evil/ HTTP/1.1\r\nHost: h\r\n\r\n",
    "CONNECT example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX: \xc3\x28\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1, 192.168.1.1\r\nX-Real-IP: 10.0.0.2\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: [2001:db8::1]:443,::ffff:10.0.0.7, 10.1.2.3:8080\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: unknown, 10.0.0.1\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX-Real-IP: ::1\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX-Real-IP: 1.2.3.4\r\nX-Real-IP: 5.6.7.8\r\n\r\n",
    "GET /" + "a" * 200 + " HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\n" + "".join(f"A{i}: {i}\r\n" for i in range(20)) + "\r\n",
]
# "\xNN" escapes stand for raw bytes; the one non-ASCII header value is meant as UTF-8.
write("http", [s.encode("utf-8") if "\u00e9" in s else s.encode("latin-1") for s in http])

# ---------------------------------------------------------------- JSON records
records = [
    '{"id":"3","method":"POST","path":"/v1/webhooks/stripe","query":"a=1&b=2","version":"HTTP/1.1",'
    '"headers":[["host","localhost:8080"],["content-type","application/json"],["x-tag","a"],["x-tag","b"]],'
    '"body":"{\\"id\\":\\"evt_1\\"}","remote":"127.0.0.1","keep_alive":true}',
    '{"id":"3","method":"GET","version":"HTTP/1.1","keep_alive":true,"remote":"127.0.0.1","status":404,'
    '"headers":[["content-type","application/json"]],"body":"{\\"error\\":\\"not_found\\",\\"message\\":\\"no route for /nope\\"}"}',
    '{"id":"1","method":"PUT","path":"/x","query":"","version":"HTTP/1.1","headers":[],"body_base64":"//4AAYB6","keep_alive":false}',
    '{"id":"2","method":"GET","path":"/throw","headers":[["a","b"],["c"],[1,2],"x"],"body_base64":"not base64"}',
    '{"id":"4","method":"GET","path":"/answer","annotations":{"route":{"name":"subscription","params":{"id":"42"}},'
    '"auth":{"uid":"u1"},"audit":{"kind":"webhook","event_id":"evt_1","before":null,"after":{"plan":"pro"}}}}',
    '{"id":"5","path":"/fail","body":"caf\\u00e9 \\ud83d\\ude00 \\n\\t\\"\\\\\\/","n":[0,-0,1.5e10,-2E-3,123456789012345678901234567890,1e400]}',
    '{"id":"6","path":"/same","status":"200"}',
    '{"id":"7","id":"8"}',
    '{"id":"9"',
    '[1,2,3]',
    '"just a string"',
    '{"id":"x\\ud800"}',
    '{"a":' * 70 + '1' + '}' * 70,
    '{"id":"10","method":"GET","path":"/","headers":[["host","h"]],"body":""}\n{"id":"11","status":200}\nnot json {"id":"12"}',
    '{"id" : "13" , "x" : tru}',
    '{ "id":"14", "keep_alive":true, "method":"HEAD" }\r',
    '{"id":"15","body":"\xc3\xa9t\xc3\xa9"}',
    '{"id":"16","v":01}',
]
write("json", records)

# ---------------------------------------------------------------- JWTs
def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def seg(obj):
    return b64u(json.dumps(obj, separators=(",", ":")).encode())

rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
p256 = ec.generate_private_key(ec.SECP256R1())
p384 = ec.generate_private_key(ec.SECP384R1())
ed = ed25519.Ed25519PrivateKey.generate()

def sign(alg, data):
    if alg == "RS256":
        return rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if alg == "PS256":
        return rsa_key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    if alg in ("ES256", "ES384"):
        key, h, n = (p256, hashes.SHA256(), 32) if alg == "ES256" else (p384, hashes.SHA384(), 48)
        r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(h)))
        return r.to_bytes(n, "big") + s.to_bytes(n, "big")
    if alg == "EdDSA":
        return ed.sign(data)
    if alg == "HS256":
        return hmac.new(b"secret", data, hashlib.sha256).digest()
    return b""

claims = {"iss": "https://securetoken.google.com/edgepipe", "aud": "edgepipe", "sub": "user-1",
          "iat": 1699999000, "exp": 1700003600, "auth_time": 1699999000}
tokens = []
for alg, kid in [("RS256", "rsa"), ("PS256", "rsa"), ("ES256", "p256"), ("ES384", "p384"), ("EdDSA", "ed"), ("HS256", "rsa")]:
    head = seg({"alg": alg, "kid": kid, "typ": "JWT"})
    for body in [claims, dict(claims, aud=["other", "edgepipe"], nbf=1699999000.5), dict(claims, exp="1700003600"),
                 dict(claims, sub="a\r\nx-evil: 1"), {"sub": "x"}]:
        signing = head + "." + seg(body)
        tokens.append(signing + "." + b64u(sign(alg, signing.encode())))
tokens += [
    seg({"alg": "none"}) + "." + seg(claims) + ".",
    seg({"alg": "RS256", "kid": "rsa", "crit": ["exp"]}) + "." + seg(claims) + ".c2ln",
    seg({"alg": "RS256", "kid": 7}) + "." + seg(claims) + ".c2ln",
    seg({"alg": "RS256"}) + "." + seg(claims) + ".c2ln",
    base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"rsa"}').decode() + "." + seg(claims) + ".c2ln",
    "a.b.c.d", "..", "e30.e30.e30", "eyJ.eyJ.AA", "e30.W10.c2ln",
    b64u(b'{"alg":"ES256","kid":"p256","kid":"rsa"}') + "." + seg(claims) + ".c2ln",
]
write("jwt", tokens)

# ---------------------------------------------------------------- Stripe-Signature
payload = b'{"id":"evt_1","type":"customer.subscription.updated"}'
sig = hmac.new(b"whsec_test", b"1700000000." + payload, hashlib.sha256).hexdigest()
stripe = [
    f"t=1700000000,v1={sig}",
    f"t=1700000000,v1={sig},v1={'0' * 64},v0={sig}",
    f"v1={sig},t=1700000000",
    f"t=1700000000,t=1,v1={sig}",
    f" t=1700000000, v1={sig}",
    f"t= +1700000000 ,v1={sig}=extra",
    f"t=-5,v1={sig.upper()}",
    "t=1700000000", f"v1={sig}", "t,v1=a", "t=abc,v1=a", "t=" + "9" * 19 + ",v1=a", ",,,=,=", "",
    "whsec_one\n# comment\n\n  whsec_two  \r\nwhsec_one\n",
    "whsec_one, whsec_two whsec_three,,",
    "whsec_a b\n",
]
write("stripe", stripe)

# ---------------------------------------------------------------- route tables
repo = ROOT.parent.parent
tables = [(repo / "pipelines" / "routes").read_text(), (repo / "pipelines" / "reserve-routes").read_text()]
doc_table = """GET,HEAD    /healthz                healthz         respond 200 {"status":"ok"}
GET         /v1/subscription        subscription
POST        /v1/webhooks/stripe     stripe-webhook
GET         /v1/users/:id           user
DELETE      /v1/users/:id           delete-user
*           /static/*               static
GONE        /v1/profile             removed=2025-03-01 replacement=/v1/subscription
"""
tables += [
    doc_table,
    doc_table + "\0GET /v1/users/a%20b\nHEAD /healthz\nOPTIONS *\nPUT /static\nGET /static/a/b\nGET /v1/users/%C3%A9\nGET /v1/%2e%2e/x",
    "GET,POST  /v1/subscription\tsubscription\n",
    "* /static/* static",
    "# a comment\n\n   \n  # indented comment\r\nGET /a a\r\n\n",
    "GET /ping ping respond 204",
    "GET /teapot teapot respond 418 {\"error\": \"teapot\", \"message\": \"short and stout\"}",
    "GONE /v1/profile replacement=/v1/subscription removed=2025-06-01",
    "GONE /v1/old removed=2024-02-29 replacement=https://example.com/new",
    "GET /a a\nGET /b b\nHEAD /b b-head\n",
    "GET /users/:id get-user\nDELETE /users/:uid delete-user\n",
    "* /* all\nGET /a/* a-any\nGET /a/:x a-param\nGET /a/b a-b\n\0GET /a/b\nGET /a/c\nPOST /a/b\nGET /a/\nGET /\nGET /a/b/c",
    "GET /a/:x/:y two\nGET /a/b/:y one\nGET /a/:x/c other\n\0GET /a/b/c\nGET /a/z/c\nDELETE /a/b/c",
    "GET /a a\nGET /a b\n",
    "get /a a\n", "GET /a/../b a\n", "GET /a//b a\n", "GET /a%20 a\n", "GET /a/*/b a\n", "GET /:1 a\n",
    "GET /:x/:x a\n", "GET /a a respond 99\n", "GET /a a respond 204 {}\n", "GET /a a respond 200 {\n",
    "GONE /a removed=2023-02-29\n", "GONE /a\n", "GET,* /a a\n", "GET,,POST /a a\n", "GET /a -bad\n",
]
write("route", tables)

# ---------------------------------------------------------------- HTTP responses
# The first byte: bit 0 = the request was HEAD, bit 1 = TLS closed without close_notify.
OK = "HTTP/1.1 200 OK\r\n"
responses = [
    OK + "Content-Length: 5\r\n\r\nhello",
    OK + "Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    OK + "Content-Type: text/plain\r\n\r\nuntil the close",
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK + "Content-Length: 2\r\n\r\nok",
    "HTTP/1.1 204 No Content\r\n\r\n", "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
    OK + "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
    OK + "Connection: close\r\nContent-Length: 1\r\n\r\nx", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
    OK + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    OK + "Content-Length: -1\r\n\r\n", OK + "Content-Length: 5, 5\r\n\r\nhello", OK + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
    OK + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", OK + "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    OK + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX", "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    OK + "X-A : 1\r\n\r\n", OK + "X-A: 1\r\n fold\r\n\r\n", "HTTP/1.1 101 Switching Protocols\r\n\r\n",
    "HTTP/2 200\r\n\r\n", "garbage\r\n\r\n", OK + "Content-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n",
]
write("response", [b"\x00" + r.encode() for r in responses] + [b"\x01" + responses[0].encode(), b"\x02" + responses[2].encode()])

# ---------------------------------------------------------------- KV keys
long_key = "sub/" + "x" * 600
keys = [
    "sub/Alice", "sub/alice", "Sub/Alice.json", "x/y", "X/y", "x/Y", "ns/k", "ns/", "/file", "/", "a/", "a//b",
    "../escape", "../../escape", "a/../../../escape", ".", "..", ".tmp.999.abcdef", "%2f", "^a", "a#b",
    "caf\u00e9/\u00e9t\u00e9", "\U0001F600/emoji", "nul\0byte", "sub/" + "A" * 150, "s" * 64 + "/k", "s" * 65 + "/k",
    "sub/" + "\u00e9" * 120, "k" * 512, "k" * 513, "",
]
kv = [k.encode() for k in keys]
kv += [b"sub/Alice\xffsub/alice", b"a/b\xffa%2fb", b"sub/" + b"x" * 300 + b"\xffsub/" + b"x" * 301,
       b"%41\xff^a", b"^alice", b"%2e%2e", long_key.encode()[:520]]
write("kv", kv)
