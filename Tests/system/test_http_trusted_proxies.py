"""http-decode's trusted proxies, as a process: `remote` comes from X-Forwarded-For or
X-Real-IP only when the peer (the launcher's address, or getpeername on a real socket) is a
configured --trusted-proxy / EDGEPIPE_TRUSTED_PROXIES address; from anyone else those
headers stay plain headers. The end-to-end case (nginx and HAProxy in front) is in
test_fronts.py."""
import json
import os
import socket
import subprocess

from conftest import binary

LAUNCHER_VARS = ("TCPREMOTEIP", "REMOTE_ADDR", "SOCAT_PEERADDR", "EDGEPIPE_TRUSTED_PROXIES")


def decode(data, *args, env=None, stdin=None):
    full_env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    full_env.update(env or {})
    proc = subprocess.run([binary("http-decode"), "--linger-ms", "0", *args], input=None if stdin else data,
                          stdin=stdin, capture_output=True, timeout=10, env=full_env)
    return [json.loads(l) for l in proc.stdout.decode().splitlines()], proc.stderr.decode(), proc.returncode


def remotes(data, *args, env=None):
    recs, err, rc = decode(data, *args, env=env)
    assert rc == 0, err
    return [r.get("remote") for r in recs]


def req(*headers):
    return b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(h.encode() + b"\r\n" for h in headers) + b"\r\n"


SPOOF = req("X-Forwarded-For: 6.6.6.6", "X-Real-IP: 6.6.6.6")


def test_headers_ignored_without_trusted_proxies():
    assert remotes(SPOOF, env={"TCPREMOTEIP": "203.0.113.9"}) == ["203.0.113.9"]


def test_headers_ignored_from_a_peer_not_in_the_list():
    assert remotes(SPOOF, "--trusted-proxy", "127.0.0.2/32", env={"SOCAT_PEERADDR": "127.0.0.1"}) == ["127.0.0.1"]


def test_headers_stay_as_headers_when_ignored():
    [r], _, _ = decode(SPOOF, "--trusted-proxy", "10.0.0.0/8", env={"TCPREMOTEIP": "192.0.2.1"})
    assert ["x-forwarded-for", "6.6.6.6"] in r["headers"]
    assert ["x-real-ip", "6.6.6.6"] in r["headers"]
    assert r["remote"] == "192.0.2.1"


def test_no_peer_address_means_nothing_is_trusted():
    # A pipe has no address, so not even a catch-all rule makes the headers believed.
    recs, _, rc = decode(SPOOF, "--trusted-proxy", "0.0.0.0/0", "--trusted-proxy", "::/0")
    assert rc == 0
    assert "remote" not in recs[0]


def test_trusted_peer_forwarded_for_names_the_client():
    data = req("X-Forwarded-For: 198.51.100.7")
    assert remotes(data, "--trusted-proxy", "127.0.0.2", env={"SOCAT_PEERADDR": "127.0.0.2"}) == ["198.51.100.7"]


def test_spoofed_forwarded_for_entries_left_of_the_client_are_ignored():
    # The client sent "6.6.6.6"; the proxy appended the address it saw.
    data = req("X-Forwarded-For: 6.6.6.6, 127.0.0.1")
    assert remotes(data, "--trusted-proxy", "127.0.0.2", env={"SOCAT_PEERADDR": "127.0.0.2"}) == ["127.0.0.1"]


def test_client_claiming_to_be_a_trusted_proxy_is_skipped_like_one_but_never_believed_alone():
    # Entries that are trusted proxies are skipped; the first untrusted one from the right wins.
    data = req("X-Forwarded-For: 6.6.6.6, 203.0.113.50, 10.1.1.1")
    assert remotes(data, "--trusted-proxy", "10.0.0.0/8", env={"TCPREMOTEIP": "10.2.2.2"}) == ["203.0.113.50"]
    # The same headers straight from the client: its claim is not believed at all.
    assert remotes(data, "--trusted-proxy", "10.0.0.0/8", env={"TCPREMOTEIP": "203.0.113.50"}) == ["203.0.113.50"]


