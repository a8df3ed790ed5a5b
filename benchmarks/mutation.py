"""Mutation testing of the core modules: a small AST mutator (mutmut needs click >= 8.5, which
globus-compute-endpoint's pin excludes, and finds modules only under src/).

Each mutant of a module (one small change to its syntax tree) is run against the fast tests
that cover the module (MODULES below); a mutant that makes them fail is killed, one that
passes survived: either the tests miss a behaviour, or the mutant is equivalent (listed with
the reason in mutation_equivalent.txt and left out of the score).

The tree is never mutated: the worktree's agent/ is copied to a temporary directory that comes
first on PYTHONPATH, and only that copy is rewritten. Results are cached in
.cache/mutation.json per module source hash and mutant: a killed (or hanging) mutant stays
so, a survivor is run again when the tests have changed since. Not part of CI (minutes per module).

    .venv/bin/python benchmarks/mutation.py                      # every module
    .venv/bin/python benchmarks/mutation.py binding.py            # one module
    .venv/bin/python benchmarks/mutation.py --list                # the mutants, nothing run
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "agent" / "siteagent"
CACHE = REPO / ".cache" / "mutation.json"
EQUIVALENT = Path(__file__).with_name("mutation_equivalent.txt")

# module (relative to agent/siteagent) -> the fast tests that cover it (pytest arguments)
MODULES: dict[str, list[str]] = {
    "binding.py": ["tests/test_binding.py"],
    "userconfig.py": [
        "tests/test_userconfig_limits.py",
        "tests/test_userconfig.py",
        "tests/test_userconfig_queues.py",
        "tests/test_userconfig_endpoint.py",
        "tests/test_schedulers.py::test_per_queue_limits_in_the_request_and_in_the_endpoint_schema",
    ],
    "harvester/status.py": [
        "tests/test_harvester_status_codes.py",
        "tests/test_harvester_status.py",
    ],
    # the outcome tests check that every reason the wrapper gives is one REASONS documents
    "pilot/report.py": [
        "tests/test_report.py",
        "tests/test_pilot_outcome.py",
        "tests/test_fast_paths.py::test_only_the_final_report_is_fsynced",
        "tests/test_hardening.py::test_a_wrapper_that_finishes_while_its_report_is_read_is_not_marked_lost",
    ],
    "managed.py": ["tests/test_managed.py"],
    "checks/proxy.py": [
        "tests/test_proxy_check.py",
        "tests/test_check.py::test_no_proxy_matches_like_curl",
        "tests/test_check.py::test_proxy_from_environment_like_curl",
        "tests/test_check.py::test_proxy_url_parsing",
    ],
    "pilot/outcome.py": ["tests/test_pilot_outcome.py"],
    # the Supervisor with short payloads, each run in a child process (tests/supervisor_child.py)
    "pilot/run.py": [
        "tests/test_supervisor.py",
        # the hardening of #11: the payload dies with a SIGKILLed wrapper, the early report
        "tests/test_hardening.py::test_sigkilled_wrapper_takes_its_payload_and_a_later_run_marks_it_lost",
        "tests/test_hardening.py::test_the_starting_report_is_written_before_planning",
        "tests/test_hardening.py::test_report_to_an_unwritable_path_is_a_setup_error",
        "tests/test_hardening.py::test_workdir_is_unpredictable_exclusive_and_owner_only",
    ],
    # the sweep alone, then the Supervisor's leftover tests (not the whole file: 20 s a mutant)
    "pilot/leftovers.py": [
        "tests/test_fast_paths.py::test_orphaned_grandchild_is_found_and_ended",
        "tests/test_fast_paths.py::test_descendants_without_children_files_reads_parents",
        "tests/test_fast_paths.py::test_a_process_that_ended_has_no_descendants",
        "tests/test_fast_paths.py::test_the_sweep_waits_out_the_grace_without_spinning_and_reaps_all",
        "tests/test_fast_paths.py::test_a_zombie_left_to_a_parent_that_does_not_reap_it_is_not_waited_for",
        "tests/test_supervisor.py::test_payload_runs_in_the_workdir_with_the_planned_environment_in_its_own_group",
        "tests/test_supervisor.py::test_an_unforeseen_error_is_reported_then_raised_and_cleans_up",
        "tests/test_supervisor.py::test_nothing_the_payload_started_survives_it",
        "tests/test_supervisor.py::test_without_a_subreaper_the_payload_group_is_still_ended",
        "tests/test_supervisor.py::test_leftovers_get_term_first_so_they_can_clean_up",
        "tests/test_supervisor.py::test_a_leftover_that_starts_another_on_term_is_ended_too",
    ],
    "schedulers/base.py": ["tests/test_schedulers.py", "tests/test_schedulers_behaviour.py"],
    "schedulers/slurm.py": ["tests/test_schedulers.py", "tests/test_schedulers_behaviour.py"],
    "schedulers/pbspro.py": ["tests/test_schedulers.py", "tests/test_schedulers_behaviour.py"],
    "schedulers/local.py": ["tests/test_schedulers.py", "tests/test_schedulers_behaviour.py"],
    "schedulers/__init__.py": ["tests/test_schedulers.py", "tests/test_schedulers_behaviour.py"],
    "launchers/base.py": ["tests/test_schedulers.py", "tests/test_schedulers_behaviour.py"],
    "launchers/srun.py": ["tests/test_schedulers.py", "tests/test_schedulers_behaviour.py"],
    "launchers/mpiexec.py": ["tests/test_schedulers.py", "tests/test_schedulers_behaviour.py"],
    "launchers/local.py": ["tests/test_schedulers.py", "tests/test_schedulers_behaviour.py"],
    "launchers/__init__.py": ["tests/test_schedulers.py", "tests/test_schedulers_behaviour.py"],
    # the rank path's path spelling (pathlib's, without pathlib) and file helpers
    "pathstr.py": ["tests/test_pathstr.py"],
    "fileio.py": [
        "tests/test_fileio.py",
        "tests/test_fast_paths.py::test_only_the_final_report_is_fsynced",
    ],
    # exec's cached call: its parser, its entries, and exec through the console entry point
    "wrappers/exec_cache.py": [
        "tests/test_fast_paths.py::test_exec_second_call_comes_from_the_cache_and_follows_profile_edits",
        "tests/test_fast_paths.py::test_exec_lines_the_cache_does_not_know_go_to_click",
        "tests/test_fast_paths.py::test_exec_cache_entries_are_per_request_and_only_whole_ones_count",
        "tests/test_fast_paths.py::test_exec_cache_builds_the_same_wrapper_line_as_click",
        "tests/test_fast_paths.py::test_exec_cache_finds_the_launcher_on_path_as_shutil_which_does",
        "tests/test_fast_paths.py::test_exec_cache_parses_every_shape_option_and_fills_the_defaults",
        "tests/test_fast_paths.py::test_exec_lines_without_an_entry_return_to_click",
        "tests/test_wrappers.py::test_site_agent_exec_cli",
        "tests/test_admin_ux.py::test_exec_without_the_sites_launcher_says_so",
    ],
}

CMP_SWAPS = {
    # boundary and negation of each comparison
    ast.Lt: (ast.LtE, ast.GtE),
    ast.LtE: (ast.Lt, ast.Gt),
    ast.Gt: (ast.GtE, ast.LtE),
    ast.GtE: (ast.Gt, ast.Lt),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
}
BIN_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult}
SYMBOL = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.FloorDiv: "//",
    ast.And: "and",
    ast.Or: "or",
}
BODY_FIELDS = ("body", "orelse", "finalbody")


@dataclass(frozen=True)
class Mutant:
    """One change: ``node`` is the index of the node in ``ast.walk`` order of the module."""

    node: int
    operator: str  # cmp, boolop, negate, number, string, return, delete, arith
    detail: str  # e.g. "< -> <="
    line: int
    slot: int = 0  # which operand / variant / statement of the node

    @property
    def key(self) -> str:
        return f"{self.node}:{self.operator}:{self.slot}:{self.detail}"


def _skipped(tree: ast.Module) -> set[int]:
    """Nodes never mutated: annotations (not evaluated under ``from __future__ import
    annotations``), docstrings, ``__future__`` imports and ``if TYPE_CHECKING:`` blocks."""
    skip: set[int] = set()

    def all_of(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign):
            all_of(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            all_of(node.returns)
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            all_of(node)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            all_of(node)  # imports for the type checker only
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                all_of(first if isinstance(first.value.value, str) else None)
    return skip


def _in_functions(tree: ast.Module) -> set[int]:
    """Statements inside a function body (the only ones deleted: module-level imports and
    definitions are structure, not behaviour)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for stmt in node.body:
                inside.update(id(n) for n in ast.walk(stmt) if isinstance(n, ast.stmt))
    return inside


