"""The reservation page in headless Chromium, driven over the DevTools protocol: a visitor
fills the form, sees the verification message, follows the link from the outbox, sees the
success, and sees each refusal (taken, blocked, invalid, used, expired) as a message.

Needs Debian's `chromium` (apt-get install -y chromium); skipped with the reason when it
is missing. The WebSocket client is a few lines of standard library below, so no Python
package is needed. A screenshot of each step is written under the test's tmp dir, and the
last one is copied to Tests/system/artifacts/reserve-page.png."""
import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import stop_group
from test_reserve import ReserveService

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
STEP_TIMEOUT = float(os.environ.get("EDGEPIPE_BROWSER_TIMEOUT", "15"))

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")


class WebSocket:
    """Just enough RFC 6455 for the DevTools protocol: text frames, masking, long payloads,
    continuation frames, ping."""

    def __init__(self, url, timeout=STEP_TIMEOUT):
        m = re.match(r"ws://([^/:]+):(\d+)(/.*)", url)
        self.sock = socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {m.group(3)} HTTP/1.1\r\nHost: {m.group(1)}:{m.group(2)}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "DevTools closed the connection during the handshake"
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == b"101", head

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            assert chunk, "DevTools closed the connection"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text):
        payload = text.encode()
        n = len(payload)
        header = bytes([0x81])
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 0x9:   # ping
                self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            message += payload
            if b0 & 0x80:
                return message.decode()

    def close(self):
        self.sock.close()


class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--remote-debugging-port=0",
             "--remote-allow-origins=*", f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=900,1000",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.time() + 30
        port = None
        while time.time() < deadline and port is None:
            line = self.proc.stderr.readline().decode(errors="replace")
            if not line and self.proc.poll() is not None:
                break
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
        if port is None:
            self.quit()
            pytest.skip("chromium did not start its DevTools endpoint")
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(p for p in pages if p["type"] == "page")
        self.ws = WebSocket(page["webSocketDebuggerUrl"])
        self.next_id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.shots = 0

    def call(self, method, **params):
        self.next_id += 1
        mine = self.next_id
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mine:
                assert "error" not in msg, msg
                return msg.get("result", {})

    def js(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def wait_for(self, expression, what):
        deadline = time.time() + STEP_TIMEOUT
        while time.time() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.05)
        self.screenshot("timeout")
        raise AssertionError(f"timed out waiting for {what}; page says {self.js('document.body.innerText')!r}")

    def open(self, url):
        self.call("Page.navigate", url=url)
        self.wait_for(f"document.readyState === 'complete' && location.href.startsWith({json.dumps(url.split('?')[0])})",
                      f"{url} to load")

    def type_into(self, element_id, text):
        """Focuses the field, clears it and types as a user would (insertText events)."""
        self.js(f"(function(e){{e.focus(); e.select();}})(document.getElementById({json.dumps(element_id)}))")
        self.call("Input.insertText", text=text)

    def click(self, element_id):
        x, y = self.js(f"(function(r){{return [r.left + r.width / 2, r.top + r.height / 2];}})"
                       f"(document.getElementById({json.dumps(element_id)}).getBoundingClientRect())")
        for kind in ["mousePressed", "mouseReleased"]:
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def outcome(self, expected):
        """Waits until the status line shows `expected`; returns its text."""
        self.wait_for(f"document.getElementById('status').dataset.outcome === {json.dumps(expected)}",
                      f"the {expected!r} message")
        return self.js("document.getElementById('status').textContent")

    def screenshot(self, name):
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        self.shots += 1
        path = self.tmp / f"reserve-page-{self.shots:02d}-{name}.png"
        path.write_bytes(data)
        return path

    def quit(self):
        if getattr(self, "ws", None):
            self.ws.close()
        stop_group(self.proc)


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path)
    yield b
    b.quit()


@pytest.fixture
def svc(tmp_path):
    s = ReserveService(tmp_path)
    yield s
    s.stop()


def reserve_in_page(browser, svc, subdomain, email):
    browser.open(svc.url + "/")
    browser.type_into("subdomain", subdomain)
    browser.type_into("email", email)
    browser.click("submit")


def test_visitor_reserves_confirms_from_the_mail_and_meets_a_conflict(browser, svc):
    reserve_in_page(browser, svc, "chromium-site", "visitor@example.com")
    sent = browser.outcome("sent")
    assert "confirmation link to visitor@example.com" in sent
    browser.screenshot("sent")

    link = re.search(r"^(http://\S+/\?token=[A-Za-z0-9_-]+)$", svc.outbox()[-1], re.M).group(1)
    browser.open(link)
    confirmed = browser.outcome("confirmed")
    assert confirmed == "Confirmed: chromium-site is reserved for visitor@example.com. See you at launch!"
    # The token left the address bar as soon as the page read it.
    assert browser.js("location.search") == ""
    browser.screenshot("confirmed")

    reserve_in_page(browser, svc, "chromium-site", "someone-else@example.com")
    taken = browser.outcome("taken")
    assert "chromium-site is already reserved" in taken
    assert browser.js("document.getElementById('subdomain').value") == ""   # cleared for the next try
    last = browser.screenshot("taken")

    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(last, ARTIFACTS / "reserve-page.png")
    assert (ARTIFACTS / "reserve-page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_visitor_sees_invalid_blocked_used_and_expired_messages(browser, svc):
    reserve_in_page(browser, svc, "bad_name", "visitor@example.com")
    assert browser.outcome("invalid").startswith("Check the subdomain: ")

    reserve_in_page(browser, svc, "admin", "visitor@example.com")
    assert "admin cannot be reserved" in browser.outcome("blocked")

    reserve_in_page(browser, svc, "twice", "visitor@example.com")
    browser.outcome("sent")
    link = re.search(r"^(http://\S+/\?token=[A-Za-z0-9_-]+)$", svc.outbox()[-1], re.M).group(1)
    browser.open(link)
    browser.outcome("confirmed")
    browser.open(link)
    assert browser.outcome("used") == "This confirmation link has already been used."

    browser.open(svc.url + "/?token=" + "A" * 43)
    assert "expired" in browser.outcome("expired")
    browser.screenshot("expired")


def test_an_owner_clicking_their_second_mail_or_asking_again_sees_the_name_is_theirs(browser, svc):
    # Issue 19 §8: not "already reserved — try another name".
    for _ in range(2):
        reserve_in_page(browser, svc, "  owned-site ", "owner@example.com")
        browser.outcome("sent")
    first, second = [re.search(r"^(http://\S+/\?token=[A-Za-z0-9_-]+)$", m, re.M).group(1) for m in svc.outbox()]
    browser.open(first)
    browser.outcome("confirmed")
    browser.open(second)
    assert browser.outcome("yours") == "Good news: owned-site is already yours, reserved for owner@example.com."
    reserve_in_page(browser, svc, "owned-site", "owner@example.com")
    assert browser.outcome("yours") == "Good news: owned-site is already yours, reserved for owner@example.com."
