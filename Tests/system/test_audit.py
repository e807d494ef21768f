"""audit: the hash-chained audit trail filter, `audit verify` and `audit query`, run as real
processes over real pipes and real files (including a full disk, a read-only mount and a
deleted directory)."""
import fcntl
import hashlib
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Service, binary, request, run_filter

ZERO = "0" * 64


def audited(i, uid="u1", outcome="applied", event_type="customer.subscription.updated", **extra):
    """A response record as apply-webhook leaves it: answered, carrying annotations.audit."""
    rec = request(id=str(i), method="POST", path="/v1/webhooks/stripe", remote="127.0.0.1",
                  body=json.dumps({"id": f"evt_{i}"}))
    rec.update({"status": 200, "headers": [["content-type", "application/json"]], "body": '{"received":true}'})
    rec["annotations"] = {"route": {"name": "stripe_webhook", "params": {}},
                          "audit": {"kind": "stripe", "event_id": f"evt_{i}", "event_type": event_type,
                                    "uid": uid, "outcome": outcome, "before": {"status": "trialing"},
                                    "after": {"status": "active"}, **extra}}
    return rec


def log_lines(path):
    return [json.loads(l) for l in Path(path).read_text().splitlines()]


def verify(*files, args=()):
    proc = subprocess.run([binary("audit"), "verify", *args, *map(str, files)], capture_output=True, timeout=30)
    return proc.returncode, proc.stdout.decode() + proc.stderr.decode()


def write_log(tmp_path, count, **kw):
    log = tmp_path / "audit.log"
    run_filter("audit", [audited(i, **kw) for i in range(1, count + 1)], "--file", str(log))
    return log