def test_forwarded_for_fields_are_read_as_one_list():
    data = req("X-Forwarded-For: 6.6.6.6", "X-Forwarded-For: 192.0.2.200")
    assert remotes(data, "--trusted-proxy", "127.0.0.2", env={"TCPREMOTEIP": "127.0.0.2"}) == ["192.0.2.200"]


def test_garbage_forwarded_for_falls_back_to_the_proxy():
    data = req("X-Forwarded-For: <script>")
    assert remotes(data, "--trusted-proxy", "127.0.0.2", env={"TCPREMOTEIP": "127.0.0.2"}) == ["127.0.0.2"]


def test_real_ip_from_a_trusted_peer_without_forwarded_for():
    data = req("X-Real-IP: 198.51.100.8")
    assert remotes(data, "--trusted-proxy", "127.0.0.2", env={"REMOTE_ADDR": "127.0.0.2"}) == ["198.51.100.8"]


def test_trusted_proxies_from_the_environment_ipv4_and_ipv6():
    env = {"EDGEPIPE_TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8::/32"}
    data = req("X-Forwarded-For: 2001:DB8:FFFF::1, 198.51.100.9")
    assert remotes(data, env={**env, "REMOTE_ADDR": "2001:db8:1::2"}) == ["198.51.100.9"]
    assert remotes(data, env={**env, "REMOTE_ADDR": "10.9.8.7"}) == ["198.51.100.9"]
    assert remotes(req("X-Forwarded-For: 2001:DB8:0::7"), env={**env, "REMOTE_ADDR": "10.9.8.7"}) == ["2001:db8::7"]
    assert remotes(data, env={**env, "REMOTE_ADDR": "2001:db9::2"}) == ["2001:db9::2"]


def test_ipv4_rule_matches_a_dual_stack_peer():
    data = req("X-Forwarded-For: 198.51.100.10")
    assert remotes(data, "--trusted-proxy", "127.0.0.2", env={"SOCAT_PEERADDR": "[::ffff:127.0.0.2]"}) == ["198.51.100.10"]


def test_option_overrides_the_environment():
    data = req("X-Forwarded-For: 198.51.100.11")
    env = {"EDGEPIPE_TRUSTED_PROXIES": "127.0.0.2", "TCPREMOTEIP": "127.0.0.2"}
    assert remotes(data, env=env) == ["198.51.100.11"]
    assert remotes(data, "--trusted-proxy", "10.0.0.1", env=env) == ["127.0.0.2"]


def test_each_request_of_a_proxied_connection_names_its_own_client():
    data = req("X-Forwarded-For: 198.51.100.1") + req("X-Real-IP: 198.51.100.2") + req()
    assert remotes(data, "--trusted-proxy", "127.0.0.2", env={"TCPREMOTEIP": "127.0.0.2"}) == \
        ["198.51.100.1", "198.51.100.2", "127.0.0.2"]


def test_trusted_peer_found_by_getpeername():
    """inetd-style: no launcher variable, the socket itself says the peer is 127.0.0.2."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.socket()
    client.bind(("127.0.0.2", 0))
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    client.sendall(req("X-Forwarded-For: 6.6.6.6, 198.51.100.12") + b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    try:
        recs, err, rc = decode(None, "--trusted-proxy", "127.0.0.2", stdin=server)
    finally:
        for s in (client, server, listener):
            s.close()
    assert rc == 0, err
    assert [r["remote"] for r in recs] == ["198.51.100.12", "127.0.0.2"]


def test_bad_rule_is_refused_with_a_reason():
    for rule in ["10.1.2.3/8", "10.0.0.0/33", "proxy.example", "::1/200"]:
        recs, err, rc = decode(req(), "--trusted-proxy", rule)
        assert rc == 2
        assert recs == []
        assert rule in err and "\n" == err[-1] and err.count("\n") == 1
    _, err, rc = decode(req(), env={"EDGEPIPE_TRUSTED_PROXIES": "127.0.0.1,nonsense"})
    assert rc == 2 and "nonsense" in err


def test_help_names_the_option_and_variable():
    out = subprocess.run([binary("http-decode"), "--help"], capture_output=True, timeout=10)
    assert out.returncode == 0
    assert b"--trusted-proxy" in out.stdout and b"EDGEPIPE_TRUSTED_PROXIES" in out.stdout
