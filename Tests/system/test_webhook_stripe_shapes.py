"""Issue 19, subscriptions: several subscriptions per user whatever the arrival order, ids at
Stripe's and Firebase's limits, and the shapes real Stripe payloads take (API versions from
2016 to 2025, thin v2 events, list exports), on the directory store and on a real Redis.
Payloads are full Stripe objects; signatures are made by stripe-python."""
import json
import subprocess
import time

import pytest

from conftest import binary, run_filter
from test_webhook_support import (MONTH, SECRET, T0, dumps, plans_file, read_entries, read_store, run_batch,
                                  run_webhook, sign, signed_record, summary, webhook_env)


# --- realistic Stripe objects ------------------------------------------------------------

def envelope(id, type, created, obj, api_version="2025-03-31.basil", previous=None):
    data = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {"id": id, "object": "event", "api_version": api_version, "created": created, "data": data,
            "livemode": False, "pending_webhooks": 1,
            "request": {"id": "req_" + id[-10:], "idempotency_key": "idem-" + id}, "type": type}


def price(id="price_1QzXyZAbCdEf", lookup_key=None, metadata=None, product="prod_RtYuIoPaSdFg", amount=1500):
    return {"id": id, "object": "price", "active": True, "billing_scheme": "per_unit", "created": T0 - 86400,
            "currency": "usd", "custom_unit_amount": None, "livemode": False, "lookup_key": lookup_key,
            "metadata": metadata or {}, "nickname": None, "product": product,
            "recurring": {"interval": "month", "interval_count": 1, "meter": None, "trial_period_days": None,
                          "usage_type": "licensed"},
            "tax_behavior": "unspecified", "tiers_mode": None, "transform_quantity": None, "type": "recurring",
            "unit_amount": amount, "unit_amount_decimal": str(amount)}


def sub_object(id, customer, status, start, end, the_price=None, metadata=None, trial_end=None, created=None):
    """A subscription as API version 2025-03-31.basil sends it (period on the items)."""
    the_price = the_price or price(lookup_key="pro_monthly")
    return {
        "id": id, "object": "subscription", "application": None, "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": start, "billing_cycle_anchor_config": None, "cancel_at": None,
        "cancel_at_period_end": False, "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically", "created": created or start, "currency": "usd",
        "customer": customer, "days_until_due": None, "default_payment_method": "pm_1QzXyZCardVisa",
        "default_source": None, "default_tax_rates": [], "description": None, "discounts": [],
        "ended_at": None, "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {"object": "list", "data": [{
            "id": "si_" + id[4:], "object": "subscription_item", "created": created or start,
            "current_period_end": end, "current_period_start": start, "discounts": [], "metadata": {},
            "plan": {"id": the_price["id"], "object": "plan", "active": True, "amount": the_price["unit_amount"],
                     "currency": "usd", "interval": "month", "interval_count": 1, "metadata": the_price["metadata"],
                     "product": the_price["product"]},
            "price": the_price, "quantity": 1, "subscription": id, "tax_rates": []}],
            "has_more": False, "total_count": 1, "url": f"/v1/subscription_items?subscription={id}"},
        "latest_invoice": "in_" + id[4:], "livemode": False, "metadata": metadata or {},
        "next_pending_invoice_item_invoice": None, "on_behalf_of": None, "pause_collection": None,
        "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                             "save_default_payment_method": "off"},
        "pending_invoice_item_interval": None, "pending_setup_intent": None, "pending_update": None,
        "schedule": None, "start_date": created or start, "status": status, "test_clock": None,
        "transfer_data": None, "trial_end": trial_end, "trial_start": start if trial_end else None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}}}