class Writer:
    """One long-running `audit` process fed a line at a time, so the file system can be
    changed between records (rotation, a full disk, a deleted directory)."""

    def __init__(self, *args, env=None, timeout=10):
        full = dict(os.environ)
        full.update(env or {})
        self.proc = subprocess.Popen([binary("audit"), *map(str, args)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full)
        self.timeout = timeout
        self.stderr = b""

    def send(self, record):
        line = record if isinstance(record, bytes) else json.dumps(record, separators=(",", ":")).encode()
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()
        deadline = time.time() + self.timeout
        out = b""
        while not out.endswith(b"\n"):
            ready, _, _ = select.select([self.proc.stdout, self.proc.stderr], [], [], max(0, deadline - time.time()))
            assert ready, "audit did not answer: the service would be blocked"
            if self.proc.stderr in ready:
                self.stderr += os.read(self.proc.stderr.fileno(), 65536)
            if self.proc.stdout in ready:
                chunk = os.read(self.proc.stdout.fileno(), 1)
                assert chunk, "audit closed its output"
                out += chunk
        return json.loads(out)

    def close(self):
        rest_out, rest_err = self.proc.communicate(timeout=self.timeout)
        self.stderr += rest_err
        assert self.proc.returncode == 0
        assert rest_out == b""
        return self.stderr.decode()


def stderr_entries(text):
    """The entries audit printed on stderr because it could not log or spill them."""
    found = []
    for line in text.splitlines():
        if "entry: {" in line:
            found.append(json.loads(line.split("entry: ", 1)[1]))
        elif "spilled to" in line and ": {" in line:
            found.append(json.loads(line[line.index(": {") + 2:]))
    return found


# --- the filter ---------------------------------------------------------------------------

def test_each_annotation_becomes_one_chained_line_with_the_record_fields(tmp_path):
    log = write_log(tmp_path, 3)
    lines = log_lines(log)
    assert [l["seq"] for l in lines] == [1, 2, 3]
    first = lines[0]
    assert first["prev"] == ZERO
    assert first["request_id"] == "1" and first["remote"] == "127.0.0.1" and first["status"] == 200
    assert (first["kind"], first["event_id"], first["uid"], first["outcome"]) == ("stripe", "evt_1", "u1", "applied")
    assert (first["before"], first["after"]) == ({"status": "trialing"}, {"status": "active"})
    assert first["time"].endswith("Z") and abs(first["unix"] - time.time()) < 60
    raw = log.read_bytes().split(b"\n")
    assert lines[1]["prev"] == hashlib.sha256(raw[0]).hexdigest()
    assert lines[2]["prev"] == hashlib.sha256(raw[1]).hexdigest()


def test_annotation_is_removed_and_other_records_pass_byte_for_byte(tmp_path):
    plain_request = b'{"id":"9", "method":"GET","path":"/x","annotations":{"route":{"name":"a"}}}'
    plain_response = b'{"id":"10","status":404 ,"body":"{\\"error\\":\\"nope\\"}"}'
    with_only_audit = audited(11)
    del with_only_audit["annotations"]["route"]
    lines = [plain_request, json.dumps(audited(1)).encode(), plain_response,
             json.dumps(with_only_audit).encode(), b"not json", b'{"id":"12","annotations":{"audit":{"kind":"auth","outcome":"rejected","reason":"expired"}}}']
    proc = subprocess.run([binary("audit"), "--file", str(tmp_path / "audit.log")], input=b"\n".join(lines) + b"\n",
                          capture_output=True, timeout=30)
    assert proc.returncode == 0
    out = proc.stdout.split(b"\n")[:-1]
    assert len(out) == len(lines)
    assert out[0] == plain_request and out[2] == plain_response
    assert json.loads(out[1])["annotations"] == {"route": {"name": "stripe_webhook", "params": {}}}
    assert "annotations" not in json.loads(out[3])
    assert json.loads(out[4])["status"] == 400
    assert json.loads(out[5]) == {"id": "12"}
    assert [l.get("kind") for l in log_lines(tmp_path / "audit.log")] == ["stripe", "stripe", "auth"]


def test_default_file_is_under_the_data_directory(tmp_path):
    (tmp_path / "audit").mkdir()
    run_filter("audit", [audited(1)], env={"EDGEPIPE_DATA": str(tmp_path), "EDGEPIPE_AUDIT_FILE": ""})
    assert len(log_lines(tmp_path / "audit" / "audit.log")) == 1


def test_help_describes_the_tool():
    proc = subprocess.run([binary("audit"), "--help"], capture_output=True, timeout=10)
    assert proc.returncode == 0 and b"audit verify" in proc.stdout and b"--group-fsync" in proc.stdout


def test_grouped_fsync_still_writes_every_entry_in_one_chain(tmp_path):
    log = tmp_path / "audit.log"
    run_filter("audit", [audited(i) for i in range(1, 26)], "--file", str(log), "--group-fsync", "10")
    assert [l["seq"] for l in log_lines(log)] == list(range(1, 26))
    assert verify(log)[0] == 0


def test_an_idle_grouped_writer_survives_its_fsync_timer(tmp_path):
    """The time bound fires SIGALRM while the loop waits for input: it must fsync, not kill."""
    log = tmp_path / "audit.log"
    w = Writer("--file", log, "--group-fsync", "100", "--group-fsync-ms", "20")
    w.send(audited(1))
    time.sleep(0.15)
    w.send(audited(2))
    time.sleep(0.15)
    assert w.close() == ""
    assert [l["event_id"] for l in log_lines(log)] == ["evt_1", "evt_2"]


# --- verify --------------------------------------------------------------------------------

def test_chain_verifies_after_a_normal_run(tmp_path):
    log = write_log(tmp_path, 10)
    rc, out = verify(log, args=["--from-start"])
    assert rc == 0, out
    assert "10 entries (seq 1..10)" in out


def edit(log, fn):
    lines = log.read_bytes().split(b"\n")[:-1]
    lines = fn(lines)
    log.write_bytes(b"\n".join(lines) + b"\n")


def test_edited_line_is_detected_and_located(tmp_path):
    log = write_log(tmp_path, 10)
    def change(lines):
        lines[4] = lines[4].replace(b'"outcome":"applied"', b'"outcome":"stale"')
        return lines
    edit(log, change)
    rc, out = verify(log)
    assert rc == 1
    assert out.startswith(f"{log}:6: hash mismatch: {log}:5 was edited"), out


def test_deleted_line_is_detected_and_located(tmp_path):
    log = write_log(tmp_path, 10)
    edit(log, lambda lines: lines[:3] + lines[4:])
    rc, out = verify(log)
    assert rc == 1
    assert out.startswith(f"{log}:4: seq 5 where 4 was expected: 1 line missing"), out


def test_reordered_lines_are_detected_and_located(tmp_path):
    log = write_log(tmp_path, 10)
    edit(log, lambda lines: lines[:6] + [lines[7], lines[6]] + lines[8:])
    rc, out = verify(log)
    assert rc == 1
    assert out.startswith(f"{log}:7: seq 8 where 7 was expected"), out


def test_lines_cut_from_the_end_are_caught_by_the_head_file(tmp_path):
    log = write_log(tmp_path, 10)
    edit(log, lambda lines: lines[:8])
    rc, out = verify(log)
    assert rc == 1 and f"{log}:9:" in out and "2 lines missing at the end" in out, out
    assert verify(log, args=["--no-head"])[0] == 0


def test_a_missing_first_line_is_caught_from_the_start(tmp_path):
    log = write_log(tmp_path, 5)
    edit(log, lambda lines: lines[1:])
    rc, out = verify(log, args=["--from-start", "--no-head"])
    assert rc == 1 and out.startswith(f"{log}:1: the log does not start here"), out
    rc, out = verify(log, args=["--no-head"])
    assert rc == 0 and "in a file not given" in out


def test_a_saved_head_exposes_a_rewritten_chain(tmp_path):
    log = write_log(tmp_path, 5)
    saved = tmp_path / "anchor.head"
    shutil.copy(tmp_path / "audit.log.head", saved)
    run_filter("audit", [audited(i) for i in range(6, 9)], "--file", str(log))
    assert verify(log, args=["--head", str(saved)])[0] == 0

    # Whoever can write the file edits line 3 and recomputes every later prev.
    lines = log.read_bytes().split(b"\n")[:-1]
    lines[2] = lines[2].replace(b'"outcome":"applied"', b'"outcome":"ignored"')
    for i in range(3, len(lines)):
        old_prev = json.loads(lines[i])["prev"].encode()
        lines[i] = lines[i].replace(old_prev, hashlib.sha256(lines[i - 1]).hexdigest().encode())
    log.write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "audit.log.head").unlink()
    assert verify(log, args=["--from-start"])[0] == 0          # the chain alone cannot tell
    rc, out = verify(log, args=["--head", str(saved)])
    assert rc == 1 and out.startswith(f"{log}:5: hash mismatch with the head file"), out


