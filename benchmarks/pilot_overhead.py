"""CPU time of `site-agent pilot` per rank against its floor, measured in one run.

The floor is `floors/pilot_floor.py` under `python -I -S`: a minimal Python wrapper with the
same duties (see its docstring: starting report first, subreaper, lost neighbours marked,
payload in its own process group that dies with the wrapper, forwarded signals, leftover
sweep, only the final report fsync'd, exit code). Both run `true` as the payload and report
into the same directory, so both scan the same reports for lost ones. Measured is what a
rank runs: the execution wrapper starts its environment's `site-agent pilot` as
`python -I -S -c START pilot ...` (``wrappers.render.pilot_start``);
the console script (`site-agent pilot` from a shell) is shown beside it.
Warm: the profile is cached (every rank after `site-agent install` wrote the entry, on every
host with a shared home); cold: the first rank on a host, after install: the page cache of
the entry is all it lacks, so the entry is written afresh (by another process, as install
does) before each run; uncached: no entry at all (the profile was edited since install).
CPU is user + system time of the wrapper and its payload; goals: warm <= 1.3x, cold <= 1.6x.
Usage: python benchmarks/pilot_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import Row, interleaved_cpu, median_cpu

FLOOR = Path(__file__).with_name("floors") / "pilot_floor.py"


def site_agent() -> str:
    """The console script next to this Python (what the execution wrapper starts)."""
    script = Path(sys.executable).with_name("site-agent")
    return str(script) if script.is_file() else "site-agent"


def rank_command() -> list[str]:
    """The command a rank runs for `site-agent pilot` under the execution wrapper."""
    from siteagent.wrappers.render import pilot_start

    python, start = pilot_start()
    return [python, "-I", "-S", "-c", start] if python else [site_agent()]


def measure(runs: int = 21) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(
            os.environ,
            HOME=tmp,
            TMPDIR=tmp,
            XDG_CACHE_HOME=f"{tmp}/cache",
            SITE_AGENT_CVMFS_REPOS="",
        )
        # the floor reports beside the ranks (~/.site-agent/pilots): both scan the same reports
        reports = Path(tmp, ".site-agent", "pilots")
        reports.mkdir(parents=True)
        floor_cmd = [sys.executable, "-I", "-S", str(FLOOR), str(reports), "--", "true"]
        args = ["pilot", "--site", "local", "--", "true"]
        rank = [*rank_command(), *args]
        script = [site_agent(), *args]
        install = [sys.executable, "-c", "import siteagent.profilecache as c; "
                   "c.load_profile_cached('local')"]  # fmt: skip

        def fresh_entry() -> None:  # what install leaves; a new host has it on disk only
            shutil.rmtree(f"{tmp}/cache", ignore_errors=True)
            subprocess.run(install, env=env, check=True)

        median_cpu(rank, 2, env)  # warm the page cache and the profile cache
        # every command in turn, run by run: the machine's load moves them alike
        warm = interleaved_cpu({"floor": floor_cmd, "rank": rank, "script": script}, runs, env)
        fewer = max(runs // 2, 5)
        cold = interleaved_cpu(
            {"floor": floor_cmd, "rank": rank, "uncached": rank},
            fewer,
            env,
            before={
                "rank": fresh_entry,
                "uncached": lambda: shutil.rmtree(f"{tmp}/cache", ignore_errors=True),
            },
        )
        floor = warm["floor"]
    name = "python -I -S floors/pilot_floor.py"
    return [
        Row("pilot per rank, warm", warm["rank"] * 1e3, floor * 1e3, "ms CPU", 1.3, name),
        Row("pilot per rank, cold", cold["rank"] * 1e3, cold["floor"] * 1e3, "ms CPU", 1.6, name),
        Row("  pilot from a shell, warm", warm["script"] * 1e3, floor * 1e3, "ms CPU", 0, name),
        Row(
            "  pilot, no cached profile",
            cold["uncached"] * 1e3,
            cold["floor"] * 1e3,
            "ms CPU",
            0,
            name,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    for row in measure(parser.parse_args().runs):
        goal = f" (goal <= {row.goal}x)" if row.goal else ""
        print(
            f"{row.path:28} {row.ours:7.1f} {row.unit}   floor {row.floor:6.1f}   "
            f"ratio {row.ratio:5.2f}x{goal}"
        )


if __name__ == "__main__":
    main()
