"""apply-webhook in filter mode, as the pipeline runs it: records over real pipes, the
state in a real KV directory, deliveries signed by Stripe's Python library."""
import json
import os
import subprocess
import time

from conftest import binary, request, run_filter
from test_webhook_support import (MONTH, SECRET, T0, body, checkout, dumps, event, invoice, lifecycle,
                                  read_store, run_webhook, sign, signed_record, state, subscription,
                                  webhook_env, webhook_record)


def deliver_all(tmp_path, events):
    recs = [signed_record(e, id=str(i + 1)) for i, e in enumerate(events)]
    out, err = run_webhook(tmp_path, recs)
    return out


def audits(out):
    return [r["annotations"]["audit"] for r in out]


def test_records_for_other_routes_pass_through_byte_for_byte(tmp_path):
    other = dumps(request(id="5", path="/v1/subscription", annotations={"route": {"name": "subscription"}}))
    response = '{"id":"6","status":204,"headers":[],"body":""}'
    unrouted = '{ "id" : "7", "method":"POST", "path":"/v1/webhooks/stripe", "body":"{}" }'
    proc = subprocess.run([binary("apply-webhook")], input=(other + "\n" + response + "\n" + unrouted + "\n").encode(),
                          capture_output=True, env={**os.environ, **webhook_env(tmp_path)})
    assert proc.returncode == 0
    assert proc.stdout.decode().splitlines() == [other, response, unrouted]


def test_a_malformed_line_becomes_a_400_and_the_filter_carries_on(tmp_path):
    out, _ = run_webhook(tmp_path, ['{"id":"1", nope', signed_record(checkout("evt_1", T0), id="2")])
    assert out[0]["status"] == 400
    assert body(out[0])["error"] == "bad_record"
    assert out[1]["status"] == 200


def test_a_valid_delivery_is_applied_and_answered_received(tmp_path):
    out = deliver_all(tmp_path, [checkout("evt_1", T0)])
    rec = out[0]
    assert rec["status"] == 200
    assert body(rec) == {"received": True}
    assert rec["id"] == "1" and rec["keep_alive"] is True and rec["remote"] == "127.0.0.1"
    assert ["content-type", "application/json"] in rec["headers"]
    assert rec["annotations"]["route"]["name"] == "stripe-webhook"
    assert rec["annotations"]["audit"] == {"kind": "stripe", "event_id": "evt_1",
                                           "event_type": "checkout.session.completed", "uid": "user-1",
                                           "outcome": "applied", "before": None, "after": "active"}
    s = state(tmp_path / "kv", "user-1")
    assert (s["status"], s["plan"], s["customer"], s["subscription"]) == ("active", "pro", "cus_1", "sub_1")
    assert read_store(tmp_path / "kv")["customer/cus_1"] == {"uid": "user-1"}


def test_each_transition_end_to_end(tmp_path):
    p1, p2 = T0 + MONTH, T0 + 2 * MONTH
    steps = [
        (checkout("evt_1", T0), "active"),
        (subscription("evt_2", T0 + 1, "trialing", p1, type="customer.subscription.created", trial_end=p1), "trial"),
        (subscription("evt_3", p1, "active", p2), "active"),
        (invoice("evt_4", "invoice.payment_failed", p2 + 1, p2 + MONTH), "past_due"),
        (invoice("evt_5", "invoice.paid", p2 + 5, p2 + MONTH), "active"),
        (subscription("evt_6", p2 + 9, "paused", p2 + MONTH, type="customer.subscription.paused"), "paused"),
        (subscription("evt_7", p2 + 20, "active", p2 + MONTH, type="customer.subscription.resumed"), "active"),
        (subscription("evt_8", p2 + 30, "unpaid", p2 + MONTH), "unpaid"),
        (subscription("evt_9", p2 + 40, "canceled", p2 + MONTH, type="customer.subscription.deleted"), "cancelled"),
    ]
    out = deliver_all(tmp_path, [e for e, _ in steps])
    assert [a["after"] for a in audits(out)] == [s for _, s in steps]
    assert [a["before"] for a in audits(out)] == [None] + [s for _, s in steps[:-1]]
    assert all(a["outcome"] == "applied" for a in audits(out))
    s = state(tmp_path / "kv", "user-1")
    assert s["current_period_end"] == p2 + MONTH
    assert s["trial_end"] is None