def legacy_invoice(id, customer, subscription, start, end, reason="subscription_cycle", amount=1500):
    """An invoice as API versions before 2025-03-31 send it (`subscription` on the invoice)."""
    return {"id": id, "object": "invoice", "account_country": "US", "amount_due": amount, "amount_paid": amount,
            "amount_remaining": 0, "attempt_count": 1, "attempted": True, "billing_reason": reason,
            "charge": "ch_" + id[3:], "collection_method": "charge_automatically", "created": start,
            "currency": "usd", "customer": customer, "paid": True, "period_end": start, "period_start": start - MONTH,
            "status": "paid", "subscription": subscription,
            "lines": {"object": "list", "has_more": False, "total_count": 1, "url": f"/v1/invoices/{id}/lines",
                      "data": [{"id": "il_" + id[3:], "object": "line_item", "amount": amount, "currency": "usd",
                                "period": {"start": start, "end": end}, "proration": False, "quantity": 1,
                                "subscription": subscription, "type": "subscription"}]}}


def checkout_session(id, customer, subscription, uid, plan=None):
    return {"id": id, "object": "checkout.session", "after_expiration": None, "allow_promotion_codes": None,
            "amount_subtotal": 1500, "amount_total": 1500, "client_reference_id": uid, "created": T0,
            "currency": "usd", "customer": customer, "customer_creation": "always", "livemode": False,
            "metadata": {"plan": plan} if plan else {}, "mode": "subscription", "payment_status": "paid",
            "status": "complete", "subscription": subscription, "success_url": "https://example.com/ok",
            "url": None}


def issue_switch(uid="user-1", customer="cus_Switch01"):
    """The issue's batch: A.created at 100, B.created at 102, A.deleted at 3702."""
    a = dict(customer=customer, start=100, end=100 + MONTH, metadata={"uid": uid})
    b_price = price("price_1BasicUnknown", lookup_key="basic_monthly")
    return [
        envelope("evt_1AcreatedAAAAAAAAAAAAAAA", "customer.subscription.created", 100,
                 sub_object("sub_A", a["customer"], "active", a["start"], a["end"], metadata=a["metadata"])),
        envelope("evt_1BcreatedBBBBBBBBBBBBBBB", "customer.subscription.created", 102,
                 sub_object("sub_B", customer, "active", 102, 102 + MONTH, the_price=b_price, metadata={"uid": uid})),
        envelope("evt_1AdeletedAAAAAAAAAAAAAAA", "customer.subscription.deleted", 3702,
                 dict(sub_object("sub_A", a["customer"], "canceled", a["start"], a["end"], metadata=a["metadata"]),
                      ended_at=3702, canceled_at=3702)),
    ]


def kv(store, *args, env=None):
    return subprocess.run([binary("kv"), "--store", str(store), *args], capture_output=True, timeout=30, env=env)


def read_subscription(store, uid, env=None):
    """GET /v1/subscription as `kv serve` answers it for `uid`."""
    rec = {"id": "1", "method": "GET", "path": "/v1/subscription", "query": "", "version": "HTTP/1.1",
           "headers": [["host", "localhost"], ["x-authenticated-uid", uid]], "body": "", "keep_alive": True,
           "annotations": {"route": {"name": "subscription", "params": {}}}}
    [out], _ = run_filter("kv", [rec], "--store", str(store), "serve", env=env)
    assert out["status"] == 200, out
    return json.loads(out["body"])


def list_export(events):
    return {"object": "list", "data": events, "has_more": False, "url": "/v1/events"}


# --- 1. several subscriptions, any order ---------------------------------------------------

def test_the_issues_switch_fed_newest_first_as_stripes_list_export_ends_active_on_b(tmp_path):
    newest_first = sorted(issue_switch(), key=lambda e: -e["created"])
    export = tmp_path / "events.json"
    export.write_text(json.dumps(list_export(newest_first), indent=2))
    proc = run_batch(tmp_path, "--no-verify-signatures", str(export), kv=tmp_path / "newest")
    assert proc.returncode == 0, proc.stderr.decode()
    assert summary(proc)["events"] == 3 and summary(proc)["invalid"] == 0
    view = read_subscription(tmp_path / "newest", "user-1")   # the issue's times are of 1970: expired by now
    assert (view["stored_status"], view["plan"], view["updated_at"]) == ("active", "basic", 3702), view

    oldest = tmp_path / "oldest.jsonl"
    oldest.write_text("".join(dumps(e) + "\n" for e in issue_switch()))
    assert run_batch(tmp_path, "--no-verify-signatures", str(oldest), kv=tmp_path / "oldest").returncode == 0
    a, b = read_store(tmp_path / "newest")["sub/user-1"], read_store(tmp_path / "oldest")["sub/user-1"]
    assert dumps(a) == dumps(b), "the stored document does not depend on the order"
    assert a["subscription"] == "sub_B" and a["last_event_id"] == "evt_1AdeletedAAAAAAAAAAAAAAA"
    assert sorted(a["stripe"]["subscriptions"]) == ["sub_A", "sub_B"]
    assert a["stripe"]["subscriptions"]["sub_A"]["status"] == "cancelled"


