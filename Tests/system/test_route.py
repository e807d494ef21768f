"""route as a real process over pipes: the built binary, the default table, and bad tables."""
import json
import subprocess

from conftest import PIPELINES, binary, body_json, request, run_filter

ROUTES = str(PIPELINES / "routes")


def route(lines, *args, **kw):
    return run_filter("route", lines, "--table", ROUTES, *args, **kw)


def test_one_line_in_one_line_out_in_order():
    reqs = [request(id=str(i), path=p) for i, p in enumerate(
        ["/healthz", "/nope", "/v1/subscription", "/v1/profile", "/healthz", "/v1/subscription"] * 5)]
    out, _ = route(reqs)
    assert [r["id"] for r in out] == [r["id"] for r in reqs]
    assert [r.get("status") for r in out[:6]] == [200, 404, None, 410, 200, None]


def test_healthz_answers_200_status_ok():
    (r,), _ = route([request(path="/healthz")])
    assert r["status"] == 200
    assert body_json(r) == {"status": "ok"}
    assert ["content-type", "application/json"] in r["headers"]


def test_head_healthz_answers_and_keeps_method_for_the_encoder():
    (r,), _ = route([request(method="HEAD", path="/healthz")])
    assert (r["status"], r["method"]) == (200, "HEAD")


def test_subscription_is_annotated_and_passed_on():
    (r,), _ = route([request(path="/v1/subscription", query="x=1")])
    assert "status" not in r
    assert r["annotations"]["route"] == {"name": "subscription", "params": {}}
    assert r["query"] == "x=1"


def test_stripe_webhook_is_annotated_with_body_untouched():
    raw = '{"id":"evt_1",  "type":"x"}'
    (r,), _ = route([request(method="POST", path="/v1/webhooks/stripe", body=raw)])
    assert r["annotations"]["route"]["name"] == "stripe-webhook"
    assert r["body"] == raw


def test_unknown_path_is_json_404():
    (r,), _ = route([request(path="/nope")])
    assert r["status"] == 404
    assert body_json(r) == {"error": "not_found", "message": "no route for /nope"}


def test_wrong_method_is_405_with_allow():
    (r,), _ = route([request(method="DELETE", path="/v1/subscription")])
    assert r["status"] == 405
    assert dict(r["headers"])["allow"] == "GET, HEAD, OPTIONS"
    assert body_json(r)["error"] == "method_not_allowed"


def test_options_is_204_with_allow():
    (r,), _ = route([request(method="OPTIONS", path="/v1/webhooks/stripe")])
    assert r["status"] == 204
    assert dict(r["headers"])["allow"] == "POST, OPTIONS"


def test_options_star_lists_every_method_of_the_table():
    (r,), _ = route([request(method="OPTIONS", path="*")])
    assert r["status"] == 204
    assert set(dict(r["headers"])["allow"].split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}


def test_removed_endpoint_is_410_with_date_and_replacement():
    (r,), _ = route([request(path="/v1/subscription/legacy")])
    assert r["status"] == 410
    b = body_json(r)
    assert (b["error"], b["removed_at"], b["replacement"]) == ("gone", "2025-06-01", "/v1/subscription")
    assert "audit" not in r.get("annotations", {})


def test_audit_gone_flag_annotates_410():
    (r,), _ = route([request(method="POST", path="/v1/profile")], "--audit-gone")
    assert r["annotations"]["audit"] == {"kind": "gone", "path": "/v1/profile", "outcome": "gone"}


def test_encoded_slash_and_dot_segments_are_400():
    out, _ = route([request(path="/v1%2Fsubscription"), request(path="/x/../v1/subscription"),
                    request(path="/v1/%2e%2e/healthz")])
    assert [(r["status"], body_json(r)["error"]) for r in out] == [(400, "bad_path")] * 3


def test_percent_encoded_spelling_of_a_route_is_not_routed():
    (r,), _ = route([request(path="/v1/%73ubscription")])
    assert r["status"] == 404


