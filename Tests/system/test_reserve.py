"""The reservation service: the `reserve` filter as a real process (one per connection,
as the launcher runs it), and the whole service through pipelines/reserve with curl:
sanitising, blocklist, uniqueness, single-use expiring tokens, the admin listing, the
audit trail, and 50 racing confirmations for one subdomain."""
import json
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import BIN, PIPELINES, binary, body_json, free_port, request, run_filter, wait_for_port, stop_group

TOKEN_LINK = re.compile(r"\?token=([A-Za-z0-9_-]+)")


# ---------------------------------------------------------------------------------------
# Helpers


class Filter:
    """`reserve` over one store, outbox and blocklist; each call is a new process, as each
    connection is."""

    def __init__(self, tmp_path, blocklist="admin\nwww\n*cloudflare*\n"):
        self.store = tmp_path / "kv"
        self.outbox = tmp_path / "outbox"
        self.blocklist = tmp_path / "blocklist"
        self.blocklist.write_text(blocklist)

    def run(self, records, *args, env=None):
        out, _ = run_filter("reserve", records, "--store", str(self.store), "--outbox", str(self.outbox),
                            "--blocklist", str(self.blocklist), "--base-url", "http://reserve.test", *args, env=env)
        return out

    def submit(self, subdomain, email, *args, env=None):
        return self.run([post("/v1/reservations", {"subdomain": subdomain, "email": email})], *args, env=env)[0]

    def confirm(self, token, *args, env=None):
        return self.run([post("/v1/reservations/confirm", {"token": token})], *args, env=env)[0]

    def mails(self):
        new = self.outbox / "new"
        return [p.read_text() for p in sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns)] if new.exists() else []

    def last_token(self):
        return TOKEN_LINK.search(self.mails()[-1]).group(1)


def post(path, payload, form=False, id="1"):
    if form:
        from urllib.parse import urlencode
        return request(id=id, method="POST", path=path, body=urlencode(payload),
                       headers=[["host", "x"], ["content-type", "application/x-www-form-urlencoded"]])
    return request(id=id, method="POST", path=path, body=json.dumps(payload),
                   headers=[["host", "x"], ["content-type", "application/json"]])


