"""Per-task overhead of the execution wrapper (local launcher) against running the command
bare, measured in one run. Target: under 5 ms added per local task.

Usage: python benchmarks/wrapper_overhead.py [--tasks N]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from siteagent.profiles import load_profile
from siteagent.wrappers.render import render_wrapper


def per_task(cmd: list[str], tasks: int) -> float:
    t0 = time.perf_counter()
    for _ in range(tasks):
        subprocess.run(cmd, check=True)
    return (time.perf_counter() - t0) / tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "site-agent-exec"
        wrapper.write_text(render_wrapper(load_profile("local")))
        wrapper.chmod(0o755)
        per_task(["true"], 20)  # warm the page cache
        bare = per_task(["/bin/true"], args.tasks)
        one = per_task([str(wrapper), "--", "/bin/true"], args.tasks)
        two = per_task([str(wrapper), "--ranks-per-node", "2", "--", "/bin/true"], args.tasks)
        py = per_task(["python3", "-c", "pass"], max(args.tasks // 4, 10))
    print(f"bare /bin/true                  {bare * 1000:7.2f} ms per task")
    print(
        f"site-agent-exec, 1 rank         {one * 1000:7.2f} ms per task  "
        f"(+{(one - bare) * 1000:.2f} ms, target < 5 ms)"
    )
    print(
        f"site-agent-exec, 2 ranks        {two * 1000:7.2f} ms per task  "
        f"(+{(two - bare) * 1000:.2f} ms)"
    )
    print(f"python3 -c pass (for scale)     {py * 1000:7.2f} ms per task")
    print(f"ratio wrapper(1 rank) / bare    {one / bare:7.2f}x")
    print(f"ratio python start / wrapper    {py / one:7.2f}x")


if __name__ == "__main__":
    main()
