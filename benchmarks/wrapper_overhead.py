"""Per-task overhead of the execution wrapper (local launcher) against running the command
bare, measured in one run. Target: under 5 ms added per local task.

CPU (user + system of the wrapper and its command) is the figure to compare: on a shared
machine the wall time of a short task is mostly waiting for a core. Both are printed.
Usage: python benchmarks/wrapper_overhead.py [--tasks N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from timing import Row, median_cpu


def measure(tasks: int = 200) -> list[Row]:
    from siteagent.profiles import load_profile
    from siteagent.wrappers.render import render_wrapper

    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "site-agent-exec"
        wrapper.write_text(render_wrapper(load_profile("local")))
        wrapper.chmod(0o755)
        median_cpu(["/bin/true"], 20)  # warm the page cache
        bare_cpu, bare_wall = median_cpu(["/bin/true"], tasks)
        one_cpu, one_wall = median_cpu([str(wrapper), "--", "/bin/true"], tasks)
    added_cpu, added_wall = (one_cpu - bare_cpu) * 1e3, (one_wall - bare_wall) * 1e3
    return [
        Row("wrapper added per task", added_cpu, 5.0, "ms CPU", 1.0, "target", absolute=5.0),
        Row("wrapper added per task", added_wall, 5.0, "ms wall", 1.0, "target", absolute=5.0),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=200)
    for row in measure(parser.parse_args().tasks):
        print(f"site-agent-exec, 1 rank: +{row.ours:5.2f} {row.unit} per task (target < 5 ms)")


if __name__ == "__main__":
    main()
