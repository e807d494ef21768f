"""verify-jwt and sign-jwt as real processes: tokens minted by libraries no one here wrote
(PyJWT, joserfc), the rejection list, spoofed identity headers, key rotation against a real
loopback key server (JWK Set and X.509 map, over http and https), the shared on-disk cache
and its cooldown, local dev tokens and Google service-account tokens."""
import base64
import datetime
import hashlib
import hmac
import json
import os
import shutil
import ssl
import stat
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from conftest import PIPELINES, Service, binary, request, run_filter

ISS = "https://issuer.example"
AUD = "project-1"
BASE_ARGS = ["--issuer", ISS, "--audience", AUD]


# ----------------------------------------------------------------------------- helpers

def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key, kid):
    """The JWK of a cryptography public or private key."""
    pub = key.public_key() if hasattr(key, "public_key") else key
    num = lambda i: b64(i.to_bytes((i.bit_length() + 7) // 8, "big"))
    if isinstance(pub, rsa.RSAPublicKey):
        n = pub.public_numbers()
        return {"kty": "RSA", "kid": kid, "n": num(n.n), "e": num(n.e)}
    if isinstance(pub, ec.EllipticCurvePublicKey):
        n = pub.public_numbers()
        size = (pub.curve.key_size + 7) // 8
        return {"kty": "EC", "kid": kid, "crv": {256: "P-256", 384: "P-384"}[pub.curve.key_size],
                "x": b64(n.x.to_bytes(size, "big")), "y": b64(n.y.to_bytes(size, "big"))}
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(raw)}


def pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def claims(**overrides):
    now = int(time.time())
    c = {"iss": ISS, "aud": AUD, "sub": "user-42", "iat": now - 5, "exp": now + 3600, "auth_time": now - 5}
    c.update(overrides)
    return {k: v for k, v in c.items() if v is not None}


def raw_token(header, payload, key=None, sign=None):
    """A token from raw header and payload dicts (or JSON text), signed RS256 by `key` or by `sign`."""
    h = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    p = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    signing_input = f"{b64(h)}.{b64(p)}".encode()
    if sign is None:
        from cryptography.hazmat.primitives.asymmetric import padding
        sign = lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{b64(sign(signing_input))}"


def bearer(token, **kw):
    headers = [["host", "localhost"], ["authorization", f"Bearer {token}"]] + kw.pop("extra", [])
    return request(headers=headers, path=kw.pop("path", "/v1/subscription"), **kw)


def routed(name, **kw):
    """A request as `route` leaves it: with annotations.route."""
    return request(annotations={"route": {"name": name, "params": {}}}, **kw)


def header(record, name):
    values = [v for n, v in record.get("headers", []) if n == name]
    return values[0] if values else None


def body(record):
    return json.loads(record["body"])


@pytest.fixture(scope="module")
def keys():
    return {"rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "rsa2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec": ec.generate_private_key(ec.SECP256R1()),
            "ed": ed25519.Ed25519PrivateKey.generate()}


@pytest.fixture
def jwks_file(tmp_path, keys):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(keys["rsa"], "rsa-1"), public_jwk(keys["ec"], "ec-1"),
                                         public_jwk(keys["ed"], "ed-1")]}))
    return path


def verify(jwks_file, records, *args, env=None):
    return run_filter("verify-jwt", records, "--jwks-file", str(jwks_file), *BASE_ARGS, *args, env=env)


# ----------------------------------------------------------------------------- valid tokens

@pytest.mark.parametrize("alg,kid,keyname", [("RS256", "rsa-1", "rsa"), ("PS256", "rsa-1", "rsa"),
                                            ("ES256", "ec-1", "ec"), ("EdDSA", "ed-1", "ed")])
def test_pyjwt_tokens_verify(jwks_file, keys, alg, kid, keyname):
    token = pyjwt.encode(claims(sub=f"py-{alg}"), keys[keyname], algorithm=alg, headers={"kid": kid})
    [out], _ = verify(jwks_file, [bearer(token)], "--algorithm", alg)
    assert "status" not in out
    assert header(out, "x-authenticated-uid") == f"py-{alg}"
    assert header(out, "authorization") is None
    assert out["annotations"]["auth"] == {"uid": f"py-{alg}"}


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
def test_joserfc_tokens_verify(tmp_path, alg):
    key = {"RS256": lambda: RSAKey.generate_key(2048), "PS256": lambda: RSAKey.generate_key(2048),
           "ES256": lambda: ECKey.generate_key("P-256"), "EdDSA": lambda: OKPKey.generate_key("Ed25519")}[alg]()
    jwk = dict(key.as_dict(private=False), kid="jose-1")
    (tmp_path / "jose.json").write_text(json.dumps({"keys": [jwk]}))
    token = jose_jwt.encode({"alg": alg, "kid": "jose-1"}, claims(sub=f"jose-{alg}"), key, algorithms=[alg])
    [out], _ = verify(tmp_path / "jose.json", [bearer(token)], "--algorithm", alg)
    assert header(out, "x-authenticated-uid") == f"jose-{alg}"


def test_default_algorithm_list_is_rs256_only(jwks_file, keys):
    token = pyjwt.encode(claims(), keys["ec"], algorithm="ES256", headers={"kid": "ec-1"})
    [out], _ = verify(jwks_file, [bearer(token)])
    assert out["status"] == 401
    assert body(out)["message"] == "algorithm not allowed"


