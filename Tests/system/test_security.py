"""The threat model of docs/security.md, line by line, against the running service
(pipelines/serve on loopback): what an attacker controls (every header, body, path, token
and event) and what stops each attack. Lines already covered by another test are named
in the document instead of being repeated here."""
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import jwt as pyjwt
import pytest
import stripe
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import BIN, PIPELINES, ROOT, Service, binary, free_port, wait_for_port
from test_faults import call, deliver, delivery, event_for, kv_entries, outcomes, read_subscription
from test_service import dev_token, webhook_secret
from test_verify_jwt import b64, public_jwk


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    s = Service(tmp_path_factory.mktemp("security"))
    yield s
    s.stop()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def dev_key(svc):
    """The service's dev signing key and its kid, as an insider would have them."""
    key = serialization.load_pem_private_key((svc.data / "dev-keys" / "private.pem").read_bytes(), None)
    kid = json.loads((svc.data / "dev-keys" / "jwks.json").read_text())["keys"][0]["kid"]
    return key, kid


def dev_claims(sub, **extra):
    now = int(time.time())
    claims = {"iss": "edgepipe-dev", "aud": "edgepipe-dev", "sub": sub, "iat": now, "exp": now + 600}
    claims.update(extra)
    return claims


def raw_exchange(svc, data, timeout=5):
    """Sends raw bytes, returns everything the server sends until it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", svc.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            pass
        return out


# ----------------------------------------------------------------------------- identity

def test_identity_is_established_by_verify_jwt_before_any_filter_that_uses_it():
    # The full pipeline's stages in order: processes ("$B/tool") and the filters of the
    # chain between them (`filters route ... '|' verify-jwt ...`).
    script = (PIPELINES / "connection").read_text()
    full = script[script.index("\nfull)"):script.index(";;", script.index("\nfull)"))]
    stages = re.findall(r'"\$B/([\w-]+)"|filters ([\w-]+)|\'\|\' ([\w-]+)', full)
    stages = [next(name for name in match if name) for match in stages]
    assert stages[0] == "http-decode" and stages[-1] == "http-encode"
    assert stages.index("route") < stages.index("verify-jwt") < stages.index("kv") < stages.index("apply-webhook") \
        < stages.index("audit")


def test_identity_headers_sent_by_a_client_never_override_the_token(svc):
    token = dev_token(svc, "alice")
    for spoof in ({"X-Authenticated-Uid": "mallory"}, {"x-authenticated-UID": "mallory"},
                  {"X-Authenticated-Email": "boss@example.com", "X-Authenticated-Uid": "root"}):
        status, _, body = call(svc, "GET", "/v1/subscription", {**bearer(token), **spoof})
        assert (status, body["uid"]) == (200, "alice")
    # The header without a token: still nobody.
    status, _, _ = call(svc, "GET", "/v1/subscription", {"X-Authenticated-Uid": "mallory"})
    assert status == 401


def test_a_user_reads_only_their_own_subscription_whatever_the_query_or_body_says(svc):
    assert deliver(svc, event_for("bob-paid")) == (200, {"received": True})
    token = dev_token(svc, "eve")
    body = json.dumps({"uid": "bob-paid", "annotations": {"auth": {"uid": "bob-paid"}}, "status": 200})
    for path in ("/v1/subscription?uid=bob-paid", "/v1/subscription?x-authenticated-uid=bob-paid"):
        status, _, doc = call(svc, "GET", path, {**bearer(token), "Annotations": "auth", "Content-Type": "application/json"},
                              body)
        assert (status, doc["uid"], doc["status"]) == (200, "eve", "none")


def test_audit_records_the_socket_address_not_a_claimed_one(svc):
    event = event_for("addr-user")
    payload, headers = delivery(svc, event)
    headers.update({"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9", "Forwarded": "for=203.0.113.9"})
    assert call(svc, "POST", "/v1/webhooks/stripe", headers, payload)[0] == 200
    log = (svc.data / "audit" / "audit.log").read_text().splitlines()
    [line] = [json.loads(l) for l in log if event["id"] in l]
    assert line["remote"] == "127.0.0.1"


# ----------------------------------------------------------------------------- tokens

def test_algorithm_confusion_against_the_services_own_keys_is_refused(svc):
    key, kid = dev_key(svc)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    jwks_text = (svc.data / "dev-keys" / "jwks.json").read_bytes()
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header = lambda alg, **kw: {"alg": alg, "kid": kid, "typ": "JWT", **kw}
    claims = dev_claims("mallory")

    def hs256(secret):
        signing_input = f"{b64(json.dumps(header('HS256')))}.{b64(json.dumps(claims))}".encode()
        return signing_input.decode() + "." + b64(hmac.new(secret, signing_input, hashlib.sha256).digest())

    forged = {
        "HS256 keyed with the public key (PEM)": hs256(public_pem),
        "HS256 keyed with the JWK Set": hs256(jwks_text),
        "alg none": f"{b64(json.dumps(header('none')))}.{b64(json.dumps(claims))}.",
        "embedded attacker jwk": pyjwt.encode(claims, attacker, algorithm="RS256",
                                              headers={"kid": kid, "jwk": public_jwk(attacker, kid)}),
        "attacker key, our kid": pyjwt.encode(claims, attacker, algorithm="RS256", headers={"kid": kid}),
        "jku pointing elsewhere": pyjwt.encode(claims, attacker, algorithm="RS256",
                                               headers={"kid": kid, "jku": "http://127.0.0.1:1/keys"}),
        "PS256 with our key (not allowed)": pyjwt.encode(claims, key, algorithm="PS256", headers={"kid": kid}),
    }
    for name, token in forged.items():
        status, headers, body = call(svc, "GET", "/v1/subscription", bearer(token))
        assert (status, body["error"]) == (401, "invalid_token"), name
    # The same claims, honestly signed, pass: the refusals above are about the forgery.
    assert call(svc, "GET", "/v1/subscription", bearer(pyjwt.encode(claims, key, algorithm="RS256",
                                                                      headers={"kid": kid})))[0] == 200


def test_a_token_subject_carrying_cr_lf_or_controls_is_refused(svc):
    key, kid = dev_key(svc)
    for sub in ("alice\r\nx-authenticated-uid: root", "alice\nroot", "bob\x00", "a\x1b[31m"):
        token = pyjwt.encode(dev_claims(sub), key, algorithm="RS256", headers={"kid": kid})
        status, _, body = call(svc, "GET", "/v1/subscription", bearer(token))
        assert (status, body["message"]) == (401, "invalid subject"), repr(sub)


# ----------------------------------------------------------------------------- webhooks

def test_a_captured_delivery_replayed_is_deduplicated_within_the_tolerance_and_refused_after(svc):
    event = event_for("replayed")
    payload, headers = delivery(svc, event)
    for _ in range(3):        # replayed as captured, signature and all, within 300 s
        assert call(svc, "POST", "/v1/webhooks/stripe", headers, payload)[0] == 200
    assert outcomes(svc, event["id"]) == ["applied", "duplicate", "duplicate"]
    # Captured six minutes ago: refused, nothing recorded against the event.
    old_payload, old_headers = delivery(svc, event_for("replayed-late"), timestamp=int(time.time()) - 360)
    status, _, body = call(svc, "POST", "/v1/webhooks/stripe", old_headers, old_payload)
    assert (status, body["check"]) == (400, "timestamp_outside_tolerance")
    # Moving the timestamp forward breaks the signature, which covers it.
    t, v1 = old_headers["Stripe-Signature"].split(",", 1)
    old_headers["Stripe-Signature"] = f"t={int(time.time())},{v1}"
    status, _, body = call(svc, "POST", "/v1/webhooks/stripe", old_headers, old_payload)
    assert (status, body["check"]) == (400, "no_matching_signature")
    assert "sub/replayed-late" not in kv_entries(svc)


def test_a_signed_body_with_duplicate_keys_is_refused_before_anything_is_read(svc):
    event = event_for("dup-a")
    text = json.dumps(event, separators=(",", ":"))
    # Two "id"s, two uids: two readers could disagree on which event this is.
    ambiguous = text[:-1] + ',"id":"evt_other","data":{"object":{"client_reference_id":"dup-b"}}}'
    header = stripe.WebhookSignature.generate_signature_header(ambiguous, webhook_secret(svc), timestamp=int(time.time()))
    status, _, body = call(svc, "POST", "/v1/webhooks/stripe", {"Stripe-Signature": header}, ambiguous)
    assert (status, body["error"]) == (400, "invalid_payload")
    entries = kv_entries(svc)
    assert "sub/dup-a" not in entries and "sub/dup-b" not in entries


# ----------------------------------------------------------------------------- paths and keys

def test_dot_segments_and_encoded_separators_are_refused_before_routing(svc):
    for path in ("/healthz/../v1/subscription", "/healthz/%2e%2e/v1/subscription", "/v1/subscription/%2e",
                 "/v1%2Fsubscription", "/v1/subscription%5C..", "/v1//subscription", "/v1/subscription%00"):
        status, _, body = call(svc, "GET", path)
        assert (status, body["error"]) == (400, "bad_path"), path
    # Another spelling of a route is not that route (no decoding before matching).
    assert call(svc, "GET", "/v1/%73ubscription")[0] == 404


def test_traversal_in_uids_customers_and_event_ids_stays_inside_the_store(svc):
    evil = "../../../../../../tmp/edgepipe-pwned"
    token = pyjwt.encode(dev_claims(evil), dev_key(svc)[0], algorithm="RS256", headers={"kid": dev_key(svc)[1]})
    status, _, body = call(svc, "GET", "/v1/subscription", bearer(token))
    assert (status, body["uid"]) == (200, evil)
    event = event_for("x")
    event["id"] = "evt_/../../../../tmp/edgepipe-pwned-event"
    obj = event["data"]["object"]
    obj["client_reference_id"], obj["customer"] = evil, "cus_/../../../tmp/edgepipe-pwned-customer"
    assert deliver(svc, event) == (200, {"received": True})
    status, _, body = call(svc, "GET", "/v1/subscription", bearer(token))
    assert (status, body["status"]) == (200, "active")
    kv = (svc.data / "kv").resolve()
    for root, dirs, files in os.walk(svc.data / "kv"):
        for name in dirs + files:
            path = Path(root, name)
            assert path.resolve().is_relative_to(kv)
            assert re.fullmatch(r"[a-z0-9_^%#-]+", name), name     # escaped names only
    entries = kv_entries(svc)
    assert entries[f"sub/{evil}"]["value"]["status"] == "active"
    assert not list(Path("/tmp").glob("edgepipe-pwned*"))
    assert not list(svc.data.glob("**/edgepipe-pwned*"))


# ----------------------------------------------------------------------------- logs

def test_newlines_from_requests_never_start_a_log_line_or_split_an_audit_line(svc):
    marker = "INJECTED-LOG-LINE"
    log_path = svc.data.parent / "serve.log"
    start = len(log_path.read_bytes())
    raw = [
        f"GET /x%0a{marker}%0d%0a{marker} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        f"GET /healthz?q=%0a{marker} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        f"GET /v1/subscription HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer a.b%0a{marker}.c\r\nConnection: close\r\n\r\n",
        f"GET /\n{marker}: x HTTP/1.1\r\nHost: a\r\n\r\n",
        f"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r{marker}: b\r\n\r\n",
    ]
    body = f'{{"id":"e\\n{marker}","type":"x\\n{marker}"}}\n{marker}'
    raw.append(f"POST /v1/webhooks/stripe HTTP/1.1\r\nHost: a\r\nStripe-Signature: t=1\n{marker},v1=00\r\n"
               f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n{body}")
    raw.append(f"POST /v1/webhooks/stripe HTTP/1.1\r\nHost: a\r\nStripe-Signature: t=1,v1=00\r\n"
               f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n{body}")
    for data in raw:
        raw_exchange(svc, data.encode(), timeout=2)
    # A validly signed event whose strings carry newlines: it is applied and audited, and
    # its unknown price is logged, all without a raw newline.
    event = event_for("newline-user")
    event["type"] = "customer.subscription.updated"
    event["data"]["object"] = {"id": "sub_nl", "object": "subscription", "status": "active",
                               "customer": f"cus_nl\n{marker}", "metadata": {"uid": "newline-user"},
                               "items": {"data": [{"price": {"id": f"price_x\n{marker}", "lookup_key": f"k\r\n{marker}"},
                                                   "current_period_end": int(time.time()) + 3600}]}}
    assert deliver(svc, event) == (200, {"received": True})
    unknown = event_for("newline-user-2")
    unknown["type"] = f"made.up\n{marker}"
    assert deliver(svc, unknown) == (200, {"received": True})
    new_log = log_path.read_bytes()[start:].decode(errors="replace")
    assert new_log, "the refused requests were logged"
    for line in new_log.splitlines():
        assert not line.startswith(marker), line
    audit_text = (svc.data / "audit" / "audit.log").read_text()
    for line in audit_text.splitlines():
        json.loads(line)                                     # every line is whole JSON
    assert marker in audit_text                              # escaped inside a line, not a line of its own
    assert subprocess.run([binary("audit"), "verify", str(svc.data / "audit" / "audit.log")],
                          capture_output=True).returncode == 0


# ----------------------------------------------------------------------------- secrets

def secret_material(svc):
    key_pem = (svc.data / "dev-keys" / "private.pem").read_text()
    body = "".join(l for l in key_pem.splitlines() if "-----" not in l)
    return [webhook_secret(svc), webhook_secret(svc).removeprefix("whsec_")] + [body[i:i + 40] for i in range(0, len(body) - 40, 200)]


def test_no_secret_or_token_on_any_pipeline_command_line(svc):
    token = dev_token(svc, "argv-user")
    payload, headers = delivery(svc, event_for("argv-user"))
    conns = []
    try:
        # Two live pipelines: one that read a token, one that took a signed delivery.
        for request in (f"GET /v1/subscription HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\r\n",
                        f"POST /v1/webhooks/stripe HTTP/1.1\r\nHost: a\r\nContent-Length: {len(payload)}\r\n"
                        + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n" + payload):
            s = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
            s.sendall(request.encode())
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            conns.append(s)
        argvs = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[3] != str(svc.proc.pid):
                        continue
                    argvs.append(Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode())
                except (OSError, IndexError):
                    continue
        assert sum("http-decode" in a for a in argvs) >= 2, argvs
        ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
        secrets = secret_material(svc) + [token, token.split(".")[2], headers["Stripe-Signature"].split("v1=")[1]]
        for text in argvs + [ps]:
            for secret in secrets:
                assert secret not in text
    finally:
        for s in conns:
            s.close()


def test_no_secret_or_token_in_logs_responses_or_the_audit_trail(svc):
    good = dev_token(svc, "log-user")
    expired = subprocess.run([binary("sign-jwt"), "dev", "--uid", "log-user"], capture_output=True, text=True,
                             env={**svc.env, "EDGEPIPE_CLOCK_OFFSET": "-7200"}).stdout.strip()
    h, p, s = good.split(".")
    tampered = f"{h}.{p}.{s[::-1]}"
    seen, signatures = [], []
    for token in (good, expired, tampered, good + "x", f"{h}.{p}"):
        status, headers, body = call(svc, "GET", "/v1/subscription", bearer(token))
        seen.append(json.dumps(headers) + json.dumps(body))
    for secret in (webhook_secret(svc), "whsec_wrong_secret_value"):
        payload, hdrs = delivery(svc, event_for("log-user"))
        hdrs["Stripe-Signature"] = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=int(time.time()))
        status, headers, body = call(svc, "POST", "/v1/webhooks/stripe", hdrs, payload)
        seen.append(json.dumps(headers) + json.dumps(body))
        signatures.append(hdrs["Stripe-Signature"].split("v1=")[1])
    texts = {"serve log": (svc.data.parent / "serve.log").read_text(),
             "audit log": (svc.data / "audit" / "audit.log").read_text(), "responses": "\n".join(seen)}
    secrets = secret_material(svc) + ["whsec_wrong_secret_value"] + signatures
    for token in (good, expired, tampered):
        secrets += [token, token.split(".")[2][:40]]
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{where} holds a secret or token"


def test_secrets_and_keys_on_disk_are_readable_only_by_their_owner(svc):
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)
    assert mode(svc.data / "stripe-webhook-secrets") == 0o600
    assert mode(svc.data / "dev-keys") == 0o700
    assert mode(svc.data / "dev-keys" / "private.pem") == 0o600


# ----------------------------------------------------------------------------- resources

def test_deeply_nested_or_wide_json_in_a_signed_body_is_refused_and_the_service_stays_up(svc):
    # Too deep to parse: refused. Wide but valid JSON of no handled shape: acknowledged and
    # ignored (a signed event Stripe would otherwise retry for three days), nothing applied.
    before = set(kv_entries(svc))
    for body, expected in (("[" * 100000 + "]" * 100000, 400),
                           ('{"id":"evt_w","object":"event","a":[' + "1," * 200000 + "1]}", 200)):
        header = stripe.WebhookSignature.generate_signature_header(body, webhook_secret(svc), timestamp=int(time.time()))
        status, _, doc = call(svc, "POST", "/v1/webhooks/stripe", {"Stripe-Signature": header}, body)
        assert status == expected
        assert doc == ({"received": True} if expected == 200 else dict(doc, error="invalid_payload"))
    assert set(kv_entries(svc)) == before, "nothing applied"
    assert call(svc, "GET", "/healthz")[0] == 200


# ----------------------------------------------------------------------------- least privilege

def unit(name):
    sections, current = {}, None
    for line in (PIPELINES / "systemd" / name).read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def test_systemd_unit_runs_unprivileged_with_only_the_data_directory_writable(tmp_path):
    service = unit("edgepipe@.service")["Service"]
    for key, value in {"DynamicUser": "yes", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
                       "PrivateTmp": "yes", "ProtectHome": "yes", "CapabilityBoundingSet": "",
                       "StateDirectory": "edgepipe", "ReadWritePaths": "/var/lib/edgepipe", "UMask": "0077"}.items():
        assert service.get(key) == [value], key
    assert service["User"] != ["root"]
    env = dict(v.split("=", 1) for v in service["Environment"])
    assert env["EDGEPIPE_DATA"] == "/var/lib/edgepipe"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install -y systemd)")
    text = (PIPELINES / "systemd" / "edgepipe@.service").read_text()
    (tmp_path / "edgepipe@.service").write_text(text.replace("/opt/edgepipe/.build/release", str(BIN))
                                                .replace("/opt/edgepipe", str(ROOT)))
    (tmp_path / "edgepipe.socket").write_text((PIPELINES / "systemd" / "edgepipe.socket").read_text())
    verify = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / "edgepipe.socket"),
                             str(tmp_path / "edgepipe@.service")], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    security = subprocess.run([analyze, "security", "--offline=true", "--man=no",
                               str(tmp_path / "edgepipe@.service")], capture_output=True, text=True, timeout=60)
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert level and float(level.group(1)) <= 2.0, security.stdout[-2000:]
    assert security.returncode == 0


def test_the_service_runs_as_an_unprivileged_user_writing_only_its_data_directory():
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv (util-linux) to drop to an unprivileged user")
    nobody = 65534
    work = Path(tempfile.mkdtemp(prefix="edgepipe-unprivileged."))
    os.chmod(work, 0o755)
    data = work / "data"
    data.mkdir()
    os.chown(data, nobody, nobody)
    marker = work / "started"
    marker.touch()
    port = free_port()
    env = {**os.environ, "EDGEPIPE_PORT": str(port), "EDGEPIPE_DATA": str(data), "EDGEPIPE_BIN": str(BIN),
           "HOME": str(data)}
    log = open(work / "serve.log", "wb")
    proc = subprocess.Popen([setpriv, f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups", "--",
                             str(PIPELINES / "serve")], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        try:
            wait_for_port(port)
        except AssertionError:
            raise AssertionError((work / "serve.log").read_text())
        svc = type("Svc", (), {"port": port, "data": data, "env": env})()
        # sign-jwt refuses a key directory of another user, so the token is minted as that user too.
        token = subprocess.run([setpriv, f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups", "--",
                                binary("sign-jwt"), "dev", "--uid", "unprivileged"], env=env, capture_output=True,
                               text=True, check=True).stdout.strip()
        assert deliver(svc, event_for("unprivileged")) == (200, {"received": True})
        status, body = read_subscription(svc, "unprivileged", token)
        assert (status, body["status"]) == (200, "active")
        # Every process of the service runs as that user, and it wrote nowhere but its data directory.
        uids = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[3] == str(proc.pid):
                        uids.add(os.stat(f"/proc/{entry}").st_uid)
                except (OSError, IndexError):
                    continue
        assert uids == {nobody}
        # Only world-writable places could take a file from that user: look there.
        written = subprocess.run(["find", "/tmp", "/var/tmp", "/dev/shm", "-maxdepth", "2", "-user", str(nobody),
                                  "-newer", str(marker), "-not", "-path", f"{data}*"],
                                 capture_output=True, text=True).stdout.split()
        assert written == []
        assert (data / "kv").stat().st_uid == nobody and (data / "audit" / "audit.log").stat().st_uid == nobody
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------- the document itself

def test_every_test_the_threat_model_names_exists():
    for doc in ("security.md", "reliability.md"):
        path = ROOT / "docs" / doc
        if not path.exists():
            continue
        # `system/test_x.py::name`, `Tests/system/...`, a bare `test_x.py::name` (a system
        # test) or `KVTests/File.swift::testName`.
        refs = re.findall(r"`(?:Tests/)?((?:system/|[A-Za-z]+Tests/)?[\w/]+\.(?:py|swift))::(\w+)`", path.read_text())
        assert len(refs) > 10
        for file, name in refs:
            if "/" not in file:
                file = "system/" + file
            source = (ROOT / "Tests" / file).read_text()
            pattern = rf"^\s*def {name}\(" if file.endswith(".py") else rf"func {name}\("
            assert re.search(pattern, source, re.M), f"{doc} names {file}::{name}, which does not exist"
