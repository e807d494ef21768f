"""apply-webhook --batch (replays and migrations), crash safety under kill -9, and
concurrent deliveries through many processes sharing one KV directory."""
import json
import os
import random
import signal
import subprocess
import time

from conftest import binary
from test_webhook_support import (MONTH, SECRET, T0, checkout, dumps, event, invoice, lifecycle, ndjson,
                                  batch_on_terminal, read_entries, read_store, run_batch, sign, signed_record, state, subscription, summary,
                                  webhook_env)


def delivery(obj, secret=SECRET, timestamp=T0 + 5, pretty=False):
    body = dumps(obj)
    d = {"headers": {"Stripe-Signature": sign(body, secret, timestamp)}, "body": body}
    return json.dumps(d, indent=2) if pretty else dumps(d)


def test_batch_applies_events_from_stdin_as_a_trusted_export(tmp_path):
    proc = run_batch(tmp_path, "--no-verify-signatures", input=ndjson(lifecycle()))
    assert proc.returncode == 0, proc.stderr.decode()
    assert summary(proc) == {"events": 10, "applied": 10, "duplicate": 0, "stale": 0, "pending": 0,
                             "ignored": 0, "invalid": 0, "rejected": 0, "drained": 0}
    assert state(tmp_path / "kv", "user-1")["status"] == "cancelled"
    assert "10 events: 10 applied" in proc.stderr.decode()


def test_batch_refuses_unsigned_events_unless_told_they_are_trusted(tmp_path):
    proc = run_batch(tmp_path, input=ndjson(lifecycle()[:3]))
    assert proc.returncode == 1
    assert summary(proc)["invalid"] == 3
    assert "--no-verify-signatures" in proc.stderr.decode()
    assert read_store(tmp_path / "kv") == {}


def test_batch_reads_a_directory_of_signed_deliveries(tmp_path):
    deliveries = tmp_path / "deliveries"
    deliveries.mkdir()
    events = lifecycle()
    for i, e in enumerate(events[:-1]):
        (deliveries / f"{i:04d}-{e['id']}.json").write_text(delivery(e, pretty=(i == 2)))
    # A tampered delivery, a raw event (unsigned) and a hidden file.
    tampered = json.loads(delivery(events[-1]))
    tampered["body"] = tampered["body"].replace("canceled", "active")
    (deliveries / "0100-tampered.json").write_text(dumps(tampered))
    (deliveries / "0101-raw.json").write_text(dumps(events[-1]))
    (deliveries / ".partial").write_text("{")
    proc = run_batch(tmp_path, str(deliveries))
    assert proc.returncode == 1, "invalid items make the exit status 1"
    s = summary(proc)
    assert (s["events"], s["applied"], s["invalid"]) == (11, 9, 2)
    err = proc.stderr.decode()
    assert "0100-tampered.json: invalid: No signatures found matching the expected signature for payload" in err
    assert "0101-raw.json: an unsigned event" in err
    assert state(tmp_path / "kv", "user-1")["status"] == "active"


def test_batch_checks_signatures_with_rotated_secrets_and_header_pairs(tmp_path):
    e = checkout("evt_1", T0)
    body = dumps(e)
    pairs = dumps({"headers": [["content-type", "application/json"], ["stripe-signature", sign(body, "whsec_old")]],
                   "body": body})
    proc = run_batch(tmp_path, input=pairs + "\n", env={"EDGEPIPE_STRIPE_SECRETS": f"whsec_new,{'whsec_old'}"})
    assert proc.returncode == 0, proc.stderr.decode()
    assert summary(proc)["applied"] == 1


def test_batch_applies_no_tolerance_unless_asked(tmp_path):
    line = delivery(checkout("evt_1", T0), timestamp=T0) + "\n"   # signed years ago
    assert summary(run_batch(tmp_path, input=line))["applied"] == 1
    proc = run_batch(tmp_path, "--tolerance", "300", input=line, kv=tmp_path / "other")
    assert proc.returncode == 1
    assert "Timestamp outside the tolerance zone" in proc.stderr.decode()