def test_claims_are_forwarded_as_configured_headers(jwks_file, keys):
    token = pyjwt.encode(claims(email="u@example.com", email_verified=True), keys["rsa"], algorithm="RS256",
                         headers={"kid": "rsa-1"})
    [out], _ = verify(jwks_file, [bearer(token)], "--claim-header", "email=x-authenticated-email",
                      "--claim-header", "email_verified=x-authenticated-email-verified")
    assert header(out, "x-authenticated-email") == "u@example.com"
    assert header(out, "x-authenticated-email-verified") == "true"


def test_records_keep_order_and_fields(jwks_file, keys):
    good = pyjwt.encode(claims(), keys["rsa"], algorithm="RS256", headers={"kid": "rsa-1"})
    lines = [bearer(good, id="1", extra=[["x-tag", "a"]]), request(id="2"), bearer(good, id="3"),
             "not json", {"id": "5", "status": 204, "headers": [], "body": ""}]
    out, _ = verify(jwks_file, lines)
    assert [r.get("id") for r in out] == ["1", "2", "3", None, "5"]
    assert header(out[0], "x-tag") == "a" and out[0]["keep_alive"] is True
    assert out[1]["status"] == 401 and out[3]["status"] == 400 and out[4]["status"] == 204


def test_both_ways_of_reading_headers_make_the_same_decisions(jwks_file, keys):
    """verify-jwt reads lower-case header lists as the line's bytes and anything else (an
    upper-case name, an escaped value) as JSON values: the same record must get the same
    answer, identity and kept headers either way."""
    good = pyjwt.encode(claims(sub="same-user", email="s@example.com"), keys["rsa"], algorithm="RS256",
                        headers={"kid": "rsa-1"})
    expired = sign_rs(keys, claims(exp=int(time.time()) - 120))
    cases = {
        "valid": [["authorization", f"Bearer {good}"]],
        "scheme in capitals, extra spaces": [["authorization", f"BEARER   {good}"]],
        "spoofed identity stripped": [["x-authenticated-uid", "admin"], ["authorization", f"Bearer {good}"],
                                      ["x-authenticated-email", "a@b"]],
        "missing": [["x-tag", "t"]],
        "two authorizations": [["authorization", f"Bearer {good}"], ["authorization", f"Bearer {good}"]],
        "basic scheme": [["authorization", "Basic dTpw"]],
        "bearer without token": [["authorization", "Bearer    "]],
        "expired": [["authorization", f"Bearer {expired}"]],
        "garbage token": [["authorization", "Bearer a.b.c"]],
    }
    lower, upper = [], []
    for name, headers in cases.items():
        base = [["host", "h"], ["x-tag", "t"]] + headers
        lower.append(request(id=name, headers=base))
        # One upper-case name sends the record down the JSON-values path.
        upper.append(request(id=name, headers=[["Host", "h"]] + base[1:]))
    args = ["--claim-header", "email=x-authenticated-email"]
    by_bytes, _ = verify(jwks_file, lower, *args)
    by_values, _ = verify(jwks_file, upper, *args)
    assert len(by_bytes) == len(by_values) == len(cases)
    for a, b in zip(by_bytes, by_values):
        fold = lambda r: {**r, "headers": [[n.lower(), v] for n, v in r.get("headers", [])]}
        assert fold(a) == fold(b), a["id"]
    outcomes = {r["id"]: (r.get("status"), header(r, "x-authenticated-uid")) for r in by_bytes}
    assert outcomes == {
        "valid": (None, "same-user"), "scheme in capitals, extra spaces": (None, "same-user"),
        "spoofed identity stripped": (None, "same-user"), "missing": (401, None), "two authorizations": (400, None),
        "basic scheme": (401, None), "bearer without token": (401, None), "expired": (401, None),
        "garbage token": (401, None)}
    spoofed = by_bytes[2]
    assert [v for n, v in spoofed["headers"] if n.startswith("x-authenticated-")] == ["same-user", "s@example.com"]


# ----------------------------------------------------------------------------- the rejection list

def rejected(jwks_file, token_or_record, reason, *args, env=None):
    record = token_or_record if isinstance(token_or_record, dict) else bearer(token_or_record)
    [out], stderr = verify(jwks_file, [record], "--algorithm", "RS256,ES256", *args, env=env)
    assert out["status"] == 401, out
    assert header(out, "www-authenticate") == f'Bearer error="invalid_token", error_description="{reason}"'
    assert body(out) == {"error": "invalid_token", "message": reason}
    if not isinstance(token_or_record, dict):
        assert token_or_record[:40] not in json.dumps(out) and token_or_record[:40] not in stderr
    return out


def sign_rs(keys, payload, header=None):
    return raw_token(header or {"alg": "RS256", "kid": "rsa-1"}, payload, keys["rsa"])


def test_expired_token(jwks_file, keys):
    rejected(jwks_file, sign_rs(keys, claims(exp=int(time.time()) - 120)), "token expired")


def test_not_yet_valid_token(jwks_file, keys):
    rejected(jwks_file, sign_rs(keys, claims(nbf=int(time.time()) + 600)), "token not yet valid")


def test_token_issued_in_the_future(jwks_file, keys):
    rejected(jwks_file, sign_rs(keys, claims(iat=int(time.time()) + 600)), "token issued in the future")


def test_wrong_issuer(jwks_file, keys):
    rejected(jwks_file, sign_rs(keys, claims(iss="https://securetoken.google.com/other")), "wrong issuer")


def test_wrong_audience(jwks_file, keys):
    rejected(jwks_file, sign_rs(keys, claims(aud="another-project")), "wrong audience")


def test_empty_subject(jwks_file, keys):
    rejected(jwks_file, sign_rs(keys, claims(sub="")), "invalid subject")


def test_subject_over_128_characters(jwks_file, keys):
    rejected(jwks_file, sign_rs(keys, claims(sub="u" * 129)), "invalid subject")


