"""Per-task submit cost of EngineExecutor against Parsl's HighThroughputExecutor, in one run.

Both run on this host with a LocalProvider; each submits N no-op tasks and the CPU time of the
submitting thread (time.thread_time) per task is compared, plus the wall time to the first
result. EngineExecutor packs every task as the Globus Compute web service hands it to an
endpoint (serialized function and arguments in a messagepack Task), so it can never be as
cheap as HTEX itself; the goal is at most 2x.
Usage: python benchmarks/engine_submit.py [--tasks N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def noop(x):
    return x


def measure(submit, n: int) -> tuple[float, float]:
    """(submit CPU seconds per task, seconds to the first result)."""
    submit(noop, -1).result(120)  # warm: workers up, function known
    c0, w0 = time.thread_time(), time.perf_counter()
    futures = [submit(noop, i) for i in range(n)]
    cpu = (time.thread_time() - c0) / n
    futures[0].result(120)
    first = time.perf_counter() - w0
    for f in futures:
        f.result(300)
    return cpu, first


def engine_executor(base: Path, n: int) -> tuple[float, float]:
    from siteagent.endpoint.engine import EngineExecutor
    from siteagent.endpoint.render import render_endpoint, write_endpoint
    from siteagent.endpoint.validate import validate_endpoint
    from siteagent.profiles import load_profile
    from siteagent.userconfig import canonicalize

    profile = load_profile("local")
    write_endpoint(render_endpoint(profile, base / "ep"), base / "ep", force=True)
    loaded = validate_endpoint(base / "ep", canonicalize(profile, {})).config
    ex = EngineExecutor(loaded.engine, base / "run")
    try:
        return measure(ex.submit, n)
    finally:
        ex.shutdown()


def parsl_htex(base: Path, n: int) -> tuple[float, float]:
    import parsl
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    htex = HighThroughputExecutor(label="htex", provider=LocalProvider(), max_workers_per_node=1)
    dfk = parsl.load(Config(executors=[htex], run_dir=str(base / "parsl")))
    try:
        return measure(lambda fn, *a: htex.submit(fn, {}, *a), n)
    finally:
        dfk.cleanup()


def compare(tasks: int = 2000) -> tuple[tuple[float, float], tuple[float, float]]:
    """((submit CPU/task, first result) of EngineExecutor, the same of Parsl HTEX)."""
    with tempfile.TemporaryDirectory() as tmp:
        ours = engine_executor(Path(tmp) / "engine", tasks)
        floor = parsl_htex(Path(tmp) / "htex", tasks)
    return ours, floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000)
    args = parser.parse_args()
    ours, floor = compare(args.tasks)
    print(f"{'':24}{'submit CPU/task':>18}{'first result':>14}")
    print(f"{'EngineExecutor':24}{ours[0] * 1e3:15.3f} ms{ours[1]:12.2f} s")
    print(f"{'Parsl HTEX (floor)':24}{floor[0] * 1e3:15.3f} ms{floor[1]:12.2f} s")
    print(f"ratio submit CPU: {ours[0] / floor[0]:.2f}x (goal <= 2x)")


if __name__ == "__main__":
    main()
