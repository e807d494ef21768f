"""Shared helpers for the system tests: the built binaries run as real processes,
over real pipes, and the service runs on a real loopback socket."""
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("EDGEPIPE_BIN", ROOT / ".build" / "release"))
PIPELINES = ROOT / "pipelines"


def binary(name):
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: build with `swift build -c release -Xswiftc -static-executable`")
    return str(path)


def run_filter(name, lines, *args, env=None, timeout=30, check_lines=True):
    """Runs a filter over `lines` (str, bytes or dicts); returns (parsed output records, stderr)."""
    data = b""
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line, separators=(",", ":"))
        if isinstance(line, str):
            line = line.encode()
        data += line + b"\n"
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run([binary(name), *args], input=data, capture_output=True, timeout=timeout, env=full_env)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}"
    out = proc.stdout.decode().splitlines()
    if check_lines:
        assert len(out) == len(lines), f"{len(lines)} lines in, {len(out)} out"
    return [json.loads(l) for l in out], proc.stderr.decode()


def request(id="1", method="GET", path="/", query="", headers=None, body="", keep_alive=True, **extra):
    """A request record as http-decode writes it."""
    rec = {"id": id, "method": method, "path": path, "query": query, "version": "HTTP/1.1",
           "headers": headers or [["host", "localhost"]], "body": body, "keep_alive": keep_alive}
    rec.update(extra)
    return rec


def body_json(record):
    return json.loads(record["body"])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listening on port {port}")


def stop_group(proc, timeout=5):
    """Stops a process started with start_new_session=True and everything it started:
    SIGTERM to its process group, SIGKILL after `timeout` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Service:
    """pipelines/serve on a free loopback port with its own data directory."""

    def __init__(self, tmp_path, env=None, args=()):
        self.port = free_port()
        self.data = tmp_path / "data"
        full_env = dict(os.environ)
        full_env.update({"EDGEPIPE_PORT": str(self.port), "EDGEPIPE_DATA": str(self.data),
                         "EDGEPIPE_BIN": str(BIN)})
        if env:
            full_env.update(env)
        self.env = full_env
        self.log = open(tmp_path / "serve.log", "wb")
        self.proc = subprocess.Popen([str(PIPELINES / "serve"), *args], env=full_env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        stop_group(self.proc)
        self.log.close()


@pytest.fixture
def service(tmp_path):
    svc = Service(tmp_path)
    yield svc
    svc.stop()
