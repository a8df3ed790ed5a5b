"""Shared by the benchmark scripts: median wall and CPU time of whole commands, and the row
each benchmark hands to ``run_all.py``."""

from __future__ import annotations

import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass


def compile_site_agent() -> None:
    """Byte-compile site-agent's modules as pip does when it installs them. Otherwise a module
    edited since its last ``.pyc`` is compiled again on every run and timed with it, wherever
    Python may not write one (``PYTHONDONTWRITEBYTECODE``, a read-only tree)."""
    import compileall
    import os

    import siteagent

    compileall.compile_dir(os.path.dirname(siteagent.__file__), quiet=2)


compile_site_agent()  # every benchmark imports this module before it measures


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


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_cpu(
    cmd: list[str],
    runs: int,
    env: dict[str, str] | None = None,
    before: Callable[[], None] | None = None,
    check: bool = True,
) -> tuple[float, float]:
    """Median ``(CPU seconds, wall seconds)`` of ``runs`` runs of ``cmd``: user + system time
    of the command and everything it waited for. ``before`` runs ahead of each run, untimed."""
    cpus, walls = [], []
    for _ in range(runs):
        if before:
            before()
        c0, t0 = _children_cpu(), time.perf_counter()
        subprocess.run(
            cmd, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        walls.append(time.perf_counter() - t0)
        cpus.append(_children_cpu() - c0)
    return statistics.median(cpus), statistics.median(walls)


def interleaved_cpu(
    cmds: dict[str, list[str]],
    runs: int,
    env: dict[str, str] | None = None,
    before: dict[str, Callable[[], None]] | None = None,
) -> dict[str, float]:
    """Median CPU seconds of each command, the commands taking turns run by run, so that a
    change of the machine's load between them does not skew their ratio. ``before[name]``
    runs ahead of each run of ``cmds[name]``, untimed."""
    cpus: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(runs):
        for name, cmd in cmds.items():
            if before and name in before:
                before[name]()
            c0 = _children_cpu()
            subprocess.run(
                cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
            )
            cpus[name].append(_children_cpu() - c0)
    return {name: statistics.median(values) for name, values in cpus.items()}


@dataclass
class Row:
    """One line of the summary: site-agent's figure beside its floor, and the goal."""

    path: str
    ours: float
    floor: float
    unit: str  # "ms CPU", "s wall", ...
    goal: float  # the highest ratio that passes (ours / floor); 0: shown for scale, no goal
    floor_name: str = ""
    absolute: float | None = None  # or a goal in ``unit`` instead of a ratio

    @property
    def ratio(self) -> float:
        return self.ours / self.floor if self.floor else float("inf")

    @property
    def ok(self) -> bool | None:
        """Whether the goal is met (None: no goal)."""
        if not self.goal and self.absolute is None:
            return None
        if self.absolute is not None:
            return self.ours < self.absolute
        return self.ratio <= self.goal
