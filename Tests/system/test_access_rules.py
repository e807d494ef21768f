"""verify-jwt's per-route access rules as a real process over a pipe (records as route
leaves them, so the raw-header path decides): optional routes, required claims, 403s that
name the rule and never the claim's value, and the rules file checked at start."""
import json
import subprocess

from conftest import binary, request, run_filter

RULES = """\
feed        optional
admin       require roles contains admin
admin       require email_verified=true
account     require firebase.sign_in_provider in {password, google.com}
"""


def mint(dev, uid, *claims):
    args = [binary("sign-jwt"), "dev", "--uid", uid, "--dev-keys", str(dev)]
    for c in claims:
        args += ["--claim-json", c]
    return subprocess.run(args, capture_output=True, check=True, timeout=10).stdout.decode().strip()


def routed(route, token=None, extra=()):
    headers = [["host", "h"], *extra]
    if token:
        headers.append(["authorization", f"Bearer {token}"])
    return request(headers=headers, annotations={"route": {"name": route, "params": {}}})


def gate(tmp_path, records):
    rules = tmp_path / "access"
    rules.write_text(RULES)
    out, _ = run_filter("verify-jwt", records, "--dev-keys", str(tmp_path / "dev"), "--access", str(rules))
    return out


def test_an_optional_route_passes_anonymously_injects_a_valid_identity_and_refuses_a_bad_token(tmp_path):
    good = mint(tmp_path / "dev", "alice")
    anonymous, known, bad, elsewhere = gate(tmp_path, [
        routed("feed", extra=[["x-authenticated-uid", "mallory"]]), routed("feed", good),
        routed("feed", good[:-4] + "AAAA"), routed("other")])
    assert "status" not in anonymous and "auth" not in anonymous["annotations"]
    assert ["x-authenticated-uid", "mallory"] not in anonymous["headers"], "a spoofed identity is still removed"
    assert "status" not in known and known["annotations"]["auth"] == {"uid": "alice"}
    assert ["x-authenticated-uid", "alice"] in known["headers"]
    assert bad["status"] == 401 and json.loads(bad["body"])["error"] == "invalid_token"
    assert elsewhere["status"] == 401, "other routes still need a token"


def test_required_claims_pass_or_403_naming_the_rule_never_the_value(tmp_path):
    dev = tmp_path / "dev"
    admin = mint(dev, "root", 'roles=["admin","ops"]', "email_verified=true")
    user = mint(dev, "eve", 'roles=["top-secret-role"]', "email_verified=true")
    unverified = mint(dev, "root2", 'roles=["admin"]', "email_verified=false")
    google = mint(dev, "g", 'firebase={"sign_in_provider":"google.com"}')
    anonymous = mint(dev, "a", 'firebase={"sign_in_provider":"anonymous"}')
    out = gate(tmp_path, [routed("admin", admin), routed("admin", user), routed("admin", unverified),
                          routed("account", google), routed("account", anonymous)])
    assert "status" not in out[0] and out[0]["annotations"]["auth"] == {"uid": "root"}
    assert out[1]["status"] == 403
    assert json.loads(out[1]["body"]) == {"error": "forbidden", "message": "this route requires roles contains admin"}
    assert "top-secret-role" not in json.dumps(out[1])
    assert json.loads(out[2]["body"])["message"] == "this route requires email_verified=true"
    assert "status" not in out[3]
    assert out[4]["status"] == 403 and "anonymous" not in out[4]["body"]
    assert "sign_in_provider in {password, google.com}" in json.loads(out[4]["body"])["message"]


def test_a_bad_rules_file_stops_verify_jwt_with_file_line(tmp_path):
    rules = tmp_path / "access"
    rules.write_text("feed optional\nadmin require roles\n")
    p = subprocess.run([binary("verify-jwt"), "--dev-keys", str(tmp_path / "dev"), "--access", str(rules)],
                       capture_output=True, input=b"", timeout=10)
    assert p.returncode == 2
    assert f"{rules}:2: unknown rule 'roles'" in p.stderr.decode()