def test_the_same_events_in_every_order_over_http_store_the_same_bytes(tmp_path):
    from itertools import permutations
    events = issue_switch() + [envelope("evt_1BpaidCCCCCCCCCCCCCCCCCC", "invoice.payment_succeeded", 102,
                                        legacy_invoice("in_1Bfirst", "cus_Switch01", "sub_B", 102, 102 + MONTH,
                                                       reason="subscription_create"), api_version="2020-08-27")]
    stored = set()
    for i, order in enumerate(permutations(events)):
        out, _ = run_webhook(tmp_path, [signed_record(e, id=str(n)) for n, e in enumerate(order)], kv=tmp_path / f"kv{i}")
        assert [r["status"] for r in out] == [200] * 4
        stored.add(dumps(read_store(tmp_path / f"kv{i}")["sub/user-1"]))
    assert len(stored) == 1, "24 orders, one stored document"


# --- 2. ids at the limits --------------------------------------------------------------------

LONG_UID = "🦄" * 200          # client_reference_id: 200 characters, 800 bytes
METADATA_UID = "u" * 500       # a metadata value: 500 characters


def test_ids_at_stripes_limits_are_applied_over_http_and_read_back(tmp_path):
    events = [
        envelope("evt_1LongCheckout", "checkout.session.completed", T0,
                 checkout_session("cs_test_long", "cus_Long01", "sub_Long01", LONG_UID, plan="pro")),
        envelope("evt_1MetaUid", "customer.subscription.created", T0,
                 sub_object("sub_Meta01", "cus_Meta01", "active", T0, T0 + MONTH, metadata={"uid": METADATA_UID})),
    ]
    records = [signed_record(e, id=str(i)) for i, e in enumerate(events)]
    out, _ = run_webhook(tmp_path, records + records)   # and Stripe's retry of each
    assert [r["status"] for r in out] == [200] * 4
    assert [r["annotations"]["audit"]["outcome"] for r in out] == ["applied", "applied", "duplicate", "duplicate"]
    for uid in (LONG_UID, METADATA_UID):
        view = read_subscription(tmp_path / "kv", uid)
        assert view["stored_status"] == "active" and view["uid"] == uid
    keys = read_store(tmp_path / "kv")
    assert all(len(k.encode()) <= 512 for k in keys)
    assert any(k.startswith("sub/#sha256:") for k in keys)


def test_a_batch_of_ids_at_the_limits_finishes_and_a_rerun_is_all_duplicates(tmp_path):
    data = "".join(dumps(envelope(f"evt_1Batch{i}", "checkout.session.completed", T0 + i,
                                  checkout_session(f"cs_{i}", f"cus_B{i}", f"sub_B{i}", LONG_UID[: 199 - i] + str(i))))
                   + "\n" for i in range(3))
    first = run_batch(tmp_path, "--no-verify-signatures", input=data)
    assert first.returncode == 0, first.stderr.decode()
    assert summary(first)["applied"] == 3
    again = run_batch(tmp_path, "--no-verify-signatures", input=data)
    assert again.returncode == 0 and summary(again)["duplicate"] == 3 and summary(again)["rejected"] == 0


# --- 3. Stripe's real shapes -----------------------------------------------------------------

