"""The sweep's own overhead per point, against running the same points by hand.

By hand: for each point, what a person would script with site-agent's parts: canonicalize the
config, start its user endpoint (the real engine, in-process), send the run as a
ShellFunction through the execution wrapper and the pilot wrapper, wait, stop the engine.
Sweep: ``prepare`` + ``execute`` of ``site-agent sweep`` on the same points (results file,
pilot reports, progress, ranking included). Both on the local profile with the payload ``true``,
so what is measured is everything but the payload. Rounds alternate the two to share the
machine's load. Prints seconds per point and the ratio (goal: within 1.1x).
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


def by_hand(ranks: list[int], workdir: Path) -> float:
    from globus_compute_sdk import ShellFunction

    from siteagent.harvester.backends import EngineBackend
    from siteagent.profiles import load_profile
    from siteagent.userconfig import canonicalize

    t0 = time.perf_counter()
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
    return time.perf_counter() - t0


def swept(ranks: list[int], workdir: Path) -> float:
    from siteagent.sweep.run import SweepOptions, execute, prepare

    t0 = time.perf_counter()
    opts = SweepOptions(
        payload="true",
        grid=["ranks_per_node=" + ",".join(map(str, ranks))],
        results=workdir / "r.jsonl",
        workdir=workdir,
    )
    outcome = execute(prepare(opts))
    if not all(r["ok"] for r in outcome.summary.records):
        raise SystemExit(f"sweep: {[r['error'] for r in outcome.summary.records]}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--points", default="1,2", help="ranks_per_node values (one point each)")
    args = parser.parse_args()
    ranks = [int(x) for x in args.points.split(",")]
    hand, sweep = [], []
    for i in range(args.rounds):
        pair = [(by_hand, hand), (swept, sweep)]
        for fn, out in pair if i % 2 == 0 else reversed(pair):
            with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
                out.append(fn(ranks, Path(tmp)) / len(ranks))
    h, s = statistics.median(hand), statistics.median(sweep)
    print(f"points per round                      {len(ranks)} (ranks_per_node={args.points})")
    print(f"by hand through the engine            {h:7.3f} s/point  {[round(x, 2) for x in hand]}")
    print(f"site-agent sweep                      {s:7.3f} s/point  {[round(x, 2) for x in sweep]}")
    print(f"sweep overhead per point              {(s - h) * 1000:7.1f} ms")
    paired = statistics.median(b / a for a, b in zip(hand, sweep, strict=True))
    print(f"ratio sweep / by hand (medians)       {s / h:7.3f}x  (goal <= 1.10x)")
    print(f"ratio sweep / by hand (paired rounds) {paired:7.3f}x")


if __name__ == "__main__":
    main()
