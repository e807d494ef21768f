"""The production front recipes of docs/deployment.md, tried for real: pipelines/front runs
nginx or HAProxy (config from pipelines/nginx or pipelines/haproxy, self-signed TLS) on
loopback ports in front of pipelines/serve, and real clients talk to it over HTTP and HTTPS.

To see what the filters see, the service runs from a private binary directory where
`http-decode` is a wrapper that logs each start with its pipeline kind (one start = one
pipeline = one upstream connection) and `route` a wrapper that copies the records it receives (so `remote` is
checked as a filter reads it). A proxy that is not installed is skipped, naming its package."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest
import stripe

from conftest import BIN, PIPELINES, binary, free_port, wait_for_port, stop_group

TIMEOUT = float(os.environ.get("EDGEPIPE_TEST_TIMEOUT", "10"))
PROXIES = [pytest.param("nginx", id="nginx"), pytest.param("haproxy", id="haproxy")]


def need(program):
    if shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        pytest.skip(f"{program} is not installed (apt-get install -y {program})")


class RecordingBin:
    """A copy of the binary directory whose pipelines report their starts and the records
    route receives: http-decode and route wrapped (EDGEPIPE_CHAIN=0), or chain run with a
    tee stage after http-decode."""

    def __init__(self, tmp_path, name="bin", tag=None):
        self.path = tmp_path / name
        self.path.mkdir(parents=True)
        self.starts = tmp_path / f"{tag or 'bin'}-starts.log"
        self.records = tmp_path / f"{tag or 'bin'}-records.jsonl"
        self.starts.touch()
        self.records.touch()
        for program in ("http-decode", "route", "chain", "http-encode"):
            binary(program)
        for entry in BIN.iterdir():
            if entry.is_file() and os.access(entry, os.X_OK):
                (self.path / entry.name).symlink_to(entry)
        prefix = f"{tag} " if tag else ""
        # `http-decode --incoming-cpu` (pipelines/connection's pinning) and `http-decode --check`
        # (pipelines/serve's start-up check of the limits) are not pipeline starts.
        self._wrap("http-decode", f'case "$1" in --incoming-cpu|--check) ;; *) echo "{prefix}$$ $EDGEPIPE_PIPELINE" >> {self.starts} ;; esac\n'
                                  f'exec {BIN}/http-decode "$@"\n')
        # tee writes each read at once (coreutils tee does not buffer), so records arrive in time.
        self._wrap("route", f'tee -a {self.records} | exec {BIN}/route "$@"\n')
        # In a chain the records never cross a pipe: its own tee stage writes them.
        self._wrap("chain", f'if [ "$1" = http-decode ]; then\n'
                            f'  echo "{prefix}$$ $EDGEPIPE_PIPELINE" >> {self.starts}; shift\n'
                            f'  exec {BIN}/chain http-decode "|" tee {self.records} "$@"\n'
                            f'fi\nexec {BIN}/chain "$@"\n')

    def _wrap(self, name, body):
        target = self.path / name
        target.unlink()
        target.write_text("#!/bin/sh\n" + body)
        target.chmod(0o755)

    def reset(self):
        """Forgets start-up: pipelines/front looks the service's port up with ss, but without
        ss it connects to it, which starts a pipeline."""
        self.starts.write_text("")
        self.records.write_text("")

    def start_pids(self):
        return [int(line.split()[-2]) for line in self.start_lines()]

    def start_kinds(self):
        """The kind (full, read, write) of each pipeline started, in order."""
        return [line.split()[-1] for line in self.start_lines()]

    def start_lines(self):
        return self.starts.read_text().splitlines()

    def seen(self, count):
        """The records route received, once there are `count` (tee writes the file just after
        passing a record on, so the answer can arrive first)."""
        deadline = time.time() + TIMEOUT
        while True:
            records = [json.loads(line) for line in self.records.read_text().splitlines() if line.strip()]
            if len(records) >= count or time.time() > deadline:
                return records
            time.sleep(0.01)


class Front:
    """pipelines/front with one proxy on free loopback ports, in its own session."""

    def __init__(self, tmp_path, proxy, bin_dir, workers=1, service=True, pipelines="split", extra=(),
                 health_checks=False, extra_env=None):
        need(proxy)
        self.port, self.tls_port, self.upstream_port = free_port(), free_port(), free_port()
        self.write_upstream_port = free_port()
        self.data = tmp_path / "data"
        env = dict(os.environ)
        env.pop("EDGEPIPE_TRUSTED_PROXIES", None)
        env.update({"EDGEPIPE_BIN": str(bin_dir), "EDGEPIPE_DATA": str(self.data), **(extra_env or {})})
        self.log_path = tmp_path / "front.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(PIPELINES / "front"), "--proxy", proxy, "--port", str(self.port), "--tls-port", str(self.tls_port),
             "--upstream-port", str(self.upstream_port), "--write-upstream-port", str(self.write_upstream_port),
             "--pipelines", pipelines, "--workers", str(workers), "--keepalive", "4",
             *([] if service else ["--no-service"]),
             # HAProxy's /readyz checks start pipelines of their own, which most tests count.
             *([] if health_checks else ["--no-health-checks"]), *extra],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            # Only the proxy's ports: pipelines/front starts the proxy once the service listens,
            # and a test connection to the service would start a pipeline the tests count.
            for port in (self.port, self.tls_port):
                wait_for_port(port, timeout=TIMEOUT + 10)   # the first run generates a key
            self.wait_for_tls(deadline=time.time() + TIMEOUT)
        except AssertionError:
            self.stop()
            raise AssertionError(f"{proxy} front did not listen: {self.log_path.read_text(errors='replace')}")

    def wait_for_tls(self, deadline):
        # A listening port is not yet a TLS endpoint: on a fresh machine the first
        # handshake was seen reset once. Ready means one handshake completes.
        context = ssl._create_unverified_context()
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.tls_port), timeout=2) as raw:
                    with context.wrap_socket(raw, server_hostname="localhost"):
                        return
            except (OSError, ssl.SSLError):
                if time.time() > deadline:
                    raise AssertionError("the front's TLS port never completed a handshake")
                time.sleep(0.1)

    def connection(self, tls=False):
        if tls:
            return http.client.HTTPSConnection("127.0.0.1", self.tls_port, timeout=TIMEOUT,
                                               context=ssl._create_unverified_context())
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

    def diagnostics(self):
        """The launcher's output and the proxy's error log, for assertion messages."""
        text = self.log_path.read_text(errors="replace")
        error_log = self.data / "nginx" / "error.log"
        if error_log.exists():
            text += error_log.read_text(errors="replace")
        return text

    def stop(self):
        stop_group(self.proc)
        self.log.close()


def exchange(conn, path, headers=None, method="GET", body=None):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read()


def get(front, path, tls=False, headers=None):
    conn = front.connection(tls)
    try:
        return exchange(conn, path, headers)
    finally:
        conn.close()


def post_checkout(front, uid, tls=False):
    """A checkout.session.completed for uid, signed by Stripe's own library with the
    service's secret, posted through the front."""
    payload = json.dumps({
        "id": f"evt_{uid}", "object": "event", "type": "checkout.session.completed", "created": int(time.time()),
        "data": {"object": {"id": f"cs_{uid}", "object": "checkout.session", "mode": "subscription",
                            "client_reference_id": uid, "customer": f"cus_{uid}", "subscription": f"sub_{uid}",
                            "payment_status": "paid", "status": "complete"}}})
    secret = (front.data / "stripe-webhook-secrets").read_text().split()[0]
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=int(time.time()))
    conn = front.connection(tls)
    try:
        return exchange(conn, "/v1/webhooks/stripe", {"Stripe-Signature": header, "Content-Type": "application/json"},
                        method="POST", body=payload)
    finally:
        conn.close()


