"""Shared helpers for the apply-webhook system tests (no tests here): Stripe events in
the shapes Stripe sends them, signatures made by Stripe's own Python library, and a
reader of the KV directory."""
import json
import os
import subprocess
import time
from pathlib import Path

import stripe

from conftest import binary, run_filter

SECRET = "whsec_edgepipe_test_0123456789abcdef"
T0 = 1_700_000_000
MONTH = 2_592_000


def sign(payload, secret=SECRET, timestamp=None):
    """The Stripe-Signature header exactly as stripe-python generates it."""
    if isinstance(payload, bytes):
        payload = payload.decode()
    if timestamp is None:
        timestamp = int(time.time())
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)


def stripe_accepts(payload, header, secrets, tolerance=300):
    """Whether stripe-python's construct_event accepts the delivery under any secret."""
    for secret in secrets:
        try:
            stripe.Webhook.construct_event(payload, header, secret, tolerance=tolerance)
            return True
        except stripe.SignatureVerificationError:
            continue
    return False


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def event(id, type, created, obj):
    return {"id": id, "object": "event", "api_version": "2025-03-31.basil", "type": type,
            "created": created, "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "data": {"object": obj}}


def checkout(id, created, uid="user-1", customer="cus_1", subscription="sub_1", plan="pro_monthly"):
    return event(id, "checkout.session.completed", created, {
        "id": "cs_test_" + id, "object": "checkout.session", "mode": "subscription",
        "client_reference_id": uid, "customer": customer, "subscription": subscription,
        "payment_status": "paid", "status": "complete", "metadata": {"plan": plan}})


def subscription(id, created, status, period_end, type="customer.subscription.updated", customer="cus_1",
                 subscription="sub_1", price="price_pro_m", lookup_key="pro_monthly", trial_end=None,
                 uid=None, new_shape=True):
    item = {"id": "si_1", "object": "subscription_item",
            "price": {"id": price, "object": "price", "lookup_key": lookup_key}}
    obj = {"id": subscription, "object": "subscription", "status": status, "customer": customer,
           "cancel_at_period_end": False, "trial_end": trial_end, "metadata": {"uid": uid} if uid else {},
           "items": {"object": "list", "data": [item]}}
    if new_shape:
        item["current_period_end"] = period_end
        item["current_period_start"] = period_end - MONTH
    else:
        obj["current_period_end"] = period_end
        obj["current_period_start"] = period_end - MONTH
    return event(id, type, created, obj)


def invoice(id, type, created, period_end, reason="subscription_cycle", amount_paid=1500, customer="cus_1",
            subscription="sub_1", new_shape=True):
    obj = {"id": "in_" + id, "object": "invoice", "customer": customer, "billing_reason": reason,
           "amount_paid": amount_paid, "period_end": period_end - MONTH,
           "lines": {"object": "list", "data": [{"period": {"start": period_end - MONTH, "end": period_end}}]}}
    if new_shape:
        obj["parent"] = {"type": "subscription_details",
                         "subscription_details": {"subscription": subscription, "metadata": {}}}
    else:
        obj["subscription"] = subscription
    return event(id, type, created, obj)


def lifecycle(uid="user-1", customer="cus_1", sub="sub_1", prefix="evt"):
    """checkout -> renewals -> payment failed -> recovered -> cancelled."""
    p1, p2, p3 = T0 + MONTH, T0 + 2 * MONTH, T0 + 3 * MONTH
    k = dict(customer=customer, subscription=sub)
    return [
        checkout(f"{prefix}_01", T0, uid=uid, customer=customer, subscription=sub),
        subscription(f"{prefix}_02", T0, "active", p1, type="customer.subscription.created", **k),
        invoice(f"{prefix}_03", "invoice.paid", T0, p1, reason="subscription_create", **k),
        subscription(f"{prefix}_04", p1, "active", p2, **k),
        invoice(f"{prefix}_05", "invoice.paid", p1 + 2, p2, **k),
        invoice(f"{prefix}_06", "invoice.payment_failed", p2 + 1, p3, **k),
        subscription(f"{prefix}_07", p2 + 1, "past_due", p3, **k),
        invoice(f"{prefix}_08", "invoice.paid", p2 + 86400, p3, **k),
        subscription(f"{prefix}_09", p2 + 86400, "active", p3, **k),
        subscription(f"{prefix}_10", p2 + 10 * 86400, "canceled", p3, type="customer.subscription.deleted", **k),
    ]


def webhook_record(body, header=None, id="1", route="stripe-webhook"):
    """A request record as http-decode and route leave it for apply-webhook."""
    if isinstance(body, dict):
        body = dumps(body)
    headers = [["host", "api.example.com"], ["content-type", "application/json; charset=utf-8"]]
    if header is not None:
        headers.append(["stripe-signature", header])
    return {"id": id, "method": "POST", "path": "/v1/webhooks/stripe", "query": "", "version": "HTTP/1.1",
            "headers": headers, "body": body, "keep_alive": True, "remote": "127.0.0.1",
            "annotations": {"route": {"name": route, "params": {}}}}


def signed_record(obj, id="1", secret=SECRET, timestamp=None):
    body = dumps(obj) if isinstance(obj, dict) else obj
    return webhook_record(body, sign(body, secret, timestamp), id=id)


def plans_file(tmp_path):
    path = tmp_path / "plans"
    path.write_text("price_pro_m pro\npro_monthly pro\nprice_basic_m basic\nbasic_monthly basic\n")
    return str(path)


def webhook_env(tmp_path, kv=None, secrets=SECRET, **extra):
    env = {"EDGEPIPE_KV": str(kv or tmp_path / "kv"), "EDGEPIPE_PLANS": plans_file(tmp_path),
           "EDGEPIPE_STRIPE_SECRETS": secrets}
    env.update(extra)
    return env


def run_webhook(tmp_path, records, *args, env=None, kv=None, secrets=SECRET):
    """apply-webhook in filter mode over `records`; returns (records out, stderr)."""
    full = webhook_env(tmp_path, kv=kv, secrets=secrets)
    if env:
        full.update(env)
    return run_filter("apply-webhook", records, *args, env=full)


def run_batch(tmp_path, *args, input=None, kv=None, env=None, timeout=120):
    full = dict(os.environ)
    full.update(webhook_env(tmp_path, kv=kv))
    if env:
        full.update(env)
    if isinstance(input, str):
        input = input.encode()
    return subprocess.run([binary("apply-webhook"), "--batch", *args], input=input, capture_output=True,
                          timeout=timeout, env=full)


def summary(proc):
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def ndjson(events):
    return "".join(dumps(e) + "\n" for e in events)


def read_store(kv):
    return {k: doc["value"] for k, doc in read_entries(kv).items()}


def read_entries(kv):
    """Every key of a KV directory and its value. Each entry file is a whole JSON document
    {"key", "version", "expires_at", "metadata", "value"} (docs/kv.md); temporary files
    start with '.'."""
    out = {}
    for root, dirs, files in os.walk(kv):
        dirs[:] = [d for d in dirs if d != "locks"]
        for name in files:
            if name.startswith("."):   # a writer's temporary file (left by kill -9)
                continue
            try:
                doc = json.loads(Path(root, name).read_bytes())
            except (ValueError, OSError):
                continue
            if isinstance(doc, dict) and "key" in doc and "value" in doc and "version" in doc:
                out[doc["key"]] = doc
    return out


def state(kv, uid):
    return read_store(kv).get(f"sub/{uid}")


def body(record):
    return json.loads(record["body"])


def batch_on_terminal(tmp_path, *args, input=None, kv=None, timeout=60):
    """apply-webhook --batch with stderr on a pseudo-terminal; returns (exit status, what
    the terminal showed, stdout). Every wait is bounded by `timeout`."""
    import pty
    import select
    master, slave = pty.openpty()
    env = dict(os.environ)
    env.update(webhook_env(tmp_path, kv=kv))
    proc = subprocess.Popen([binary("apply-webhook"), "--batch", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    if input:
        proc.stdin.write(input.encode() if isinstance(input, str) else input)
    proc.stdin.close()
    seen = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], max(deadline - time.time(), 0))
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:   # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=max(deadline - time.time(), 1))
    os.close(master)
    return proc.returncode, seen, proc.stdout.read()
