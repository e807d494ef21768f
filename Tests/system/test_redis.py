"""kv against Redis (--store redis://...): the same command line and exit codes as the
directory store, the races between real processes (one winner, no lost update),
authentication from the environment or a file, TLS with a private CA, a Unix socket, and
Redis killed and restarted under load: exit 5 / 503 with a clear message in between,
back to work without restarting anything, and no acknowledged write lost; Sentinel
failover; the webhook and reservation races with many gateways sharing one Redis.

Each test starts its own redis-server (apt-get install -y redis-server) on a free
loopback port, without persistence unless the test needs it."""
import datetime
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import binary, free_port, request, run_filter, wait_for_port
from test_kv import EXISTS, MISMATCH, NOT_FOUND, OK, UNAVAILABLE, USAGE, err, increment, kv, out
from test_webhook_support import MONTH, T0, checkout, dumps, sign, signed_record, subscription, webhook_env



class RedisServer:
    """redis-server as a child process, on a fixed port so it can be killed and restarted."""

    def __init__(self, tmp_path, *extra, port=None, unixsocket=None, tls=None):
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is missing: apt-get install -y redis-server")
        version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
        major = int(version.split("v=", 1)[1].split(".", 1)[0]) if "v=" in version else 0
        if major < 7:
            pytest.fail(f"the store needs Redis 7 or later (script flags): {version.strip()}")
        self.dir = tmp_path
        self.port = port or free_port()
        self.extra = list(extra)
        self.unixsocket = unixsocket
        self.tls = tls
        self.proc = None
        self.start()

    def args(self):
        # No 5 s pause before a replica's first sync (Redis 7's diskless default).
        args = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", str(self.dir), "--repl-diskless-sync-delay", "0"]
        if self.tls:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", self.tls["cert"],
                     "--tls-key-file", self.tls["key"], "--tls-ca-cert-file", self.tls["ca"],
                     "--tls-auth-clients", self.tls.get("auth_clients", "no")]
        else:
            args += ["--port", str(self.port)]
        if self.unixsocket:
            args += ["--unixsocket", str(self.unixsocket), "--unixsocketperm", "700"]
        return args + self.extra

    def start(self):
        self.log = open(self.dir / f"redis-{self.port}.log", "ab")
        self.proc = subprocess.Popen(self.args(), stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        if self.unixsocket:
            deadline = time.time() + 5
            while not os.path.exists(self.unixsocket) and time.time() < deadline:
                time.sleep(0.02)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.log.close()

    def cli(self, *args, password=None):
        env = dict(os.environ)
        if password:
            env["REDISCLI_AUTH"] = password
        p = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, env=env, timeout=10)
        return p.stdout.decode().strip()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.kill()


# --- the command line, as with a directory ----------------------------------------------

def test_put_get_delete_with_the_same_output_and_exit_codes_as_a_directory(redis):
    p = kv(redis.url, "put", "sub/Alice", '{"plan": "pro"}', "--metadata", '{"by":"test"}')
    assert p.returncode == OK, err(p)
    assert json.loads(out(p)) == {"key": "sub/Alice", "version": 1, "expires_at": None}
    assert out(kv(redis.url, "get", "sub/Alice")) == '{"plan":"pro"}\n'
    assert json.loads(out(kv(redis.url, "get", "sub/Alice", "--entry"))) == {
        "key": "sub/Alice", "version": 1, "expires_at": None, "metadata": {"by": "test"}, "value": {"plan": "pro"}}
    assert json.loads(out(kv(redis.url, "put", "sub/Alice", '"two"')))["version"] == 2
    assert kv(redis.url, "delete", "sub/Alice").returncode == OK
    p = kv(redis.url, "get", "sub/Alice")
    assert (p.returncode, out(p)) == (NOT_FOUND, "")
    assert kv(redis.url, "delete", "sub/Alice").returncode == NOT_FOUND


def test_create_of_an_existing_key_exits_3_and_keeps_the_first_value(redis):
    assert kv(redis.url, "create", "resv/seat-1", '{"by": 1}').returncode == OK
    p = kv(redis.url, "create", "resv/seat-1", '{"by": 2}')
    assert p.returncode == EXISTS and "exists" in err(p)
    assert json.loads(out(kv(redis.url, "get", "resv/seat-1"))) == {"by": 1}


def test_cas_writes_only_on_the_expected_version(redis):
    assert kv(redis.url, "cas", "c", "1", "--version", "0").returncode == OK
    assert kv(redis.url, "cas", "c", "9", "--version", "0").returncode == MISMATCH
    assert kv(redis.url, "cas", "c", "2", "--version", "1").returncode == OK
    p = kv(redis.url, "cas", "c", "3", "--version", "1")
    assert p.returncode == MISMATCH and "current 2" in err(p)
    assert out(kv(redis.url, "get", "c")) == "2\n"


def test_list_pages_in_byte_order_with_a_cursor(redis):
    keys = [f"page/{i:02d}" for i in range(23)] + ["page/Z", "page/é", "other/1"]
    for k in keys:
        assert kv(redis.url, "put", k, "0").returncode == OK
    seen, cursor, pages = [], None, 0
    while True:
        args = ["list", "--prefix", "page/", "--limit", "10"] + (["--cursor", cursor] if cursor else [])
        page = json.loads(out(kv(redis.url, *args)))
        seen += page["keys"]
        pages += 1
        cursor = page["cursor"]
        if cursor is None:
            break
    expected = sorted((k for k in keys if k.startswith("page/")), key=lambda k: k.encode())
    assert seen == expected and pages == 3
    assert kv(redis.url, "list", "--cursor", "zz-not-hex").returncode == USAGE


