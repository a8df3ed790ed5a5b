"""How long `site-agent --help` takes against a bare Python start, measured in one run.

Prints the ratio; the target is an absolute time under 0.3 s for --help.
Usage: python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import sys

from timing import median_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    bare = median_run([sys.executable, "-c", "pass"], args.runs)
    helps = median_run([sys.executable, "-m", "siteagent", "--help"], args.runs)
    heavy = median_run([sys.executable, "-c", "import globus_compute_endpoint.engines"], 3)
    print(f"python -c pass                       {bare * 1000:7.1f} ms")
    print(f"site-agent --help                    {helps * 1000:7.1f} ms  (target < 300 ms)")
    print(f"import globus_compute_endpoint       {heavy * 1000:7.1f} ms  (what lazy imports avoid)")
    print(f"ratio --help / bare python           {helps / bare:7.2f}x")
    print(f"ratio heavy import / --help          {heavy / helps:7.2f}x")


if __name__ == "__main__":
    main()
