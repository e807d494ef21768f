"""Each launch recipe of docs/launchers.md, tried for real: the launcher listens on a
loopback port and runs pipelines/connection per connection, and a real HTTP client asks
for /healthz (200 from route's fixed answer) and an unknown path (404). The recipe files
themselves (systemd units, inetd.conf) are what runs, with only their install paths,
port and user replaced. A launcher whose tool is not installed is skipped, saying so."""
import getpass
import http.client
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time

import pytest

from conftest import BIN, PIPELINES, ROOT, Service, binary, free_port, wait_for_port, stop_group

# Seconds: how long one HTTP exchange may take, and how long a connection beyond the
# limit is watched to show that it is kept waiting.
TIMEOUT = float(os.environ.get("EDGEPIPE_TEST_TIMEOUT", "10"))
HOLD = float(os.environ.get("EDGEPIPE_TEST_HOLD", "1.0"))

INSTALL = "/opt/edgepipe"          # the install path the shipped recipes use


def need(tool, package):
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        pytest.skip(f"{tool} is not installed (apt-get install -y {package})")
    return path


@pytest.fixture(autouse=True)
def pipeline_binaries():
    for name in ("http-decode", "route", "http-encode"):
        binary(name)


def localize(text, data):
    """A recipe's text with this checkout's paths and a private data directory."""
    return (text.replace(f"{INSTALL}/.build/release", str(BIN))
                .replace("/var/lib/edgepipe", str(data))
                .replace(INSTALL, str(ROOT)))


