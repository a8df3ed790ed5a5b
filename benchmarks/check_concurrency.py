"""`site-agent check` probes concurrently: with N targets that never answer, the run takes
about one timeout, not N. Prints the ratio measured in one run.

Usage: python benchmarks/check_concurrency.py [--targets 5] [--timeout 1.0]
"""

from __future__ import annotations

import argparse
import socket
import time

from siteagent.checks.network import parse_target, probe
from siteagent.checks.proxy import ProxySettings
from siteagent.checks.runner import run_checks
from siteagent.profiles import parse_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    listeners = []
    urls = []
    for _ in range(args.targets):  # accept, never speak: every TLS probe waits for its timeout
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        listeners.append(s)
        urls.append(f"https://127.0.0.1:{s.getsockname()[1]}")
    profile = parse_profile(
        "name: bench\nscheduler: local\nlauncher: none\nendpoint: {name: b}\n"
        "node: {cores: 1, gpus: 0}\ncheck: {targets: []}\n",
        "bench.yaml",
    )
    t0 = time.perf_counter()
    report = run_checks(profile, urls, timeout=args.timeout, local=False)
    concurrent = time.perf_counter() - t0
    direct = ProxySettings(None, None, (), "none")
    t0 = time.perf_counter()
    for url in urls:
        probe(parse_target(url), direct, args.timeout)
    sequential = time.perf_counter() - t0
    for s in listeners:
        s.close()
    assert all(r.status == "fail" for r in report.results)
    print(f"{args.targets} silent targets, timeout {args.timeout:g}s each")
    print(
        f"site-agent check (concurrent)   {concurrent:6.2f} s  = {concurrent / args.timeout:.2f} timeouts"
    )
    print(
        f"one probe after another         {sequential:6.2f} s  = {sequential / args.timeout:.2f} timeouts"
    )
    print(f"ratio sequential / concurrent   {sequential / concurrent:6.2f}x")


if __name__ == "__main__":
    main()
