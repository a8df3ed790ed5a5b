"""Every benchmark of issue #16 in one run, as a one-screen table: site-agent's figure, its
floor, the ratio, the goal and whether it is met.

CPU figures are user + system time (steadier than wall on a shared machine); wall figures are
what a user waits. Medians of --runs runs (the smoke tests: --smoke-runs).
Usage: python benchmarks/run_all.py [--runs N] [--smoke-runs N] [--tasks N] [--skip smoke,engine]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import Row


def engine_rows(tasks: int) -> list[Row]:
    import engine_submit

    # the workers unpickle engine_submit.noop by reference: let them import this directory
    here = os.path.dirname(os.path.abspath(__file__))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))

    (ours, _), (floor, _) = engine_submit.compare(tasks)
    return [
        Row("EngineExecutor.submit", ours * 1e3, floor * 1e3, "ms CPU/task", 2.0, "Parsl HTEX"),
    ]


def collect(args: argparse.Namespace) -> list[Row]:
    import check_hung
    import exec_overhead
    import pilot_overhead
    import smoke_harvester
    import wrapper_overhead

    skip = set(args.skip.split(",")) if args.skip else set()
    rows = pilot_overhead.measure(args.runs)
    rows += exec_overhead.measure(args.runs)[:1]
    rows += wrapper_overhead.measure(max(args.runs * 10, 100))
    rows += check_hung.measure(50, 2.0)
    if "smoke" not in skip:
        rows += smoke_harvester.measure(args.smoke_runs)
    if "engine" not in skip:
        rows += engine_rows(args.tasks)
    return rows


def table(rows: list[Row]) -> str:
    head = f"{'path':30} {'site-agent':>11} {'floor':>9} {'unit':12} {'ratio':>6} {'goal':>7}  ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        goal = f"<{r.absolute:g}" if r.absolute is not None else f"<={r.goal:g}x" if r.goal else ""
        ratio = "" if r.absolute is not None else f"{r.ratio:.2f}x"
        floor = "" if r.absolute is not None else f"{r.floor:9.2f}"
        lines.append(
            f"{r.path:30} {r.ours:11.2f} {floor:>9} {r.unit:12} {ratio:>6} {goal:>7}  "
            f"{'' if r.ok is None else 'pass' if r.ok else 'FAIL'}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--smoke-runs", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=2000, help="EngineExecutor tasks")
    parser.add_argument("--skip", default="", help="smoke,engine: leave out the slow ones")
    args = parser.parse_args()
    t0 = time.monotonic()
    rows = collect(args)
    print(
        f"site-agent benchmarks, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.node()}: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()}, {time.monotonic() - t0:.0f} s"
    )
    print(table(rows))
    floors = {r.floor_name for r in rows if r.floor_name and r.absolute is None}
    print("floors: " + "; ".join(sorted(floors)))


if __name__ == "__main__":
    main()