# --- many writers --------------------------------------------------------------------------

def test_twenty_concurrent_writers_keep_one_linear_chain(tmp_path):
    log = tmp_path / "audit.log"
    per_writer = 25
    procs = []
    for w in range(20):
        data = b"".join(json.dumps(audited(f"{w}-{i}", uid=f"u{w}")).encode() + b"\n" for i in range(per_writer))
        # No lock timeout: on a slow shared disk a writer may wait its turn for seconds,
        # and this test is about the chain, not about spilling.
        p = subprocess.Popen([binary("audit"), "--file", str(log), "--lock-timeout-ms", "0"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append((p, data))
    # Feed them all at once: every writer is mid-stream while the others append.
    for p, data in procs:
        p.stdin.write(data)
        p.stdin.close()
    for p, _ in procs:
        out = p.stdout.read()
        err = p.stderr.read()
        assert p.wait(timeout=60) == 0, err
        assert len(out.splitlines()) == per_writer
        assert err == b""
    lines = log_lines(log)
    ids = [l["event_id"] for l in lines]
    assert sorted(ids) == sorted(f"evt_{w}-{i}" for w in range(20) for i in range(per_writer))
    assert [l["seq"] for l in lines] == list(range(1, 20 * per_writer + 1))
    writers = [l["uid"] for l in lines]
    switches = sum(1 for a, b in zip(writers, writers[1:]) if a != b)
    assert switches > 19, "the writers took turns instead of running at once"
    rc, out = verify(log, args=["--from-start"])
    assert rc == 0, out


# --- rotation ------------------------------------------------------------------------------

def test_rotation_mid_stream_keeps_a_verifiable_chain(tmp_path):
    log = tmp_path / "audit.log"
    w = Writer("--file", log)
    for i in range(1, 4):
        w.send(audited(i))
    log.rename(tmp_path / "audit.log.1")           # logrotate without `create`
    for i in range(4, 6):
        w.send(audited(i))
    (tmp_path / "audit.log").rename(tmp_path / "audit.log.2")
    (tmp_path / "audit.log").touch()                # logrotate with `create`
    for i in range(6, 8):
        w.send(audited(i))
    assert w.close() == ""
    assert len(log_lines(tmp_path / "audit.log.1")) == 3
    assert len(log_lines(tmp_path / "audit.log.2")) == 2
    assert len(log_lines(log)) == 2
    rc, out = verify(tmp_path / "audit.log.1", tmp_path / "audit.log.2", log, args=["--from-start"])
    assert rc == 0 and "7 entries (seq 1..7)" in out, out
    # The newest file alone: its first line links to a file not given.
    rc, out = verify(log)
    assert rc == 0 and "in a file not given" in out
    # Out of order, the files do not link.
    rc, out = verify(tmp_path / "audit.log.2", tmp_path / "audit.log.1", log)
    assert rc == 1 and out.startswith(f"{tmp_path / 'audit.log.1'}:1:"), out


# --- failures never block the service -------------------------------------------------------

def test_disk_full_spills_and_the_next_write_records_the_gap(tmp_path):
    """/dev/full as the log: every append fails with ENOSPC."""
    head, spill = tmp_path / "audit.log.head", tmp_path / "audit.log.spill"
    w = Writer("--file", "/dev/full", "--head", head, "--spill", spill)
    for i in range(1, 4):
        out = w.send(audited(i))
        assert out["status"] == 200 and "annotations" in out and "audit" not in out["annotations"]
    err = w.close()
    assert len([l for l in err.splitlines() if "No space left on device" in l]) == 3
    spilled = [json.loads(l) for l in spill.read_text().splitlines()]
    assert [s["event_id"] for s in spilled] == ["evt_1", "evt_2", "evt_3"]
    assert all(s["spill_log"] == "/dev/full" for s in spilled)
    assert [e["event_id"] for e in stderr_entries(err)] == ["evt_1", "evt_2", "evt_3"]
    # The disk has room again (here: the log is a real file sharing the head and spill).
    log = tmp_path / "audit.log"
    run_filter("audit", [audited(4)], "--file", str(log))
    gap, entry = log_lines(log)
    assert gap["kind"] == "gap" and gap["spilled"] == 3 and gap["spill"] == str(spill)
    assert entry["event_id"] == "evt_4"
    rc, out = verify(log, args=["--from-start"])
    assert rc == 0 and "3 entries spilled" in out and "hash checked" in out, out


def can_mount(tmp_path):
    if os.geteuid() != 0:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)], check=True)
    return ok


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (root and mount needed; skipped otherwise)."""
    if not can_mount(tmp_path):
        pytest.skip("mounting a tmpfs needs root with CAP_SYS_ADMIN; /dev/full covers disk full here")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_full_tmpfs_keeps_responses_flowing_and_loses_nothing(small_disk):
    log = small_disk / "audit.log"
    w = Writer("--file", log)
    for i in range(1, 4):
        w.send(audited(i))
    filler = small_disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)
    # The log's last page may still have room: write until appends fail, then some more.
    for i in range(4, 40):
        out = w.send(audited(i))
        assert out["status"] == 200 and "audit" not in out.get("annotations", {})
    filler.unlink()
    w.send(audited(40))
    err = w.close()
    lines = log_lines(log)
    logged = [l["event_id"] for l in lines if l.get("kind") == "stripe"]
    on_stderr = [e["event_id"] for e in stderr_entries(err)]
    assert on_stderr, "the disk never filled"
    assert sorted(logged + on_stderr) == sorted(f"evt_{i}" for i in range(1, 41))
    gaps = [l for l in lines if l.get("kind") == "gap"]
    assert len(gaps) == 1 and gaps[0]["stderr_only"] == len(on_stderr)
    assert lines[-1]["event_id"] == "evt_40"
    rc, out = verify(log, args=["--from-start"])
    assert rc == 0, out


@pytest.fixture
def read_only_view(tmp_path):
    """(writable dir, the same dir read-only). As root chmod does not stop writes, so a
    read-only bind mount is used; without mount rights, chmod 555 as a non-root user."""
    rw = tmp_path / "rw"
    rw.mkdir()
    if os.geteuid() != 0:
        os.chmod(rw, 0o555)
        yield rw, rw
        os.chmod(rw, 0o755)
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(rw), str(ro)], capture_output=True).returncode != 0:
        pytest.skip("no read-only directory can be made here: root without mount rights")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
        yield rw, ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_read_only_directory_spills_and_the_next_write_records_the_gap(tmp_path, read_only_view):
    rw, ro = read_only_view
    spill = tmp_path / "elsewhere.spill"
    if rw != ro:
        run_filter("audit", [audited(1)], "--file", str(rw / "audit.log"), "--spill", str(spill))
    w = Writer("--file", ro / "audit.log", "--spill", spill)
    for i in range(2, 5):
        assert w.send(audited(i))["status"] == 200
    err = w.close()
    assert "Read-only file system" in err or "Permission denied" in err
    assert [json.loads(l)["event_id"] for l in spill.read_text().splitlines()] == ["evt_2", "evt_3", "evt_4"]
    if rw == ro:
        os.chmod(rw, 0o755)
    run_filter("audit", [audited(5)], "--file", str(rw / "audit.log"), "--spill", str(spill))
    lines = log_lines(rw / "audit.log")
    gap = next(l for l in lines if l.get("kind") == "gap")
    assert gap["spilled"] == 3
    assert lines[-1]["event_id"] == "evt_5"
    rc, out = verify(rw / "audit.log", args=["--from-start"])
    assert rc == 0 and "3 entries spilled" in out, out


def test_deleted_directory_spills_and_the_next_write_records_the_gap(tmp_path):
    logdir = tmp_path / "audit"
    logdir.mkdir()
    spill = tmp_path / "audit.spill"
    w = Writer("--file", logdir / "audit.log", "--spill", spill)
    w.send(audited(1))
    shutil.rmtree(logdir)
    for i in range(2, 5):
        assert w.send(audited(i))["status"] == 200
    logdir.mkdir()
    w.send(audited(5))
    err = w.close()
    assert len([l for l in err.splitlines() if "No such file or directory" in l]) == 3
    assert [json.loads(l)["event_id"] for l in spill.read_text().splitlines()] == ["evt_2", "evt_3", "evt_4"]
    lines = log_lines(logdir / "audit.log")
    # The head went with the directory: the new file starts a new chain, with the gap first.
    assert lines[0]["kind"] == "gap" and lines[0]["spilled"] == 3 and lines[0]["prev"] == ZERO
    assert lines[1]["event_id"] == "evt_5"
    assert verify(logdir / "audit.log", args=["--from-start"])[0] == 0


def test_deleted_directory_without_a_spill_file_reports_entries_on_stderr(tmp_path):
    logdir = tmp_path / "audit"
    logdir.mkdir()
    w = Writer("--file", logdir / "audit.log")
    shutil.rmtree(logdir)
    for i in range(1, 3):
        assert w.send(audited(i))["status"] == 200
    logdir.mkdir()
    w.send(audited(3))
    err = w.close()
    assert [e["event_id"] for e in stderr_entries(err)] == ["evt_1", "evt_2"]
    gap, entry = log_lines(logdir / "audit.log")
    assert gap["kind"] == "gap" and gap["stderr_only"] == 2 and "spill" not in gap
    assert entry["event_id"] == "evt_3"


def test_a_lock_held_too_long_spills_instead_of_stalling(tmp_path):
    log = tmp_path / "audit.log"
    run_filter("audit", [audited(1)], "--file", str(log))
    holder = open(tmp_path / "audit.log.head", "r+")
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        w = Writer("--file", log, "--lock-timeout-ms", "200")
        start = time.time()
        assert w.send(audited(2))["status"] == 200
        assert 0.15 < time.time() - start < 5
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        holder.close()
    w.send(audited(3))
    err = w.close()
    assert "stayed locked by another writer for 200 ms" in err
    lines = log_lines(log)
    assert [l.get("event_id") or l["kind"] for l in lines] == ["evt_1", "gap", "evt_3"]
    assert lines[1]["spilled"] == 1
    assert verify(log, args=["--from-start"])[0] == 0


def test_edited_spill_file_fails_verification(tmp_path):
    spill = tmp_path / "spill"
    run_filter("audit", [audited(1)], "--file", "/dev/full", "--head", str(tmp_path / "audit.log.head"),
               "--spill", str(spill))
    run_filter("audit", [audited(2)], "--file", str(tmp_path / "audit.log"), "--spill", str(spill))
    assert verify(tmp_path / "audit.log")[0] == 0
    spill.write_text(spill.read_text().replace("evt_1", "evt_9"))
    rc, out = verify(tmp_path / "audit.log")
    assert rc == 1 and "gap: bytes 0.." in out and "changed or removed" in out, out


# --- query ---------------------------------------------------------------------------------

def test_query_filters_by_uid_type_outcome_and_time(tmp_path):
    log = tmp_path / "audit.log"
    records = [audited(1, uid="alice", outcome="applied"), audited(2, uid="bob", outcome="duplicate"),
               audited(3, uid="alice", outcome="stale", event_type="invoice.paid"),
               audited(4, uid="carol", outcome="applied")]
    run_filter("audit", records[:2], "--file", str(log))
    time.sleep(0.01)   # entries 3 and 4 are strictly later than 1 and 2
    run_filter("audit", records[2:], "--file", str(log))
    raw = log.read_text().splitlines()

    def query(*args):
        proc = subprocess.run([binary("audit"), "query", *args, str(log)], capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.decode().splitlines()

    assert query("--uid", "alice") == [raw[0], raw[2]]
    assert query("--uid", "alice", "--outcome", "applied") == [raw[0]]
    assert query("--outcome", "duplicate", "--outcome", "stale") == [raw[1], raw[2]]
    assert query("--type", "invoice.paid") == [raw[2]]
    assert query("--event", "evt_4") == [raw[3]]
    t3 = json.loads(raw[2])["time"]
    assert query("--since", t3) == raw[2:]
    assert query("--until", t3) == raw[:2]
    assert query("--since", "2000-01-01", "--until", "2000-01-02") == []
    bad = subprocess.run([binary("audit"), "query", "--since", "yesterday", str(log)], capture_output=True)
    assert bad.returncode == 2


# --- with apply-webhook ----------------------------------------------------------------------

def test_webhook_outcomes_from_apply_webhook_are_audited_and_stripped(tmp_path):
    """apply-webhook | audit over real pipes: each delivery's outcome lands in the chain."""
    from test_webhook_support import checkout, signed_record, webhook_env, T0
    deliveries = [signed_record(checkout("evt_a", T0, uid="alice"), id="1"),
                  signed_record(checkout("evt_a", T0, uid="alice"), id="2"),      # a redelivery
                  signed_record(checkout("evt_b", T0, uid="bob", customer="cus_2", subscription="sub_2"), id="3")]
    env = dict(os.environ)
    env.update(webhook_env(tmp_path))
    log = tmp_path / "audit.log"
    data = b"".join(json.dumps(d).encode() + b"\n" for d in deliveries)
    pipeline = f"{binary('apply-webhook')} | {binary('audit')} --file {log}"
    proc = subprocess.run(["sh", "-c", pipeline], input=data, capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(l) for l in proc.stdout.decode().splitlines()]
    assert [r["status"] for r in out] == [200, 200, 200]
    assert all("audit" not in r.get("annotations", {}) for r in out)
    lines = log_lines(log)
    assert [(l["request_id"], l["event_id"], l["uid"], l["outcome"]) for l in lines] == [
        ("1", "evt_a", "alice", "applied"), ("2", "evt_a", "alice", "duplicate"), ("3", "evt_b", "bob", "applied")]
    assert lines[0]["event_type"] == "checkout.session.completed" and lines[0]["after"] == "active"
    assert verify(log, args=["--from-start"])[0] == 0