def read_subscription(front, uid, tls=False):
    token = subprocess.run([str(BIN / "sign-jwt"), "dev", "--uid", uid],
                           env={**os.environ, "EDGEPIPE_DATA": str(front.data)},
                           capture_output=True, text=True, check=True).stdout.strip()
    status, body = get(front, "/v1/subscription", tls, {"Authorization": f"Bearer {token}"})
    return status, json.loads(body)


@pytest.fixture
def recording(tmp_path):
    return RecordingBin(tmp_path)


@pytest.fixture(params=PROXIES)
def front(request, tmp_path, recording):
    f = Front(tmp_path, request.param, recording.path)
    recording.reset()
    yield f
    f.stop()


def test_front_serves_healthz_and_404_over_http(front):
    status, body = get(front, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, body = get(front, "/no/such/path")
    assert status == 404
    assert json.loads(body)["error"] == "not_found"


def test_front_terminates_tls_with_its_self_signed_certificate(front):
    status, body = get(front, "/healthz", tls=True)
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, body = get(front, "/no/such/path", tls=True)
    assert (status, json.loads(body)["error"]) == (404, "not_found")
    out = subprocess.run(["curl", "-sk", "-i", f"https://127.0.0.1:{front.tls_port}/healthz"],
                         capture_output=True, timeout=TIMEOUT)
    assert out.stdout.startswith(b"HTTP/1.1 200")
    assert out.stdout.endswith(b'{"status":"ok"}')
    # Without -k the certificate is refused: it is self-signed, not trusted by the system.
    strict = subprocess.run(["curl", "-s", "-o", "/dev/null", f"https://127.0.0.1:{front.tls_port}/healthz"],
                            timeout=TIMEOUT)
    assert strict.returncode == 60


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_front_serves_several_requests_on_one_client_connection(front, recording, tls):
    conn = front.connection(tls)
    try:
        statuses = [exchange(conn, path)[0] for path in ["/healthz", "/nope", "/v1/profile", "/healthz", "/healthz"]]
    finally:
        conn.close()
    assert statuses == [200, 404, 410, 200, 200]
    assert [r["path"] for r in recording.seen(5)] == ["/healthz", "/nope", "/v1/profile", "/healthz", "/healthz"]
    assert len(recording.start_pids()) == 1


def test_front_sends_webhooks_to_write_pipelines_and_the_rest_to_read_pipelines(front, recording):
    status, body = read_subscription(front, "carol")
    assert (status, body["status"]) == (200, "none")
    assert post_checkout(front, "carol") == (200, b'{"received":true}')
    status, body = read_subscription(front, "carol", tls=True)
    assert (status, body["status"]) == (200, "active")
    assert get(front, "/healthz")[0] == 200
    # One read pipeline served the three reads; the webhook started the one write pipeline.
    assert recording.start_kinds() == ["read", "write"], front.diagnostics()
    assert [r["path"] for r in recording.seen(4)] == \
        ["/v1/subscription", "/v1/webhooks/stripe", "/v1/subscription", "/healthz"]
    assert '"evt_carol"' in (front.data / "audit" / "audit.log").read_text()


def test_read_pipelines_answer_a_webhook_sent_to_them_with_a_json_502(tmp_path, recording):
    """Only a misconfigured proxy sends a webhook to the read service; it is refused with a
    reason, never dropped and never half-applied."""
    f = Front(tmp_path, "nginx", recording.path)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", f.upstream_port, timeout=TIMEOUT)
        try:
            status, body = exchange(conn, "/v1/webhooks/stripe", {"Stripe-Signature": "t=1,v1=00"},
                                    method="POST", body="{}")
        finally:
            conn.close()
    finally:
        f.stop()
    assert status == 502
    assert json.loads(body) == {"error": "no_response", "message": "no filter of this pipeline answers route stripe-webhook"}
    assert not (f.data / "audit" / "audit.log").exists() or "stripe" not in (f.data / "audit" / "audit.log").read_text()


@pytest.mark.parametrize("proxy", PROXIES)
def test_front_with_one_pipeline_kind_serves_everything_from_full_pipelines(tmp_path, recording, proxy):
    f = Front(tmp_path, proxy, recording.path, pipelines="one")
    recording.reset()
    try:
        assert post_checkout(f, "dave") == (200, b'{"received":true}')
        status, body = read_subscription(f, "dave")
        assert (status, body["status"]) == (200, "active")
    finally:
        f.stop()
    # Both requests on full pipelines of the one service (nginx keeps its two pools apart).
    assert set(recording.start_kinds()) == {"full"} and 1 <= len(recording.start_kinds()) <= 2
    assert "write pipelines" not in f.log_path.read_text()


def test_serve_refuses_an_unknown_pipeline_kind(tmp_path):
    out = subprocess.run([str(PIPELINES / "serve"), "--pipeline", "writes", "--port", str(free_port())],
                         env={**os.environ, "EDGEPIPE_BIN": str(BIN), "EDGEPIPE_DATA": str(tmp_path / "data")},
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == "serve: unknown pipeline writes (full, read, write or auth)"


def test_the_proxy_configs_send_the_route_tables_webhook_path_to_write_pipelines():
    """The proxies route by path, so their webhook path must be the route table's."""
    [path] = [line.split()[1] for line in (PIPELINES / "routes").read_text().splitlines()
              if not line.startswith("#") and line.split()[2:3] == ["stripe-webhook"]]
    nginx = (PIPELINES / "nginx" / "edgepipe.conf").read_text()
    assert f"location = {path} {{\n            proxy_pass http://edgepipe_write;" in nginx
    haproxy = (PIPELINES / "haproxy" / "edgepipe.cfg").read_text()
    assert f"use_backend edgepipe_write if {{ path {path} }}" in haproxy


def pipeline_cpus(first_stage_pid):
    """Each stage's allowed CPUs, for the pipeline whose first stage has this pid: the
    stages are the children of the connection's shell, or a chain that replaced the shell
    (a read pipeline is one process)."""
    shell = int(open(f"/proc/{first_stage_pid}/stat").read().rsplit(")", 1)[1].split()[1])
    if open(f"/proc/{shell}/comm").read().strip() in ("sh", "dash", "bash"):
        stages = [int(p) for p in open(f"/proc/{shell}/task/{shell}/children").read().split()]
    else:
        stages = [first_stage_pid]
    cpus = {}
    for pid in stages:
        status = dict(line.split(":\t", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":\t" in line)
        cpus[status["Name"]] = status["Cpus_allowed_list"].strip()
    return cpus


def online_cpus():
    online = open("/sys/devices/system/cpu/online").read().strip()
    return int(online[2:]) + 1 if re.fullmatch(r"0-\d+", online) else 1


@pytest.mark.parametrize("pin", [True, False], ids=["pinned", "no-pin"])
def test_front_keeps_each_pipeline_on_one_cpu_unless_told_not_to(tmp_path, recording, pin):
    if online_cpus() < 2:
        pytest.skip("one CPU online: nothing to pin")
    f = Front(tmp_path, "nginx", recording.path, extra=[] if pin else ["--no-pin"])
    recording.reset()
    try:
        assert get(f, "/healthz")[0] == 200
        [pid] = recording.start_pids()
        cpus = pipeline_cpus(pid)
    finally:
        f.stop()
    assert set(cpus) == {"chain"}, "a read pipeline is one process"
    everything = f"0-{online_cpus() - 1}"
    if pin:
        [cpu] = set(cpus.values())
        assert cpu != everything and int(cpu) < online_cpus(), cpus
    else:
        assert set(cpus.values()) == {everything}, cpus


@pytest.mark.parametrize("launcher", ["socat", "tcpserver"])
def test_each_pipeline_runs_on_the_cpu_its_connection_came_in_on(tmp_path, recording, launcher):
    """On loopback the connection comes in on the CPU its opener ran on: a client pinned to
    CPU c gets a pipeline pinned to CPU c (behind nginx, the opener is a pinned worker)."""
    if online_cpus() < 2:
        pytest.skip("one CPU online: nothing to pin")
    if launcher == "tcpserver":
        need("tcpserver")
    f = Front(tmp_path, "nginx", recording.path, extra=["--launcher", launcher])
    recording.reset()
    conns, seen = [], []
    mask = os.sched_getaffinity(0)
    try:
        for cpu in [0, 1, 1, 0]:
            os.sched_setaffinity(0, {cpu})
            try:
                conn = http.client.HTTPConnection("127.0.0.1", f.upstream_port, timeout=TIMEOUT)
                conn.connect()
            finally:
                os.sched_setaffinity(0, mask)
            assert exchange(conn, "/healthz")[0] == 200   # its pipeline started and answered
            conns.append(conn)
            seen.append((cpu, pipeline_cpus(recording.start_pids()[-1])))
        assert len(recording.start_pids()) == 4
    finally:
        for conn in conns:
            conn.close()
        f.stop()
    for cpu, cpus in seen:
        assert set(cpus.values()) == {str(cpu)}, (cpu, cpus)


def test_http_decode_names_the_cpu_a_connection_came_in_on():
    server = socket.create_server(("127.0.0.1", 0))
    mask = os.sched_getaffinity(0)
    try:
        for cpu in sorted(mask)[:2]:
            os.sched_setaffinity(0, {cpu})
            try:
                client = socket.create_connection(server.getsockname())
            finally:
                os.sched_setaffinity(0, mask)
            accepted, _ = server.accept()
            with client, accepted:
                out = subprocess.run([binary("http-decode"), "--incoming-cpu"], stdin=accepted,
                                     capture_output=True, text=True, timeout=TIMEOUT)
            assert (out.returncode, out.stdout) == (0, f"{cpu}\n")
    finally:
        server.close()
    out = subprocess.run([binary("http-decode"), "--incoming-cpu"], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == "http-decode: --incoming-cpu: standard input is not a socket that saw packets\n"


@pytest.mark.parametrize("proxy", PROXIES)
@pytest.mark.parametrize("pin", [True, False], ids=["pinned", "no-pin"])
def test_front_pins_the_proxy_workers_only_with_pinned_pipelines(tmp_path, recording, proxy, pin):
    if online_cpus() < 2:
        pytest.skip("one CPU online: nothing to pin")
    f = Front(tmp_path, proxy, recording.path, workers=2, extra=[] if pin else ["--no-pin"])
    f.stop()
    if proxy == "nginx":
        conf, line = (f.data / "nginx" / "nginx.conf").read_text(), "worker_cpu_affinity auto;"
    else:
        conf, line = (f.data / "haproxy" / "haproxy.cfg").read_text(), "cpu-map auto:1/1-2 0-1"
    assert (line in conf) == pin


def test_front_reuses_upstream_pipelines_across_client_connections(front, recording):
    for _ in range(20):
        status, _ = get(front, "/healthz")   # a new client connection each time
        assert status == 200
    starts = recording.start_pids()
    assert 1 <= len(starts) < 20
    # One worker keeping its idle upstream connection: in practice a single pipeline.
    assert len(starts) <= 2, f"{len(starts)} pipelines for 20 client connections"


def test_front_passes_the_client_address_not_a_spoofed_one(front, recording):
    spoof = {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6"}
    assert get(front, "/healthz", headers=spoof)[0] == 200
    assert get(front, "/nope", tls=True, headers=spoof)[0] == 404
    seen = recording.seen(2)
    assert [r["path"] for r in seen] == ["/healthz", "/nope"]
    for r, scheme in zip(seen, ["http", "https"]):
        assert r["remote"] == "127.0.0.1"
        values = lambda name: [v for n, v in r["headers"] if n == name]
        # The client's claim stays visible as a header, with the proxy's own entry after it.
        assert ",".join(values("x-forwarded-for")).replace(" ", "").split(",") == ["6.6.6.6", "127.0.0.1"]
        assert values("x-real-ip") == ["127.0.0.1"]
        assert values("x-forwarded-proto") == [scheme]


def test_front_serves_on_after_its_pipeline_dies(front, recording):
    assert get(front, "/healthz")[0] == 200
    pids = recording.start_pids()
    assert len(pids) == 1, f"pipelines started: {pids}"
    os.kill(pids[0], signal.SIGKILL)   # the idle upstream pipeline's first filter
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and os.path.exists(f"/proc/{pids[0]}"):
        time.sleep(0.02)
    # The proxy either saw the connection close or retries the request on a new one.
    statuses = [get(front, "/healthz")[0] for _ in range(3)]
    assert statuses == [200, 200, 200], front.diagnostics()
    assert len(recording.start_pids()) >= 2


def test_direct_client_cannot_claim_an_address(tmp_path, recording):
    """The service trusts only the proxy's own source address (127.0.0.2), so a client
    connecting to it directly, even from the same machine, is reported as itself."""
    f = Front(tmp_path, "nginx", recording.path)
    recording.reset()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", f.upstream_port, timeout=TIMEOUT)
        try:
            status, _ = exchange(conn, "/healthz", {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6"})
        finally:
            conn.close()
    finally:
        f.stop()
    assert status == 200
    [r] = recording.seen(1)
    assert r["remote"] == "127.0.0.1"
    assert ["x-forwarded-for", "6.6.6.6"] in r["headers"]


@pytest.mark.parametrize("proxy", PROXIES)
def test_front_config_has_the_keep_alive_settings(tmp_path, recording, proxy):
    f = Front(tmp_path, proxy, recording.path)
    f.stop()
    if proxy == "nginx":
        conf = (f.data / "nginx" / "nginx.conf").read_text()
        for line in ["keepalive 4;", "proxy_http_version 1.1;", 'proxy_set_header Connection "";',
                     "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                     "proxy_set_header X-Real-IP $remote_addr;", "proxy_bind 127.0.0.2;"]:
            assert line in conf
    else:
        conf = (f.data / "haproxy" / "haproxy.cfg").read_text()
        for line in ["http-reuse always", "option http-keep-alive", "option forwardfor",
                     "source 127.0.0.2", "pool-max-conn 4", "ssl crt "]:
            assert line in conf
    settings = "\n".join(l for l in conf.splitlines() if not l.lstrip().startswith("#"))
    assert not re.search(r"@[A-Z_]+@", settings), "a template field was left unfilled"


@pytest.mark.parametrize("proxy", PROXIES)
def test_front_answers_a_json_502_when_the_service_is_down(tmp_path, recording, proxy):
    f = Front(tmp_path, proxy, recording.path, service=False)   # nothing listens upstream
    try:
        conn = f.connection()
        try:
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            status, content_type, body = resp.status, resp.getheader("content-type"), resp.read()
        finally:
            conn.close()
    finally:
        f.stop()
    # nginx: the connection was refused (502); HAProxy: no server could take it (503).
    assert (status, json.loads(body)["error"]) == {"nginx": (502, "bad_gateway"), "haproxy": (503, "unavailable")}[proxy]
    assert content_type.startswith("application/json")
    assert "message" in json.loads(body)


def test_upgrade_by_switching_a_symlink_keeps_old_pipelines_and_starts_new_ones(tmp_path):
    """docs/deployment.md: binaries in releases/<version>, EDGEPIPE_BIN through a symlink;
    switching it changes what new connections run, while the pipeline nginx already holds
    goes on serving with the binaries it started with."""
    v1 = RecordingBin(tmp_path, "releases/v1", tag="v1")
    v2 = RecordingBin(tmp_path, "releases/v2", tag="v2")
    current = tmp_path / "current"
    current.symlink_to(v1.path)
    f = Front(tmp_path, "nginx", current)
    v1.reset()
    try:
        assert get(f, "/healthz")[0] == 200
        [old] = v1.start_lines()
        assert old.startswith("v1 ")
        # The switch is one rename: a connection starting meanwhile sees v1 or v2, never neither.
        (tmp_path / "current.new").symlink_to(v2.path)
        os.replace(tmp_path / "current.new", current)
        assert get(f, "/healthz")[0] == 200          # nginx reuses its pipeline: still v1
        assert v1.start_lines() == [old]
        direct = http.client.HTTPConnection("127.0.0.1", f.upstream_port, timeout=TIMEOUT)
        try:
            assert exchange(direct, "/healthz")[0] == 200   # a new connection: v2
        finally:
            direct.close()
        assert v2.start_lines()[-1].startswith("v2 ")
        assert get(f, "/nope")[0] == 404             # the old pipeline serves on
        assert v1.start_lines() == [old]
        assert os.path.exists(f"/proc/{old.split()[1]}")
    finally:
        f.stop()


def test_front_absorbs_a_flood_of_silent_connections_without_starting_pipelines(front, recording):
    # Issue 19 §6: the proxy holds a client connection in its event loop for almost nothing
    # and opens an upstream connection (a pipeline) only for a complete request head, so
    # 1000 connections that send nothing neither start pipelines nor delay anyone; the
    # proxy drops them at its header timeout (nginx client_header_timeout, HAProxy
    # timeout http-request: 10 s).
    silent = []
    try:
        for _ in range(1000):
            silent.append(socket.create_connection(("127.0.0.1", front.port), timeout=5))
        start = time.monotonic()
        status, body = get(front, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert time.monotonic() - start < 2
        assert len(recording.start_pids()) <= 2, "the silent connections started pipelines"
        probe = silent[0]
        probe.settimeout(20)
        start = time.monotonic()
        while probe.recv(4096):   # nginx closes silently, HAProxy may answer 408 first
            pass
        assert time.monotonic() - start < 15
    finally:
        for s in silent:
            s.close()


def test_haproxy_takes_a_pool_out_while_readyz_fails_and_back_when_it_passes(tmp_path):
    """The recipe's health check is /readyz: an upstream that stops accepting connections
    makes the pools unready, HAProxy stops sending them requests (its own 503), and puts
    them back once the upstream listens again."""
    port = free_port()
    upstreams = tmp_path / "upstreams"
    upstreams.write_text(f"orders http://127.0.0.1:{port}\n")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port)); listener.listen(64)
    front = Front(tmp_path, "haproxy", BIN, health_checks=True, extra_env={"EDGEPIPE_UPSTREAMS": str(upstreams)})

    def status_within(want, seconds):
        deadline = time.time() + seconds
        while True:
            status, _ = get(front, "/healthz")
            if status == want or time.time() > deadline:
                return status
            time.sleep(0.5)

    try:
        assert status_within(200, 15) == 200
        listener.close()
        assert status_within(503, 20) == 503, "two failed checks 5 s apart take the pool out"
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port)); listener.listen(64)
        assert status_within(200, 15) == 200, "one passing check brings it back"
    finally:
        front.stop()
        listener.close()


@pytest.mark.parametrize("proxy", ["nginx", "haproxy"])
def test_the_proxy_request_id_becomes_edgepipe_request_id_and_a_client_cannot_choose_it(tmp_path, proxy):
    front = Front(tmp_path, proxy, BIN)
    try:
        conn = front.connection()
        conn.request("GET", "/healthz", headers={"X-Request-Id": "chosen-by-client"})
        r = conn.getresponse(); r.read()
        conn.close()
        rid = r.getheader("x-request-id")
        assert r.status == 200 and rid and rid != "chosen-by-client"
        # nginx: 32 hex digits; HAProxy: a UUID. Either way the proxy's, not a fresh one.
        assert (len(rid) == 32 and int(rid, 16) >= 0) if proxy == "nginx" else (len(rid) == 36 and rid.count("-") == 4)
        log = front.data / "log" / "access.log"
        deadline = time.time() + 5
        while rid not in (log.read_text() if log.exists() else "") and time.time() < deadline:
            time.sleep(0.05)
        assert json.loads([l for l in log.read_text().splitlines() if rid in l][0])["request_id"] == rid
    finally:
        front.stop()
