"""`site-agent smoke-test --harvester` against the plain `site-agent smoke-test`, in one run.

Both start the real engine in this process on the local profile; --harvester also submits,
monitors and stops workers with the Harvester plugins (their engines start while the smoke
test's own does). Wall time of the whole command, median of --runs alternating runs.
Goal: --harvester within 1.5x of the plain smoke test.
Usage: python benchmarks/smoke_harvester.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time

from pilot_overhead import site_agent
from timing import Row


def measure(runs: int = 1) -> list[Row]:
    plain, harvester = [], []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, HOME=tmp, XDG_CACHE_HOME=f"{tmp}/cache")
        for _ in range(runs):
            for extra, times in (([], plain), (["--harvester"], harvester)):
                t0 = time.perf_counter()
                subprocess.run(
                    [site_agent(), "smoke-test", *extra],
                    check=True,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                times.append(time.perf_counter() - t0)
    ours, floor = statistics.median(harvester), statistics.median(plain)
    return [Row("smoke-test --harvester", ours, floor, "s wall", 1.5, "plain smoke-test")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1)
    (row,) = measure(parser.parse_args().runs)
    print(
        f"smoke-test --harvester {row.ours:5.1f} s, plain smoke-test {row.floor:5.1f} s: "
        f"ratio {row.ratio:4.2f}x (goal <= {row.goal}x)"
    )


if __name__ == "__main__":
    main()