def test_missing_authorization_header(jwks_file):
    [out], _ = verify(jwks_file, [request(headers=[["host", "localhost"]])])
    assert out["status"] == 401
    assert header(out, "www-authenticate") == "Bearer"
    assert body(out)["error"] == "unauthorized"


def test_authorization_that_is_not_bearer(jwks_file, keys):
    token = sign_rs(keys, claims())
    [basic, token_scheme], _ = verify(jwks_file, [request(headers=[["authorization", "Basic dXNlcjpwYXNz"]]),
                                                  request(headers=[["authorization", f"Token {token}"]])])
    for out in (basic, token_scheme):
        assert out["status"] == 401
        assert header(out, "www-authenticate") == "Bearer"
        assert body(out)["message"] == "the Authorization scheme must be Bearer"


def test_missing_kid(jwks_file, keys):
    rejected(jwks_file, sign_rs(keys, claims(), {"alg": "RS256"}), "missing kid")


def test_unknown_kid(jwks_file, keys):
    rejected(jwks_file, sign_rs(keys, claims(), {"alg": "RS256", "kid": "no-such-key"}), "unknown signing key")


def test_alg_none(jwks_file):
    token = f"{b64(json.dumps({'alg': 'none', 'kid': 'rsa-1'}))}.{b64(json.dumps(claims()))}."
    rejected(jwks_file, token, "malformed token: empty segment")
    token = f"{b64(json.dumps({'alg': 'none', 'kid': 'rsa-1'}))}.{b64(json.dumps(claims()))}.AAAA"
    rejected(jwks_file, token, "algorithm not allowed")


def test_hs256_signed_with_the_public_key_as_secret(jwks_file, keys):
    secret = pem(keys["rsa"])
    token = raw_token({"alg": "HS256", "kid": "rsa-1"}, claims(),
                      sign=lambda data: hmac.new(secret, data, hashlib.sha256).digest())
    rejected(jwks_file, token, "algorithm not allowed")


def test_alg_that_does_not_match_the_key_type(jwks_file, keys):
    # ES256 is allowed, the token is validly signed by an EC key, but names the RSA key.
    token = pyjwt.encode(claims(), keys["ec"], algorithm="ES256", headers={"kid": "rsa-1"})
    rejected(jwks_file, token, "key does not match the algorithm")


def test_tampered_payload(jwks_file, keys):
    h, _, s = sign_rs(keys, claims()).split(".")
    rejected(jwks_file, f"{h}.{b64(json.dumps(claims(sub='admin')))}.{s}", "bad signature")


def test_tampered_signature(jwks_file, keys):
    h, p, s = sign_rs(keys, claims()).split(".")
    sig = bytearray(base64.urlsafe_b64decode(s + "=="))
    sig[17] ^= 0x10
    rejected(jwks_file, f"{h}.{p}.{b64(bytes(sig))}", "bad signature")


def test_truncated_token(jwks_file, keys):
    token = sign_rs(keys, claims())
    rejected(jwks_file, token[:-2], "bad signature")           # 340 characters: 255 bytes
    rejected(jwks_file, token[: token.rindex(".")], "malformed token: not three segments")


def test_bad_base64url(jwks_file, keys):
    h, p, s = sign_rs(keys, claims()).split(".")
    rejected(jwks_file, f"{h}.{p}.{s}==", "malformed token: signature is not canonical base64url")
    std = base64.b64encode(json.dumps(claims()).encode()).decode().rstrip("=")
    if "+" in std or "/" in std:
        rejected(jwks_file, f"{h}.{std}.{s}", "malformed token: payload is not canonical base64url")
    rejected(jwks_file, f"{h}.{p}.{s[:-1]}*", "malformed token: signature is not canonical base64url")


def test_unknown_crit_header(jwks_file, keys):
    token = sign_rs(keys, claims(), {"alg": "RS256", "kid": "rsa-1", "crit": ["http://example.com/x"],
                                     "http://example.com/x": True})
    rejected(jwks_file, token, "unsupported critical header")


def test_huge_token(jwks_file, keys):
    token = sign_rs(keys, claims(padding="x" * 9000))
    rejected(jwks_file, token, "token too large")


def test_non_object_segments_string_times_and_non_string_kid(jwks_file, keys):
    rejected(jwks_file, sign_rs(keys, "[1,2]"), "malformed token: payload is not a JSON object")
    rejected(jwks_file, sign_rs(keys, claims(exp=str(int(time.time()) + 600))), "invalid exp claim")
    rejected(jwks_file, sign_rs(keys, claims(), {"alg": "RS256", "kid": 1}), "malformed token: kid is not a string")


def test_embedded_jwk_and_jku_are_never_trusted(jwks_file, keys):
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header_ = {"alg": "RS256", "kid": "rsa-1", "jwk": public_jwk(attacker, "rsa-1"), "jku": "http://127.0.0.1:1/keys"}
    rejected(jwks_file, raw_token(header_, claims(), attacker), "bad signature")


def test_clock_skew_beyond_the_leeway(jwks_file, keys):
    token = sign_rs(keys, claims())
    rejected(jwks_file, token, "token expired", env={"EDGEPIPE_CLOCK_OFFSET": str(3600 + 61)})
    [ok], _ = verify(jwks_file, [bearer(token)], env={"EDGEPIPE_CLOCK_OFFSET": str(3600 + 59)})
    assert header(ok, "x-authenticated-uid") == "user-42"


def test_audit_flag_records_rejections(jwks_file, keys):
    [out], _ = verify(jwks_file, [bearer(sign_rs(keys, claims(aud="x")))], "--audit-failures")
    assert out["annotations"]["audit"] == {"kind": "auth", "outcome": "rejected", "reason": "wrong audience"}


