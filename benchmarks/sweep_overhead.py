"""The sweep's own overhead per point, against running the same points by hand.

By hand: for each point, what a person would script with site-agent's parts: canonicalize the
config, start its user endpoint (the real engine, in-process), send the run as a
ShellFunction through the execution wrapper and the pilot wrapper, wait, stop the engine.
Sweep: ``prepare`` + ``execute`` of ``site-agent sweep`` on the same points (results file,
pilot reports, progress, ranking included). Both on the local profile with the payload ``true``,
so what is measured is everything but the payload. Rounds alternate the two to share the
machine's load; the paired ratio (median of the per-round ratios) is the figure to read on a
busy machine, and the CPU of this process shows the sweep's own work without the noise.
Prints seconds per point and the ratio (goal: within 1.1x).
Usage: python benchmarks/sweep_overhead.py [--rounds N] [--points 1,2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

PILOT = f'"$SITE_AGENT_EXEC" -- {sys.executable} -m siteagent pilot --site local -- true'


def by_hand(ranks: list[int], workdir: Path) -> None:
    from globus_compute_sdk import ShellFunction

    from siteagent.harvester.backends import EngineBackend
    from siteagent.profiles import load_profile
    from siteagent.userconfig import canonicalize

    profile = load_profile("local")
    backend = EngineBackend("local", workdir)
    try:
        for r in ranks:
            config = canonicalize(profile, {"ranks_per_node": r})
            cmd = f"SITE_AGENT_STATE={workdir}/state SITE_AGENT_WORKER_ID=hand-{r} {PILOT}"
            res = backend.executor(config).submit(ShellFunction(cmd)).result(timeout=300)
            if res.returncode != 0:
                raise SystemExit(f"by hand: ranks {r}: exit {res.returncode}: {res.stderr}")
            backend.release(config)
    finally:
        backend.shutdown()


def swept(ranks: list[int], workdir: Path) -> None:
    from siteagent.sweep.run import SweepOptions, execute, prepare

    opts = SweepOptions(
        payload="true",
        grid=["ranks_per_node=" + ",".join(map(str, ranks))],
        results=workdir / "r.jsonl",
        workdir=workdir,
    )
    outcome = execute(prepare(opts))
    if not all(r["ok"] for r in outcome.summary.records):
        raise SystemExit(f"sweep: {[r['error'] for r in outcome.summary.records]}")


def measured(fn, ranks: list[int]) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (the engine's interchange and workers are
    other processes: what is left is site-agent's own work and the engine's client side)."""
    t0, c0 = time.perf_counter(), _cpu()
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        fn(ranks, Path(tmp))
    return time.perf_counter() - t0, _cpu() - c0


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--points", default="1,2", help="ranks_per_node values (one point each)")
    args = parser.parse_args()
    ranks = [int(x) for x in args.points.split(",")]
    n = len(ranks)
    measured(swept, ranks[:1])  # warm-up: imports of both paths, first engine start
    hand: list[tuple[float, float]] = []
    sweep: list[tuple[float, float]] = []
    for i in range(args.rounds):
        pair = [(by_hand, hand), (swept, sweep)]
        for fn, out in pair if i % 2 == 0 else reversed(pair):
            wall, cpu = measured(fn, ranks)
            out.append((wall / n, cpu / n))
    hw, sw = [w for w, _ in hand], [w for w, _ in sweep]
    hc, sc = statistics.median(c for _, c in hand), statistics.median(c for _, c in sweep)
    h, s = statistics.median(hw), statistics.median(sw)
    paired = statistics.median(b / a for a, b in zip(hw, sw, strict=True))
    print(
        f"points per round                      {n} (ranks_per_node={args.points}), {args.rounds} rounds"
    )
    print(f"by hand through the engine            {h:7.3f} s/point  {[round(x, 2) for x in hw]}")
    print(f"site-agent sweep                      {s:7.3f} s/point  {[round(x, 2) for x in sw]}")
    print(f"ratio sweep / by hand (paired rounds) {paired:7.3f}x  (goal <= 1.10x)")
    print(f"ratio sweep / by hand (medians)       {s / h:7.3f}x")
    print(
        f"CPU of this process per point         {hc * 1000:7.1f} ms by hand, {sc * 1000:.1f} ms sweep"
    )
    print(f"sweep's own CPU per point             {(sc - hc) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
