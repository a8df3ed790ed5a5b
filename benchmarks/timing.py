"""Shared by the benchmark scripts: the median wall time of a whole command."""

from __future__ import annotations

import statistics
import subprocess
import time


def median_run(cmd: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    """Median seconds of ``runs`` runs of ``cmd`` (output discarded, failure raises)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