def get(port, path, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def assert_serves(port):
    status, headers, body = get(port, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers["content-type"] == "application/json"
    status, _, body = get(port, "/no/such/path")
    assert status == 404
    assert json.loads(body)["error"] == "not_found"


class Launcher:
    """A launcher process in its own session, so that stopping it ends its children too."""

    def __init__(self, argv, tmp_path, port, env=None):
        self.log_path = tmp_path / "launcher.log"
        self.log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(argv, env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            wait_for_port(port)
        except AssertionError:
            self.stop()
            raise AssertionError(f"{argv[0]} did not listen: {self.log_path.read_text(errors='replace')}")

    def stop(self):
        stop_group(self.proc)
        self.log.close()


def setup_data(tmp_path):
    """What an install does once for inetd and systemd: pipelines/setup-data."""
    data = tmp_path / "data"
    subprocess.run([str(PIPELINES / "setup-data")], check=True,
                   env=dict(os.environ, EDGEPIPE_DATA=str(data), EDGEPIPE_BIN=str(BIN)))
    assert (data / "stripe-webhook-secrets").exists() and (data / "dev-keys" / "jwks.json").exists()
    return data


def read_unit(path):
    """A systemd unit as {section: {key: [values]}}."""
    sections, current = {}, None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


# MARK: socat and tcpserver (pipelines/serve)

def test_socat_serves_healthz_and_404(tmp_path):
    need("socat", "socat")
    svc = Service(tmp_path)
    try:
        assert_serves(svc.port)
        out = subprocess.run(["curl", "-s", "-i", f"{svc.url}/healthz"], capture_output=True, timeout=TIMEOUT)
        assert out.stdout.startswith(b"HTTP/1.1 200")
        assert out.stdout.endswith(b'{"status":"ok"}')
    finally:
        svc.stop()


def test_tcpserver_serves_healthz_and_404(tmp_path):
    need("tcpserver", "ucspi-tcp")
    svc = Service(tmp_path, args=("--launcher", "tcpserver"))
    try:
        assert_serves(svc.port)
    finally:
        svc.stop()


def test_keep_alive_connection_is_served_in_order(tmp_path):
    need("socat", "socat")
    svc = Service(tmp_path)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=TIMEOUT)
        statuses = []
        for path in ["/healthz", "/nope", "/v1/profile", "/healthz"]:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
        conn.close()
        assert statuses == [200, 404, 410, 200]
    finally:
        svc.stop()


def send_request(sock, path="/healthz", close=False):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
                 .encode())


def read_response(sock):
    """One HTTP response from a raw socket: (status, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
    while len(rest) < length:
        chunk = sock.recv(4096)
        assert chunk, "connection closed inside a body"
        rest += chunk
    return int(head.split()[1]), rest[:length]


@pytest.mark.parametrize("launcher,tool,package", [("socat", "socat", "socat"), ("tcpserver", "tcpserver", "ucspi-tcp")])
def test_connection_limit_makes_the_excess_wait_then_recovers(tmp_path, launcher, tool, package):
    need(tool, package)
    svc = Service(tmp_path, args=("--launcher", launcher, "--max-connections", "2"))
    held, excess = [], None
    try:
        # Two keep-alive connections, each served once, then left open: both slots taken.
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", svc.port), timeout=TIMEOUT)
            send_request(s)
            assert read_response(s) == (200, b'{"status":"ok"}')
            held.append(s)
        # A third connection: the kernel completes the handshake (backlog), but no
        # pipeline runs for it, so its request gets no answer while the slots are taken.
        excess = socket.create_connection(("127.0.0.1", svc.port), timeout=TIMEOUT)
        send_request(excess, close=True)
        excess.settimeout(HOLD)
        with pytest.raises(socket.timeout):
            excess.recv(1)
        # The accepted connections are still served.
        send_request(held[1], "/nope")
        assert read_response(held[1])[0] == 404
        # Freeing a slot lets the waiting connection through.
        held.pop(0).close()
        excess.settimeout(TIMEOUT)
        assert read_response(excess) == (200, b'{"status":"ok"}')
        for s in held:
            s.close()
        held = []
        # And the service goes on as before.
        for _ in range(3):
            assert_serves(svc.port)
    finally:
        for s in held + ([excess] if excess else []):
            s.close()
        svc.stop()


# MARK: systemd socket activation

def test_systemd_units_ask_for_accept_and_a_connection_limit():
    sock = read_unit(PIPELINES / "systemd" / "edgepipe.socket")["Socket"]
    svc = read_unit(PIPELINES / "systemd" / "edgepipe@.service")["Service"]
    assert sock["Accept"] == ["yes"]
    assert int(sock["MaxConnections"][0]) > 0
    assert svc["StandardInput"] == ["socket"]
    assert svc["ExecStart"] == [f"{INSTALL}/pipelines/connection"]


def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    analyze = need("systemd-analyze", "systemd")
    units = []
    for name in ("edgepipe.socket", "edgepipe@.service"):
        text = localize((PIPELINES / "systemd" / name).read_text(), tmp_path / "data")
        # The service user exists only once installed (docs/launchers.md); root stands in.
        text = re.sub(r"(?m)^(User|Group)=edgepipe$", r"\1=root", text)
        (tmp_path / name).write_text(text)
        units.append(str(tmp_path / name))
    out = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stderr.decode().strip() == "", out.stderr.decode()


def test_systemd_socket_activation_serves_healthz_and_404(tmp_path):
    activate = need("systemd-socket-activate", "systemd")
    sock = read_unit(PIPELINES / "systemd" / "edgepipe.socket")["Socket"]
    svc = read_unit(PIPELINES / "systemd" / "edgepipe@.service")["Service"]
    data = setup_data(tmp_path)
    port = free_port()
    # systemd-socket-activate passes only the variables it is given, like a unit's
    # Environment= lines; --inetd puts the connection on stdin/stdout (StandardInput=socket).
    env_args = []
    for line in svc.get("Environment", []):
        for assignment in shlex.split(localize(line, data)):
            env_args += ["-E", assignment]
    argv = [activate, "--accept" if sock["Accept"] == ["yes"] else "", "--inetd", "-l", f"127.0.0.1:{port}",
            *env_args, *shlex.split(localize(svc["ExecStart"][0], data))]
    launcher = Launcher([a for a in argv if a], tmp_path, port)
    try:
        assert_serves(port)
        assert_serves(port)   # a second connection gets its own pipeline
    finally:
        launcher.stop()


# MARK: inetd

def test_inetd_serves_healthz_and_404(tmp_path):
    inetd = need("inetd", "openbsd-inetd")
    port = free_port()
    data = setup_data(tmp_path)
    lines = [l for l in (PIPELINES / "inetd.conf").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert len(lines) == 1
    line = localize(lines[0], data).replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    line = re.sub(r"\bedgepipe\b(?=\s+/)", getpass.getuser(), line, count=1)   # the user field
    conf = tmp_path / "inetd.conf"
    conf.write_text(line + "\n")
    # -i: stay in the foreground; -d: log each connection to the launcher log.
    launcher = Launcher([inetd, "-d", "-i", str(conf)], tmp_path, port)
    try:
        assert_serves(port)
        assert_serves(port)
    finally:
        launcher.stop()


# MARK: batch, no socket

def run_batch(args, tmp_path, stdin=None):
    env = dict(os.environ, EDGEPIPE_BIN=str(BIN), EDGEPIPE_DATA=str(tmp_path / "data"))
    out = subprocess.run([str(PIPELINES / "batch"), *args], input=stdin, capture_output=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


def parse_http_responses(data):
    responses = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"truncated response: {data!r}"
        length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
        responses.append((int(head.split()[1]), rest[:length]))
        data = rest[length:]
    return responses


RAW_REQUESTS = (b"GET /healthz HTTP/1.1\r\nHost: batch\r\n\r\n"
                b"GET /no/such/path HTTP/1.1\r\nHost: batch\r\n\r\n"
                b"POST /v1/profile HTTP/1.1\r\nHost: batch\r\nContent-Length: 2\r\n\r\n{}"
                b"GET /healthz HTTP/1.1\r\nHost: batch\r\nConnection: close\r\n\r\n")


def test_batch_runs_raw_http_requests_from_a_file(tmp_path):
    f = tmp_path / "requests.http"
    f.write_bytes(RAW_REQUESTS)
    responses = parse_http_responses(run_batch([str(f)], tmp_path))
    assert [s for s, _ in responses] == [200, 404, 410, 200]
    assert json.loads(responses[0][1]) == {"status": "ok"}
    assert json.loads(responses[2][1])["replacement"] == "/v1/subscription"


def test_batch_runs_request_records_from_a_file(tmp_path):
    f = tmp_path / "requests.jsonl"
    records = [{"id": str(i), "method": "GET", "path": p, "query": "", "version": "HTTP/1.1", "headers": [],
                "body": "", "keep_alive": True} for i, p in enumerate(["/healthz", "/nope", "/v1/profile"] * 3)]
    f.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = [json.loads(l) for l in run_batch([str(f)], tmp_path).decode().splitlines()]
    assert [r["id"] for r in out] == [r["id"] for r in records]
    assert [r["status"] for r in out] == [200, 404, 410] * 3


def test_batch_reads_stdin_and_takes_the_mode_from_a_flag(tmp_path):
    out = run_batch(["--http"], tmp_path, stdin=RAW_REQUESTS)
    assert [s for s, _ in parse_http_responses(out)] == [200, 404, 410, 200]
    out = run_batch(["--records"], tmp_path, stdin=b'{"id":"a","method":"GET","path":"/healthz"}\n')
    assert json.loads(out)["status"] == 200


def test_batch_of_nothing_writes_nothing(tmp_path):
    assert run_batch([], tmp_path, stdin=b"") == b""