def _returns_something(node: ast.Return) -> bool:
    value = node.value
    return value is not None and not (isinstance(value, ast.Constant) and value.value is None)


def mutants(source: str) -> list[Mutant]:
    """Every mutant of a module's source, in a stable order."""
    tree = ast.parse(source)
    skip, inside = _skipped(tree), _in_functions(tree)
    out: list[Mutant] = []
    for i, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare):
            for slot, op in enumerate(node.ops):
                for new in CMP_SWAPS.get(type(op), ()):
                    detail = f"{SYMBOL[type(op)]} -> {SYMBOL[new]}"
                    out.append(Mutant(i, "cmp", detail, line, slot))
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And
            out.append(Mutant(i, "boolop", f"{SYMBOL[type(node.op)]} -> {SYMBOL[new]}", line))
        elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in BIN_SWAPS:
            new = BIN_SWAPS[type(node.op)]
            out.append(Mutant(i, "arith", f"{SYMBOL[type(node.op)]} -> {SYMBOL[new]}", line))
        elif isinstance(node, ast.Constant) and not isinstance(node.value, bool):
            if isinstance(node.value, int | float):
                new_value = {0: 1, 1: 0}.get(node.value, node.value + 1)
                out.append(Mutant(i, "number", f"{node.value!r} -> {new_value!r}", line))
            elif isinstance(node.value, str) and node.value:
                out.append(Mutant(i, "string", f"{node.value[:20]!r} -> ''", line))
        elif isinstance(node, ast.Return) and _returns_something(node):
            out.append(Mutant(i, "return", "return X -> return None", line))
        if isinstance(node, ast.If | ast.While | ast.IfExp | ast.Assert):
            out.append(Mutant(i, "negate", "x -> not x", line))
        if isinstance(node, ast.comprehension):
            for slot, cond in enumerate(node.ifs):
                out.append(Mutant(i, "negate", "x -> not x", cond.lineno, slot))
        for field in BODY_FIELDS:
            stmts = getattr(node, field, None)
            for slot, stmt in enumerate(stmts if isinstance(stmts, list) else []):
                deletable = id(stmt) in inside and id(stmt) not in skip
                if deletable and not isinstance(stmt, ast.Pass):
                    n = BODY_FIELDS.index(field) * 10_000 + slot
                    out.append(Mutant(i, "delete", f"{field}[{slot}] -> pass", stmt.lineno, n))
    out.sort(key=lambda m: (m.line, m.node, m.slot, m.detail))
    return out