def test_full_lifecycle_of_a_user(tmp_path):
    out = deliver_all(tmp_path, lifecycle())
    assert [a["after"] for a in audits(out)] == ["active"] * 5 + ["past_due"] * 2 + ["active"] * 2 + ["cancelled"]
    s = state(tmp_path / "kv", "user-1")
    assert s["status"] == "cancelled" and s["last_event_id"] == "evt_10"
    assert s["current_period_end"] == T0 + 3 * MONTH


def test_both_api_shapes_of_period_end_and_invoice_subscription(tmp_path):
    out = deliver_all(tmp_path, [
        subscription("evt_1", T0, "active", T0 + MONTH, uid="old", customer="cus_o", subscription="sub_o", new_shape=False),
        subscription("evt_2", T0, "active", T0 + MONTH, uid="new", customer="cus_n", subscription="sub_n", new_shape=True),
        invoice("evt_3", "invoice.paid", T0 + 9, T0 + 2 * MONTH, customer="cus_o", subscription="sub_o", new_shape=False),
        invoice("evt_4", "invoice.paid", T0 + 9, T0 + 2 * MONTH, customer="cus_n", subscription="sub_n", new_shape=True),
    ])
    assert all(r["status"] == 200 for r in out)
    assert state(tmp_path / "kv", "old")["current_period_end"] == T0 + 2 * MONTH
    assert state(tmp_path / "kv", "new")["current_period_end"] == T0 + 2 * MONTH


def test_a_repeated_delivery_is_acknowledged_and_not_applied_twice(tmp_path):
    e = invoice("evt_2", "invoice.payment_failed", T0 + MONTH, T0 + 2 * MONTH)
    out = deliver_all(tmp_path, [checkout("evt_1", T0), e, e])
    assert [a["outcome"] for a in audits(out)] == ["applied", "applied", "duplicate"]
    assert out[2]["status"] == 200
    assert (out[2]["annotations"]["audit"]["before"], out[2]["annotations"]["audit"]["after"]) == ("past_due", "past_due")


def test_deleted_before_updated_stays_cancelled(tmp_path):
    out = deliver_all(tmp_path, [
        checkout("evt_1", T0),
        subscription("evt_3", T0 + 100, "canceled", T0 + MONTH, type="customer.subscription.deleted"),
        subscription("evt_2", T0 + 50, "active", T0 + MONTH),
    ])
    assert [a["outcome"] for a in audits(out)] == ["applied", "applied", "stale"]
    assert out[2]["status"] == 200
    assert state(tmp_path / "kv", "user-1")["status"] == "cancelled"


def test_updated_before_checkout_is_pending_then_applied(tmp_path):
    out = deliver_all(tmp_path, [subscription("evt_2", T0 + 1, "past_due", T0 + MONTH)])
    assert out[0]["status"] == 200
    assert out[0]["annotations"]["audit"]["outcome"] == "pending"
    assert out[0]["annotations"]["audit"]["uid"] is None
    assert "pending/cus_1/evt_2" in read_store(tmp_path / "kv")
    out = deliver_all(tmp_path, [checkout("evt_1", T0)])
    audit = out[0]["annotations"]["audit"]
    assert audit["outcome"] == "applied"
    assert audit["drained"] == [{"event_id": "evt_2", "event_type": "customer.subscription.updated",
                                 "outcome": "applied", "after": "past_due"}]
    store = read_store(tmp_path / "kv")
    assert not any(k.startswith("pending/") for k in store)
    assert store["sub/user-1"]["status"] == "past_due"


def test_unknown_event_types_are_acknowledged_and_recorded(tmp_path):
    out = deliver_all(tmp_path, [event("evt_x", "payment_intent.succeeded", T0, {"id": "pi_1", "object": "payment_intent"})])
    assert out[0]["status"] == 200
    assert out[0]["annotations"]["audit"]["outcome"] == "ignored"
    assert out[0]["annotations"]["audit"]["reason"] == "event type payment_intent.succeeded is not handled"
    assert read_store(tmp_path / "kv")["event/evt_x"]["outcome"] == "ignored"


