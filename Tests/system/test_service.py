"""The service as the README presents it: pipelines/serve on a loopback port, driven
with curl and Python's http.client, tokens from `sign-jwt dev`, webhooks signed by
Stripe's own Python library."""
import hashlib
import hmac
import http.client
import json
import socket
import subprocess
import time

import stripe

from conftest import Service, binary, stop_group


def curl(*args):
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args],
                         capture_output=True, text=True, timeout=20)
    body, _, status = out.stdout.rpartition("\n")
    return int(status), body


def dev_token(svc, uid):
    return subprocess.run([binary("sign-jwt"), "dev", "--uid", uid], env=svc.env,
                          capture_output=True, text=True, check=True).stdout.strip()


def webhook_secret(svc):
    return (svc.data / "stripe-webhook-secrets").read_text().split()[0]


def checkout_event(uid, created):
    return {"id": f"evt_{uid}_checkout", "object": "event", "type": "checkout.session.completed",
            "created": created, "api_version": "2025-03-31.basil",
            "data": {"object": {"id": "cs_test_1", "object": "checkout.session", "mode": "subscription",
                                "client_reference_id": uid, "customer": f"cus_{uid}",
                                "subscription": f"sub_{uid}", "payment_status": "paid", "status": "complete"}}}


def test_healthz_answers_without_a_token(service):
    assert curl(f"{service.url}/healthz") == (200, '{"status":"ok"}')


def test_a_protected_route_without_a_token_is_401_with_a_json_body(service):
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    conn.request("GET", "/v1/subscription")
    resp = conn.getresponse()
    assert resp.status == 401
    assert resp.getheader("www-authenticate") == "Bearer"
    assert resp.getheader("content-type") == "application/json"
    assert json.loads(resp.read())["error"] == "unauthorized"


def test_readme_flow_dev_token_then_subscription_read(service):
    token = dev_token(service, "alice")
    status, body = curl("-H", f"Authorization: Bearer {token}", f"{service.url}/v1/subscription")
    assert status == 200
    assert json.loads(body)["uid"] == "alice"
    assert json.loads(body)["status"] == "none"


def test_a_tampered_token_is_refused(service):
    token = dev_token(service, "alice")
    head, payload, sig = token.split(".")
    forged = head + "." + payload + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    status, body = curl("-H", f"Authorization: Bearer {forged}", f"{service.url}/v1/subscription")
    assert status == 401
    assert json.loads(body)["error"] == "invalid_token"


def test_a_spoofed_identity_header_does_not_reach_the_read_path(service):
    status, body = curl("-H", "X-Authenticated-UID: mallory", f"{service.url}/v1/subscription")
    assert status == 401


def test_removed_endpoint_is_410_with_replacement(service):
    status, body = curl(f"{service.url}/v1/profile")
    assert status == 410
    assert json.loads(body)["replacement"] == "/v1/subscription"


def test_unknown_path_is_404_and_wrong_method_405(service):
    assert curl(f"{service.url}/nope")[0] == 404
    assert curl("-X", "DELETE", f"{service.url}/v1/subscription")[0] == 405


