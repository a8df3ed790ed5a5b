"""CPU time of `site-agent pilot` per rank against its floor, measured in one run.

The floor is `floors/pilot_floor.py` under `python -I -S`: a minimal Python wrapper with the
same duties (subreaper, atomic report three times with only the last fsync'd, payload in its
own process group, forwarded signals, leftover sweep, exit code). Both run `true` as the
payload. Warm: the profile is cached already (every rank but the first on a host); cold:
the cache is emptied before each run. CPU is user + system time of the wrapper and its
payload; goals: warm <= 1.3x, cold <= 1.6x.
Usage: python benchmarks/pilot_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from timing import Row, median_cpu

FLOOR = Path(__file__).with_name("floors") / "pilot_floor.py"


def site_agent() -> str:
    """The console script next to this Python (what the execution wrapper starts)."""
    script = Path(sys.executable).with_name("site-agent")
    return str(script) if script.is_file() else "site-agent"


def measure(runs: int = 21) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(
            os.environ,
            HOME=tmp,
            TMPDIR=tmp,
            XDG_CACHE_HOME=f"{tmp}/cache",
            SITE_AGENT_CVMFS_REPOS="",
        )
        floor_cmd = [sys.executable, "-I", "-S", str(FLOOR), f"{tmp}/floor.json", "--", "true"]
        pilot = [site_agent(), "pilot", "--site", "local", "--", "true"]
        median_cpu(pilot, 2, env)  # warm the page cache and the profile cache
        floor, _ = median_cpu(floor_cmd, runs, env)
        warm, _ = median_cpu(pilot, runs, env)
        cold, _ = median_cpu(
            pilot,
            max(runs // 2, 5),
            env,
            before=lambda: shutil.rmtree(f"{tmp}/cache", ignore_errors=True),
        )
    name = "python -I -S floors/pilot_floor.py"
    return [
        Row("pilot per rank, warm", warm * 1e3, floor * 1e3, "ms CPU", 1.3, name),
        Row("pilot per rank, cold", cold * 1e3, floor * 1e3, "ms CPU", 1.6, name),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    for row in measure(parser.parse_args().runs):
        print(
            f"{row.path:24} {row.ours:7.1f} {row.unit}   floor {row.floor:6.1f}   "
            f"ratio {row.ratio:5.2f}x (goal <= {row.goal}x)"
        )


if __name__ == "__main__":
    main()