def test_a_signed_body_that_is_not_json_is_400_and_applies_nothing(tmp_path):
    out, _ = run_webhook(tmp_path, [webhook_record('{"id": "evt_1", ', sign('{"id": "evt_1", '))])
    assert out[0]["status"] == 400
    assert body(out[0])["error"] == "invalid_payload"
    assert read_store(tmp_path / "kv") == {}


def test_a_one_mebibyte_payload_is_applied(tmp_path):
    e = subscription("evt_big", T0, "active", T0 + MONTH, uid="big-user")
    e["data"]["object"]["metadata"]["notes"] = "é" * (1 << 19)   # 1 MiB of raw UTF-8: signed as bytes
    payload = json.dumps(e, separators=(",", ":"), ensure_ascii=False)
    assert len(payload.encode()) > 1 << 20
    out, _ = run_webhook(tmp_path, [webhook_record(payload, sign(payload))])
    assert out[0]["status"] == 200
    assert state(tmp_path / "kv", "big-user")["status"] == "active"


def test_an_unavailable_store_answers_503_so_stripe_retries(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    rec = signed_record(checkout("evt_1", T0))
    out, err = run_webhook(tmp_path, [rec, rec], kv=blocker / "kv")
    assert [r["status"] for r in out] == [503, 503]
    assert body(out[0])["error"] == "store_unavailable"
    assert out[0]["annotations"]["audit"]["outcome"] == "error"
    assert out[0]["annotations"]["audit"]["event_id"] == "evt_1"
    assert SECRET not in err


def test_the_route_name_is_configurable(tmp_path):
    rec = signed_record(checkout("evt_1", T0))
    rec["annotations"]["route"]["name"] = "stripe-live"
    out, _ = run_webhook(tmp_path, [rec], "--route", "stripe-live")
    assert out[0]["status"] == 200
    out, _ = run_webhook(tmp_path, [rec], env={"EDGEPIPE_WEBHOOK_ROUTE": "other"})
    assert "status" not in out[0]


def test_the_store_defaults_to_edgepipe_data(tmp_path):
    env = webhook_env(tmp_path)
    del env["EDGEPIPE_KV"]
    env["EDGEPIPE_DATA"] = str(tmp_path / "data")
    out, _ = run_filter("apply-webhook", [signed_record(checkout("evt_1", T0))], env={**env, "EDGEPIPE_KV": ""})
    assert out[0]["status"] == 200
    assert state(tmp_path / "data" / "kv", "user-1")["status"] == "active"


def test_help_describes_modes_options_and_exit_codes():
    proc = subprocess.run([binary("apply-webhook"), "--help"], capture_output=True)
    text = proc.stdout.decode()
    assert proc.returncode == 0
    for word in ["--batch", "--no-verify-signatures", "--kv", "--plans", "--secrets-file", "EDGEPIPE_STRIPE_SECRETS",
                 "--tolerance", "Exit status"]:
        assert word in text


def test_kv_serve_reads_the_state_apply_webhook_wrote(tmp_path):
    """The write path and the read path agree on sub/<uid> (SubscriptionState)."""
    now = int(time.time())
    trial_end = now + 14 * 86400
    run_webhook(tmp_path, [
        signed_record(checkout("evt_1", now - 60), id="1"),
        signed_record(subscription("evt_2", now - 59, "trialing", trial_end, type="customer.subscription.created",
                                   trial_end=trial_end), id="2"),
    ])
    get = request(id="9", path="/v1/subscription", headers=[["host", "x"], ["x-authenticated-uid", "user-1"]],
                  annotations={"route": {"name": "subscription", "params": {}}})
    out, _ = run_filter("kv", [get], "serve", env={"EDGEPIPE_KV": str(tmp_path / "kv")})
    assert out[0]["status"] == 200
    view = body(out[0])
    assert (view["uid"], view["status"], view["plan"]) == ("user-1", "trial", "pro")
    assert view["trial_ends_at"] == trial_end and view["expires_at"] == trial_end
