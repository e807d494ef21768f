"""The filter loop every Swift filter runs (Sources/Common/Records/FilterLoop.swift), through
`route`: each answer is written before the filter waits for more input, lines that
arrive together may share a write, and nothing is lost, reordered or merged either way."""
import json
import os
import select
import subprocess

import pytest

from conftest import PIPELINES, binary, request, run_filter


def start_route():
    return subprocess.Popen([binary("route"), "--table", str(PIPELINES / "routes")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_line(proc, timeout=5.0):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no answer while the filter waits for its next input line"
    return json.loads(proc.stdout.readline())


def test_each_answer_is_written_before_the_filter_waits_for_the_next_line():
    proc = start_route()
    try:
        for i in range(3):
            proc.stdin.write((json.dumps(request(id=str(i), path="/healthz")) + "\n").encode())
            proc.stdin.flush()
            answer = read_line(proc)   # stdin stays open: the answer must come anyway
            assert answer["id"] == str(i) and answer["status"] == 200
    finally:
        proc.stdin.close()
        proc.wait(timeout=5)
    assert proc.returncode == 0


def test_a_burst_of_lines_gets_one_answer_each_in_order():
    lines = [request(id=str(i), path="/healthz" if i % 3 else "/nope") for i in range(5000)]
    out, _ = run_filter("route", lines, "--table", str(PIPELINES / "routes"))
    assert [r["id"] for r in out] == [str(i) for i in range(5000)]
    assert [r["status"] for r in out] == [200 if i % 3 else 404 for i in range(5000)]


def test_answers_larger_than_the_output_buffer_arrive_whole():
    big = "x" * 100_000   # each answer is larger than the loop's 64 KiB flush size
    lines = [request(id=str(i), path="/healthz", body=big) for i in range(20)]
    out, _ = run_filter("route", lines, "--table", str(PIPELINES / "routes"))
    assert [r["id"] for r in out] == [str(i) for i in range(20)]
    assert all(r["status"] == 200 for r in out)


def test_untouched_fields_of_a_changed_record_pass_through_as_sent():
    sent = request(id="7", method="GET", path="/v1/subscription",
                   headers=[["host", "h"], ["x-odd", "tab\there \"quoted\" é \\u"]],
                   body='{"k":["v",1.50,null]}', extra={"deep": [{"a": [True, False]}], "n": -0.0e+5})
    line = json.dumps(sent, separators=(",", ":"), ensure_ascii=False)
    out = subprocess.run([binary("route"), "--table", str(PIPELINES / "routes")], input=(line + "\n").encode(),
                         capture_output=True, timeout=10).stdout.decode()
    assert out.endswith("\n") and out.count("\n") == 1
    # route adds its annotation at the end; every field before it is the bytes that came in
    assert out.startswith(line[:-1] + ',"annotations":{"route":')
    assert json.loads(out)["annotations"]["route"]["name"] == "subscription"


@pytest.mark.parametrize("name,args", [("route", ["--table", str(PIPELINES / "routes")]),
                                       ("audit", []), ("http-encode", [])])
def test_a_filter_waiting_for_input_exits_as_soon_as_the_next_stage_is_gone(tmp_path, name, args):
    # Without this, a pipeline whose last stage died would hold an idle keep-alive client
    # until http-decode's idle timeout: every stage before it waits for input forever.
    env = dict(os.environ, EDGEPIPE_AUDIT_FILE=str(tmp_path / "audit.log"))
    proc = subprocess.Popen([binary(name), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        line = request(id="1", path="/healthz") if name != "http-encode" else \
            {"id": "1", "status": 200, "headers": [], "body": "ok", "keep_alive": True}
        proc.stdin.write((json.dumps(line) + "\n").encode())
        proc.stdin.flush()
        assert proc.stdout.readline()          # answered: now it waits for its next line
        proc.stdout.close()                    # the next stage exits
        assert proc.wait(timeout=5) == 1       # stdin is still open: it did not wait for it
    finally:
        proc.kill()
        proc.stdin.close()