def test_signed_webhook_then_read_shows_the_new_state_and_the_audit_chain_holds(service):
    payload = json.dumps(checkout_event("bob", int(time.time())))
    header = stripe.WebhookSignature.generate_signature_header(payload, webhook_secret(service),
                                                               timestamp=int(time.time()))
    status, body = curl("-X", "POST", "-H", "Content-Type: application/json", "-H", f"Stripe-Signature: {header}",
                        "--data-binary", payload, f"{service.url}/v1/webhooks/stripe")
    assert (status, json.loads(body)) == (200, {"received": True})

    token = dev_token(service, "bob")
    status, body = curl("-H", f"Authorization: Bearer {token}", f"{service.url}/v1/subscription")
    assert status == 200 and json.loads(body)["status"] == "active"

    # The same delivery again (Stripe retries): acknowledged, not applied twice.
    status, _ = curl("-X", "POST", "-H", f"Stripe-Signature: {header}", "--data-binary", payload,
                     f"{service.url}/v1/webhooks/stripe")
    assert status == 200

    log = service.data / "audit" / "audit.log"
    outcomes = [json.loads(l)["outcome"] for l in log.read_text().splitlines() if '"stripe"' in l]
    assert outcomes == ["applied", "duplicate"]
    verify = subprocess.run([binary("audit"), "verify", str(log)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_webhook_with_a_bad_signature_is_400_and_changes_nothing(service):
    payload = json.dumps(checkout_event("carol", int(time.time())))
    header = stripe.WebhookSignature.generate_signature_header(payload, "whsec_wrong", timestamp=int(time.time()))
    status, body = curl("-X", "POST", "-H", f"Stripe-Signature: {header}", "--data-binary", payload,
                        f"{service.url}/v1/webhooks/stripe")
    assert status == 400
    token = dev_token(service, "carol")
    assert json.loads(curl("-H", f"Authorization: Bearer {token}", f"{service.url}/v1/subscription")[1])["status"] == "none"


def test_keep_alive_connection_serves_several_requests_in_order(service):
    token = dev_token(service, "dave")
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    for path, want in [("/healthz", 200), ("/v1/subscription", 200), ("/v1/profile", 410), ("/x", 404)]:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == want, path
    conn.close()


def test_a_missing_webhook_secret_answers_webhooks_503_and_leaves_other_routes_alone(tmp_path):
    from conftest import request, run_filter
    webhook = request(method="POST", path="/v1/webhooks/stripe", body="{}",
                      annotations={"route": {"name": "stripe-webhook"}})
    read = request(path="/v1/subscription", annotations={"route": {"name": "subscription"}})
    env = {"EDGEPIPE_STRIPE_SECRETS": "", "EDGEPIPE_KV": str(tmp_path / "kv")}
    (answered, passed), stderr = run_filter("apply-webhook", [webhook, read],
                                            "--secrets-file", str(tmp_path / "missing"), env=env)
    assert answered["status"] == 503
    assert json.loads(answered["body"])["error"] == "webhook_not_configured"
    assert passed == read
    assert "cannot read secrets file" in stderr


# ---------------------------------------------------------------------------------------
# Issue 19 §6: connections that open and send nothing must not lock everyone out. The
# launcher runs at most 256 pipelines (EDGEPIPE_MAX_CONNECTIONS); each silent one now
# ends after http-decode's first-byte timeout, not the 60 s idle timeout.


def test_256_silent_connections_do_not_keep_healthz_from_answering(tmp_path):
    svc = Service(tmp_path)
    silent = []
    try:
        for _ in range(256):
            silent.append(socket.create_connection(("127.0.0.1", svc.port), timeout=5))
        time.sleep(1)   # the launcher has handed them all to pipelines: every slot is taken
        start = time.monotonic()
        status, body = curl("--max-time", "18", f"{svc.url}/healthz")
        waited = time.monotonic() - start
        assert (status, body) == (200, '{"status":"ok"}')
        assert waited < 15, f"/healthz waited {waited:.1f} s"
        # The silent connections were closed by the service, without a response.
        for s in silent[:16]:
            s.settimeout(10)
            assert s.recv(1) == b""
    finally:
        for s in silent:
            s.close()
        svc.stop()


# ---------------------------------------------------------------------------------------
# Issue 19 §7: every body http-decode accepts fits in a record, whatever its bytes. A
# signed webhook that is not JSON reaches apply-webhook intact (its signature holds over
# the exact bytes) and is refused there as invalid_payload: it is not lost on the way
# as "record too long".


def post_signed(svc, body, timeout=120):
    secret = webhook_secret(svc)
    t = int(time.time())
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=timeout)
    try:
        conn.request("POST", "/v1/webhooks/stripe", body=body,
                     headers={"Stripe-Signature": f"t={t},v1={sig}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_three_million_control_bytes_under_a_four_million_limit_reach_the_webhook_intact(tmp_path):
    svc = Service(tmp_path, env={"EDGEPIPE_MAX_BODY": "4000000"})
    try:
        status, body = post_signed(svc, b"\x01" * 3_000_000)
        assert status == 400 and body["error"] == "invalid_payload", body
    finally:
        svc.stop()


def test_the_worst_bodies_at_the_largest_accepted_limit_reach_the_webhook_intact(tmp_path):
    limit = 11 << 20
    svc = Service(tmp_path, env={"EDGEPIPE_MAX_BODY": str(limit)})
    try:
        for fill in (b"\x01", b'"', b"\xff"):
            status, body = post_signed(svc, fill * limit)
            assert status == 400 and body["error"] == "invalid_payload", (fill, body)
        status, body = post_signed(svc, b"\x01" * (limit + 1))
        assert status == 413
    finally:
        svc.stop()


def test_serve_refuses_a_body_limit_that_cannot_fit_in_a_record_at_start(tmp_path):
    import os
    from conftest import BIN, PIPELINES, free_port
    env = {**os.environ, "EDGEPIPE_PORT": str(free_port()), "EDGEPIPE_DATA": str(tmp_path / "data"),
           "EDGEPIPE_BIN": str(BIN), "EDGEPIPE_MAX_BODY": str(12 << 20)}
    proc = subprocess.Popen([str(PIPELINES / "serve")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 2
        assert "--max-body" in out.decode()
    finally:
        stop_group(proc)
