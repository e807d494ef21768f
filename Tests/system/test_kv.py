"""kv: the store's command line as scripts use it (exit codes, JSON output), its
durability and atomicity under real concurrent processes and kill -9, filesystem
failures, and `kv serve` over pipes."""
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import ROOT, binary, request, run_filter

OK, NOT_FOUND, USAGE, EXISTS, MISMATCH, UNAVAILABLE = 0, 1, 2, 3, 4, 5


def kv(store, *args, input=None, env=None, timeout=30):
    """`kv --store STORE ARGS...` (a directory or a redis:// URL), with no store settings
    inherited from the environment the tests run in."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPIPE_REDIS_") and k != "EDGEPIPE_KV"}
    if env:
        full_env.update(env)
    if isinstance(input, str):
        input = input.encode()
    return subprocess.run([binary("kv"), "--store", str(store), *args], input=input,
                          capture_output=True, timeout=timeout, env=full_env)


def out(proc):
    return proc.stdout.decode()


def err(proc):
    return proc.stderr.decode()


@pytest.fixture
def store(tmp_path):
    return tmp_path / "kv"


# --- command line and exit codes -------------------------------------------------------

def test_put_then_get_prints_the_value_and_entry(store):
    p = kv(store, "put", "sub/Alice", '{"plan": "pro"}', "--metadata", '{"by":"test"}')
    assert p.returncode == OK, err(p)
    assert json.loads(out(p)) == {"key": "sub/Alice", "version": 1, "expires_at": None}
    assert out(kv(store, "get", "sub/Alice")) == '{"plan":"pro"}\n'
    entry = json.loads(out(kv(store, "get", "sub/Alice", "--entry")))
    assert entry == {"key": "sub/Alice", "version": 1, "expires_at": None, "metadata": {"by": "test"},
                     "value": {"plan": "pro"}}


def test_value_from_stdin(store):
    assert kv(store, "put", "k", "-", input='[1, "two", {"three": 3}]\n').returncode == OK
    assert json.loads(out(kv(store, "get", "k"))) == [1, "two", {"three": 3}]


def test_get_and_delete_of_a_missing_key_exit_1(store):
    p = kv(store, "get", "nope")
    assert (p.returncode, out(p)) == (NOT_FOUND, "")
    assert "not found" in err(p)
    assert kv(store, "delete", "nope").returncode == NOT_FOUND
    kv(store, "put", "yes", "1")
    assert kv(store, "delete", "yes").returncode == OK
    assert kv(store, "get", "yes").returncode == NOT_FOUND


def test_value_that_is_not_json_is_refused_with_one_line_reason(store):
    p = kv(store, "put", "k", "hello")
    assert p.returncode == USAGE
    assert err(p).count("\n") == 1 and "not JSON" in err(p)
    assert kv(store, "get", "k").returncode == NOT_FOUND
    assert kv(store, "put", "k", "-", input="{'single': 'quotes'}").returncode == USAGE


def test_usage_errors_exit_2(store):
    for args in (["get"], ["frobnicate"], ["cas", "k", "1"], ["list", "--limit", "0"], ["get", "k", "--ttl", "5"],
                 ["put", "", "1"], ["put", "x" * 513, "1"], ["list", "--cursor", "not-hex"]):
        p = kv(store, *args)
        assert p.returncode == USAGE, (args, err(p))
        assert err(p).startswith("kv: ") and err(p).count("\n") == 1


def test_create_of_an_existing_key_exits_3(store):
    assert kv(store, "create", "once", '"first"').returncode == OK
    p = kv(store, "create", "once", '"second"')
    assert p.returncode == EXISTS and "exists" in err(p)
    assert out(kv(store, "get", "once")) == '"first"\n'


def test_cas_on_another_version_exits_4(store):
    assert kv(store, "cas", "c", "1", "--version", "0").returncode == OK
    p = kv(store, "cas", "c", "2", "--version", "7")
    assert p.returncode == MISMATCH and "current 1" in err(p)
    p = kv(store, "cas", "c", "2", "--version", "1")
    assert p.returncode == OK and json.loads(out(p))["version"] == 2
    assert kv(store, "cas", "c", "3", "--version", "0").returncode == MISMATCH


def test_ttl_expires_the_key(store):
    assert kv(store, "put", "t", "1", "--ttl", "60").returncode == OK
    assert kv(store, "get", "t").returncode == OK
    later = {"EDGEPIPE_CLOCK_OFFSET": "61"}
    assert kv(store, "get", "t", env=later).returncode == NOT_FOUND
    assert kv(store, "create", "t", "2", env=later).returncode == OK


def test_list_pages_with_cursor(store):
    for k in ["sub/b", "sub/a", "sub/c", "other"]:
        kv(store, "put", k, "0")
    first = json.loads(out(kv(store, "list", "--prefix", "sub/", "--limit", "2")))
    assert first["keys"] == ["sub/a", "sub/b"] and first["cursor"]
    second = json.loads(out(kv(store, "list", "--prefix", "sub/", "--limit", "2", "--cursor", first["cursor"])))
    assert second == {"keys": ["sub/c"], "cursor": None}


def test_store_from_environment(tmp_path):
    env = {"EDGEPIPE_DATA": str(tmp_path / "data")}
    p = subprocess.run([binary("kv"), "put", "k", "1"], capture_output=True, env={**os.environ, **env})
    assert p.returncode == OK, p.stderr
    assert (tmp_path / "data" / "kv" / "flat" / "k").exists()
    env = {"EDGEPIPE_KV": str(tmp_path / "elsewhere")}
    p = subprocess.run([binary("kv"), "put", "k", "1"], capture_output=True, env={**os.environ, **env})
    assert (tmp_path / "elsewhere" / "flat" / "k").exists()


def test_store_that_cannot_be_opened_exits_5(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    for location in (str(not_a_directory), "redis://127.0.0.1:1/0"):
        p = kv(location, "get", "k")
        assert p.returncode == UNAVAILABLE, (location, err(p))
        assert err(p).startswith("kv: store unavailable: ") and err(p).count("\n") == 1


def test_exit_codes_are_documented_in_help_and_docs():
    help_text = subprocess.run([binary("kv"), "--help"], capture_output=True).stdout.decode()
    page = (ROOT / "docs" / "kv.md").read_text()
    for code, words in [(0, "ok"), (1, "not found"), (2, "usage"), (3, "exists"), (4, "version mismatch"),
                        (5, "unavailable")]:
        assert re.search(rf"\b{code}\b[^\n]*{words}", help_text), (code, words)
        assert re.search(rf"\b{code}\b[^\n]*{words}", page), (code, words)


# --- concurrency and durability ----------------------------------------------------------

def increment(store, key, times, counts):
    done = 0
    while done < times:
        p = kv(store, "get", key, "--entry")
        if p.returncode == NOT_FOUND:
            version, value = 0, 0
        else:
            assert p.returncode == OK, err(p)
            entry = json.loads(out(p))
            version, value = entry["version"], entry["value"]
        c = kv(store, "cas", key, str(value + 1), "--version", str(version))
        if c.returncode == OK:
            done += 1
        else:
            assert c.returncode == MISMATCH, err(c)
            counts["conflicts"] += 1


def test_twenty_processes_incrementing_by_cas_lose_no_update(store):
    workers, each = 20, int(os.environ.get("KV_TEST_INCREMENTS", "5"))
    counts = {"conflicts": 0}
    threads = [threading.Thread(target=increment, args=(store, "counter", each, counts)) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entry = json.loads(out(kv(store, "get", "counter", "--entry")))
    assert entry["value"] == workers * each
    assert entry["version"] == workers * each
    assert counts["conflicts"] > 0, "the processes never raced; the test proves nothing"


def test_fifty_concurrent_creates_have_exactly_one_winner(store):
    kv(store, "put", "warm", "0")   # the store directory exists before the race
    procs = [subprocess.Popen([binary("kv"), "--store", str(store), "create", "reservation", json.dumps({"by": i})],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(50)]
    codes = [p.wait(timeout=60) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert codes.count(OK) == 1
    assert codes.count(EXISTS) == 49
    winner = codes.index(OK)
    assert json.loads(out(kv(store, "get", "reservation"))) == {"by": winner}


def big_value(n, size):
    return json.dumps({"n": n, "pad": "x" * size, "check": n})


def test_readers_never_see_a_partial_or_empty_value_while_a_writer_rewrites(store):
    size = 2 << 20
    kv(store, "put", "big", "-", input=big_value(0, size))
    stop = threading.Event()
    writes = []

    def writer():
        n = 1
        while not stop.is_set():
            assert kv(store, "put", "big", "-", input=big_value(n, size)).returncode == OK
            writes.append(n)
            n += 1

    t = threading.Thread(target=writer)
    t.start()
    reads = 0
    deadline = time.time() + float(os.environ.get("KV_TEST_SECONDS", "2"))
    try:
        while time.time() < deadline or len(writes) < 3:
            p = kv(store, "get", "big")
            assert p.returncode == OK, err(p)
            value = json.loads(p.stdout)
            assert value["n"] == value["check"] and len(value["pad"]) == size
            reads += 1
    finally:
        stop.set()
        t.join()
    assert reads > 5 and len(writes) >= 3


@pytest.mark.parametrize("point,survivor", [("temp-written", "old"), ("before-rename", "old"),
                                             ("after-rename", "new")])
def test_crash_at_each_step_of_a_write_leaves_the_old_or_the_new_value(store, point, survivor):
    size = 1 << 20
    old, new = big_value(1, size), big_value(2, size)
    assert kv(store, "put", "victim", "-", input=old).returncode == OK
    p = kv(store, "put", "victim", "-", input=new, env={"EDGEPIPE_KV_CRASH_AT": point})
    assert p.returncode == -signal.SIGKILL
    leftovers = [f.name for f in (store / "flat").iterdir() if f.name.startswith(".tmp.")]
    assert len(leftovers) == (0 if point == "after-rename" else 1)
    g = kv(store, "get", "victim")
    assert g.returncode == OK, err(g)
    assert g.stdout.decode().rstrip("\n") == json.dumps(json.loads(old if survivor == "old" else new),
                                                         separators=(",", ":"))
    # The killed writer's lock died with it, and its temporary file is not a key.
    assert kv(store, "put", "victim", "3", timeout=5).returncode == OK
    assert json.loads(out(kv(store, "list")))["keys"] == ["victim"]


def test_kill_9_at_random_moments_of_concurrent_writes_leaves_valid_json(store):
    size = 4 << 20
    payloads = {n: big_value(n, size).encode() for n in range(1, 4)}
    start = time.monotonic()
    kv(store, "put", "victim", "-", input=big_value(0, size))
    one_write = time.monotonic() - start
    rng = random.Random(7)
    seen, killed = set(), 0
    for _ in range(int(os.environ.get("KV_TEST_KILL_ROUNDS", "12"))):
        procs = [subprocess.Popen([binary("kv"), "--store", str(store), "put", "victim", "-"], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in payloads]
        for p, data in zip(procs, payloads.values()):
            try:
                p.stdin.write(data)
                p.stdin.close()
            except BrokenPipeError:
                pass
        # Three writers queue on the key's lock: kill somewhere across all their work.
        time.sleep(rng.uniform(0, 3 * one_write))
        for p in procs:
            p.send_signal(signal.SIGKILL)
        killed += sum(p.wait(timeout=30) == -signal.SIGKILL for p in procs)
        g = kv(store, "get", "victim")
        assert g.returncode == OK, err(g)
        value = json.loads(g.stdout)
        assert value["n"] == value["check"] and value["n"] in range(0, 4) and len(value["pad"]) == size
        seen.add(value["n"])
    assert killed > 0 and len(seen) > 1, "kills must interrupt some writers and let others finish"
    assert kv(store, "put", "victim", "1", timeout=5).returncode == OK
    assert json.loads(out(kv(store, "list")))["keys"] == ["victim"]


@contextmanager
def mounted_tmpfs(path, size):
    """A tmpfs of `size` at `path` (root only); yields False when mounting is not possible."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_read_only_store_reads_but_writes_exit_5_with_a_reason(tmp_path):
    mount = tmp_path / "ro"
    with mounted_tmpfs(mount, "4m") as mounted:
        store = mount / "kv"
        assert kv(store, "put", "sub/u", '{"x":1}').returncode == OK
        if mounted:
            assert subprocess.run(["mount", "-o", "remount,ro", str(mount)]).returncode == 0
            reason = "Read-only file system"
        elif os.geteuid() != 0:
            for d in [store, store / "ns", store / "ns" / "sub", store / "locks"]:
                d.chmod(0o555)
            reason = "Permission denied"
        else:
            pytest.skip("root without mount(8): no way to make a directory read-only")
        assert out(kv(store, "get", "sub/u")) == '{"x":1}\n'
        for args in (["put", "sub/u", "2"], ["create", "new", "1"], ["delete", "sub/u"]):
            p = kv(store, *args)
            assert p.returncode == UNAVAILABLE, (args, err(p))
            assert err(p).startswith("kv: store unavailable: ") and reason in err(p), err(p)
            assert err(p).count("\n") == 1
        assert out(kv(store, "get", "sub/u")) == '{"x":1}\n'