def test_a_signed_webhook_through_the_service_is_audited(tmp_path):
    """End to end: HTTP in, the delivery applied, its outcome in the audit file, the chain valid."""
    import requests
    from test_webhook_support import SECRET, checkout, dumps, plans_file, sign, T0
    svc = Service(tmp_path, env={"EDGEPIPE_STRIPE_SECRETS": SECRET, "EDGEPIPE_PLANS": plans_file(tmp_path)})
    try:
        for evt in ("evt_e2e_1", "evt_e2e_1"):
            payload = dumps(checkout(evt, T0, uid="e2e-user"))
            r = requests.post(svc.url + "/v1/webhooks/stripe", data=payload.encode(), timeout=10,
                              headers={"content-type": "application/json", "stripe-signature": sign(payload)})
            assert r.status_code == 200 and r.json() == {"received": True}
            assert "annotations" not in r.text
        log = svc.data / "audit" / "audit.log"
        lines = log_lines(log)
        assert [(l["kind"], l["event_id"], l["uid"], l["outcome"]) for l in lines] == [
            ("stripe", "evt_e2e_1", "e2e-user", "applied"), ("stripe", "evt_e2e_1", "e2e-user", "duplicate")]
        assert all(l["remote"] == "127.0.0.1" for l in lines)
        rc, out = verify(log, args=["--from-start"])
        assert rc == 0, out
    finally:
        svc.stop()