def test_a_trial_without_checkout_takes_its_plan_from_the_prices_metadata(tmp_path):
    unlisted = price("price_1NotInPlansFile", lookup_key=None, metadata={"plan": "pro"})
    e = envelope("evt_1Trial", "customer.subscription.created", T0,
                 sub_object("sub_Trial", "cus_Trial", "trialing", T0, T0 + 14 * 86400, the_price=unlisted,
                            metadata={"uid": "trial-user"}, trial_end=T0 + 14 * 86400))
    out, err = run_webhook(tmp_path, [signed_record(e)])
    assert out[0]["annotations"]["audit"]["outcome"] == "applied"
    s = read_store(tmp_path / "kv")["sub/trial-user"]
    assert (s["status"], s["plan"]) == ("trial", "pro")
    assert "not in the plans file" not in err


def test_invoice_payment_succeeded_of_an_old_api_version_restores_access_once_per_invoice(tmp_path):
    cus, sub = "cus_Old2016", "sub_Old2016"
    start = T0 + MONTH
    created = envelope("evt_1OldCreated", "customer.subscription.created", T0,
                       sub_object(sub, cus, "active", T0, start, metadata={"uid": "old-user"}), api_version="2016-07-06")
    failed = envelope("evt_1OldFailed", "invoice.payment_failed", start + 5,
                      dict(legacy_invoice("in_1Renewal", cus, sub, start, start + MONTH), paid=False, status="open",
                           amount_paid=0), api_version="2016-07-06")
    succeeded = envelope("evt_1OldSucceeded", "invoice.payment_succeeded", start + 3600,
                         legacy_invoice("in_1Renewal", cus, sub, start, start + MONTH), api_version="2016-07-06")
    paid = envelope("evt_1OldPaid", "invoice.paid", start + 3600,
                    legacy_invoice("in_1Renewal", cus, sub, start, start + MONTH), api_version="2016-07-06")
    out, _ = run_webhook(tmp_path, [signed_record(e, id=str(i)) for i, e in enumerate([created, failed, succeeded, paid])])
    audits = [r["annotations"]["audit"] for r in out]
    assert [a["after"] for a in audits] == ["active", "past_due", "active", "active"]
    assert [a["outcome"] for a in audits] == ["applied", "applied", "applied", "duplicate"]
    assert "in_1Renewal" in audits[3]["reason"]
    assert read_store(tmp_path / "kv")["sub/old-user"]["current_period_end"] == start + MONTH


def test_unpaid_revokes_access_with_its_own_read_status(tmp_path):
    e = envelope("evt_1Unpaid", "customer.subscription.updated", T0 + 40 * 86400,
                 sub_object("sub_Unpaid", "cus_Unpaid", "unpaid", int(time.time()) - 86400, int(time.time()) + MONTH,
                            metadata={"uid": "unpaid-user"}), previous={"status": "past_due"})
    run_webhook(tmp_path, [signed_record(e)])
    view = read_subscription(tmp_path / "kv", "unpaid-user")
    assert (view["status"], view["stored_status"]) == ("unpaid", "unpaid")