def test_full_disk_exits_5_and_keeps_the_old_value(tmp_path):
    mount = tmp_path / "small"
    with mounted_tmpfs(mount, "256k") as mounted:
        if not mounted:
            pytest.skip("needs root and mount(8) for a small filesystem")
        store = mount / "kv"
        assert kv(store, "put", "keep", '"old"').returncode == OK
        p = kv(store, "put", "keep", "-", input=json.dumps("y" * (1 << 20)))
        assert p.returncode == UNAVAILABLE
        assert "No space left on device" in err(p)
        assert out(kv(store, "get", "keep")) == '"old"\n'
        assert [f.name for f in (store / "flat").iterdir()] == ["keep"], "the temporary file was removed"


# --- kv serve ------------------------------------------------------------------------------

NOW = int(time.time())


def sub_request(uid="u1", id="1", method="GET", route="subscription"):
    headers = [["host", "localhost"], ["authorization", "Bearer x"]]
    if uid is not None:
        headers.append(["x-authenticated-uid", uid])
    rec = request(id=id, method=method, path="/v1/subscription", headers=headers)
    if route:
        rec["annotations"] = {"route": {"name": route, "params": {}}, "auth": {"uid": uid}}
    return rec


def save(store, uid, status, plan="pro", period_end=None, trial_end=None, **extra):
    state = {"uid": uid, "status": status, "plan": plan, "current_period_end": period_end, "trial_end": trial_end,
             "cancel_at_period_end": False, "customer": "cus_" + uid, "subscription": "sub_" + uid,
             "updated": NOW - 100, "last_event_id": "evt_1", **extra}
    p = kv(store, "put", f"sub/{uid}", json.dumps(state))
    assert p.returncode == OK, err(p)


