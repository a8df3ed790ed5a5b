"""What the GPU pilot wrapper adds to the start of a payload, measured in one run.

Runs `true` directly, through `site-agent pilot --site local -- true` (profile, GPU discovery,
plan, report written three times, leftover sweep) and, for scale, `python -c "import pilot"`
(the PanDA pilot's own package import, which every pilot pays anyway). Prints medians and ratios.
Usage: python benchmarks/pilot_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from timing import median_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, HOME=tmp, TMPDIR=tmp, SITE_AGENT_CVMFS_REPOS="")
        bare = median_run(["true"], args.runs, env)
        wrapped = median_run(
            [sys.executable, "-m", "siteagent", "pilot", "--site", "local", "--", "true"],
            args.runs,
            env,
        )
        python = median_run([sys.executable, "-c", "pass"], args.runs, env)
        try:
            pilot = median_run([sys.executable, "-c", "import pilot.util.config"], 3, env)
        except subprocess.CalledProcessError:
            pilot = float("nan")
    print(f"true                                  {bare * 1000:7.1f} ms")
    print(f"python -c pass                        {python * 1000:7.1f} ms")
    print(f"site-agent pilot --site local -- true {wrapped * 1000:7.1f} ms")
    print(f"import of pilot3's config module      {pilot * 1000:7.1f} ms")
    print(f"wrapper overhead per rank             {(wrapped - bare) * 1000:7.1f} ms")
    print(f"ratio wrapper / bare python start     {wrapped / python:7.2f}x")


if __name__ == "__main__":
    main()