# ----------------------------------------------------------------------------- spoofed identity

SPOOF = [["x-authenticated-uid", "admin"], ["X-Authenticated-Uid", "root"], ["x-authenticated-email", "boss@x"]]


def test_spoofed_uid_never_reaches_the_next_filter_on_private_routes(jwks_file, keys):
    good = sign_rs(keys, claims())
    lines = [bearer(good, extra=SPOOF), request(headers=[["host", "h"]] + SPOOF),
             bearer(sign_rs(keys, claims(exp=1)), extra=SPOOF)]
    out, _ = verify(jwks_file, lines)
    assert [n for n, v in out[0]["headers"] if n.lower().startswith("x-authenticated")] == ["x-authenticated-uid"]
    assert header(out[0], "x-authenticated-uid") == "user-42"
    for record in out:
        text = json.dumps(record)
        assert "admin" not in text and "root" not in text and "boss@x" not in text


def test_spoofed_uid_never_reaches_the_next_filter_on_public_routes(jwks_file):
    lines = [routed("stripe-webhook", method="POST", path="/v1/webhooks/stripe", headers=[["stripe-signature", "t=1"]] + SPOOF),
             request(path="/healthz", headers=SPOOF)]
    out, _ = verify(jwks_file, lines, "--public-route", "stripe-webhook", "--public-prefix", "/healthz")
    for record in out:
        assert "status" not in record
        assert not any(n.lower().startswith("x-authenticated") for n, _ in record["headers"])
    assert header(out[0], "stripe-signature") == "t=1"


def test_public_prefix_does_not_cover_dot_segments(jwks_file):
    [out], _ = verify(jwks_file, [request(path="/healthz/../v1/subscription")], "--public-prefix", "/healthz")
    assert out["status"] == 401


# ----------------------------------------------------------------------------- a loopback key server

class KeyServer:
    """A JWKS (or X.509 map, or discovery) endpoint on loopback, counting its hits."""

    def __init__(self, document, cache_control="public, max-age=3600", tls=None):
        self.document = document
        self.cache_control = cache_control
        self.hits = 0
        self.extra = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits += 1
                doc = server.extra.get(self.path, server.document)
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if server.cache_control:
                    self.send_header("Cache-Control", server.cache_control)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/keys", host="127.0.0.1", scheme="http"):
        return f"{scheme}://{host}:{self.port}{path}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    started = []
    yield lambda *a, **kw: started.append(KeyServer(*a, **kw)) or started[-1]
    for s in started:
        try:
            s.stop()
        except Exception:
            pass


def fetched(url, tmp_path, records, *args, env=None):
    return run_filter("verify-jwt", records, "--jwks-url", url, "--jwks-cache", str(tmp_path / "cache"),
                      "--fetch-timeout-ms", "1000", *BASE_ARGS, *args, env=env)


def test_keys_are_fetched_once_and_shared_through_the_disk_cache(tmp_path, servers, keys):
    server = servers({"keys": [public_jwk(keys["rsa"], "k1")]}, "public, max-age=19800, must-revalidate")
    token = sign_rs(keys, claims(), {"alg": "RS256", "kid": "k1"})
    for _ in range(3):   # three connections, three processes
        out, _ = fetched(server.url(), tmp_path, [bearer(token), bearer(token)])
        assert [header(r, "x-authenticated-uid") for r in out] == ["user-42", "user-42"]
    assert server.hits == 1
    [cache] = (tmp_path / "cache").glob("keys-*.json")
    saved = json.loads(cache.read_text())
    assert saved["expires_at"] - saved["fetched_at"] == 19800
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700


def test_no_fetch_at_start_up_or_for_requests_without_tokens(tmp_path, servers):
    server = servers({"keys": []})
    out, _ = fetched(server.url(), tmp_path, [request(), routed("healthz")], "--public-route", "healthz")
    assert out[0]["status"] == 401 and "status" not in out[1]
    assert server.hits == 0


def test_rotated_key_verifies_after_one_refetch(tmp_path, servers, keys):
    server = servers({"keys": [public_jwk(keys["rsa"], "old")]})
    old = sign_rs(keys, claims(sub="before"), {"alg": "RS256", "kid": "old"})
    [out], _ = fetched(server.url(), tmp_path, [bearer(old)], "--refetch-cooldown", "1")
    assert header(out, "x-authenticated-uid") == "before" and server.hits == 1

    server.document = {"keys": [public_jwk(keys["rsa"], "old"), public_jwk(keys["rsa2"], "new")]}
    time.sleep(1.1)   # past the (shortened) cooldown since the first fetch
    new = raw_token({"alg": "RS256", "kid": "new"}, claims(sub="after"), keys["rsa2"])
    out, _ = fetched(server.url(), tmp_path, [bearer(new), bearer(old), bearer(new)], "--refetch-cooldown", "1")
    assert [header(r, "x-authenticated-uid") for r in out] == ["after", "before", "after"]
    assert server.hits == 2
    [again], _ = fetched(server.url(), tmp_path, [bearer(new)], "--refetch-cooldown", "1")
    assert header(again, "x-authenticated-uid") == "after" and server.hits == 2