def test_ttl_expires_the_key_and_create_over_it_succeeds(redis):
    assert kv(redis.url, "create", "hold", '"a"', "--ttl", "30").returncode == OK
    assert kv(redis.url, "create", "hold", '"b"').returncode == EXISTS
    later = {"EDGEPIPE_CLOCK_OFFSET": "31"}   # Redis's clock plus 31 s, for the store's checks
    assert kv(redis.url, "get", "hold", env=later).returncode == NOT_FOUND
    assert json.loads(out(kv(redis.url, "list", env=later)))["keys"] == []
    assert kv(redis.url, "create", "hold", '"b"', env=later).returncode == OK
    assert out(kv(redis.url, "get", "hold")) == '"b"\n'


def test_ttl_is_enforced_by_redis_itself(redis):
    # Expiry is a whole Unix second (now + ttl), so a put late in a second expires within
    # milliseconds; start early in one, so the PTTL below still sees the key.
    time.sleep(1 - time.time() % 1 + 0.01)
    assert kv(redis.url, "put", "short", "1", "--ttl", "1").returncode == OK
    ttl = int(redis.cli("PTTL", "edgepipe:e:short"))
    assert 0 < ttl <= 1000
    time.sleep(ttl / 1000 + 0.1)
    assert kv(redis.url, "get", "short").returncode == NOT_FOUND
    assert redis.cli("EXISTS", "edgepipe:e:short") == "0"


def test_entries_are_hashes_under_the_prefix_with_an_ordered_index(redis):
    url = redis.url + "?prefix=app1:"
    kv(url, "put", "b", '{"x":1}', "--metadata", "[1]")
    kv(url, "put", "a", "2")
    assert redis.cli("HGET", "app1:e:b", "value") == '{"x":1}'
    assert redis.cli("HGET", "app1:e:b", "metadata") == "[1]"
    assert redis.cli("ZRANGE", "app1:index", "0", "-1").split() == ["a", "b"]
    assert kv(redis.url, "get", "b").returncode == NOT_FOUND, "another prefix is another store"


def test_database_number_in_the_url_selects_the_redis_database(redis):
    assert kv(f"redis://127.0.0.1:{redis.port}/3", "put", "k", "1").returncode == OK
    assert kv(redis.url, "get", "k").returncode == NOT_FOUND
    assert redis.cli("-n", "3", "EXISTS", "edgepipe:e:k") == "1"


def test_bad_redis_urls_exit_5_without_echoing_a_password(redis):
    p = kv(f"redis://user:s3cr3t-in-url@127.0.0.1:{redis.port}/0", "get", "k")
    assert p.returncode == UNAVAILABLE
    assert "s3cr3t" not in err(p) and "EDGEPIPE_REDIS_PASSWORD" in err(p)
    p = kv(f"redis://127.0.0.1:{redis.port}/0?timeout=1", "get", "k")
    assert p.returncode == UNAVAILABLE and "unknown option timeout" in err(p)


# --- races between processes -------------------------------------------------------------