def test_signed_events_of_unhandled_types_and_shapes_are_acknowledged_and_audited_ignored(tmp_path):
    thin = {"id": "evt_test_65R9Ijk8ld0Swe2rSyF16RlVb2AWSQ5DBJN2zmGz5uG8sX", "object": "v2.core.event",
            "type": "v1.billing.meter.error_report_triggered", "livemode": False,
            "created": "2024-09-17T06:20:52.246Z", "context": None,
            "related_object": {"id": "mtr_test_61R9IiFCIAvtqG", "type": "billing.meter",
                               "url": "/v1/billing/meters/mtr_test_61R9IiFCIAvtqG"}}
    v2_account = {"id": "evt_test_65SAccountUpdated", "object": "v2.core.event", "type": "v2.core.account.updated",
                  "livemode": False, "created": "2025-06-01T10:00:00.000Z",
                  "related_object": {"id": "acct_1Q", "type": "v2.core.account", "url": "/v2/core/accounts/acct_1Q"}}
    tax_id = envelope("evt_1TaxId", "customer.tax_id.created", T0, {"id": "txi_1", "object": "tax_id", "type": "eu_vat"})
    no_object = {"id": "evt_1NoData", "object": "event", "type": "customer.subscription.updated", "created": T0, "data": {}}
    odd_sub = envelope("evt_1OddStatus", "customer.subscription.updated", T0,
                       dict(sub_object("sub_Odd", "cus_Odd", "active", T0, T0 + MONTH), status="some_future_status"))
    events = [thin, v2_account, tax_id, no_object, odd_sub]
    out, _ = run_webhook(tmp_path, [signed_record(e, id=str(i)) for i, e in enumerate(events)])
    assert [r["status"] for r in out] == [200] * 5
    audits = [r["annotations"]["audit"] for r in out]
    assert [a["outcome"] for a in audits] == ["ignored"] * 5
    assert [a["event_id"] for a in audits] == [e["id"] for e in events]
    assert "v2.core.event" in audits[0]["reason"]
    # A bad signature is still refused, whatever the body.
    bad = signed_record(thin)
    bad["headers"][-1][1] = sign(dumps(thin), secret="whsec_someone_else")
    out, _ = run_webhook(tmp_path, [bad])
    assert out[0]["status"] == 400


def test_parked_events_expire_and_can_be_listed_and_purged(tmp_path):
    strangers = [envelope(f"evt_1Stranger{i}", "customer.subscription.created", T0 + i,
                          sub_object(f"sub_S{i}", f"cus_Stranger{i}", "active", T0, T0 + MONTH)) for i in range(3)]
    out, _ = run_webhook(tmp_path, [signed_record(e, id=str(i)) for i, e in enumerate(strangers)],
                         "--pending-ttl", "600")
    assert [r["annotations"]["audit"]["outcome"] for r in out] == ["pending"] * 3
    env = webhook_env(tmp_path)

    def pending(*args, offset=0):
        full = dict(env, EDGEPIPE_CLOCK_OFFSET=str(offset))
        p = subprocess.run([binary("apply-webhook"), "--pending", *args], capture_output=True, timeout=30,
                           env=full)
        assert p.returncode == 0, p.stderr.decode()
        return [json.loads(l) for l in p.stdout.decode().splitlines()]

    listed = pending("list")
    assert listed[-1] == {"pending": 3}
    assert [p["event_id"] for p in listed[:-1]] == [e["id"] for e in strangers]
    assert all(p["customer"].startswith("cus_Stranger") and p["expires_at"] is not None for p in listed[:-1])
    assert pending("list", offset=601)[-1] == {"pending": 0}, "expired after --pending-ttl"
    assert pending("purge", "--older-than", "3600") == [{"purged": 0}]
    assert pending("purge") == [{"purged": 3}]
    assert pending("list") == [{"pending": 0}]


# --- batch export shapes ---------------------------------------------------------------------

def test_batch_reads_a_pretty_event_a_list_export_and_a_directory_of_event_files(tmp_path):
    events = issue_switch()
    one = tmp_path / "one.json"
    one.write_text(json.dumps(events[0], indent=2))
    proc = run_batch(tmp_path, "--no-verify-signatures", str(one), kv=tmp_path / "a")
    assert proc.returncode == 0 and summary(proc)["applied"] == 1, proc.stderr.decode()

    # The list export on stdin, on one line as `stripe events list` pipes it.
    proc = run_batch(tmp_path, "--no-verify-signatures", input=dumps(list_export(events)) + "\n", kv=tmp_path / "b")
    assert proc.returncode == 0 and summary(proc)["events"] == 3, proc.stderr.decode()

    d = tmp_path / "events"
    d.mkdir()
    for e in events:
        (d / f"{e['id']}.json").write_text(json.dumps(e, indent=2))
    proc = run_batch(tmp_path, "--no-verify-signatures", str(d), kv=tmp_path / "c")
    assert proc.returncode == 0 and summary(proc)["events"] == 3
    assert read_store(tmp_path / "b")["sub/user-1"] == read_store(tmp_path / "c")["sub/user-1"]