class ReserveService:
    """pipelines/reserve on a free loopback port with its own data directory."""

    def __init__(self, tmp_path, env=None, args=()):
        self.port = free_port()
        self.data = tmp_path / "data"
        self.tmp = tmp_path
        full = dict(os.environ)
        for k in [k for k in full if k.startswith("EDGEPIPE_")]:
            del full[k]
        full.update({"EDGEPIPE_PORT": str(self.port), "EDGEPIPE_DATA": str(self.data), "EDGEPIPE_BIN": str(BIN)})
        full.update(env or {})
        self.env = full
        self.log = open(tmp_path / "reserve.log", "wb")
        self.proc = subprocess.Popen([str(PIPELINES / "reserve"), *args], env=full, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def curl(self, *args):
        """(status, parsed JSON body or text, headers text) of one curl call."""
        proc = subprocess.run(["curl", "-sS", "--max-time", "20", "-D", "-", *args], capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stderr.decode()
        head, _, body = proc.stdout.decode().partition("\r\n\r\n")
        status = int(head.split()[1])
        try:
            return status, json.loads(body), head
        except ValueError:
            return status, body, head

    def submit(self, subdomain, email):
        return self.curl("-X", "POST", self.url + "/v1/reservations", "-H", "content-type: application/json",
                         "-d", json.dumps({"subdomain": subdomain, "email": email}))

    def confirm(self, token):
        return self.curl("-X", "POST", self.url + "/v1/reservations/confirm", "-H", "content-type: application/json",
                         "-d", json.dumps({"token": token}))

    def outbox(self):
        new = self.data / "reserve" / "outbox" / "new"
        return [p.read_text() for p in sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns)] if new.exists() else []

    def token_for(self, email):
        for mail in reversed(self.outbox()):
            if f"\nTo: {email}\n" in mail:
                return TOKEN_LINK.search(mail).group(1)
        raise AssertionError(f"no mail to {email}")

    def admin_token(self, uid):
        return subprocess.run([binary("sign-jwt"), "dev", "--uid", uid, "--dev-keys", str(self.data / "dev-keys")],
                              capture_output=True, check=True, text=True).stdout.strip()

    def audit_entries(self):
        log = self.data / "audit" / "audit.log"
        return [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []

    def stop(self):
        stop_group(self.proc)
        self.log.close()


@pytest.fixture
def svc(tmp_path):
    s = ReserveService(tmp_path)
    yield s
    s.stop()


# ---------------------------------------------------------------------------------------
# The filter on its own


def test_help_lists_endpoints_options_and_exit_codes():
    proc = subprocess.run([binary("reserve"), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for word in ["usage: reserve", "--blocklist", "--sendmail", "--outbox", "--token-ttl", "reserve-list", "exit status"]:
        assert word in proc.stdout


def test_unknown_option_exits_2():
    proc = subprocess.run([binary("reserve"), "--nope"], capture_output=True, text=True, input="")
    assert proc.returncode == 2
    assert "unknown option --nope" in proc.stderr


@pytest.mark.parametrize("subdomain,email,field", [
    ("-lead", "a@example.com", "subdomain"),
    ("trail-", "a@example.com", "subdomain"),
    ("under_score", "a@example.com", "subdomain"),
    ("a" * 64, "a@example.com", "subdomain"),
    ("", "a@example.com", "subdomain"),
    ("xn--abc-d", "a@example.com", "subdomain"),
    ("ab--cd", "a@example.com", "subdomain"),
    ("fine", "Ann <a@example.com>", "email"),
    ("fine", "a b@example.com", "email"),
    ("fine", "a@@example.com", "email"),
    ("fine", "a@localhost", "email"),
    ("fine", "", "email"),
])
def test_invalid_field_is_422_naming_it(tmp_path, subdomain, email, field):
    r = Filter(tmp_path).submit(subdomain, email)
    assert r["status"] == 422
    assert body_json(r) == {"error": "invalid_field", "message": body_json(r)["message"], "field": field}
    assert r["annotations"]["audit"]["outcome"] == "invalid"


@pytest.mark.parametrize("subdomain,email", [
    ("a", "a@example.com"),
    ("Mixed-Case-9", "First.Last+tag@Example.COM"),
    ("a" * 63, "o'brien@mail.example.ie"),
    ("xn--bcher-kva", "x@xn--bcher-kva.example"),
])
def test_valid_request_is_202_and_mails_a_link(tmp_path, subdomain, email):
    f = Filter(tmp_path)
    r = f.submit(subdomain, email)
    assert r["status"] == 202, r
    assert body_json(r) == {"status": "verification_sent"}
    [mail] = f.mails()
    assert f"\nTo: {email.lower()}\n" in mail
    assert f"http://reserve.test/?token={f.last_token()}" in mail


def test_form_encoded_request_is_accepted(tmp_path):
    f = Filter(tmp_path)
    [r] = f.run([post("/v1/reservations", {"subdomain": "form-site", "email": "a@example.com"}, form=True)])
    assert r["status"] == 202


def test_blocklist_exact_name_and_pattern_are_403(tmp_path):
    f = Filter(tmp_path)
    exact = f.submit("WWW", "a@example.com")
    assert exact["status"] == 403
    assert body_json(exact)["reason"] == "the subdomain is reserved"
    pattern = f.submit("my-cloudflare-clone", "a@example.com")
    assert pattern["status"] == 403
    assert body_json(pattern)["reason"] == "the subdomain matches a blocked pattern"
    assert f.submit("cloud-flare", "a@example.com")["status"] == 202
    assert f.mails() and len(f.mails()) == 1


def test_blocklist_edit_applies_to_the_next_connection(tmp_path):
    f = Filter(tmp_path)
    assert f.submit("launchday", "a@example.com")["status"] == 202
    f.blocklist.write_text("launch*\n")
    assert f.submit("launchday", "b@example.com")["status"] == 403


def test_confirm_in_a_later_process_reserves_and_the_token_works_once(tmp_path):
    f = Filter(tmp_path)
    f.submit("mine", "ann@example.com")
    ok = f.confirm(f.last_token())
    assert ok["status"] == 201
    assert body_json(ok) == {"status": "confirmed", "subdomain": "mine", "email": "ann@example.com"}
    again = f.confirm(f.last_token())
    assert again["status"] == 410
    assert body_json(again)["error"] == "token_used"


def test_taken_subdomain_and_taken_email_are_409_naming_which(tmp_path):
    f = Filter(tmp_path)
    f.submit("mine", "ann@example.com")
    assert f.confirm(f.last_token())["status"] == 201
    sub = f.submit("mine", "bob@example.com")
    assert sub["status"] == 409 and body_json(sub)["field"] == "subdomain"
    mail = f.submit("other", "ANN@example.com")
    assert mail["status"] == 409 and body_json(mail)["field"] == "email"


def test_token_expires_for_a_process_whose_clock_is_past_the_ttl(tmp_path):
    f = Filter(tmp_path)
    f.submit("later", "ann@example.com", "--token-ttl", "600")
    token = f.last_token()
    late = f.confirm(token, env={"EDGEPIPE_CLOCK_OFFSET": "601"})
    assert late["status"] == 410
    assert body_json(late)["error"] == "token_expired"
    # Just inside the TTL the same token still works.
    assert f.confirm(token, env={"EDGEPIPE_CLOCK_OFFSET": "590"})["status"] == 201


def test_unknown_token_is_410_and_garbage_is_422(tmp_path):
    f = Filter(tmp_path)
    assert f.confirm("A" * 43)["status"] == 410
    bad = f.confirm("<script>")
    assert bad["status"] == 422 and body_json(bad)["field"] == "token"


def test_store_keeps_only_the_hash_of_the_token(tmp_path):
    f = Filter(tmp_path)
    f.submit("hashed", "ann@example.com")
    token = f.last_token()
    for path in f.store.rglob("*"):
        assert token not in path.name
        if path.is_file():
            assert token not in path.read_text(errors="replace")


def test_mail_command_gets_the_message_and_its_output_stays_off_the_record_stream(tmp_path):
    f = Filter(tmp_path)
    got = tmp_path / "sent.eml"
    out = f.run([post("/v1/reservations", {"subdomain": "cmd", "email": "ann@example.com"}),
                 request(id="2", path="/other")],
                "--sendmail", f"echo noise from the mailer; cat > '{got}'")
    assert [r.get("status") for r in out] == [202, None]
    mail = got.read_text()
    assert mail.startswith("From: ") and "\nTo: ann@example.com\n" in mail and TOKEN_LINK.search(mail)
    assert not (tmp_path / "outbox").exists()


def test_failing_mail_command_is_503_and_leaves_no_token(tmp_path):
    f = Filter(tmp_path)
    r = f.submit("nomail", "ann@example.com", "--sendmail", "cat >/dev/null; exit 75")
    assert r["status"] == 503
    assert body_json(r)["error"] == "mail_unavailable"
    assert not [p for p in f.store.rglob("*") if p.is_file() and "token" in str(p)]


def test_every_event_carries_the_audit_annotation(tmp_path):
    f = Filter(tmp_path)
    r = f.submit("audited", "Ann@Example.com")
    assert r["annotations"]["audit"] == {"kind": "reservation", "action": "submit", "outcome": "verification_sent",
                                         "subdomain": "audited", "email": "ann@example.com"}
    c = f.confirm(f.last_token())
    assert c["annotations"]["audit"]["outcome"] == "confirmed"


def test_other_records_pass_through_byte_for_byte(tmp_path):
    line = '{"id":"7","method":"GET","path":"/elsewhere","query":"","headers":[],"body":"","x":1}'
    proc = subprocess.run([binary("reserve"), "--store", str(tmp_path / "kv"), "--outbox", str(tmp_path / "o")],
                          input=line + "\n", capture_output=True, text=True, check=True)
    assert proc.stdout == line + "\n"


def test_admins_from_file_and_environment_may_list(tmp_path):
    f = Filter(tmp_path)
    admins = tmp_path / "admins"
    admins.write_text("# who may list\nalice\n")

    def listing(uid):
        rec = request(path="/v1/reservations", query="limit=10", annotations={"auth": {"uid": uid}})
        return f.run([rec], "--admins", str(admins), env={"EDGEPIPE_RESERVE_ADMINS": "bob,carol"})[0]

    assert listing("alice")["status"] == 200
    assert listing("carol")["status"] == 200
    assert body_json(listing("bob")) == {"reservations": [], "next_cursor": None}
    assert listing("mallory")["status"] == 403


# ---------------------------------------------------------------------------------------
# Racing confirmations


@pytest.fixture
def unlimited(tmp_path):
    # Fifty submissions from one address are what the default limits refuse (test_limit.py).
    s = ReserveService(tmp_path, env={"EDGEPIPE_RESERVE_LIMITS": ""})
    yield s
    s.stop()


def test_fifty_concurrent_confirmations_for_one_subdomain_have_exactly_one_winner(unlimited):
    svc = unlimited
    emails = [f"racer{i}@example.com" for i in range(50)]
    for e in emails:
        status, _, _ = svc.submit("contested", e)
        assert status == 202
    tokens = [svc.token_for(e) for e in emails]
    results = [None] * 50
    start = threading.Barrier(50)

    def confirm(i):
        start.wait()
        results[i] = svc.confirm(tokens[i])

    threads = [threading.Thread(target=confirm, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = sorted(r[0] for r in results)
    assert statuses == [201] + [409] * 49
    assert all(r[1]["field"] == "subdomain" for r in results if r[0] == 409)
    winner = next(r[1] for r in results if r[0] == 201)

    uid = "race-admin"
    (svc.data / "reserve" / "admins").write_text(uid + "\n")
    status, page, _ = svc.curl(svc.url + "/v1/reservations?limit=100", "-H", f"authorization: Bearer {svc.admin_token(uid)}")
    assert status == 200
    assert page["reservations"] == [{"subdomain": "contested", "email": winner["email"],
                                     "reserved_at": page["reservations"][0]["reserved_at"]}]
    kv = subprocess.run([binary("kv"), "--store", str(svc.data / "kv"), "list", "--prefix", "reserve/email/"],
                        capture_output=True, text=True, check=True)
    assert json.loads(kv.stdout)["keys"] == ["reserve/email/" + winner["email"]]


# ---------------------------------------------------------------------------------------
# End to end through pipelines/reserve, with curl


def test_page_is_served_at_the_root(svc):
    status, body, head = svc.curl(svc.url + "/")
    assert status == 200
    assert "content-type: text/html; charset=utf-8" in head.lower()
    assert "referrer-policy: no-referrer" in head.lower()
    assert '<form id="reserve"' in body


def test_healthz_and_unknown_paths_are_answered_by_route(svc):
    assert svc.curl(svc.url + "/healthz")[:2] == (200, {"status": "ok"})
    assert svc.curl(svc.url + "/nope")[0] == 404
    assert svc.curl("-X", "DELETE", svc.url + "/v1/reservations")[0] == 405


def test_reserve_confirm_and_reuse_with_curl(svc):
    status, body, _ = svc.submit("curl-site", "ann@example.com")
    assert (status, body) == (202, {"status": "verification_sent"})
    token = svc.token_for("ann@example.com")
    assert f"{svc.url}/?token={token}" in svc.outbox()[-1]
    assert svc.confirm(token)[:2] == (201, {"status": "confirmed", "subdomain": "curl-site", "email": "ann@example.com"})
    assert svc.confirm(token)[0] == 410
    assert svc.submit("curl-site", "bob@example.com")[1]["field"] == "subdomain"
    assert svc.submit("curl-other", "ann@example.com")[1]["field"] == "email"


def test_form_post_with_curl(svc):
    status, body, _ = svc.curl("-X", "POST", svc.url + "/v1/reservations",
                               "--data-urlencode", "subdomain=Form-Site", "--data-urlencode", "email=a+b@example.com")
    assert (status, body) == (202, {"status": "verification_sent"})
    assert "\nTo: a+b@example.com\n" in svc.outbox()[-1]


def test_refusals_with_curl(svc):
    assert svc.submit("bad_name", "a@example.com")[:2][0] == 422
    assert svc.submit("admin", "a@example.com")[0] == 403
    assert svc.submit("cloudflare-pages", "a@example.com")[0] == 403
    assert svc.confirm("A" * 43)[0] == 410


def test_blocklist_file_edit_applies_without_restart(tmp_path):
    blocklist = tmp_path / "blocklist"
    blocklist.write_text("admin\n")
    s = ReserveService(tmp_path, args=("--blocklist", str(blocklist)))
    try:
        assert s.submit("fresh-name", "a@example.com")[0] == 202
        blocklist.write_text("admin\nfresh-*\n")
        assert s.submit("fresh-name", "b@example.com")[0] == 403
    finally:
        s.stop()


def test_listing_needs_a_token_and_an_admin_uid(svc):
    for name in ["c-one", "a-two", "b-three"]:
        svc.submit(name, f"{name}@example.com")
        assert svc.confirm(svc.token_for(f"{name}@example.com"))[0] == 201
    assert svc.curl(svc.url + "/v1/reservations")[0] == 401
    # A uid header from the client is dropped by verify-jwt: still no uid.
    assert svc.curl(svc.url + "/v1/reservations", "-H", "x-authenticated-uid: boss")[0] == 401
    boss = svc.admin_token("boss")
    assert svc.curl(svc.url + "/v1/reservations", "-H", f"authorization: Bearer {boss}")[0] == 403
    (svc.data / "reserve" / "admins").write_text("boss\n")
    status, first, _ = svc.curl(svc.url + "/v1/reservations?limit=2", "-H", f"authorization: Bearer {boss}")
    assert status == 200
    assert [r["subdomain"] for r in first["reservations"]] == ["a-two", "b-three"]
    status, second, _ = svc.curl(svc.url + f"/v1/reservations?limit=2&cursor={first['next_cursor']}",
                                 "-H", f"authorization: Bearer {boss}")
    assert [r["subdomain"] for r in second["reservations"]] == ["c-one"]
    assert second["next_cursor"] is None


def test_reservation_events_reach_the_audit_log(svc):
    svc.submit("logged", "ann@example.com")
    svc.confirm(svc.token_for("ann@example.com"))
    svc.submit("admin", "bob@example.com")
    entries = [e for e in svc.audit_entries() if e.get("kind") == "reservation"]
    assert [(e["action"], e["outcome"], e["subdomain"], e["status"]) for e in entries] == [
        ("submit", "verification_sent", "logged", 202),
        ("confirm", "confirmed", "logged", 201),
        ("submit", "blocked", "admin", 403),
    ]
    verify = subprocess.run([binary("audit"), "verify", str(svc.data / "audit" / "audit.log")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


# ---------------------------------------------------------------------------------------
# Issue 19 §8: the service keeps its promises, through pipelines/reserve with curl.


def test_launcher_flags_set_the_link_lifetime_and_sender_and_the_mail_never_over_promises(tmp_path):
    s = ReserveService(tmp_path, args=("--token-ttl", "5400", "--mail-from", "Reservations <hello@reserve.example>"))
    try:
        assert s.submit("ninety", "ann@example.com")[0] == 202
        [mail] = s.outbox()
        assert mail.startswith("From: Reservations <hello@reserve.example>\n")
        assert "within 1 hour 30 minutes:" in mail
        assert "2 hours" not in mail
    finally:
        s.stop()


def test_launcher_help_names_the_flags_and_warns_about_localhost_senders():
    proc = subprocess.run([str(PIPELINES / "reserve"), "--help"], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0
    assert "--token-ttl" in proc.stdout and "--mail-from" in proc.stdout
    assert "noreply@localhost" in proc.stdout


def test_launcher_refuses_a_bad_lifetime_at_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPIPE_")}
    env.update({"EDGEPIPE_PORT": str(free_port()), "EDGEPIPE_DATA": str(tmp_path / "d"), "EDGEPIPE_BIN": str(BIN)})
    proc = subprocess.run([str(PIPELINES / "reserve"), "--token-ttl", "soon"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert "--token-ttl" in proc.stderr


def test_an_owner_submitting_again_or_clicking_a_second_mail_is_told_the_name_is_theirs(svc):
    assert svc.submit("mine", "ann@example.com")[0] == 202
    first = svc.token_for("ann@example.com")
    assert svc.submit("mine", "ann@example.com")[0] == 202   # a double submit before confirming
    second = svc.token_for("ann@example.com")
    assert first != second
    assert svc.confirm(first)[0] == 201
    status, body, _ = svc.confirm(second)
    assert (status, body["status"], body["message"]) == (200, "already_yours", "this name is already yours")
    status, body, _ = svc.submit("mine", "Ann@Example.com")
    assert (status, body["status"]) == (200, "already_yours")
    status, body, _ = svc.submit("mine", "bob@example.com")
    assert (status, body["error"]) == (409, "taken")
    outcomes = [e["outcome"] for e in svc.audit_entries() if e.get("kind") == "reservation"]
    assert outcomes.count("already_yours") == 2


def test_spaces_around_the_fields_are_trimmed_as_the_page_does(svc):
    status, body, _ = svc.submit("  spaced-out ", " ann@example.com\t")
    assert (status, body) == (202, {"status": "verification_sent"})
    assert "\nTo: ann@example.com\n" in svc.outbox()[-1]
    assert "reservation of spaced-out\n" in svc.outbox()[-1]


def test_a_look_alike_of_a_blocked_name_is_refused(svc):
    status, body, _ = svc.submit("xn--pypal-4ve", "ann@example.com")
    assert (status, body["error"], body["field"]) == (422, "invalid_field", "subdomain")
    assert "Latin and Cyrillic" in body["message"]
    assert svc.submit("paypal-login", "ann@example.com")[0] == 403
    assert svc.outbox() == []


def test_a_json_field_sent_twice_is_a_422_naming_it(svc):
    status, body, _ = svc.curl("-X", "POST", svc.url + "/v1/reservations", "-H", "content-type: application/json",
                               "-d", '{"subdomain":"a-site","email":"a@example.com","email":"b@example.com"}')
    assert (status, body["error"], body["field"]) == (422, "invalid_field", "email")
    assert svc.outbox() == []


def test_refused_input_is_audited_clipped_on_a_character_boundary(svc):
    name = "€" * 100   # 300 bytes: a cut at 254 would fall inside the 85th character
    status, _, _ = svc.submit(name, "ann@example.com")
    assert status == 422
    [entry] = [e for e in svc.audit_entries() if e.get("kind") == "reservation"]
    assert entry["subdomain"] == "€" * 84
    assert len(entry["subdomain"].encode()) <= 254