def test_fifty_concurrent_creates_have_exactly_one_winner(redis):
    procs = [subprocess.Popen([binary("kv"), "--store", redis.url, "create", "reservation", json.dumps({"by": i})],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(50)]
    codes = [p.wait(timeout=60) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert codes.count(OK) == 1, codes
    assert codes.count(EXISTS) == 49, codes
    assert json.loads(out(kv(redis.url, "get", "reservation"))) == {"by": codes.index(OK)}


def test_twenty_processes_incrementing_by_cas_lose_no_update(redis):
    workers, each = 20, int(os.environ.get("KV_TEST_INCREMENTS", "5"))
    counts = {"conflicts": 0}
    threads = [threading.Thread(target=increment, args=(redis.url, "counter", each, counts)) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entry = json.loads(out(kv(redis.url, "get", "counter", "--entry")))
    assert entry["value"] == workers * each
    assert entry["version"] == workers * each
    assert counts["conflicts"] > 0, "the processes never raced; the test proves nothing"


# --- Redis down and back -----------------------------------------------------------------

def test_redis_down_exits_5_with_a_clear_message_then_works_after_restart(redis):
    assert kv(redis.url, "put", "k", "1").returncode == OK
    redis.kill()
    start = time.time()
    p = kv(redis.url, "get", "k")
    assert p.returncode == UNAVAILABLE
    assert f"store unavailable: cannot connect to redis://127.0.0.1:{redis.port}/0" in err(p)
    assert "Connection refused" in err(p)
    assert kv(redis.url, "put", "k", "2").returncode == UNAVAILABLE
    assert time.time() - start < 5
    redis.start()
    assert kv(redis.url, "put", "k", "3").returncode == OK
    assert out(kv(redis.url, "get", "k")) == "3\n"


def test_unreachable_host_fails_within_the_connect_timeout(redis):
    # 10.255.255.1 is not routed from a test machine: the connect hangs until the timeout.
    start = time.time()
    p = kv("redis://10.255.255.1:6379/0?connect_timeout_ms=300", "get", "k")
    assert p.returncode == UNAVAILABLE
    assert time.time() - start < 3
    assert "10.255.255.1" in err(p)


def sub_request(uid, id="1"):
    rec = request(id=id, method="GET", path="/v1/subscription",
                  headers=[["host", "localhost"], ["x-authenticated-uid", uid]])
    rec["annotations"] = {"route": {"name": "subscription", "params": {}}, "auth": {"uid": uid}}
    return rec


class Filter:
    """A long-running filter process fed one line at a time."""

    def __init__(self, *args, env=None):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPIPE_REDIS_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen([binary(args[0]), *args[1:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=full_env)

    def ask(self, record):
        self.proc.stdin.write((json.dumps(record) + "\n").encode())
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        code = self.proc.wait(timeout=10)
        log = self.proc.stderr.read().decode()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code, log


def test_kv_serve_answers_503_while_redis_is_down_and_recovers_without_restart(redis):
    state = {"uid": "u1", "status": "active", "plan": "pro", "current_period_end": int(time.time()) + 86400,
             "trial_end": None, "cancel_at_period_end": False, "customer": "cus_1", "subscription": "sub_1",
             "updated": int(time.time()), "last_event_id": "evt_1"}
    serve = Filter("kv", "--store", redis.url, "serve")
    try:
        assert kv(redis.url, "put", "sub/u1", json.dumps(state)).returncode == OK
        first = serve.ask(sub_request("u1", "1"))
        assert first["status"] == 200 and json.loads(first["body"])["status"] == "active"
        redis.kill()
        down = serve.ask(sub_request("u1", "2"))
        assert down["status"] == 503
        assert json.loads(down["body"])["error"] == "unavailable"
        assert ["retry-after", "1"] in down["headers"]
        redis.start()
        assert kv(redis.url, "put", "sub/u1", json.dumps(state)).returncode == OK
        back = serve.ask(sub_request("u1", "3"))
        assert back["status"] == 200 and json.loads(back["body"])["plan"] == "pro"
    finally:
        code, log = serve.close()
    assert code == 0
    assert f"redis://127.0.0.1:{redis.port}/0" in log   # the 503's reason, on stderr


def test_acknowledged_writes_survive_redis_killed_and_restarted_mid_load(tmp_path):
    # Durable Redis: every write is in the append-only file before Redis replies.
    server = RedisServer(tmp_path, "--appendonly", "yes", "--appendfsync", "always")
    results = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w):
        i = 0
        while not stop.is_set():
            key = f"w{w}/{i}"
            p = kv(server.url + "?connect_timeout_ms=200&timeout_ms=500", "put", key, str(i))
            with lock:
                results[key] = (p.returncode, err(p))
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        server.kill()
        time.sleep(0.5)
        server.start()
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        codes = [code for code, _ in results.values()]
        assert set(codes) <= {OK, UNAVAILABLE}, results
        assert codes.count(UNAVAILABLE) > 0, "Redis was never seen down; the test proves nothing"
        assert codes.count(OK) > 10
        for key, (code, log) in results.items():
            if code == UNAVAILABLE:
                assert "store unavailable" in log and str(server.port) in log
            else:
                p = kv(server.url, "get", key)
                assert (p.returncode, out(p)) == (OK, key.split("/")[1] + "\n"), f"acknowledged {key} was lost"
    finally:
        stop.set()
        server.kill()


# --- authentication, TLS, Unix socket ----------------------------------------------------

PASSWORD = "pw-7c1f 'quoted' $x"


@pytest.fixture
def secured(tmp_path):
    server = RedisServer(tmp_path, "--requirepass", PASSWORD)
    yield server
    server.kill()


def test_password_from_the_environment(secured):
    p = kv(secured.url, "put", "k", "1", env={"EDGEPIPE_REDIS_PASSWORD": PASSWORD})
    assert p.returncode == OK, err(p)
    assert secured.cli("HGET", "edgepipe:e:k", "value", password=PASSWORD) == "1"


def test_password_from_a_file(secured, tmp_path):
    f = tmp_path / "redis-password"
    f.write_text(PASSWORD + "\n")
    f.chmod(0o400)
    p = kv(secured.url, "put", "k", "2", env={"EDGEPIPE_REDIS_PASSWORD_FILE": str(f)})
    assert p.returncode == OK, err(p)
    assert out(kv(secured.url, "get", "k", env={"EDGEPIPE_REDIS_PASSWORD_FILE": str(f)})) == "2\n"


def test_missing_or_wrong_password_exits_5_without_printing_it(secured):
    p = kv(secured.url, "get", "k")
    assert p.returncode == UNAVAILABLE and "NOAUTH" in err(p)
    p = kv(secured.url, "get", "k", env={"EDGEPIPE_REDIS_PASSWORD": "wrong-password-123"})
    assert p.returncode == UNAVAILABLE
    assert "authentication failed" in err(p) and "EDGEPIPE_REDIS_PASSWORD" in err(p)
    assert "wrong-password-123" not in err(p)


def test_acl_user_and_password(tmp_path):
    server = RedisServer(tmp_path)
    try:
        assert server.cli("ACL", "SETUSER", "gateway", "on", ">gw-secret", "~edgepipe:*", "+@all") == "OK"
        assert server.cli("ACL", "SETUSER", "default", "off") == "OK"
        url = f"redis://gateway@127.0.0.1:{server.port}/0"
        p = kv(url, "put", "k", "1", env={"EDGEPIPE_REDIS_PASSWORD": "gw-secret"})
        assert p.returncode == OK, err(p)
        p = kv(server.url, "get", "k", env={"EDGEPIPE_REDIS_PASSWORD": "gw-secret"})
        assert p.returncode == UNAVAILABLE, "the default user is off"
        p = kv(url + "?prefix=elsewhere:", "put", "k", "1", env={"EDGEPIPE_REDIS_PASSWORD": "gw-secret"})
        assert p.returncode == UNAVAILABLE and "NOPERM" in err(p)
    finally:
        server.kill()


def test_unix_socket_url(tmp_path):
    sock = tmp_path / "redis.sock"
    server = RedisServer(tmp_path, unixsocket=sock)
    try:
        url = f"redis+unix://{sock}?db=2"
        assert kv(url, "create", "k", '"via socket"').returncode == OK
        assert out(kv(url, "get", "k")) == '"via socket"\n'
        assert server.cli("-n", "2", "HGET", "edgepipe:e:k", "value") == '"via socket"'
        p = kv(f"redis+unix://{tmp_path}/missing.sock", "get", "k")
        assert p.returncode == UNAVAILABLE and "No such file" in err(p)
    finally:
        server.kill()


def make_ca_and_server_cert(tmp_path, names):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def write_key(key, path):
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgepipe test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    def issue(common_name, sans):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1)))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    key, cert = issue(names[0], names)
    client_key, client_cert = issue("edgepipe gateway", [])   # for servers with tls-auth-clients yes
    paths = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "server.pem", "key": tmp_path / "server.key",
             "client_cert": tmp_path / "client.pem", "client_key": tmp_path / "client.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_key(key, paths["key"])
    paths["client_cert"].write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    write_key(client_key, paths["client_key"])
    return {k: str(v) for k, v in paths.items()}


def test_rediss_verifies_the_server_against_the_ca_file(tmp_path):
    tls = make_ca_and_server_cert(tmp_path, ["localhost"])
    server = RedisServer(tmp_path, tls=tls)
    try:
        url = f"rediss://localhost:{server.port}/0"
        trusted = {"EDGEPIPE_REDIS_CA_FILE": tls["ca"]}
        p = kv(url, "put", "k", '"over tls"', env=trusted)
        assert p.returncode == OK, err(p)
        assert out(kv(url, "get", "k", env=trusted)) == '"over tls"\n'
        p = kv(url, "get", "k")   # the system store does not know the test CA
        assert p.returncode == UNAVAILABLE and "certificate" in err(p)
        p = kv(f"rediss://127.0.0.1:{server.port}/0", "get", "k", env=trusted)   # not a name in the certificate
        assert p.returncode == UNAVAILABLE and "certificate" in err(p)
        p = kv(f"redis://localhost:{server.port}/0?timeout_ms=500", "get", "k")   # plain text to a TLS port
        assert p.returncode == UNAVAILABLE
    finally:
        server.kill()


def test_rediss_presents_a_client_certificate_when_redis_requires_one(tmp_path):
    tls = make_ca_and_server_cert(tmp_path, ["localhost"])
    server = RedisServer(tmp_path, tls={**tls, "auth_clients": "yes"})   # Redis's own default with TLS
    (tmp_path / "other").mkdir()
    stranger = make_ca_and_server_cert(tmp_path / "other", ["localhost"])   # a client certificate from another CA
    try:
        url = f"rediss://localhost:{server.port}/0?connect_timeout_ms=1000&timeout_ms=1000"
        trusted = {"EDGEPIPE_REDIS_CA_FILE": tls["ca"]}
        with_cert = {**trusted, "EDGEPIPE_REDIS_CERT_FILE": tls["client_cert"], "EDGEPIPE_REDIS_KEY_FILE": tls["client_key"]}
        p = kv(url, "put", "k", '"mutual tls"', env=with_cert)
        assert p.returncode == OK, err(p)
        assert out(kv(url, "get", "k", env=with_cert)) == '"mutual tls"\n'
        assert kv(url, "get", "k", env=trusted).returncode == UNAVAILABLE, "no certificate, no access"
        p = kv(url, "get", "k", env={**trusted, "EDGEPIPE_REDIS_CERT_FILE": stranger["client_cert"],
                                     "EDGEPIPE_REDIS_KEY_FILE": stranger["client_key"]})
        assert p.returncode == UNAVAILABLE, "a certificate the server's CA did not sign is refused"
        p = kv(url, "get", "k", env={**trusted, "EDGEPIPE_REDIS_CERT_FILE": tls["client_cert"]})
        assert p.returncode == UNAVAILABLE and "EDGEPIPE_REDIS_KEY_FILE" in err(p)
        p = kv(url, "get", "k", env={**trusted, "EDGEPIPE_REDIS_CERT_FILE": tls["client_cert"],
                                     "EDGEPIPE_REDIS_KEY_FILE": stranger["client_key"]})
        assert p.returncode == UNAVAILABLE and "client key" in err(p) and "mismatch" in err(p)
        assert "PRIVATE KEY" not in err(p)
    finally:
        server.kill()


# --- a full Redis (maxmemory with noeviction) refuses the store's writes --------------------

def used_memory(server):
    info = dict(line.split(":", 1) for line in server.cli("INFO", "memory").splitlines() if ":" in line)
    return int(info["used_memory"]), int(info["maxmemory"])


def fill_until_refused(url, size=100_000, limit=60):
    """kv put of distinct keys until one is refused; the refusal's process."""
    value = json.dumps("x" * size)
    for i in range(limit):
        p = kv(url, "put", f"fill/{i:03d}", value)
        if p.returncode != OK:
            return i, p
    raise AssertionError(f"{limit} writes of {size} bytes all accepted: the store wrote past maxmemory")


def make_full(server):
    """Filled through the store until Redis refuses (a value and its request no longer fit);
    then the limit lowered below what is used, as when memory fragments: full even for the
    smallest write. Returns how many fill values were written."""
    written, p = fill_until_refused(server.url)
    assert p.returncode == UNAVAILABLE and "maxmemory" in err(p), err(p)
    used, limit = used_memory(server)
    assert used < limit + 2 * 100_000, f"used {used} of {limit}: writes went past maxmemory"
    assert server.cli("CONFIG", "SET", "maxmemory", str(used - 200_000)) == "OK"
    return written


def test_a_full_redis_refuses_writes_and_stays_within_maxmemory(tmp_path):
    server = RedisServer(tmp_path, "--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
    try:
        assert kv(server.url, "put", "kept", '"before"').returncode == OK
        written = make_full(server)
        for mode in (["put", "kept", '"after"'], ["create", "new", "1"], ["cas", "kept", "1", "--version", "1"]):
            p = kv(server.url, *mode)
            assert p.returncode == UNAVAILABLE and "maxmemory" in err(p), (mode, err(p))
        assert out(kv(server.url, "get", "kept")) == '"before"\n', "a full Redis still answers reads"
        assert len(json.loads(out(kv(server.url, "list", "--prefix", "fill/")))["keys"]) == written
        for i in range(written):   # deleting frees memory, so it is allowed when full...
            assert kv(server.url, "delete", f"fill/{i:03d}").returncode == OK
        assert kv(server.url, "list", "--prefix", "fill/").returncode == OK
        p = kv(server.url, "put", "kept", '"after"')   # ...and then writes work again
        assert p.returncode == OK, err(p)
    finally:
        server.kill()


def test_a_webhook_to_a_full_redis_answers_503_and_reads_go_on(tmp_path):
    (tmp_path / "r").mkdir()
    server = RedisServer(tmp_path / "r", "--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
    gateways = Gateways(tmp_path, server.url)
    try:
        assert gateways.deliver(0, checkout("evt_0", T0)) == (200, {"received": True})
        make_full(server)
        status, body = gateways.deliver(0, checkout("evt_1", T0 + 1, uid="user-2", customer="cus_2", subscription="sub_2"))
        assert status == 503 and body["error"] == "store_unavailable" and "maxmemory" in body["message"], body
        status, view = gateways.subscription(1, "user-1")
        assert status == 200 and view["status"] == "active"
        assert redis_entry(server.url, "sub/user-2") is None
    finally:
        gateways.stop()
        server.kill()


def test_wait_for_a_replica_that_does_not_exist_exits_5_and_says_so(redis):
    p = kv(redis.url + "?wait=1&wait_timeout_ms=50", "put", "k", "1")
    assert p.returncode == UNAVAILABLE
    assert "acknowledged by 0 of 1 replicas" in err(p)


def test_wait_for_a_real_replica_succeeds(redis, tmp_path):
    replica_dir = tmp_path / "replica"
    replica_dir.mkdir()
    replica = RedisServer(replica_dir, "--replicaof", "127.0.0.1", str(redis.port))
    try:
        deadline = time.time() + 10
        while "master_link_status:up" not in replica.cli("INFO", "replication") and time.time() < deadline:
            time.sleep(0.05)
        p = kv(redis.url + "?wait=1&wait_timeout_ms=2000", "put", "k", '"replicated"')
        assert p.returncode == OK, err(p)
        assert replica.cli("HGET", "edgepipe:e:k", "value") == '"replicated"'
        p = kv(replica.url, "put", "k", "1")
        assert p.returncode == UNAVAILABLE and "READONLY" in err(p)
        assert out(kv(replica.url, "get", "k")) == '"replicated"\n', "reads work on a replica"
    finally:
        replica.kill()


# --- Sentinel: the primary found through sentinels, and found again after a failover -----

class Sentinel:
    def __init__(self, tmp_path, primary_port, down_after_ms=1000):
        self.port = free_port()
        self.conf = tmp_path / f"sentinel-{self.port}.conf"   # Sentinel rewrites its config: a file of its own
        self.conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                             f"sentinel monitor mymaster 127.0.0.1 {primary_port} 1\n"
                             f"sentinel down-after-milliseconds mymaster {down_after_ms}\n"
                             "sentinel failover-timeout mymaster 5000\n")
        self.log = open(tmp_path / f"sentinel-{self.port}.log", "ab")
        self.proc = subprocess.Popen(["redis-server", str(self.conf), "--sentinel"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_for_port(self.port)

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                              timeout=10).stdout.decode().split()

    def primary_port(self):
        answer = self.cli("SENTINEL", "get-master-addr-by-name", "mymaster")
        return int(answer[1]) if len(answer) == 2 else None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def wait_until(condition, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def primary_replica_and_sentinel(tmp_path, names=("a", "b")):
    for name in names:
        (tmp_path / name).mkdir()
    primary = RedisServer(tmp_path / names[0])
    replica = RedisServer(tmp_path / names[1], "--replicaof", "127.0.0.1", str(primary.port))
    # Started once replication is up, the sentinel sees the replica in its first INFO of the
    # primary (rather than 10 s later).
    wait_until(lambda: "master_link_status:up" in replica.cli("INFO", "replication"), what="replication")
    return primary, replica, Sentinel(tmp_path, primary.port)


def test_sentinel_url_follows_the_primary_through_a_failover(tmp_path):
    primary, replica, sentinel = primary_replica_and_sentinel(tmp_path)
    try:
        url = f"redis+sentinel://127.0.0.1:1,127.0.0.1:{sentinel.port}/mymaster/0"   # the first sentinel is down
        assert kv(url, "put", "k", '"before"').returncode == OK
        assert primary.cli("HGET", "edgepipe:e:k", "value") == '"before"'
        assert kv(url + "?wait=1", "put", "k", '"acknowledged by the replica"').returncode == OK
        # FAILOVER answers NOGOODSLAVE until the sentinel has talked to the replica itself.
        wait_until(lambda: sentinel.cli("SENTINEL", "FAILOVER", "mymaster") == ["OK"], what="a failover to start")
        wait_until(lambda: sentinel.primary_port() == replica.port, what="the failover")
        wait_until(lambda: "role:master" in replica.cli("INFO", "replication"), what="the replica's promotion")
        assert out(kv(url, "get", "k")) == '"acknowledged by the replica"\n'
        # The old primary is alive: until Sentinel has made it a replica of the new one and it
        # has caught up, a write cannot reach every live replica and is answered "unavailable".
        wait_until(lambda: kv(url, "put", "k", '"after"').returncode == OK, timeout=30, what="a write on the new primary")
        assert replica.cli("HGET", "edgepipe:e:k", "value") == '"after"'
    finally:
        sentinel.kill()
        replica.kill()
        primary.kill()


def until_answered(deliver, what, timeout=20.0):
    """Stripe's retries, compressed: deliver again (a new connection each time) until 200."""
    deadline = time.time() + timeout
    answers = []
    while time.time() < deadline:
        status, body = deliver()
        answers.append(status)
        if status == 200:
            return answers
        assert status == 503, (status, body)
        time.sleep(0.1)
    raise AssertionError(f"{what}: never acknowledged ({answers})")


def test_a_failover_mid_keep_alive_acknowledges_only_writes_the_new_primary_has_and_reads_nothing_stale(tmp_path):
    # The old primary keeps taking writes for seconds after Sentinel promotes its replica,
    # until Sentinel reconfigures it; then it resyncs from the new primary and drops them.
    import requests
    primary, replica, sentinel = primary_replica_and_sentinel(tmp_path, ("ra", "rb"))   # a and b: the gateways
    # A replica's acknowledgement normally takes milliseconds; 1 s leaves a loaded machine room
    # (with 300 ms the first write was once answered 503 before any failover).
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/0?connect_timeout_ms=500&timeout_ms=1000&wait_timeout_ms=1000"
    gateways = Gateways(tmp_path, url)
    user_b = checkout("evt_b", T0 + 1, uid="user-b", customer="cus_b", subscription="sub_b")
    try:
        keep = requests.Session()   # one HTTP connection: one pipeline, whose stages keep their Redis connections
        assert gateways.deliver(0, checkout("evt_a", T0, uid="user-a", customer="cus_a", subscription="sub_a"),
                                session=keep) == (200, {"received": True})
        status, view = gateways.subscription(0, "user-a", session=keep)
        assert status == 200 and view["status"] == "active"
        wait_until(lambda: sentinel.cli("SENTINEL", "FAILOVER", "mymaster") == ["OK"], what="a failover to start")
        wait_until(lambda: "role:master" in replica.cli("INFO", "replication"), timeout=10, what="the promotion")

        # A webhook on the kept connection, whose stage still holds the old primary.
        status_b, body_b = gateways.deliver(0, user_b, session=keep)
        assert primary.cli("ROLE").split()[0] == "master", "the old primary was demoted already: nothing was tested"
        acknowledged = {"user-a": "active"}
        if status_b == 200:
            acknowledged["user-b"] = "active"
        else:
            assert status_b == 503 and body_b["error"] == "store_unavailable", body_b
            until_answered(lambda: gateways.deliver(1, user_b), "the retried webhook")
            acknowledged["user-b"] = "active"

        # A newer state for user-a, written on the new primary once the sentinel names it...
        wait_until(lambda: sentinel.primary_port() == replica.port, timeout=10, what="the sentinel to name the new primary")
        until_answered(lambda: gateways.deliver(1, subscription("evt_c", T0 + 10, "past_due", T0 + MONTH, customer="cus_a",
                                                                 subscription="sub_a")), "the update")
        acknowledged["user-a"] = "past_due"
        # ...is what the kept connection reads: never the older state, at worst a 503.
        reads = []
        for _ in range(50):
            status, view = gateways.subscription(0, "user-a", session=keep)
            reads.append(status)
            if status == 200:
                assert view["stored_status"] == "past_due", f"stale read after an acknowledged write: {view}"
                break
            assert status == 503, (status, view)
        assert reads[-1] == 200, reads

        # Once the old primary has resynced from the new one, every acknowledged event is there.
        wait_until(lambda: primary.cli("ROLE").split()[0] == "slave"
                   and "master_link_status:up" in primary.cli("INFO", "replication"), timeout=30,
                   what="the old primary to follow the new one")
        new_primary = f"redis://127.0.0.1:{replica.port}/0"
        for uid, expected in acknowledged.items():
            entry = redis_entry(new_primary, f"sub/{uid}")
            assert entry is not None and entry["value"]["status"] == expected, f"acknowledged state of {uid} lost: {entry}"
            assert redis_entry(f"redis://127.0.0.1:{primary.port}/0", f"sub/{uid}") == entry
    finally:
        gateways.stop()
        sentinel.kill()
        replica.kill()
        primary.kill()


def test_wait_auto_is_refused_without_sentinels(redis):
    p = kv(redis.url + "?wait=auto", "get", "k")
    assert p.returncode == UNAVAILABLE and "wait=auto needs a redis+sentinel URL" in err(p)


def test_no_sentinel_reachable_exits_5_and_names_the_master(tmp_path):
    p = kv("redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster/0?connect_timeout_ms=200", "get", "k")
    assert p.returncode == UNAVAILABLE
    assert "no sentinel named the primary of mymaster" in err(p)


# --- the subscription and reservation races, many gateways on one Redis -----------------
# Each HTTP connection runs its own filter processes, so N concurrent processes with the
# same EDGEPIPE_KV are N gateways as far as the store can tell; the reservation race also
# runs through two complete pipelines/reserve services on two ports.


def redis_entry(url, key):
    p = kv(url, "get", key, "--entry")
    return json.loads(out(p)) if p.returncode == OK else None


def test_a_webhook_delivered_to_ten_gateways_at_once_is_applied_once(redis, tmp_path):
    env = dict(os.environ)
    env.update(webhook_env(tmp_path, kv=redis.url))
    line = (dumps(signed_record(checkout("evt_1", T0))) + "\n").encode()
    procs = [subprocess.Popen([binary("apply-webhook")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
             for _ in range(10)]
    for p in procs:
        p.stdin.write(line)
    for p in procs:
        p.stdin.close()
    outcomes = [json.loads(p.stdout.read())["annotations"]["audit"]["outcome"] for p in procs]
    for p in procs:
        p.wait(timeout=60)
        p.stdout.close()
    assert sorted(outcomes) == ["applied"] + ["duplicate"] * 9
    entry = redis_entry(redis.url, "sub/user-1")
    assert entry["value"]["status"] == "active" and entry["version"] == 1


def test_webhook_pending_area_on_redis_is_drained_by_a_later_checkout_on_another_gateway(redis, tmp_path):
    env = webhook_env(tmp_path, kv=redis.url)
    early = subscription("evt_2", T0 + 1, "past_due", T0 + MONTH)
    [rec], _ = run_filter("apply-webhook", [signed_record(early)], env=env)
    assert rec["status"] == 200 and rec["annotations"]["audit"]["outcome"] == "pending"
    assert redis_entry(redis.url, "pending/cus_1/evt_2") is not None
    [rec], _ = run_filter("apply-webhook", [signed_record(checkout("evt_1", T0))], env=env)   # a new process
    assert rec["annotations"]["audit"]["outcome"] == "applied"
    assert [d["event_id"] for d in rec["annotations"]["audit"]["drained"]] == ["evt_2"]
    assert json.loads(out(kv(redis.url, "list", "--prefix", "pending/")))["keys"] == []
    assert redis_entry(redis.url, "sub/user-1")["value"]["status"] == "past_due"
    assert redis_entry(redis.url, "customer/cus_1") is not None


class Gateways:
    """Two complete gateways (pipelines/serve, each its own port and data directory) on one
    Redis, sharing only the webhook secret and the key that signs dev tokens."""

    def __init__(self, tmp_path, url):
        from conftest import Service
        keys = tmp_path / "dev-keys"
        subprocess.run([binary("sign-jwt"), "dev", "--init", "--dev-keys", str(keys)], check=True, capture_output=True)
        env = {"EDGEPIPE_KV": url, "EDGEPIPE_DEV_KEYS": str(keys), **webhook_env(tmp_path, kv=url)}
        self.services = []
        for side in "ab":
            (tmp_path / side).mkdir()
            self.services.append(Service(tmp_path / side, env=env))
        self.keys = keys

    def __getitem__(self, i):
        return self.services[i % 2]

    def deliver(self, i, obj, session=None):
        import requests
        body = dumps(obj)
        r = (session or requests).post(self[i].url + "/v1/webhooks/stripe", data=body.encode(), timeout=10,
                                       headers={"content-type": "application/json", "stripe-signature": sign(body)})
        return r.status_code, r.json()

    def subscription(self, i, uid, session=None):
        import requests
        token = subprocess.run([binary("sign-jwt"), "dev", "--uid", uid, "--dev-keys", str(self.keys)],
                               check=True, capture_output=True, text=True).stdout.strip()
        r = (session or requests).get(self[i].url + "/v1/subscription", headers={"authorization": f"Bearer {token}"}, timeout=10)
        return r.status_code, r.json()

    def stop(self):
        for s in self.services:
            s.stop()


def test_twenty_concurrent_webhooks_through_two_gateways_end_in_the_newest_state_seen_by_both(redis, tmp_path):
    gateways = Gateways(tmp_path, redis.url)
    try:
        assert gateways.deliver(0, checkout("evt_0", T0)) == (200, {"received": True})
        assert gateways.subscription(1, "user-1")[1]["status"] == "active", "B reads what A wrote"
        statuses = ["active", "past_due", "unpaid", "active", "trialing"]
        events = [subscription(f"evt_{i:02d}", T0 + 10 + i, statuses[i % 5], T0 + MONTH + i * 86400,
                               price="price_basic_m" if i % 2 else "price_pro_m", lookup_key=None) for i in range(20)]
        events.reverse()   # the newest first: most deliveries arrive stale
        results = [None] * 20
        start = threading.Barrier(20)

        def send(i):
            start.wait()
            results[i] = gateways.deliver(i, events[i])

        threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(r == (200, {"received": True}) for r in results), results
        for side in (0, 1):
            status, view = gateways.subscription(side, "user-1")
            assert status == 200
            assert view["plan"] == "basic" and view["expires_at"] == T0 + MONTH + 19 * 86400, view
        assert redis_entry(redis.url, "sub/user-1")["value"]["last_event_id"] == "evt_19"
        keys = json.loads(out(kv(redis.url, "list", "--prefix", "event/")))["keys"]
        assert sorted(keys) == sorted([f"event/evt_{i:02d}" for i in range(20)] + ["event/evt_0"])
    finally:
        gateways.stop()


def test_redis_killed_and_restarted_under_webhook_load_loses_no_acknowledged_webhook(tmp_path):
    import requests
    server = RedisServer(tmp_path, "--appendonly", "yes", "--appendfsync", "always")
    gateways = Gateways(tmp_path, server.url + "?connect_timeout_ms=200&timeout_ms=500")
    answers = {}
    lock = threading.Lock()
    stop = threading.Event()

    def stripe(g):
        # Keep-alive: each gateway's pipeline (and its Redis connection) outlives the restart.
        session = requests.Session()
        i = 0
        while not stop.is_set():
            uid = f"g{g}-u{i}"
            answer = gateways.deliver(g, checkout(f"evt_{uid}", T0, uid=uid, customer=f"cus_{uid}",
                                                  subscription=f"sub_{uid}"), session=session)
            with lock:
                answers[uid] = answer
            i += 1

    threads = [threading.Thread(target=stripe, args=(g,)) for g in range(2)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.7)
        server.kill()
        time.sleep(0.5)
        server.start()
        time.sleep(0.7)
        stop.set()
        for t in threads:
            t.join()
        statuses = [status for status, _ in answers.values()]
        assert set(statuses) <= {200, 503}, answers
        assert statuses.count(503) > 0, "Redis was never seen down; the test proves nothing"
        assert statuses[-4:].count(200) > 0 and statuses.count(200) > 5
        for uid, (status, body) in answers.items():
            if status == 503:
                assert "unavailable" in body["error"] and body["message"], body   # JSON, and Stripe retries a 503
            else:
                entry = redis_entry(server.url, f"sub/{uid}")
                assert entry is not None and entry["value"]["status"] == "active", f"acknowledged webhook for {uid} lost"
    finally:
        stop.set()
        gateways.stop()
        server.kill()


def test_fifty_confirmations_through_two_reservation_services_sharing_redis_have_one_winner(redis, tmp_path):
    from test_reserve import ReserveService
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    services = [ReserveService(tmp_path / "a", env={"EDGEPIPE_KV": redis.url, "EDGEPIPE_RESERVE_LIMITS": ""}),
                ReserveService(tmp_path / "b", env={"EDGEPIPE_KV": redis.url, "EDGEPIPE_RESERVE_LIMITS": ""})]
    try:
        emails = [f"racer{i}@example.com" for i in range(50)]
        for i, e in enumerate(emails):
            status, _, _ = services[i % 2].submit("contested", e)
            assert status == 202
        tokens = [services[i % 2].token_for(e) for i, e in enumerate(emails)]
        results = [None] * 50
        start = threading.Barrier(50)

        def confirm(i):
            start.wait()
            results[i] = services[(i + 1) % 2].confirm(tokens[i])   # confirmed through the other service

        threads = [threading.Thread(target=confirm, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(r[0] for r in results) == [201] + [409] * 49
        winner = next(r[1] for r in results if r[0] == 201)
        keys = json.loads(out(kv(redis.url, "list", "--prefix", "reserve/email/")))["keys"]
        assert keys == ["reserve/email/" + winner["email"]]
        for side in "ab":   # nothing went to the local directory store (setup-data creates it empty)
            local = tmp_path / side / "data" / "kv"
            assert not local.exists() or not any(local.iterdir())
    finally:
        for s in services:
            s.stop()