def serve(store, lines, *args, env=None):
    return run_filter("kv", lines, "--store", str(store), "serve", *args, env=env)


def body(rec):
    return json.loads(rec["body"])


def test_serve_answers_none_for_a_user_without_state(store):
    [r], _ = serve(store, [sub_request("nobody")])
    assert r["status"] == 200
    assert body(r)["status"] == "none" and body(r)["uid"] == "nobody"
    assert ["cache-control", "no-store"] in r["headers"]
    assert ["content-type", "application/json"] in r["headers"]


@pytest.mark.parametrize("stored,period_end,trial_end,shown", [
    ("active", NOW + 86400, None, "active"),
    ("trial", NOW + 86400, NOW + 3600, "trial"),
    ("past_due", NOW + 86400, None, "past_due"),
    ("cancelled", NOW - 10, None, "cancelled"),
    ("unpaid", NOW + 86400, None, "unpaid"),   # Stripe: revoke access once retries are exhausted
    ("incomplete", None, None, "none"),
    ("incomplete_expired", None, None, "expired"),
    ("paused", None, NOW - 10, "expired"),
    ("active", NOW - 1, None, "expired"),
    ("trial", NOW + 86400, NOW - 1, "expired"),
])
def test_serve_reports_each_status(store, stored, period_end, trial_end, shown):
    save(store, "u1", stored, period_end=period_end, trial_end=trial_end)
    [r], _ = serve(store, [sub_request("u1")])
    assert r["status"] == 200
    b = body(r)
    assert b["status"] == shown
    assert b["stored_status"] == stored
    assert b["plan"] == "pro"
    assert b["trial_ends_at"] == trial_end