def test_replaying_a_batch_changes_nothing(tmp_path):
    data = ndjson(lifecycle())
    run_batch(tmp_path, "--no-verify-signatures", input=data)
    before = read_store(tmp_path / "kv")
    proc = run_batch(tmp_path, "--no-verify-signatures", input=data)
    assert proc.returncode == 0
    assert summary(proc)["duplicate"] == 10
    assert read_store(tmp_path / "kv") == before


def test_batch_out_of_order_parks_and_drains(tmp_path):
    events = lifecycle()
    order = [events[6], events[3], events[0]] + events[1:3] + events[4:6] + events[7:]
    proc = run_batch(tmp_path, "--no-verify-signatures", input=ndjson(order))
    s = summary(proc)
    # The failed invoice and the creation are older than the past_due update already
    # drained: stale, acknowledged, and the state is what the in-order replay gives.
    assert (s["pending"], s["drained"], s["applied"], s["stale"]) == (2, 2, 6, 2)
    store = read_store(tmp_path / "kv")
    assert not any(k.startswith("pending/") for k in store)
    assert store["sub/user-1"]["status"] == "cancelled"


def test_batch_input_files_and_bad_lines(tmp_path):
    good = tmp_path / "good.ndjson"
    good.write_text(ndjson(lifecycle()[:2]) + "\n   \n")
    bad = tmp_path / "bad.ndjson"
    bad.write_text("not json\n" + dumps({"id": "evt_x"}) + "\n")
    proc = run_batch(tmp_path, "--no-verify-signatures", str(good), str(bad), str(tmp_path / "missing"))
    assert proc.returncode == 1
    s = summary(proc)
    assert (s["events"], s["applied"], s["invalid"]) == (5, 2, 3)
    err = proc.stderr.decode()
    assert "bad.ndjson:1: not JSON" in err and 'bad.ndjson:2: a JSON object with no "object" member' in err


def test_progress_appears_only_when_stderr_is_a_terminal(tmp_path):
    data = ndjson([e for u in range(6) for e in lifecycle(uid=f"u{u}", customer=f"c{u}", sub=f"s{u}", prefix=f"e{u}")])
    quiet = run_batch(tmp_path, "--no-verify-signatures", input=data)
    assert "\r" not in quiet.stderr.decode()
    assert quiet.stderr.decode().count("\n") == 1

    status, seen, stdout = batch_on_terminal(tmp_path, "--no-verify-signatures", input=data, kv=tmp_path / "kv2")
    assert status == 0
    assert b"\r" in seen and b" events, " in seen and b"applied" in seen
    assert json.loads(stdout)["applied"] == 60


