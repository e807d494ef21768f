"""chain as a real process: the same records out as the pipeline of separate filters it
replaces (routing, CORS, limits, tokens, access rules, forwarding, the KV read, errors at
every stage, malformed lines), its checks at start, and log lines named by the filter."""
import json
import os
import subprocess

from conftest import binary, request
from test_forward import echo_backend

ROUTES = """\
GET,HEAD  /healthz           healthz       respond 200 {"status":"ok"}
GET       /v1/subscription   subscription
GET       /v1/admin          admin
POST      /v1/webhooks/stripe stripe-webhook
*         /orders/*          orders
GET       /down              down
GONE      /v1/old            removed=2025-01-01  replacement=/v1/subscription
"""
CORS = "*  origins=https://app.test methods=GET,POST headers=authorization credentials=true max-age=600\n"
LIMITS = "*  ip  3/min  burst=3\nsubscription  uid  2/min  burst=2\n"
ACCESS = "admin  require roles contains admin\n"


def setup(tmp_path, backend_url):
    files = {"routes": ROUTES, "cors": CORS, "limits": LIMITS, "access": ACCESS,
             "upstreams": f"orders {backend_url} strip=/orders\ndown http://127.0.0.1:1 connect-timeout=200\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    dev = tmp_path / "dev"
    tokens = {}
    for uid, claims in [("alice", []), ("root", ['roles=["admin"]']), ("bob", [])]:
        args = [binary("sign-jwt"), "dev", "--uid", uid, "--dev-keys", str(dev)]
        for c in claims:
            args += ["--claim-json", c]
        tokens[uid] = subprocess.run(args, capture_output=True, check=True, timeout=10).stdout.decode().strip()
    return tokens


def filters(tmp_path):
    """The four filters with their options, as pipelines/connection writes them."""
    return [["route", "--table", str(tmp_path / "routes"), "--cors", str(tmp_path / "cors"),
             "--limits", str(tmp_path / "limits")],
            ["verify-jwt", "--limits", str(tmp_path / "limits"), "--dev-keys", str(tmp_path / "dev"),
             "--access", str(tmp_path / "access")],
            ["forward", "--upstreams", str(tmp_path / "upstreams")],
            ["kv", "serve", "--route", "subscription"]]


def environment(tmp_path, data):
    data.mkdir()
    kv = data / "kv"
    env = dict(os.environ, EDGEPIPE_DATA=str(data), EDGEPIPE_KV=str(kv), EDGEPIPE_JWT_PUBLIC_ROUTES="healthz,stripe-webhook")
    state = {"uid": "alice", "status": "active", "plan": "pro", "current_period_end": 4102444800, "trial_end": None,
             "cancel_at_period_end": False, "customer": "cus_a", "subscription": "sub_a", "updated": 100,
             "last_event_id": "evt_1"}
    subprocess.run([binary("kv"), "put", "sub/alice", json.dumps(state)], env=env, check=True,
                   capture_output=True, timeout=10)
    return env


def records(tokens):
    def req(i, method, path, headers=(), body="", **extra):
        h = [["host", "gw.test"], *[[k, v] for k, v in headers]]
        return request(id=str(i), method=method, path=path, headers=h, body=body, **{"remote": f"10.0.1.{i}", **extra})
    bearer = lambda uid: ("authorization", f"Bearer {tokens[uid]}")
    rs = [
        req(1, "GET", "/healthz"),
        req(2, "OPTIONS", "/v1/subscription", [("origin", "https://app.test"), ("access-control-request-method", "GET")]),
        req(3, "OPTIONS", "/v1/subscription", [("origin", "https://evil.test"), ("access-control-request-method", "GET")]),
        req(4, "GET", "/v1/subscription", [bearer("alice"), ("origin", "https://app.test")]),
        req(5, "GET", "/v1/subscription", [("origin", "https://app.test")]),
        req(6, "GET", "/v1/subscription", [("authorization", "Bearer " + tokens["alice"][:-4] + "AAAA")]),
        req(7, "GET", "/v1/admin", [bearer("bob")]),
        req(8, "GET", "/v1/admin", [bearer("root")]),
        req(9, "GET", "/nowhere"),
        req(10, "DELETE", "/v1/subscription", [bearer("alice")]),
        req(11, "GET", "/v1/old"),
        req(12, "POST", "/orders/abc", [bearer("alice"), ("x-authenticated-uid", "mallory")], body="{}"),
        req(13, "GET", "/down", [bearer("alice")]),
        req(14, "POST", "/v1/webhooks/stripe", [("stripe-signature", "t=1,v1=00")], body="{}"),
        # One client and one user: the third is over bob's uid burst of 2 (verify-jwt), the
        # fourth over the address's ip burst of 3 (route).
        req(15, "GET", "/v1/subscription", [bearer("bob")], remote="10.0.0.8"),
        req(16, "GET", "/v1/subscription", [bearer("bob")], remote="10.0.0.8"),
        req(17, "GET", "/v1/subscription", [bearer("bob")], remote="10.0.0.8"),
        req(18, "GET", "/v1/subscription", [bearer("bob")], remote="10.0.0.8"),
        {"id": "19", "status": 200, "headers": [], "body": "made upstream"},
    ]
    lines = [json.dumps(r, separators=(",", ":")).encode() for r in rs]
    return lines + [b"{not json", b'{"id":"21","method":"GET"}']


def comparable(line):
    """A record without what a clock decides: the upstream's time and Date."""
    record = json.loads(line)
    record.get("annotations", {}).get("upstream", {}).pop("ms", None)
    if "headers" in record:
        record["headers"] = [h for h in record["headers"] if h[0] != "date"]
    return record


def run(args, lines, env):
    p = subprocess.run(args, input=b"\n".join(lines) + b"\n", capture_output=True, timeout=30, env=env)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout.splitlines(), p.stderr.decode(errors="replace")


def test_chain_gives_the_records_the_separate_filters_give(tmp_path):
    backend = echo_backend()
    try:
        tokens = setup(tmp_path, backend.url)
        lines = records(tokens)
        fs = filters(tmp_path)
        shell = " | ".join(" ".join(["'" + binary(f[0]) + "'"] + ["'" + a + "'" for a in f[1:]]) for f in fs)
        separate, _ = run(["sh", "-c", shell], lines, environment(tmp_path, tmp_path / "separate"))
        chained_args = [binary("chain")]
        for i, f in enumerate(fs):
            chained_args += (["|"] if i else []) + f
        chained, _ = run(chained_args, lines, environment(tmp_path, tmp_path / "chained"))
    finally:
        backend.stop()
    assert len(chained) == len(separate) == len(lines), "one line out for each line in, in order"
    assert [comparable(l) for l in chained] == [comparable(l) for l in separate]
    out = [comparable(l) for l in chained]
    # The records cover every stage's answers, so the comparison means something.
    statuses = [r.get("status") for r in out]
    assert statuses[:11] == [200, 204, 403, 200, 401, 401, 403, None, 404, 405, 410]
    assert out[7]["annotations"]["auth"]["uid"] == "root", "passed the access rule, no stage answered it"
    assert out[11]["status"] == 200 and out[11]["annotations"]["upstream"]["name"] == "orders"
    assert json.loads(out[12]["body"])["error"] == "upstream_unavailable"
    assert "status" not in out[13], "the webhook passes on to apply-webhook"
    assert statuses[14:18] == [200, 200, 429, 429]
    policy = [dict(map(tuple, r["headers"]))["ratelimit-policy"] for r in out[16:18]]
    assert policy == ['"subscription/uid";q=2;w=60', '"*/ip";q=3;w=60']
    assert out[18]["body"] == "made upstream"
    assert statuses[19:] == [400, 400]


def test_chain_checks_every_filters_files_at_start(tmp_path):
    setup(tmp_path, "http://127.0.0.1:9")
    args = [binary("chain")]
    for i, f in enumerate(filters(tmp_path)):
        args += (["|"] if i else []) + f
    env = dict(os.environ, EDGEPIPE_DATA=str(tmp_path))
    p = subprocess.run(args + ["--check"], capture_output=True, timeout=10, env=env)
    assert p.returncode == 0, p.stderr
    (tmp_path / "upstreams").write_text("orders ftp://x\n")
    p = subprocess.run(args, capture_output=True, timeout=10, input=b"", env=env)
    assert p.returncode == 2
    assert f"forward: {tmp_path / 'upstreams'}:1: 'ftp://x' is not an upstream URL" in p.stderr.decode()


def test_chain_refuses_an_unknown_filter_or_an_empty_one(tmp_path):
    for args, reason in [(["route", "|", "apply-webhook"], "'apply-webhook' is not a filter chain runs"),
                         (["route", "|", "http-encode"], "http-encode can only be the last filter of a chain that starts"),
                         (["route", "|", "http-decode"], "http-decode can only be the first filter"),
                         (["route", "|", "|", "kv", "serve"], "an empty filter"),
                         ([], "usage: chain")]:
        p = subprocess.run([binary("chain"), *args], capture_output=True, timeout=10, input=b"")
        assert p.returncode == 2 and reason in p.stderr.decode(), (args, p.stderr)
    p = subprocess.run([binary("chain"), "--help"], capture_output=True, timeout=10)
    assert p.returncode == 0 and b"usage: chain" in p.stdout


def test_each_log_line_names_the_filter_that_wrote_it(tmp_path):
    tokens = setup(tmp_path, "http://127.0.0.1:9")
    args = [binary("chain")]
    for i, f in enumerate(filters(tmp_path)):
        args += (["|"] if i else []) + f
    down = request(id="1", path="/down", headers=[["host", "h"], ["authorization", f"Bearer {tokens['alice']}"]])
    _, err = run(args, [json.dumps(down).encode(), b"{not json"], environment(tmp_path, tmp_path / "d"))
    lines = err.splitlines()
    assert any(l.startswith("forward: ") for l in lines), err
    assert any(l.startswith("chain: ") and "malformed" in l for l in lines), err


RAW = [
    b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"OPTIONS /v1/subscription HTTP/1.1\r\nHost: gw\r\nOrigin: https://app.test\r\nAccess-Control-Request-Method: GET\r\n\r\n",
    b"GET /v1/subscription HTTP/1.1\r\nHost: gw\r\nOrigin: https://app.test\r\nAuthorization: Bearer %(alice)s\r\n\r\n",
    b"GET /v1/subscription HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/admin HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %(bob)s\r\n\r\n",
    b"HEAD /healthz HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"POST /orders/abc?x=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %(alice)s\r\nContent-Length: 2\r\n\r\n{}",
    b"DELETE /v1/subscription HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/old HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /nowhere HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n",   # after the close: never answered
]


def serve_socket(args, requests, env):
    """Runs a pipeline whose stdin and stdout are one end of a socket pair, as a launcher
    does; sends the requests pipelined, then half-closes; returns every byte answered."""
    import socket
    ours, theirs = socket.socketpair()
    with ours:
        p = subprocess.Popen(args, stdin=theirs, stdout=theirs, stderr=subprocess.PIPE, env=env)
        theirs.close()
        ours.sendall(b"".join(requests))
        ours.shutdown(socket.SHUT_WR)
        ours.settimeout(30)
        data = b""
        while chunk := ours.recv(65536):
            data += chunk
        p.wait(timeout=30)
    return data


def responses(data):
    """The responses, without what a clock or a random id decides."""
    heads = []
    for part in data.split(b"HTTP/1.1 ")[1:]:
        lines = [l for l in part.split(b"\r\n") if not l.lower().startswith((b"date:", b"x-request-id:"))]
        heads.append(b"\r\n".join(lines))
    return heads


def test_a_whole_pipeline_in_one_chain_answers_as_the_separate_processes(tmp_path):
    backend = echo_backend()
    try:
        tokens = setup(tmp_path, backend.url)
        requests = [r % {b"alice": tokens["alice"].encode(), b"bob": tokens["bob"].encode()} for r in RAW]
        fs = [["http-decode"], *filters(tmp_path), ["http-encode"]]
        shell = " | ".join(" ".join(["'" + binary(f[0]) + "'"] + ["'" + a + "'" for a in f[1:]]) for f in fs)
        chained_args = [binary("chain")]
        for i, f in enumerate(fs):
            chained_args += (["|"] if i else []) + f
        answers = {}
        for name, args in [("separate", ["sh", "-c", shell]), ("chained", chained_args)]:
            env = environment(tmp_path, tmp_path / name)
            env.update(EDGEPIPE_ACCESS_LOG=str(tmp_path / f"{name}.log"), EDGEPIPE_LINGER_MS="0")
            answers[name] = serve_socket(args, requests, env)
    finally:
        backend.stop()
    chained, separate = responses(answers["chained"]), responses(answers["separate"])
    assert chained == separate
    statuses = [int(r.split(b" ", 1)[0]) for r in chained]
    assert statuses == [200, 204, 200, 401, 403, 200, 200, 405, 410, 404], "the close is the last answer"
    assert [r["method"] for r in backend.rec.requests] == ["POST", "POST"], "forwarded once in each layout"
    # The encoder's access log, one line per response, in both layouts.
    logs = {n: [json.loads(l) for l in (tmp_path / f"{n}.log").read_text().splitlines()] for n in answers}
    assert [l["status"] for l in logs["chained"]] == [l["status"] for l in logs["separate"]] == statuses


def test_a_tee_stage_appends_each_record_as_it_reaches_that_point(tmp_path):
    tokens = setup(tmp_path, "http://127.0.0.1:9")
    seen = tmp_path / "seen.jsonl"
    fs = filters(tmp_path)
    args = [binary("chain"), *fs[0], "|", "tee", str(seen), "|", *fs[1]]
    lines = [json.dumps(request(id="1", path="/v1/subscription",
                                headers=[["host", "h"], ["authorization", f"Bearer {tokens['alice']}"]])).encode(),
             json.dumps(request(id="2", path="/nowhere")).encode()]
    out, _ = run(args, lines, environment(tmp_path, tmp_path / "d"))
    teed = [json.loads(l) for l in seen.read_text().splitlines()]
    assert [r["id"] for r in teed] == ["1", "2"], "every record, answered or not"
    assert teed[0]["annotations"]["route"]["name"] == "subscription" and "auth" not in teed[0]["annotations"]
    assert teed[1]["status"] == 404
    assert json.loads(out[0])["annotations"]["auth"]["uid"] == "alice"