def test_serve_reads_an_active_subscription_as_expired_once_its_period_ends(store):
    save(store, "u1", "active", period_end=NOW + 3600)
    [before], _ = serve(store, [sub_request("u1")])
    [after], _ = serve(store, [sub_request("u1")], env={"EDGEPIPE_CLOCK_OFFSET": "3601"})
    assert body(before)["status"] == "active" and body(before)["expires_at"] == NOW + 3600
    assert body(after)["status"] == "expired"
    [graced], _ = serve(store, [sub_request("u1")], "--grace", "600", env={"EDGEPIPE_CLOCK_OFFSET": "3601"})
    assert body(graced)["status"] == "active"


def test_serve_without_authenticated_uid_is_401(store):
    [r], _ = serve(store, [sub_request(uid=None)])
    assert r["status"] == 401
    assert body(r)["error"] == "unauthorized"


def test_serve_with_unavailable_store_is_503(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    [r], log = run_filter("kv", [sub_request("u1")], "--store", str(not_a_directory), "serve")
    assert r["status"] == 503 and body(r)["error"] == "unavailable"
    assert ["retry-after", "1"] in r["headers"]
    assert "is not a directory" in log


def test_serve_one_line_in_one_line_out_in_order_with_pass_through(store):
    save(store, "a", "active", period_end=NOW + 1000)
    other = request(id="2", path="/v1/other")
    other["annotations"] = {"route": {"name": "other", "params": {}}}
    response = {"id": "3", "method": "GET", "version": "HTTP/1.1", "keep_alive": True, "status": 404,
                "headers": [["content-type", "application/json"]], "body": "{}"}
    other_line = json.dumps(other, separators=(",", ":"))
    response_line = json.dumps(response)          # spaces: must come back byte for byte
    lines = [sub_request("a", id="1"), other_line, response_line, "not json", sub_request("b", id="5"),
             sub_request(uid=None, id="6"), sub_request("a", id="7", method="POST")]
    proc = subprocess.run([binary("kv"), "--store", str(store), "serve"],
                          input="\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines).encode() + b"\n",
                          capture_output=True, timeout=30)
    assert proc.returncode == 0
    out_lines = proc.stdout.decode().split("\n")
    assert out_lines[-1] == "" and len(out_lines) == len(lines) + 1
    assert out_lines[1] == other_line and out_lines[2] == response_line
    records = [json.loads(l) for l in out_lines[:-1]]
    assert [r.get("id") for r in records] == ["1", "2", "3", None, "5", "6", "7"]
    assert [r.get("status") for r in records] == [200, None, 404, 400, 200, 401, 405]
    assert body(records[0])["status"] == "active" and body(records[4])["status"] == "none"
    assert records[0]["annotations"]["route"]["name"] == "subscription"


def test_serve_route_name_is_configurable(store):
    [mine], _ = serve(store, [sub_request("u", route="subs")], "--route", "subs")
    [theirs], _ = serve(store, [sub_request("u", route="subscription")], "--route", "subs")
    assert mine["status"] == 200
    assert "status" not in theirs