def test_cooldown_holds_under_a_flood_of_unknown_kids(tmp_path, servers, keys):
    server = servers({"keys": [public_jwk(keys["rsa"], "k1")]})
    fetched(server.url(), tmp_path, [bearer(sign_rs(keys, claims(), {"alg": "RS256", "kid": "k1"}))])
    assert server.hits == 1
    # The lock file records when the last fetch started; pretend it was a minute ago.
    [lock] = (tmp_path / "cache").glob("keys-*.lock")
    lock.write_text(f"{int(time.time()) - 60}\n")
    flood = [bearer(sign_rs(keys, claims(), {"alg": "RS256", "kid": f"made-up-{i}"})) for i in range(20)]
    data = b"".join(json.dumps(r).encode() + b"\n" for r in flood)
    cmd = [binary("verify-jwt"), "--jwks-url", server.url(), "--jwks-cache", str(tmp_path / "cache"), *BASE_ARGS]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(8)]
    results = [p.communicate(data, timeout=30) for p in procs]
    for stdout, _ in results:
        assert [json.loads(line)["status"] for line in stdout.decode().splitlines()] == [401] * 20
    assert server.hits == 2, "one refetch for 160 unknown kids across 8 processes"


def test_server_down_with_a_warm_cache_keeps_working(tmp_path, servers, keys):
    server = servers({"keys": [public_jwk(keys["rsa"], "k1")]}, "max-age=1")
    token = sign_rs(keys, claims(), {"alg": "RS256", "kid": "k1"})
    fetched(server.url(), tmp_path, [bearer(token)])
    server.stop()
    time.sleep(1.2)   # the cached set is now past its max-age
    out, stderr = fetched(server.url(), tmp_path, [bearer(token), bearer(token)], "--refetch-cooldown", "0")
    assert [header(r, "x-authenticated-uid") for r in out] == ["user-42", "user-42"]
    assert "fetch from" in stderr and "failed" in stderr
    assert stderr.count("past their max-age") == 1, "stale keys are logged once per process"
    [later], _ = fetched(server.url(), tmp_path, [bearer(token)], "--stale-grace", "0")
    assert later["status"] == 503, "beyond the grace period stale keys are no longer used"


def test_server_down_with_no_cache_is_503(tmp_path, servers, keys):
    server = servers({"keys": []})
    url = server.url()
    server.stop()
    out, stderr = fetched(url, tmp_path, [bearer(sign_rs(keys, claims())), request()])
    assert out[0]["status"] == 503
    assert body(out[0])["error"] == "keys_unavailable"
    assert header(out[0], "retry-after") is not None
    assert out[1]["status"] == 401   # no token: still the client's problem
    assert "failed" in stderr


def test_slow_server_is_bounded_by_the_timeout(tmp_path, keys):
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)   # accepts (via the backlog) and never answers
    try:
        start = time.monotonic()
        [out], _ = run_filter("verify-jwt", [bearer(sign_rs(keys, claims()))],
                              "--jwks-url", f"http://127.0.0.1:{silent.getsockname()[1]}/keys",
                              "--jwks-cache", str(tmp_path / "cache"), "--fetch-timeout-ms", "300", *BASE_ARGS)
        assert out["status"] == 503
        assert time.monotonic() - start < 3
    finally:
        silent.close()


def self_signed_cert(key, name="test"):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2)).sign(key, hashes.SHA256()))


def test_firebase_project_with_the_x509_certificate_map(tmp_path, servers, keys):
    certs = {"c1": self_signed_cert(keys["rsa"]).public_bytes(serialization.Encoding.PEM).decode(),
             "c2": self_signed_cert(keys["rsa2"]).public_bytes(serialization.Encoding.PEM).decode()}
    server = servers(certs, "public, max-age=22000, must-revalidate, no-transform")
    firebase = claims(iss="https://securetoken.google.com/demo-app", aud="demo-app", sub="fb-user")
    token = raw_token({"alg": "RS256", "kid": "c2", "typ": "JWT"}, firebase, keys["rsa2"])
    other_project = raw_token({"alg": "RS256", "kid": "c2"}, dict(firebase, aud="other-app",
                              iss="https://securetoken.google.com/other-app"), keys["rsa2"])
    out, _ = run_filter("verify-jwt", [bearer(token), bearer(other_project)], "--firebase-project", "demo-app",
                        "--jwks-url", server.url(), "--jwks-cache", str(tmp_path / "cache"))
    assert header(out[0], "x-authenticated-uid") == "fb-user"
    assert out[1]["status"] == 401 and body(out[1])["message"] == "wrong issuer"


def test_x509_map_from_a_file_rsa_keys_read_from_the_der_and_ec_through_openssl(tmp_path, keys):
    """RSA certificates (any exponent, v1 or v3, CRLF lines) are read by edgepipe's DER reader,
    an EC one still by OpenSSL; a malformed certificate only fails the tokens that name it."""
    e3 = rsa.generate_private_key(public_exponent=3, key_size=3072)
    as_pem = lambda key: self_signed_cert(key).public_bytes(serialization.Encoding.PEM).decode()
    malformed = as_pem(keys["rsa2"]).replace("\n-----END", "AA\n-----END")
    path = tmp_path / "certs.json"
    path.write_text(json.dumps({"rsa": as_pem(keys["rsa"]), "e3": as_pem(e3).replace("\n", "\r\n"),
                                "ec": as_pem(keys["ec"]), "bad": malformed}))
    tokens = [pyjwt.encode(claims(sub="via-rsa"), keys["rsa"], algorithm="RS256", headers={"kid": "rsa"}),
              pyjwt.encode(claims(sub="via-e3"), e3, algorithm="RS256", headers={"kid": "e3"}),
              pyjwt.encode(claims(sub="via-ec"), keys["ec"], algorithm="ES256", headers={"kid": "ec"}),
              pyjwt.encode(claims(), keys["rsa2"], algorithm="RS256", headers={"kid": "bad"}),
              pyjwt.encode(claims(), keys["rsa2"], algorithm="RS256", headers={"kid": "rsa"})]
    out, _ = verify(path, [bearer(t) for t in tokens], "--algorithm", "RS256,ES256")
    assert [header(r, "x-authenticated-uid") for r in out[:3]] == ["via-rsa", "via-e3", "via-ec"]
    assert out[3]["status"] == 401 and body(out[3])["message"] == "unusable signing key"
    assert out[4]["status"] == 401    # signed by another key than the certificate's


