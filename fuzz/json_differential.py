#!/usr/bin/env python3
"""Differential check of the record reader against Python's json module.

    fuzz/json_differential.py [CORPUS_DIR...]     (default: the json corpora, seeds and grown)

Every line of every corpus file goes through a real filter (`route`, from $EDGEPIPE_BIN or
.build/release) and through Python's strict json.loads with the rules of docs/protocol.md
added (an object, no duplicate keys, no NaN/Infinity, no lone surrogates, at most 64 deep).
A line one side accepts and the other refuses is printed; the exit status is 1 when there
is any. Run it after fuzz/run has grown the corpus: the fuzzer finds the odd inputs, this
says whether they are read as the JSON standard reads them.
"""
import json, os, pathlib, subprocess, sys

root = pathlib.Path(__file__).resolve().parent.parent
dirs = sys.argv[1:] or [root / "fuzz/corpus/json", root / ".build-fuzz/corpus/json"]
binary = pathlib.Path(os.environ.get("EDGEPIPE_BIN", root / ".build/release")) / "route"


def refuse(*_):
    raise ValueError


def no_duplicates(pairs):
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError("duplicate key")
    return dict(pairs)


def depth(v):
    if isinstance(v, dict):
        return 1 + max(map(depth, v.values()), default=0)
    if isinstance(v, list):
        return 1 + max(map(depth, v), default=0)
    return 0


def strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from strings(x)


def python_accepts(line):
    try:
        v = json.loads(line.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=refuse)
    except (ValueError, RecursionError):
        return False
    return (isinstance(v, dict) and depth(v) <= 64
            and not any(0xD800 <= ord(c) <= 0xDFFF for s in strings(v) for c in s))


lines = set()
for d in map(pathlib.Path, dirs):
    if d.is_dir():
        for f in d.iterdir():
            lines.update(f.read_bytes().split(b"\n"))
lines = sorted(lines)
if not binary.exists():
    sys.exit(f"no {binary}: build the release binaries or set EDGEPIPE_BIN")
out = subprocess.run([str(binary), "--table", str(root / "pipelines/routes")], input=b"\n".join(lines) + b"\n",
                     capture_output=True, check=True).stdout.split(b"\n")[:-1]
assert len(out) == len(lines), "one line in, one line out"
differences = 0
for line, answer in zip(lines, out):
    ours = b"malformed record" not in answer and b"record too long" not in answer
    if ours != python_accepts(line):
        differences += 1
        print(f"{'accepted' if ours else 'refused'} by edgepipe, not by Python: {line[:160]!r}")
print(f"{len(lines)} lines, {differences} differences")
sys.exit(1 if differences else 0)
