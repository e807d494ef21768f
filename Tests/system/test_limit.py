"""Rate limits (`limit`) as a user runs them: the rules file checked at start, 429s with
Retry-After and the RateLimit fields over real sockets, accuracy under 16 hammering
connections on this machine's shared table and on Redis, a Redis outage per rule, a fixed
table under many addresses, stage order (a refused request never reaches verify-jwt),
and the reservation service refusing a name-claiming bot."""
import json
import os
import resource
import struct
import subprocess
import sys

import pytest

from conftest import BIN, PIPELINES, binary, free_port, request, run_filter
from policy_support import get, hammer, policy_service, token
from test_redis import RedisServer
from test_reserve import ReserveService


def limit_check(path, *extra):
    return subprocess.run([binary("limit"), "--rules", str(path), "--check", *extra], capture_output=True, timeout=10)


# --- the rules file ----------------------------------------------------------------------

def test_the_shipped_rules_files_pass_the_check():
    for name in ["limits", "reserve-limits"]:
        p = limit_check(PIPELINES / name)
        assert p.returncode == 0, p.stderr


def test_a_bad_rule_is_reported_as_file_line_and_exits_2(tmp_path):
    rules = tmp_path / "limits"
    rules.write_text("# fine so far\n* ip 10/s\nsubscription uid 20/fortnight\n")
    p = limit_check(rules)
    assert p.returncode == 2
    assert p.stderr.decode().startswith(f"limit: {rules}:3: rate '20/fortnight'"), p.stderr


def test_serve_refuses_to_start_with_a_bad_rules_file(tmp_path):
    rules = tmp_path / "limits"
    rules.write_text("* cookie 10/s\n")
    env = dict(os.environ, EDGEPIPE_PORT=str(free_port()), EDGEPIPE_DATA=str(tmp_path / "data"),
               EDGEPIPE_BIN=str(BIN), EDGEPIPE_LIMITS=str(rules))
    p = subprocess.run([str(PIPELINES / "serve")], env=env, capture_output=True, timeout=60)
    assert p.returncode == 2
    assert f"{rules}:1: unknown key 'cookie'" in p.stderr.decode()


# --- 429 over a socket ---------------------------------------------------------------------

def test_over_the_limit_is_429_json_with_retry_after_and_ratelimit_fields(tmp_path):
    svc = policy_service(tmp_path, limits="subscription ip 2/min\n")
    try:
        assert [get(svc, "/v1/subscription")[0] for _ in range(2)] == [401, 401]
        status, headers, body = get(svc, "/v1/subscription")
        assert status == 429
        assert json.loads(body)["error"] == "rate_limited"
        assert 1 <= int(headers["retry-after"]) <= 30
        assert json.loads(body)["retry_after"] == int(headers["retry-after"])
        assert headers["ratelimit-policy"] == '"subscription/ip";q=2;w=60'
        assert headers["ratelimit"].startswith('"subscription/ip";r=0;t=')
        assert get(svc, "/v1/open")[0] == 401, "another route has no limit"
    finally:
        svc.stop()


def test_a_rate_limited_request_never_reaches_verify_jwt(tmp_path):
    svc = policy_service(tmp_path, limits="* ip 5/min\n", log_verify=True)
    try:
        garbage = {"Authorization": "Bearer " + "x" * 40 + "." + "y" * 300 + "." + "z" * 342}
        statuses = [get(svc, "/v1/subscription", garbage)[0] for _ in range(40)]
        assert statuses.count(401) == 5 and statuses.count(429) == 35, statuses
        # verify-jwt reads every record, but an answered one (a 429) passes it byte for byte
        # without a look at its headers: only the 5 allowed requests reach the token check.
        seen = [json.loads(l) for l in svc.seen.read_text().splitlines()]
        assert len([r for r in seen if "status" not in r]) == 5
        assert [r["status"] for r in seen if "status" in r] == [429] * 35
    finally:
        svc.stop()


def test_a_uid_rule_counts_each_verified_user_apart(tmp_path):
    svc = policy_service(tmp_path, limits="* uid 3/min\n")
    try:
        alice, bob = token(svc, "alice"), token(svc, "bob")
        a = [get(svc, "/v1/open", {"Authorization": "Bearer " + alice})[0] for _ in range(5)]
        b = [get(svc, "/v1/open", {"Authorization": "Bearer " + bob})[0] for _ in range(2)]
        assert a == [502, 502, 502, 429, 429]     # 502: no stage answers `open`; 429: alice's allowance is spent
        assert b == [502, 502]
        assert [get(svc, "/v1/open")[0] for _ in range(5)] == [401] * 5, "no uid, no uid limit"
    finally:
        svc.stop()


# --- accuracy: 16 connections, 100/s, 5 s -----------------------------------------------------

BURST = 50
EXPECTED = 5 * 100 + BURST


def assert_accurate(counts):
    accepted = counts[401]
    assert set(counts) <= {401, 429}, counts
    assert counts[429] > accepted, f"the clients must offer more than the limit: {counts}"
    assert abs(accepted - EXPECTED) <= 0.05 * EXPECTED, f"{accepted} accepted, {EXPECTED} +- 5% expected ({counts})"


