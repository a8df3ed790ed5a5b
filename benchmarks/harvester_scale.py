"""How the Harvester plugins' own CPU time grows with the number of workers.

The executor answers at once (tasks complete in memory), so what is measured is the plugins'
work: building and checking each worker's config and command, submitting, and mapping states.
Prints submit and monitor CPU seconds (time.process_time) for 100 to 10,000 workers and the
growth ratio against the worker ratio (1.0 = linear).

Usage: python benchmarks/harvester_scale.py [--sizes 100,1000,10000]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import itertools
import time
import uuid
from dataclasses import dataclass
from functools import cached_property

from siteagent.harvester.backends import Backend
from siteagent.harvester.monitor import GlobusComputeMonitor
from siteagent.harvester.submitter import GlobusComputeSubmitter


@dataclass
class WorkSpec:
    workerID: int
    nCore: int
    maxWalltime: int
    batchID: str | None = None


@dataclass
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class InstantExecutor(concurrent.futures.Executor):
    """Completes every task at once, as a service that ran them all would report."""

    def submit(self, fn, /, *args, **kwargs):
        f: concurrent.futures.Future = concurrent.futures.Future()
        f.task_id = uuid.uuid4()  # type: ignore[attr-defined]
        f.set_result(Result(0))
        return f


class InstantBackend(Backend):
    def _make_executor(self, config):
        return InstantExecutor()

    def task_status(self, tasks):
        return {}


BACKEND = InstantBackend()


class Submitter(GlobusComputeSubmitter):
    @cached_property
    def gc_backend(self):
        return BACKEND


KEYS = {
    "site": "perlmutter",
    "ranksPerNode": 4,
    "gpusPerWorker": 4,
    "userEndpointConfig": {"account": "m0000"},
    "payload": ["true"],
}


def measure(n: int, ids: itertools.count) -> tuple[float, float]:
    submitter, monitor = Submitter(**KEYS), GlobusComputeMonitor(**KEYS)
    # a queue's workers come in a few shapes: 4 core counts x 3 walltimes
    workers = [
        WorkSpec(next(ids), nCore=16 * (1 + i % 4), maxWalltime=3600 * (1 + i % 3))
        for i in range(n)
    ]
    gc.collect()
    t0 = time.process_time()
    results = submitter.submit_workers(workers)
    t1 = time.process_time()
    ok, states = monitor.check_workers(workers)
    t2 = time.process_time()
    assert all(r == (True, "") for r in results), results[:3]
    assert ok and all(s == "finished" for s, _ in states)
    return t1 - t0, t2 - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000,10000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    ids = itertools.count(1)
    measure(50, ids)  # warm up imports and caches
    rows = [(n, *measure(n, ids)) for n in sizes]
    base_n, base_sub, base_mon = rows[0]
    print(
        f"{'workers':>8} {'submit s':>9} {'per worker':>11} {'monitor s':>10} {'growth sub/mon vs workers':>27}"
    )
    for n, sub, mon in rows:
        grow = n / base_n
        print(
            f"{n:>8} {sub:>9.3f} {sub / n * 1e6:>9.0f}us {mon:>10.3f} "
            f"{sub / base_sub / grow:>12.2f} / {mon / base_mon / grow:.2f}"
        )
    n, sub, mon = rows[-1]
    print(f"monitoring {n} workers: {mon:.3f} s of plugin CPU (target < 1 s)")


if __name__ == "__main__":
    main()
