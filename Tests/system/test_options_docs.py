"""Each tool's --help and its docs page name the same options.

The usage text is generated from the tool's one option table (Sources/Common/Records/
OptionTable.swift), so this catches a docs page that drifted from the code. A tool joins
by adding its name to TOOLS once its --help comes from an OptionTable and docs/<tool>.md
has an options table: | option | environment | default | meaning |, one row per option,
aliases in the option cell ("`--store DIR|URL` (also `--kv`)").
"""
import re
import subprocess

import pytest

from conftest import ROOT, binary

TOOLS = ["kv", "sign-jwt", "audit", "route", "limit", "reserve", "apply-webhook", "http-decode", "http-encode", "verify-jwt", "forward"]

OPTION = re.compile(r"--[a-z0-9][a-z0-9-]*")


def first_cell(row):
    """A Markdown row's first cell; `\\|` inside a cell is a literal bar."""
    return re.split(r"(?<!\\)\|", row)[1]


def help_options(tool):
    """The options `tool --help` documents: the --name starting each entry under every
    "options:" heading (tools with commands print one per command), and the aliases its
    "(also --x)" notes name."""
    proc = subprocess.run([binary(tool), "--help"], capture_output=True, timeout=10)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    names, in_options = set(), False
    for line in text.splitlines():
        if line == "options:":
            in_options = True
        elif not line.startswith(" "):
            in_options = False
        elif in_options:
            entry = re.match(r"  (--[a-z0-9][a-z0-9-]*)", line)
            if entry:
                names.add(entry.group(1))
            for also in re.findall(r"\(also ([^;)]*)", line):
                names.update(OPTION.findall(also))
    return names


def docs_options(tool):
    """The options docs/<tool>.md's options table names: the first cell of each row that
    starts with "| `--name", aliases included."""
    page = (ROOT / "docs" / f"{tool}.md").read_text()
    assert "| option | environment | default | meaning |" in page, f"docs/{tool}.md has no options table"
    names = set()
    for line in page.splitlines():
        if line.startswith("| `--"):
            names.update(OPTION.findall(first_cell(line)))
    return names


@pytest.mark.parametrize("tool", TOOLS)
def test_help_and_docs_name_the_same_options(tool):
    in_help, in_docs = help_options(tool), docs_options(tool)
    assert in_help, f"{tool} --help documents no options"
    assert in_help == in_docs, (f"{tool}: only in --help: {sorted(in_help - in_docs)}; "
                                f"only in docs/{tool}.md: {sorted(in_docs - in_help)}")


def test_an_option_missing_from_the_docs_is_named():
    """The comparison is not vacuous: a page without one row reports that option."""
    page = (ROOT / "docs" / "kv.md").read_text()
    rows = [l for l in page.splitlines() if l.startswith("| `--")]
    dropped = set(OPTION.findall(first_cell(rows[0])))
    rest = set()
    for l in rows[1:]:
        rest.update(OPTION.findall(first_cell(l)))
    assert dropped and dropped <= help_options("kv") - rest