def test_malformed_lines_become_400_and_the_filter_goes_on():
    out, err = route(['{"id":"7","method":', "not json", '{"id":"1","id":"2"}', request(id="9", path="/healthz")])
    assert [r["status"] for r in out] == [400, 400, 400, 200]
    assert out[0]["id"] == "7"
    assert all(body_json(r)["error"] == "bad_record" for r in out[:3])
    assert out[3]["id"] == "9"
    assert "malformed record" in err


def test_record_without_path_is_400():
    (r,), _ = route([{"id": "1", "method": "GET"}])
    assert r["status"] == 400


def test_unknown_fields_and_annotations_are_preserved():
    rec = request(path="/v1/subscription", future_field={"a": [1, 2.50]}, annotations={"auth": {"uid": "u1"}})
    (r,), _ = route([rec])
    assert r["future_field"] == {"a": [1, 2.50]}
    assert r["annotations"] == {"auth": {"uid": "u1"}, "route": {"name": "subscription", "params": {}}}


def test_responses_pass_through_byte_for_byte():
    line = '{"id":"1", "status":502,"body":"upstream"}'
    proc = subprocess.run([binary("route"), "--table", ROUTES], input=(line + "\n").encode(),
                          capture_output=True, timeout=10)
    assert proc.stdout.decode() == line + "\n"


def test_unrouted_requests_pass_through_byte_for_byte_apart_from_the_annotation():
    line = '{"id":"1","method":"GET","path":"/v1/subscription","n":1.50}'
    proc = subprocess.run([binary("route"), "--table", ROUTES], input=(line + "\n").encode(),
                          capture_output=True, timeout=10)
    assert json.loads(proc.stdout)["n"] == 1.5
    assert '"n":1.50' in proc.stdout.decode()


def test_named_segments_and_prefix_from_a_custom_table(tmp_path):
    table = tmp_path / "routes"
    table.write_text("GET /v1/users/:id user\n* /static/* static\n")
    out, _ = run_filter("route", [request(path="/v1/users/a%20b"), request(method="PUT", path="/static/a/b")],
                        "--table", str(table))
    assert out[0]["annotations"]["route"] == {"name": "user", "params": {"id": "a b"}}
    assert out[1]["annotations"]["route"] == {"name": "static", "params": {"*": "a/b"}}


def test_table_from_environment(tmp_path):
    table = tmp_path / "routes"
    table.write_text("GET /only only\n")
    proc = subprocess.run([binary("route")], input=b'{"id":"1","method":"GET","path":"/only"}\n',
                          capture_output=True, timeout=10, env={"EDGEPIPE_ROUTES": str(table)})
    assert json.loads(proc.stdout)["annotations"]["route"]["name"] == "only"


def test_malformed_table_is_refused_with_file_and_line(tmp_path):
    table = tmp_path / "routes"
    table.write_text("# ok\nGET /healthz healthz\n\nGET /v1/x  x  extra\n")
    proc = subprocess.run([binary("route"), "--table", str(table)], input=b"", capture_output=True, timeout=10)
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith(f"route: {table}:4: unexpected 'extra'")
    assert proc.stdout == b""


def test_conflicting_table_is_refused_with_both_lines(tmp_path):
    table = tmp_path / "routes"
    table.write_text("GET /a one\nGET,POST /a two\n")
    proc = subprocess.run([binary("route"), "--table", str(table), "--check"], capture_output=True, timeout=10)
    assert proc.returncode == 2
    assert f"{table}:2: conflicts with line 1" in proc.stderr.decode()


def test_missing_table_is_refused():
    proc = subprocess.run([binary("route"), "--table", "/nonexistent/routes"], capture_output=True, timeout=10)
    assert proc.returncode == 2
    assert "/nonexistent/routes" in proc.stderr.decode()


def test_check_accepts_the_default_table():
    proc = subprocess.run([binary("route"), "--table", ROUTES, "--check"], capture_output=True, timeout=10)
    assert (proc.returncode, proc.stderr) == (0, b"")


def test_help_describes_usage():
    proc = subprocess.run([binary("route"), "--help"], capture_output=True, timeout=10)
    assert proc.returncode == 0
    assert b"--table" in proc.stdout and b"exit status" in proc.stdout