def test_accuracy_on_the_machines_shared_table(tmp_path):
    svc = policy_service(tmp_path, limits=f"subscription ip 100/s burst={BURST}\n")
    try:
        assert_accurate(hammer(svc.port, "/v1/subscription"))
    finally:
        svc.stop()


def test_accuracy_on_redis(tmp_path):
    redis = RedisServer(tmp_path)
    svc = policy_service(tmp_path, limits=f"subscription ip 100/s burst={BURST}\n", env={"EDGEPIPE_KV": redis.url})
    try:
        assert_accurate(hammer(svc.port, "/v1/subscription"))
        keys = redis.cli("--scan", "--pattern", "edgepipe:rl:*").split()
        assert keys == ["edgepipe:rl:subscription:ip:100/1:50:127.0.0.1"]
    finally:
        svc.stop()
        redis.kill()


def test_redis_down_passes_and_counts_by_default_and_503s_a_closed_rule(tmp_path):
    nothing = free_port()
    svc = policy_service(tmp_path, limits="open ip 1/min\nclosed ip 1/min redis-down=closed\n",
                         env={"EDGEPIPE_KV": f"redis://127.0.0.1:{nothing}/0"})
    try:
        assert [get(svc, "/v1/open")[0] for _ in range(3)] == [401] * 3
        status, headers, body = get(svc, "/v1/closed")
        assert status == 503 and json.loads(body)["error"] == "limit_unavailable"
        log = (tmp_path / "serve.log").read_text()
        assert "rate-limit store unavailable" in log and "open/ip lets requests through" in log
        slots = (svc.data / "limit.slots").read_bytes()
        assert struct.unpack_from("<q", slots, 2 * 8)[0] >= 3, "each pass counted"
    finally:
        svc.stop()


# --- bounded memory ------------------------------------------------------------------------------

def max_rss_kb_of_limit(tmp_path, n, table):
    """Peak RSS of a `limit` process fed n requests from n distinct addresses."""
    rules = tmp_path / "limits"
    rules.write_text("* ip 10/s\n")
    lines = tmp_path / f"requests-{n}"
    with open(lines, "w") as f:
        for i in range(n):
            f.write(json.dumps(request(id=str(i), remote=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                                       annotations={"route": {"name": "x"}})) + "\n")
    script = ("import resource, subprocess, sys\n"
              f"p = subprocess.run([{binary('limit')!r}, '--rules', {str(rules)!r}, '--table', {str(table)!r}],"
              f" stdin=open({str(lines)!r}), stdout=subprocess.DEVNULL)\n"
              "assert p.returncode == 0\n"
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    return int(subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, timeout=120).stdout)


def test_many_distinct_addresses_leave_the_table_its_size_and_the_process_flat(tmp_path):
    table = tmp_path / "limit.slots"
    small = max_rss_kb_of_limit(tmp_path, 1_000, table)
    size = table.stat().st_size
    big = max_rss_kb_of_limit(tmp_path, 200_000, table)
    assert table.stat().st_size == size, "the table is the same file, the same size"
    assert big - small < 4096, f"peak RSS {small} KiB after 1,000 addresses, {big} KiB after 200,000"
    evictions = struct.unpack_from("<q", table.read_bytes(), 8)[0]
    assert evictions > 100_000


# --- the reservation service ---------------------------------------------------------------------

def test_the_reservation_bot_is_refused_long_before_it_empties_the_name_space(tmp_path):
    svc = ReserveService(tmp_path)
    try:
        statuses = []
        for i in range(40):
            out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                  "-H", "content-type: application/json",
                                  "--data", json.dumps({"subdomain": f"good-name-{i}", "email": f"bot{i}@example.com"}),
                                  svc.url + "/v1/reservations"], capture_output=True, timeout=10)
            statuses.append(int(out.stdout))
        accepted = [s for s in statuses if s < 400]
        assert len(accepted) <= 6, statuses          # the burst of 5 (and one more if a 6 s interval passed)
        assert statuses[-30:] == [429] * 30
        status, headers, body = get(svc, "/v1/reservations", method="POST")
        assert status == 429 and "retry-after" in headers
    finally:
        svc.stop()


# --- the filter as a stage of its own --------------------------------------------------------

def test_limit_as_its_own_stage_applies_only_its_stages_rules(tmp_path):
    rules = tmp_path / "limits"
    rules.write_text("* ip 1/min\n* uid 2/min\n")
    table = tmp_path / "limit.slots"

    def rec(i, uid=None):
        notes = {"route": {"name": "r"}}
        if uid:
            notes["auth"] = {"uid": uid}
        return request(id=str(i), remote="192.0.2.1", annotations=notes)

    answered = {"id": "9", "status": 204, "headers": [], "body": ""}
    out, _ = run_filter("limit", [rec(1, "u"), rec(2, "u"), rec(3, "u"), answered], "--rules", str(rules),
                        "--stage", "uid", "--table", str(table))
    assert [r.get("status") for r in out] == [None, None, 429, 204], "the ip rule is not this stage's"
    out, _ = run_filter("limit", [rec(4), rec(5)], "--rules", str(rules), "--stage", "ip", "--table", str(table))
    assert [r.get("status") for r in out] == [None, 429]
    assert ["content-type", "application/json"] in out[1]["headers"]
    assert any(name == "retry-after" and int(value) >= 1 for name, value in out[1]["headers"])