def test_a_failing_store_stops_the_batch_with_status_3(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_batch(tmp_path, "--no-verify-signatures", input=ndjson(lifecycle()), kv=blocker / "kv")
    assert proc.returncode == 3
    assert "re-run the batch to resume" in proc.stderr.decode()
    assert summary(proc)["applied"] == 0


def crash_workload():
    """25 users' lifecycles interleaved, a third of them seen before their checkout,
    and a tail of re-deliveries: about 290 events."""
    rng = random.Random(7)
    per_user = []
    for u in range(25):
        evs = lifecycle(uid=f"user-{u}", customer=f"cus_{u}", sub=f"sub_{u}", prefix=f"evt_{u:02d}")
        if u % 3 == 0:
            evs = evs[1:3] + evs[:1] + evs[3:]
        per_user.append(evs)
    events = []
    while any(per_user):
        lane = rng.choice([p for p in per_user if p])
        events.append(lane.pop(0))
    events += rng.sample(events, 40)
    return events


def test_kill_9_during_a_long_batch_then_rerun_equals_a_clean_run(tmp_path):
    events = crash_workload()
    data = tmp_path / "events.ndjson"
    data.write_text(ndjson(events))
    ids = {e["id"] for e in events}

    started = time.monotonic()
    clean = run_batch(tmp_path, "--no-verify-signatures", str(data), kv=tmp_path / "clean")
    duration = time.monotonic() - started
    assert clean.returncode == 0
    expected = read_store(tmp_path / "clean")

    env = dict(os.environ)
    env.update(webhook_env(tmp_path, kv=tmp_path / "crashed"))
    crashed_before_end = False
    for fraction in (0.4, 0.2, 0.1):   # earlier if a fast disk finished the batch first
        proc = subprocess.Popen([binary("apply-webhook"), "--batch", "--no-verify-signatures", str(data)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(duration * fraction)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            crashed_before_end = True
            break
        proc.wait()
    assert crashed_before_end
    partial = read_store(tmp_path / "crashed")
    done = {k for k in partial if k.startswith("event/")}
    assert 0 < len(done) < len(ids), "the kill landed mid-batch"

    rerun = run_batch(tmp_path, "--no-verify-signatures", str(data), kv=tmp_path / "crashed")
    assert rerun.returncode == 0, rerun.stderr.decode()
    final = read_store(tmp_path / "crashed")
    assert final == expected
    # Nothing lost: every event processed, nothing left pending; nothing doubled: the
    # re-run applied only what the killed run had not (duplicates are acknowledged).
    assert {k[len("event/"):] for k in final if k.startswith("event/")} == ids
    assert not any(k.startswith("pending/") for k in final)
    assert all(v["outcome"] == "applied" for k, v in final.items() if k.startswith("event/"))
    assert summary(rerun)["duplicate"] >= len(done)


def test_twenty_concurrent_deliveries_end_in_the_newest_state(tmp_path):
    env = dict(os.environ)
    env.update(webhook_env(tmp_path))
    first = subprocess.run([binary("apply-webhook")], input=(dumps(signed_record(checkout("evt_0", T0))) + "\n").encode(),
                           capture_output=True, env=env)
    assert json.loads(first.stdout)["status"] == 200
    statuses = ["active", "past_due", "unpaid", "active", "trialing"]
    events = [subscription(f"evt_{i:02d}", T0 + 10 + i, statuses[i % 5], T0 + MONTH + i * 86400,
                           price="price_basic_m" if i % 2 else "price_pro_m", lookup_key=None)
              for i in range(20)]
    random.Random(3).shuffle(events)
    procs = [subprocess.Popen([binary("apply-webhook")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env) for _ in events]
    for p, e in zip(procs, events):   # all started: now deliver at once
        p.stdin.write((dumps(signed_record(e)) + "\n").encode())
    for p in procs:
        p.stdin.close()
    results = [json.loads(p.stdout.read()) for p in procs]
    for p in procs:
        p.wait(timeout=60)
        assert p.returncode == 0
    assert all(r["status"] == 200 for r in results)
    assert {r["annotations"]["audit"]["outcome"] for r in results} <= {"applied", "stale"}
    newest = max(events, key=lambda e: e["created"])
    s = state(tmp_path / "kv", "user-1")
    assert s["last_event_id"] == newest["id"] == "evt_19"
    assert s["status"] == {"trialing": "trial"}.get(statuses[19 % 5], statuses[19 % 5])
    assert s["current_period_end"] == T0 + MONTH + 19 * 86400
    assert s["plan"] == "basic"
    # Every delivery was recorded exactly once.
    store = read_store(tmp_path / "kv")
    assert {k for k in store if k.startswith("event/")} == {f"event/evt_{i:02d}" for i in range(20)} | {"event/evt_0"}


def test_a_delivery_retried_concurrently_is_applied_once(tmp_path):
    env = dict(os.environ)
    env.update(webhook_env(tmp_path))
    line = (dumps(signed_record(checkout("evt_1", T0))) + "\n").encode()
    procs = [subprocess.Popen([binary("apply-webhook")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
             for _ in range(10)]
    for p in procs:
        p.stdin.write(line)
    for p in procs:
        p.stdin.close()
    outcomes = [json.loads(p.stdout.read())["annotations"]["audit"]["outcome"] for p in procs]
    for p in procs:
        p.wait(timeout=60)
    assert sorted(outcomes) == ["applied"] + ["duplicate"] * 9
    entry = read_entries(tmp_path / "kv")["sub/user-1"]
    assert entry["value"]["status"] == "active"
    assert entry["version"] == 1, "the state was written once"


# ----------------------------------------------------------------------------- grouped durable writes

def test_grouped_batches_end_exactly_as_per_event_durable_writes(tmp_path):
    # Parked events drained later, redeliveries (some inside one group), users with many
    # events per group: the store, versions included, and the counts are the same.
    data = tmp_path / "events.ndjson"
    data.write_text(ndjson(crash_workload()))
    runs = {}
    for group in ("1", "7", "64"):
        kv = tmp_path / f"kv-{group}"
        proc = run_batch(tmp_path, "--no-verify-signatures", "--group", group, str(data), kv=kv)
        assert proc.returncode == 0, proc.stderr.decode()
        entries = {k: (doc["value"], doc["version"], doc.get("metadata")) for k, doc in read_entries(kv).items()}
        runs[group] = (entries, summary(proc))
    assert runs["1"][1]["duplicate"] >= 40 and runs["1"][1]["drained"] > 0
    assert runs["7"] == runs["1"]
    assert runs["64"] == runs["1"]


def test_a_crash_in_the_middle_of_a_groups_commit_leaves_old_or_new_and_a_rerun_converges(tmp_path):
    events = crash_workload()
    data = tmp_path / "events.ndjson"
    data.write_text(ndjson(events))
    clean = run_batch(tmp_path, "--no-verify-signatures", "--group", "64", str(data), kv=tmp_path / "clean")
    assert clean.returncode == 0
    # Killed by SIGKILL right after the first rename of the first group's commit: one
    # state is new, nothing else is, and no marker exists without its state.
    crashed = run_batch(tmp_path, "--no-verify-signatures", "--group", "64", str(data), kv=tmp_path / "kv",
                        env={"EDGEPIPE_KV_CRASH_AT": "after-rename"})
    assert crashed.returncode == -signal.SIGKILL
    assert crashed.stdout == b"", "nothing was reported before the group was durable"
    partial = read_store(tmp_path / "kv")
    assert len(partial) == 1 and not any(k.startswith("event/") for k in partial), partial.keys()

    rerun = run_batch(tmp_path, "--no-verify-signatures", "--group", "64", str(data), kv=tmp_path / "kv")
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert {k: v for k, v in read_store(tmp_path / "kv").items() if not k.startswith("event/")} == \
           {k: v for k, v in read_store(tmp_path / "clean").items() if not k.startswith("event/")}
    assert {k for k in read_store(tmp_path / "kv")} == {k for k in read_store(tmp_path / "clean")}


def test_a_group_read_from_a_pipe_is_committed_when_the_input_pauses(tmp_path):
    # Three events of a group of 64, then silence: they must be durable (and their locks
    # released) without waiting for the rest of the group or the end of input.
    env = dict(os.environ)
    env.update(webhook_env(tmp_path))
    proc = subprocess.Popen([binary("apply-webhook"), "--batch", "--no-verify-signatures", "--group", "64"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        proc.stdin.write(ndjson(lifecycle()[:3]).encode())
        proc.stdin.flush()
        deadline = time.time() + 10
        while len([k for k in read_store(tmp_path / "kv") if k.startswith("event/")]) < 3:
            assert time.time() < deadline, "the paused group was never committed"
            time.sleep(0.05)
        assert proc.poll() is None
    finally:
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["applied"] == 3


def test_group_must_be_a_positive_count(tmp_path):
    proc = run_batch(tmp_path, "--no-verify-signatures", "--group", "0", input="")
    assert proc.returncode == 2
    assert b"--group" in proc.stderr