@pytest.mark.parametrize("content,named", [
    ('[{"id": "evt_1"}]', "a JSON array of 1 items"),
    ('{"id": "cus_1", "object": "customer", "email": "a@example.com"}', 'a JSON object of type "customer"'),
    ('"evt_1"', "a JSON string"),
    ('{\n  "data": [],\n  "has_more": false\n}', 'a JSON object with no "object" member'),
])
def test_batch_names_any_other_shape_in_one_line(tmp_path, content, named):
    f = tmp_path / "input.json"
    f.write_text(content)
    proc = run_batch(tmp_path, "--no-verify-signatures", str(f))
    assert proc.returncode == 1
    errors = [l for l in proc.stderr.decode().splitlines() if "input.json" in l]
    assert len(errors) == 1 and named in errors[0], proc.stderr.decode()
    assert summary(proc)["invalid"] == 1


# --- the same on Redis -----------------------------------------------------------------------

def test_on_redis_the_switch_and_long_ids_store_what_the_directory_stores(tmp_path):
    from test_redis import RedisServer
    server = RedisServer(tmp_path)
    try:
        events = issue_switch(uid=LONG_UID)
        data = dumps(list_export(sorted(events, key=lambda e: -e["created"]))) + "\n"
        for store in (server.url, str(tmp_path / "dir")):
            proc = run_batch(tmp_path, "--no-verify-signatures", input=data, kv=store)
            assert proc.returncode == 0, proc.stderr.decode()
        key = json.loads(kv(tmp_path / "dir", "list", "--prefix", "sub/").stdout)["keys"][0]
        assert key.startswith("sub/#sha256:")
        on_redis, on_disk = kv(server.url, "get", key), kv(tmp_path / "dir", "get", key)
        assert on_redis.returncode == 0 and on_redis.stdout == on_disk.stdout
        assert read_subscription(server.url, LONG_UID)["stored_status"] == "active"
    finally:
        server.kill()


# --- over the real service (pipelines/serve on loopback) --------------------------------------

def test_over_http_long_ids_and_thin_events_get_200_once_and_the_user_reads_back(tmp_path):
    from conftest import Service
    from test_faults import deliver, outcomes, read_subscription
    svc = Service(tmp_path)
    try:
        now = int(time.time())
        long_checkout = envelope("evt_1HttpLong", "checkout.session.completed", now,
                                 checkout_session("cs_http", "cus_Http", "sub_Http", LONG_UID, plan="pro"))
        meta = envelope("evt_1HttpMeta", "customer.subscription.created", now,
                        sub_object("sub_HttpMeta", "cus_HttpMeta", "active", now, now + MONTH,
                                   metadata={"uid": METADATA_UID}))
        thin = {"id": "evt_test_65HttpThin", "object": "v2.core.event", "type": "v1.billing.meter.no_meter_found",
                "livemode": False, "created": "2025-06-01T10:00:00.000Z", "related_object": None}
        for event in (long_checkout, meta, thin, long_checkout, meta):   # the last two: Stripe's retries
            assert deliver(svc, event) == (200, {"received": True})
        assert outcomes(svc, "evt_1HttpLong") == ["applied", "duplicate"]
        assert outcomes(svc, "evt_1HttpMeta") == ["applied", "duplicate"]
        assert outcomes(svc, thin["id"]) == ["ignored"]
        # A token carries a uid of at most 128 UTF-16 units (Firebase's limit, verify-jwt's):
        # 64 emoji, read back through a real token. (Longer uids, which only Stripe's fields
        # can hold, are read back by `kv serve` in the tests above.)
        firebase_uid = "🦄" * 64
        checkout = envelope("evt_1HttpFirebase", "checkout.session.completed", now,
                            checkout_session("cs_fb", "cus_Fb", "sub_Fb", firebase_uid, plan="pro"))
        assert deliver(svc, checkout) == (200, {"received": True})
        status, view = read_subscription(svc, firebase_uid)
        assert status == 200 and (view["uid"], view["status"], view["plan"]) == (firebase_uid, "active", "pro"), view
    finally:
        svc.stop()