def apply(source: str, m: Mutant) -> str:
    """The module's source with mutant ``m`` applied."""
    tree = ast.parse(source)
    node = list(ast.walk(tree))[m.node]
    if m.operator == "cmp":
        old = type(node.ops[m.slot])
        new = next(n for n in CMP_SWAPS[old] if m.detail.endswith(f"-> {SYMBOL[n]}"))
        node.ops[m.slot] = new()
    elif m.operator == "boolop":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif m.operator == "arith":
        node.op = BIN_SWAPS[type(node.op)]()
    elif m.operator == "number":
        node.value = {0: 1, 1: 0}.get(node.value, node.value + 1)
    elif m.operator == "string":
        node.value = ""
    elif m.operator == "return":
        node.value = ast.Constant(None)
    elif m.operator == "negate":
        if isinstance(node, ast.comprehension):
            node.ifs[m.slot] = ast.UnaryOp(ast.Not(), node.ifs[m.slot])
        else:
            node.test = ast.UnaryOp(ast.Not(), node.test)
    elif m.operator == "delete":
        body = getattr(node, BODY_FIELDS[m.slot // 10_000])
        body[m.slot % 10_000] = ast.copy_location(ast.Pass(), body[m.slot % 10_000])
    else:
        raise ValueError(m.operator)
    return ast.unparse(ast.fix_missing_locations(tree))


def _sha(*texts: str) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def tests_hash(args: list[str]) -> str:
    """Hash of a module's selection of tests and of the files it reads (a survivor reruns
    when either changes: a test added to the selection from a file it already read, too)."""
    files = sorted({a.split("::")[0] for a in args} | {"tests/conftest.py"})
    return _sha(*sorted(args), *files, *((REPO / f).read_text() for f in files))


def load_equivalent(path: Path = EQUIVALENT) -> list[tuple[str, int | str, str, str]]:
    """Entries of ``path``, one a line: ``module | where | operator | reason``. ``where`` is a
    line number, or a piece of the line's source text (which survives edits above it);
    ``operator`` is a kind (``cmp``) or a kind with its detail (``cmp: < -> <=``)."""
    out: list[tuple[str, int | str, str, str]] = []
    if path.is_file():
        for raw in path.read_text().splitlines():
            if raw.strip() and not raw.lstrip().startswith("#"):
                module, where, op, reason = (x.strip() for x in raw.split("|", 3))
                out.append((module, int(where) if where.isdigit() else where, op, reason))
    return out


def equivalent_reason(
    module: str, m: Mutant, equivalent: list, lines: list[str] | None = None
) -> str | None:
    """The reason ``m`` is listed as equivalent, or None; ``lines``: the module's source."""
    for mod, where, op, reason in equivalent:
        if mod != module or op not in (m.operator, f"{m.operator}: {m.detail}"):
            continue
        if where == m.line or (
            isinstance(where, str) and lines is not None and where in lines[m.line - 1]
        ):
            return reason
    return None


def _become_subreaper() -> None:
    """Processes a mutant's tests leave behind (a hung Supervisor's payload, in its own
    process group) re-parent to this script instead of init, so _end_orphans finds them."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _end_orphans() -> None:
    """End every process still below this script once a pytest run is over."""
    from siteagent.pilot.leftovers import end_leftovers

    end_leftovers(None, grace=1.0)


class Sandbox:
    """A copy of agent/ (plus the shipped data it finds next to it) first on PYTHONPATH."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="siteagent-mutation-"))
        shutil.copytree(
            REPO / "agent", self.root / "agent", ignore=shutil.ignore_patterns("__pycache__")
        )
        for data in ("site-profiles", "cvmfs"):
            (self.root / data).symlink_to(REPO / data)
        self.env = os.environ | {
            "PYTHONPATH": os.pathsep.join(
                [str(self.root / "agent"), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            # mutants of equal size written within a second would reuse a stale .pyc
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def run(self, module: str, source: str, tests: list[str], timeout: float) -> tuple[str, float]:
        """Run ``tests`` with ``source`` as ``module``: (killed|survived|timeout, seconds)."""
        target = self.root / "agent" / "siteagent" / module
        original = target.read_text()
        target.write_text(source)
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our own pytest and whatever it started
            proc.communicate()
            rc = None
            out = b""
        finally:
            target.write_text(original)
            _end_orphans()
        seconds = time.monotonic() - t0
        if rc is None:
            return "timeout", seconds
        if rc in (3, 4, 5):  # internal error, usage error, nothing collected: our fault
            raise RuntimeError(f"pytest exit {rc} for {' '.join(tests)}:\n{out.decode()[-2000:]}")
        return ("survived" if rc == 0 else "killed"), seconds

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _load_cache() -> dict:
    try:
        return json.loads(CACHE.read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(cache: dict) -> None:
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    tmp = CACHE.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
    tmp.replace(CACHE)


def run_module(module: str, sandbox: Sandbox, equivalent: list, fresh: bool) -> dict:
    """Run every mutant of ``module`` not settled in the cache; returns its summary."""
    source = (PACKAGE / module).read_text()
    tests = MODULES[module]
    thash = tests_hash(tests)
    cache = _load_cache()
    key = f"{module}@{_sha(source)}"
    results: dict = {} if fresh else cache.get(key, {})
    # the tests must pass on the real module; their time sets the per-mutant timeout
    status, baseline = sandbox.run(module, source, tests, timeout=600)
    if status != "survived":
        raise SystemExit(f"{module}: the tests fail without any mutant: {' '.join(tests)}")
    timeout = max(10.0, 4 * baseline)
    all_mutants = mutants(source)
    print(f"{module}: {len(all_mutants)} mutants, baseline {baseline:.1f}s", file=sys.stderr)
    for n, m in enumerate(all_mutants, 1):
        old = results.get(m.key)
        if old and (old["status"] in ("killed", "timeout") or old["tests"] == thash):
            continue
        if equivalent_reason(module, m, equivalent, source.splitlines()) and old:
            continue
        status, seconds = sandbox.run(module, apply(source, m), tests, timeout)
        results[m.key] = {"status": status, "tests": thash, "seconds": round(seconds, 2)}
        print(
            f"  [{n}/{len(all_mutants)}] line {m.line} {m.operator} {m.detail}: {status}",
            file=sys.stderr,
        )
        cache = _load_cache()
        cache[key] = results
        _save_cache(cache)
    cache = _load_cache()
    cache[key] = results
    _save_cache(cache)
    return summarise(module, all_mutants, results, equivalent, source.splitlines())


def summarise(
    module: str, all_mutants: list[Mutant], results: dict, equivalent: list, lines: list[str]
) -> dict:
    counts = {"killed": 0, "survived": 0, "timeout": 0, "equivalent": 0}
    survivors, equivalents = [], []
    for m in all_mutants:
        reason = equivalent_reason(module, m, equivalent, lines)
        status = results.get(m.key, {}).get("status", "not run")
        if reason is not None and status != "killed":
            counts["equivalent"] += 1
            equivalents.append((m, reason))
            continue
        counts[status] = counts.get(status, 0) + 1
        if status in ("survived", "not run"):
            survivors.append(m)
    scored = counts["killed"] + counts["survived"] + counts["timeout"]
    # a mutant that hangs the tests is caught (a real run would hit the walltime)
    score = (counts["killed"] + counts["timeout"]) / scored if scored else 1.0
    stale = [
        e
        for e in equivalent
        if e[0] == module and not any(equivalent_reason(module, m, [e], lines) for m in all_mutants)
    ]
    return {
        "module": module,
        "stale": stale,
        "mutants": len(all_mutants),
        **counts,
        "score": score,
        "survivors": survivors,
        "equivalents": equivalents,
    }


def print_summary(summaries: list[dict]) -> None:
    print("| module | mutants | killed | survived | timeout | equivalent | score |")
    print("|---|---|---|---|---|---|---|")
    for s in summaries:
        print(
            f"| `{s['module']}` | {s['mutants']} | {s['killed']} | {s['survived']} | "
            f"{s['timeout']} | {s['equivalent']} | {s['score']:.0%} |"
        )
    for s in summaries:
        for m in s["survivors"]:
            print(f"survived: {s['module']}:{m.line} {m.operator}: {m.detail}")
    for s in summaries:
        for m, reason in s["equivalents"]:
            print(f"equivalent: {s['module']}:{m.line} {m.operator}: {m.detail} ({reason})")
    for s in summaries:
        for module, line, op, _ in s["stale"]:
            print(f"stale equivalent entry (no such mutant): {module} | {line} | {op}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help=f"default: all of {', '.join(MODULES)}")
    ap.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    ap.add_argument("--show", metavar="N", type=int, help="print the source of mutant N")
    ap.add_argument("--fresh", action="store_true", help="ignore cached results")
    ap.add_argument("--equivalent", type=Path, default=EQUIVALENT, help="equivalent mutants")
    args = ap.parse_args(argv)
    modules = args.modules or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        ap.error(f"unknown module {', '.join(unknown)} (known: {', '.join(MODULES)})")
    equivalent = load_equivalent(args.equivalent)
    if args.list or args.show is not None:
        for module in modules:
            source = (PACKAGE / module).read_text()
            for n, m in enumerate(mutants(source), 1):
                if args.show == n:
                    print(apply(source, m))
                elif args.list:
                    print(f"{n}\t{module}:{m.line}\t{m.operator}: {m.detail}")
        return 0
    _become_subreaper()
    sandbox = Sandbox()
    try:
        summaries = [run_module(m, sandbox, equivalent, args.fresh) for m in modules]
    finally:
        sandbox.close()
    print_summary(summaries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
