"""The service as the README presents it: pipelines/serve on a loopback port, driven
with curl and Python's http.client, tokens from `sign-jwt dev`, webhooks signed by
Stripe's own Python library."""
import http.client
import json
import subprocess
import time

import stripe

from conftest import Service, binary


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
