"""CPU time of `site-agent exec` against the rendered wrapper it execs, measured in one run.

Both run `--ranks-per-node 2 -- true` (this machine has 2 cores) on the local profile; exec's
first call is made before timing, so what is measured is every later task's call. Goal:
<= 2x the wrapper. For scale it also shows `python -c pass` plus the wrapper, the least any
Python command line in front of the wrapper can cost.
Usage: python benchmarks/exec_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from pilot_overhead import site_agent
from timing import Row, interleaved_cpu, median_cpu

ARGS = ["--ranks-per-node", "2", "--", "true"]


def measure(runs: int = 21) -> list[Row]:
    from siteagent.profiles import load_profile
    from siteagent.wrappers.render import render_wrapper

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, HOME=tmp, XDG_CACHE_HOME=f"{tmp}/cache")
        wrapper = Path(tmp) / "site-agent-exec"
        wrapper.write_text(render_wrapper(load_profile("local")))
        wrapper.chmod(0o755)
        ours_cmd = [site_agent(), "exec", "--site", "local", *ARGS]
        median_cpu(ours_cmd, 2, env)  # the first call renders and records
        # in turn, run by run: the machine's load moves them alike
        cpu = interleaved_cpu(
            {
                "wrapper": [str(wrapper), *ARGS],
                "ours": ours_cmd,
                "python": [sys.executable, "-c", "pass"],
            },
            runs,
            env,
        )
        floor, ours, python = cpu["wrapper"], cpu["ours"], cpu["python"]
    return [
        Row("exec per task", ours * 1e3, floor * 1e3, "ms CPU", 2.0, "bin/site-agent-exec"),
        Row(
            "exec per task (vs python+wrapper)",
            ours * 1e3,
            (python + floor) * 1e3,
            "ms CPU",
            2.0,
            "python -c pass + wrapper",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    for row in measure(parser.parse_args().runs):
        print(
            f"{row.path:36} {row.ours:6.1f} {row.unit}   {row.floor_name} {row.floor:6.1f}   "
            f"ratio {row.ratio:5.2f}x"
        )


if __name__ == "__main__":
    main()
