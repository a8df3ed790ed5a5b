"""benchmarks/mutation.py: the mutants it makes, and that a run never leaves the tree mutated."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutation():
    spec = importlib.util.spec_from_file_location("mutation", REPO / "benchmarks" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules["mutation"]


SOURCE = '''"""Docstring."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def f(x: int, y: str = "a") -> str:
    """Doc."""
    if x < 2 and y:
        return y + "b"
    total = x * 3 // 2
    return [c for c in y if c == "a"] or total
'''


def test_each_operator_makes_the_documented_change(mutation):
    got = {(m.operator, m.detail) for m in mutation.mutants(SOURCE)}
    for want in [
        ("cmp", "< -> <="),
        ("cmp", "< -> >="),
        ("cmp", "== -> !="),
        ("boolop", "and -> or"),
        ("boolop", "or -> and"),
        ("negate", "x -> not x"),
        ("number", "2 -> 3"),
        ("number", "3 -> 4"),
        ("string", "'b' -> ''"),
        ("return", "return X -> return None"),
        ("delete", "body[0] -> pass"),
        ("arith", "+ -> -"),
        ("arith", "* -> //"),
        ("arith", "// -> *"),
    ]:
        assert want in got, want
    # docstrings, annotations and the __future__ import are left alone
    assert ("string", "'Doc.' -> ''") not in got
    assert ("string", "'Docstring.' -> ''") not in got
    assert not [m for m in mutation.mutants(SOURCE) if m.line in (3, 7, 8)]


def test_applied_mutants_differ_by_exactly_their_change(mutation):
    changed = {}
    for m in mutation.mutants(SOURCE):
        text = mutation.apply(SOURCE, m)
        ast.parse(text)
        assert text != ast.unparse(ast.parse(SOURCE)), m
        changed[(m.operator, m.detail, m.line)] = text
    assert "if x <= 2 and y:" in changed[("cmp", "< -> <=", 13)]
    assert "if not (x < 2 and y):" in changed[("negate", "x -> not x", 13)]
    assert "return None" in changed[("return", "return X -> return None", 14)]
    assert "total = x // 3 // 2" in changed[("arith", "* -> //", 15)]


def test_equivalent_entries_match_line_and_operator(mutation, tmp_path):
    listed = tmp_path / "eq.txt"
    listed.write_text("# comment\nm.py | 13 | cmp: < -> <= | a reason\nm.py | 14 | return | why\n")
    entries = mutation.load_equivalent(listed)
    assert entries == [("m.py", 13, "cmp: < -> <=", "a reason"), ("m.py", 14, "return", "why")]
    ms = mutation.mutants(SOURCE)
    reasons = {(m.line, m.detail): mutation.equivalent_reason("m.py", m, entries) for m in ms}
    assert reasons[(13, "< -> <=")] == "a reason"
    assert reasons[(13, "< -> >=")] is None
    assert reasons[(14, "return X -> return None")] == "why"
    assert mutation.equivalent_reason("other.py", ms[0], entries) is None
    # a piece of the line's source instead of its number
    listed.write_text("m.py | total = x * 3 | arith: * -> // | moved lines\n")
    entries = mutation.load_equivalent(listed)
    lines = SOURCE.splitlines()
    found = [m for m in ms if mutation.equivalent_reason("m.py", m, entries, lines)]
    assert [(m.line, m.detail) for m in found] == [(15, "* -> //")]


def test_a_run_kills_a_breaking_mutant_and_leaves_the_tree_alone(mutation):
    module = REPO / "agent" / "siteagent" / "pilot" / "report.py"
    before = module.read_text()
    sandbox = mutation.Sandbox()
    try:
        broken = before.replace('"%Y-%m-%dT%H:%M:%SZ"', '""')
        assert broken != before
        tests = ["tests/test_report.py"]
        assert sandbox.run("pilot/report.py", broken, tests, 120)[0] == "killed"
        assert sandbox.run("pilot/report.py", before, tests, 120)[0] == "survived"
        assert (sandbox.root / "agent" / "siteagent" / "pilot" / "report.py").read_text() == before
    finally:
        sandbox.close()
    assert module.read_text() == before
    assert not sandbox.root.exists()