def test_openid_discovery_leads_to_the_key_set(tmp_path, servers, keys):
    server = servers({"keys": [public_jwk(keys["rsa"], "k1")]})
    server.extra["/.well-known/openid-configuration"] = {"issuer": ISS, "jwks_uri": server.url("/keys")}
    token = sign_rs(keys, claims(), {"alg": "RS256", "kid": "k1"})
    [out], _ = run_filter("verify-jwt", [bearer(token)], "--discovery-url", server.url("/.well-known/openid-configuration"),
                          "--jwks-cache", str(tmp_path / "cache"), *BASE_ARGS)
    assert header(out, "x-authenticated-uid") == "user-42"
    assert server.hits == 2


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A CA and a certificate for localhost it signed, for an https key server."""
    d = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = self_signed_cert(ca_key, "edgepipe test CA")
    ca = (x509.CertificateBuilder().subject_name(ca.subject).issuer_name(ca.subject).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(ca.not_valid_before_utc)
          .not_valid_after(ca.not_valid_after_utc)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.subject).public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (d / "leaf.key").write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(d / "leaf.pem", d / "leaf.key")
    return d, context


def test_https_fetch_verifies_the_certificate_and_host_name(tmp_path, servers, keys, tls_files):
    d, context = tls_files
    server = servers({"keys": [public_jwk(keys["rsa"], "k1")]}, tls=context)
    token = sign_rs(keys, claims(), {"alg": "RS256", "kid": "k1"})
    trusted = {"SSL_CERT_FILE": str(d / "ca.pem")}
    [ok], _ = fetched(server.url(scheme="https", host="localhost"), tmp_path / "a", [bearer(token)], env=trusted)
    assert header(ok, "x-authenticated-uid") == "user-42"
    # The system store does not know the test CA; and the certificate does not name 127.0.0.1.
    [untrusted], err1 = fetched(server.url(scheme="https", host="localhost"), tmp_path / "b", [bearer(token)])
    [wrong_name], err2 = fetched(server.url(scheme="https", host="127.0.0.1"), tmp_path / "c", [bearer(token)], env=trusted)
    assert untrusted["status"] == 503 and "certificate" in err1
    assert wrong_name["status"] == 503 and "certificate" in err2


def test_plain_http_is_refused_for_remote_hosts(tmp_path):
    proc = subprocess.run([binary("verify-jwt"), "--jwks-url", "http://keys.example.com/jwks", "--jwks-cache",
                           str(tmp_path), *BASE_ARGS], input=b"", capture_output=True)
    assert proc.returncode == 2 and b"https" in proc.stderr


# ----------------------------------------------------------------------------- configuration

def test_every_option_can_come_from_the_environment(jwks_file, keys):
    token = sign_rs(keys, claims(email="e@x"))
    env = {"EDGEPIPE_JWKS_FILE": str(jwks_file), "EDGEPIPE_JWT_ISSUER": ISS, "EDGEPIPE_JWT_AUDIENCE": f"other,{AUD}",
           "EDGEPIPE_JWT_CLAIM_HEADERS": "email=x-authenticated-email", "EDGEPIPE_JWT_PUBLIC_ROUTES": "healthz"}
    out, _ = run_filter("verify-jwt", [bearer(token), routed("healthz")], env=env)
    assert header(out[0], "x-authenticated-email") == "e@x"
    assert "status" not in out[1]


def test_misconfiguration_exits_2_with_a_reason():
    proc = subprocess.run([binary("verify-jwt"), "--issuer", ISS], input=b"", capture_output=True,
                          env={k: v for k, v in os.environ.items() if not k.startswith("EDGEPIPE_")})
    assert proc.returncode == 2
    assert b"no signing keys configured" in proc.stderr


def test_help_describes_both_tools():
    for tool, words in (("verify-jwt", [b"--firebase-project", b"Environment", b"Exit status"]),
                        ("sign-jwt", [b"service-account", b"--uid", b"Exit status"])):
        proc = subprocess.run([binary(tool), "--help"], capture_output=True)
        assert proc.returncode == 0
        for w in words:
            assert w in proc.stdout


def test_insecure_bypass_refuses_to_start_outside_local(jwks_file):
    env = {k: v for k, v in os.environ.items() if k != "EDGEPIPE_ENV"}
    for extra in ({}, {"EDGEPIPE_ENV": "production"}):
        proc = subprocess.run([binary("verify-jwt"), "--insecure-no-verify"], input=b"", capture_output=True,
                              env=dict(env, **extra))
        assert proc.returncode == 2
        assert b"EDGEPIPE_ENV=local" in proc.stderr


def test_insecure_bypass_in_local_mode_warns_on_every_start(keys):
    forged = raw_token({"alg": "RS256", "kid": "anything"}, claims(sub="dev-alice"), keys["rsa2"])
    for _ in range(2):
        [out], stderr = run_filter("verify-jwt", [bearer(forged, extra=SPOOF)], "--insecure-no-verify",
                                   env={"EDGEPIPE_ENV": "local"})
        assert header(out, "x-authenticated-uid") == "dev-alice"
        assert [n for n, _ in out["headers"] if n.startswith("x-auth")] == ["x-authenticated-uid"]
        assert "WARNING" in stderr and "NOT verified" in stderr


# ----------------------------------------------------------------------------- sign-jwt

def sign_jwt(*args, env=None, input=None):
    full = dict(os.environ, **(env or {}))
    proc = subprocess.run([binary("sign-jwt"), *args], capture_output=True, env=full, input=input)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def test_dev_tokens_verify_through_verify_jwt(tmp_path):
    dev = tmp_path / "dev-keys"
    rc, out, err = sign_jwt("dev", "--uid", "alice", "--claim", "email=alice@example.com", "--dev-keys", str(dev))
    assert rc == 0, err
    token = out.strip()
    assert stat.S_IMODE((dev / "private.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(dev.stat().st_mode) == 0o700
    decoded = pyjwt.decode(token, options={"verify_signature": False})
    assert decoded["iss"] == decoded["aud"] == "edgepipe-dev"
    assert decoded["exp"] - decoded["iat"] == 3600
    [ok], _ = run_filter("verify-jwt", [bearer(token)], "--dev-keys", str(dev),
                         "--claim-header", "email=x-authenticated-email")
    assert header(ok, "x-authenticated-uid") == "alice"
    assert header(ok, "x-authenticated-email") == "alice@example.com"
    # The same key pair is reused; another directory's keys do not verify this one's tokens.
    rc, out2, _ = sign_jwt("dev", "--uid", "bob", "--ttl", "60", env={"EDGEPIPE_DEV_KEYS": str(dev)})
    [bob], _ = run_filter("verify-jwt", [bearer(out2.strip())], env={"EDGEPIPE_DEV_KEYS": str(dev)})
    assert header(bob, "x-authenticated-uid") == "bob"
    sign_jwt("dev", "--init", "--dev-keys", str(tmp_path / "other"))
    [other], _ = run_filter("verify-jwt", [bearer(token)], "--dev-keys", str(tmp_path / "other"))
    assert other["status"] == 401 and body(other)["message"] == "unknown signing key"


def test_dev_token_usage_errors():
    assert sign_jwt("dev", "--dev-keys", "/tmp/x")[0] == 2                     # no --uid
    assert sign_jwt("dev", "--uid", "a", "--claim", "sub=b", "--dev-keys", "/tmp/x")[0] == 2
    assert sign_jwt("dev", "--uid", "", "--dev-keys", "/tmp/x")[0] == 2
    assert sign_jwt("mint")[0] == 2


def test_verify_jwt_without_dev_keys_yet_answers_503(tmp_path, keys):
    [out], _ = run_filter("verify-jwt", [bearer(sign_rs(keys, claims()))], "--dev-keys", str(tmp_path / "none"))
    assert out["status"] == 503


@pytest.fixture(scope="module")
def service_account(tmp_path_factory, keys):
    key = keys["rsa"]
    info = {"type": "service_account", "project_id": "demo", "private_key_id": "0123abcd",
            "private_key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode(),
            "client_email": "svc@demo.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token"}
    path = tmp_path_factory.mktemp("sa") / "sa.json"
    path.write_text(json.dumps(info))
    return path, key


def test_service_account_jwt_verifies_with_the_accounts_public_key(service_account):
    path, key = service_account
    rc, out, err = sign_jwt("service-account", "--key-file", str(path), "--aud", "https://firestore.googleapis.com/")
    assert rc == 0, err
    token = out.strip()
    decoded = pyjwt.decode(token, key.public_key(), algorithms=["RS256"], audience="https://firestore.googleapis.com/")
    assert decoded["iss"] == decoded["sub"] == "svc@demo.iam.gserviceaccount.com"
    assert decoded["exp"] - decoded["iat"] == 3600
    assert abs(decoded["iat"] - time.time()) < 30
    assert pyjwt.get_unverified_header(token) == {"alg": "RS256", "kid": "0123abcd", "typ": "JWT"}


def test_service_account_key_from_stdin_with_scopes(service_account):
    path, key = service_account
    rc, out, err = sign_jwt("service-account", "--key-file", "-", "--scope", "https://www.googleapis.com/auth/datastore",
                            "--scope", "https://www.googleapis.com/auth/cloud-platform", input=path.read_bytes())
    assert rc == 0, err
    decoded = pyjwt.decode(out.strip(), key.public_key(), algorithms=["RS256"], options={"verify_aud": False})
    assert decoded["scope"] == "https://www.googleapis.com/auth/datastore https://www.googleapis.com/auth/cloud-platform"


def test_service_account_refuses_a_bad_key_file(tmp_path):
    (tmp_path / "bad.json").write_text('{"type": "service_account", "client_email": "a", "private_key_id": "b", "private_key": "x"}')
    rc, out, err = sign_jwt("service-account", "--key-file", str(tmp_path / "bad.json"), "--aud", "https://x/")
    assert rc == 1 and out == "" and "private_key" in err


# ----------------------------------------------------------------------------- through the service

def test_dev_token_through_the_service_with_curl(tmp_path):
    connection = (PIPELINES / "connection").read_text()
    if "verify-jwt" not in connection:
        pytest.skip("pipelines/connection does not run verify-jwt yet (the lead wires it)")
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    svc = Service(tmp_path)
    try:
        rc, token, err = sign_jwt("dev", "--uid", "curl-user", env={"EDGEPIPE_DATA": str(svc.data)})
        assert rc == 0, err

        def curl(*headers):
            args = ["curl", "-s", "-w", "\n%{http_code}"]
            for h in headers:
                args += ["-H", h]
            proc = subprocess.run(args + [f"{svc.url}/v1/subscription"], capture_output=True, text=True, timeout=10)
            text, code = proc.stdout.rsplit("\n", 1)
            return int(code), json.loads(text)

        code, doc = curl(f"Authorization: Bearer {token.strip()}", "X-Authenticated-UID: admin")
        assert code == 200 and doc["uid"] == "curl-user"
        code, doc = curl("X-Authenticated-UID: admin")
        assert code == 401 and doc["error"] == "unauthorized"
        code, doc = curl(f"Authorization: Bearer {token.strip()[:-4]}AAAA")
        assert code == 401 and doc == {"error": "invalid_token", "message": "bad signature"}
    finally:
        svc.stop()


# ----------------------------------------------------------------------------- the auth route (forward-auth)

def auth(headers, method="GET", id="1"):
    """A request for the auth route, as `route` leaves it."""
    return routed("auth", id=id, method=method, path="/auth", headers=[["host", "h"]] + headers)


def test_auth_route_answers_a_valid_token_with_the_identity_in_the_response_headers(jwks_file, keys):
    good = pyjwt.encode(claims(sub="fa-user", email="fa@example.com"), keys["rsa"], algorithm="RS256",
                        headers={"kid": "rsa-1"})
    lines = [auth([["authorization", f"Bearer {good}"]], method=m, id=m) for m in ("GET", "POST", "HEAD", "PROPFIND")]
    # An upper-case name sends the same record down the JSON-values path: the same answer.
    lines.append(routed("auth", id="upper", path="/auth", headers=[["Host", "h"], ["Authorization", f"Bearer {good}"]]))
    out, _ = verify(jwks_file, lines, "--claim-header", "email=x-authenticated-email", "--claim-header", "role=x-role")
    for record in out:
        assert record["status"] == 200, record
        assert record["headers"] == [
            ["cache-control", "no-store"], ["x-authenticated-uid", "fa-user"],
            ["x-authenticated-email", "fa@example.com"], ["x-role", ""]]
        assert record["body"] == ""
        assert record["annotations"]["auth"] == {"uid": "fa-user"}
        assert good[:40] not in json.dumps(record)
    assert [r["method"] for r in out] == ["GET", "POST", "HEAD", "PROPFIND", "GET"], "http-encode needs the method"


def test_auth_route_refuses_exactly_as_a_protected_route_does(jwks_file, keys):
    cases = [[], [["authorization", "Basic dTpw"]], [["authorization", f"Bearer {sign_rs(keys, claims(exp=1))}"]],
             [["authorization", f"Bearer {sign_rs(keys, claims(aud='other'))}"]], [["authorization", "Bearer a.b.c"]],
             [["authorization", f"Bearer {sign_rs(keys, claims())}"]] * 2]
    as_auth, _ = verify(jwks_file, [auth(h, id=str(i)) for i, h in enumerate(cases)], "--audit-failures")
    as_protected, _ = verify(jwks_file, [routed("subscription", id=str(i), path="/auth", headers=[["host", "h"]] + h)
                                         for i, h in enumerate(cases)], "--audit-failures")
    assert [r["status"] for r in as_auth] == [401, 401, 401, 401, 401, 400]
    for a, p in zip(as_auth, as_protected):
        assert {k: v for k, v in a.items() if k != "annotations"} == {k: v for k, v in p.items() if k != "annotations"}
        assert a["annotations"]["audit"] == p["annotations"]["audit"]
        # Never an identity: only the refusal's reason (access log, metrics), as on the protected route.
        assert a["annotations"]["auth"] == p["annotations"]["auth"] and set(a["annotations"]["auth"]) == {"refused"}


def test_auth_route_refuses_requests_that_carry_their_own_identity_headers(jwks_file, keys):
    good = sign_rs(keys, claims())
    spoofs = [["x-authenticated-uid", "admin"], ["x-authenticated-role", "admin"], ["x-user-email", "admin@x"]]
    lines = [auth([spoof, ["authorization", f"Bearer {good}"]], id=str(i)) for i, spoof in enumerate(spoofs)]
    lines.append(routed("auth", id="upper", path="/auth", headers=[["X-Authenticated-Uid", "admin"],
                                                                    ["authorization", f"Bearer {good}"]]))
    lines.append(auth([["x-authenticated-uid", "admin"]], id="no token"))
    out, _ = verify(jwks_file, lines, "--claim-header", "email=x-user-email")
    for record in out:
        assert record["status"] == 400, record
        assert body(record)["error"] == "invalid_request"
        assert "admin" not in json.dumps(record), "a forged value never comes back"
    # The same headers on another route are only removed, as always.
    [passed], _ = verify(jwks_file, [bearer(good, extra=spoofs[:1])])
    assert "status" not in passed and header(passed, "x-authenticated-uid") == "user-42"


def test_auth_route_is_named_by_flag_or_environment_and_can_be_turned_off(jwks_file, keys):
    good = sign_rs(keys, claims())
    lines = [auth([["authorization", f"Bearer {good}"]], id="auth"),
             routed("check", id="check", path="/check", headers=[["authorization", f"Bearer {good}"]])]
    by_default, _ = verify(jwks_file, lines)
    renamed, _ = verify(jwks_file, lines, "--auth-route", "check")
    from_env, _ = verify(jwks_file, lines, env={"EDGEPIPE_JWT_AUTH_ROUTE": "check"})
    off, _ = verify(jwks_file, lines, env={"EDGEPIPE_JWT_AUTH_ROUTE": "-"})
    status = lambda out: [r.get("status") for r in out]
    assert status(by_default) == [200, None]
    assert status(renamed) == status(from_env) == [None, 200]
    assert status(off) == [None, None]
    proc = subprocess.run([binary("verify-jwt"), "--jwks-file", str(jwks_file), *BASE_ARGS, "--public-route", "auth"],
                          input=b"", capture_output=True, timeout=10)
    assert proc.returncode == 2 and b"auth route" in proc.stderr
