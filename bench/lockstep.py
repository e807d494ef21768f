#!/usr/bin/env python3
"""bench/lockstep.py COMMAND RECORD_FILE [N]: a filter's cost per record in lock-step, as a
pipeline behind a proxy sees it: one record written, its answer read, then the next. Runs
COMMAND (a shell command line) once, sends the first line of RECORD_FILE N times (default
5,000; 300 first to warm up), best of 3 rounds. Prints microseconds per record on stderr and
the last answer on stdout, so that stages can be chained through files. Compare with `cat`
run the same way: the difference is the filter's own work."""
import os
import subprocess
import sys
import time


def main():
    command, path = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    with open(path, "rb") as f:
        record = f.readline().strip() + b"\n"
    proc = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    out, back = proc.stdin.fileno(), proc.stdout.fileno()

    def one():
        os.write(out, record)
        answer = os.read(back, 1 << 16)
        while not answer.endswith(b"\n"):
            more = os.read(back, 1 << 16)
            if not more:
                sys.exit(f"lockstep: {command} ended early")
            answer += more
        return answer

    for _ in range(300):
        last = one()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            last = one()
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    proc.stdin.close()
    proc.wait()
    print(f"{best:7.1f} us per record  {command}", file=sys.stderr)
    sys.stdout.buffer.write(last)


if __name__ == "__main__":
    main()
