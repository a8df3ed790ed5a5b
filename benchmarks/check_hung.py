"""`site-agent check` against targets that accept and never speak, beside the same probes
made by parallel `curl`s, measured in one run.

N loopback ports accept TCP and stay silent, so every TLS probe waits for its timeout. The
floor is N `curl --max-time T` started at once (each verifies TLS as check does); site-agent
is the whole command line, `site-agent check --only network --timeout T --target ...` on a
profile without default targets. Goal: wall within 1.1x of the curls.
Usage: python benchmarks/check_hung.py [--targets 50] [--timeout 2]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from pilot_overhead import site_agent
from timing import Row, _children_cpu

PROFILE = (
    "name: bench\nscheduler: local\nlauncher: none\nendpoint: {name: b}\n"
    "node: {cores: 1, gpus: 0}\ncheck: {targets: []}\n"
)


def _timed(start) -> tuple[float, float]:
    """(wall, CPU) seconds of ``start()``, which runs processes and waits for them."""
    c0, t0 = _children_cpu(), time.perf_counter()
    start()
    return time.perf_counter() - t0, _children_cpu() - c0


def measure(targets: int = 50, timeout: float = 2.0) -> list[Row]:
    listeners = []
    for _ in range(targets):  # accept, never speak
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        listeners.append(s)
    urls = [f"https://127.0.0.1:{s.getsockname()[1]}" for s in listeners]
    t = f"{timeout:g}"
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "bench.yaml"
        profile.write_text(PROFILE)
        check = [site_agent(), "check", "--site", str(profile), "--only", "network", "--timeout", t]
        check += [a for u in urls for a in ("--target", u)]

        def curls() -> None:
            procs = [
                subprocess.Popen(
                    ["curl", "-s", "-o", "/dev/null", "--max-time", t, u],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for u in urls
            ]
            for p in procs:
                p.wait()

        def ours() -> None:
            subprocess.run(check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        ours()  # warm the page cache and the profile's parse
        floor_wall, floor_cpu = _timed(curls)
        ours_wall, ours_cpu = _timed(ours)
    for s in listeners:
        s.close()
    name = f"{targets} parallel curl --max-time {t}"
    return [
        Row(f"check, {targets} hung targets", ours_wall, floor_wall, "s wall", 1.1, name),
        Row(f"check, {targets} hung targets", ours_cpu, floor_cpu, "s CPU", 1.1, name),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    for row in measure(args.targets, args.timeout):
        print(
            f"{row.path}: site-agent {row.ours:5.2f} {row.unit}, {row.floor_name} "
            f"{row.floor:5.2f}: ratio {row.ratio:4.2f}x (goal <= {row.goal}x)"
        )


if __name__ == "__main__":
    main()
