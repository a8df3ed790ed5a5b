"""``site-agent smoke-test``: render the endpoint, render a user endpoint, start the real
Globus Compute engine with the provider it rendered, and run work through it."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from siteagent.errors import SiteAgentError


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class SmokeReport:
    site: str
    workdir: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok, "seconds": round(self.seconds, 3)}


def probe(n: int) -> dict[str, Any]:
    """The Python payload: runs on a worker and says where it ran."""
    import os
    import socket
    import sys

    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "site": os.environ.get("SITE_AGENT_SITE"),
        "sum_of_squares": sum(i * i for i in range(n)),
    }


class _Steps:
    def __init__(self, report: SmokeReport, on_step: Callable[[Step], None] | None):
        self.report, self.on_step = report, on_step

    def run(self, name: str, fn: Callable[[], str]) -> bool:
        t0 = time.perf_counter()
        try:
            detail, ok = fn(), True
        except SiteAgentError as err:
            detail, ok = str(err), False
        except Exception as err:
            detail, ok = f"{type(err).__name__}: {err}", False
        step = Step(name, ok, time.perf_counter() - t0, detail)
        self.report.steps.append(step)
        if self.on_step:
            self.on_step(step)
        return ok


def run_smoke_test(
    site: str = "local",
    user_config: dict[str, Any] | None = None,
    workdir: Path | None = None,
    keep: bool = False,
    timeout: float = 60.0,
    on_step: Callable[[Step], None] | None = None,
    harvester: bool = False,
) -> SmokeReport:
    """Run the local end-to-end path and return what happened, step by step."""
    from siteagent.endpoint.render import render_endpoint, write_endpoint
    from siteagent.endpoint.validate import validate_endpoint
    from siteagent.profiles import load_profile
    from siteagent.userconfig import canonicalize

    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="site-agent-smoke-"))
    report = SmokeReport(site=site, workdir=str(base))
    steps = _Steps(report, on_step)
    state: dict[str, Any] = {}

    def render() -> str:
        profile = load_profile(site)
        state["profile"] = profile
        if profile.scheduler != "local":
            raise SiteAgentError(
                f"smoke-test runs the engine in-process only for local-scheduler profiles; "
                f"'{profile.name}' uses {profile.scheduler} (use `site-agent endpoint validate`)"
            )
        ep_dir = base / "endpoint"
        written = write_endpoint(render_endpoint(profile, ep_dir), ep_dir, force=True)
        return f"{len(written.written) + len(written.unchanged)} files in {base / 'endpoint'}"

    def user_endpoint() -> str:
        config = canonicalize(state["profile"], user_config or {})
        result = validate_endpoint(base / "endpoint", config)
        state["config"] = result.config
        return f"{result.engine_type} with {result.provider_type}, config {config}"

    def start() -> str:
        from siteagent.endpoint.engine import EngineExecutor

        state["executor"] = EngineExecutor(state["config"].engine, base / "run")
        return f"engine started, run dir {base / 'run'}"

    def python_task() -> str:
        n = 1000
        got = state["executor"].submit(probe, n).result(timeout=timeout)
        want = sum(i * i for i in range(n))
        if got["sum_of_squares"] != want or got["site"] != state["profile"].name:
            raise SiteAgentError(f"wrong result from worker: {got}")
        if got["pid"] == os.getpid():
            raise SiteAgentError("the function ran in this process, not on a worker")
        return f"probe({n}) on {got['host']} pid {got['pid']} python {got['python']}"

    def shell_task() -> str:
        from globus_compute_sdk import ShellFunction

        from siteagent.pilot.report import read_report

        # the launch path of every pilot: execution wrapper (2 ranks on this node), then the
        # pilot wrapper per rank around a small payload, each rank leaving its JSON report
        reports = base / "state"
        cmd = (
            f"SITE_AGENT_STATE={reports} SITE_AGENT_WORKER_ID=smoke "
            '"$SITE_AGENT_EXEC" --ranks-per-node 2 -- site-agent pilot --site "$SITE_AGENT_SITE" '
            "-- bash -c 'echo rank=$SITE_AGENT_RANK/2 site=$SITE_AGENT_SITE; exit 3'"
        )
        res = state["executor"].submit(ShellFunction(cmd, walltime=timeout)).result(timeout=timeout)
        site = state["profile"].name
        want = {f"rank={r}/2 site={site}" for r in range(2)}
        got = set(res.stdout.split("\n"))
        if res.returncode != 3 or not want <= got:
            raise SiteAgentError(f"shell task: returncode {res.returncode}, stdout {res.stdout!r}")
        for rank in range(2):
            path = reports / "pilots" / f"smoke-r{rank}.json"
            found = read_report(path) if path.exists() else {}
            if (found.get("reason"), found.get("exit_code")) != ("failed", 3):
                raise SiteAgentError(f"pilot wrapper report of rank {rank}: {found}")
        return (
            f"site-agent-exec ran 2 ranks through the pilot wrapper; exit {res.returncode} as the "
            f"payload's, reports in {reports / 'pilots'}"
        )

    def shutdown() -> str:
        state.pop("executor").shutdown()
        leftover = _wait_no_workers(base, 10.0)
        if leftover:
            raise SiteAgentError(f"worker processes left behind: {leftover}")
        return "engine stopped, no worker processes left"

    try:
        ok = steps.run("render endpoint", render) and steps.run(
            "render user endpoint", user_endpoint
        )
        if ok and steps.run("start engine", start):
            ok = steps.run("python function", python_task) and steps.run(
                "shell command", shell_task
            )
            if ok and harvester:
                steps.run("harvester workers", lambda: harvester_round(site, base, timeout))
    finally:
        if "executor" in state:
            steps.run("stop engine", shutdown)
        elif "config" in state:
            state["config"].engine.shutdown()
        if not keep and workdir is None and report.ok:
            shutil.rmtree(base, ignore_errors=True)
    return report


def harvester_round(site: str, base: Path, timeout: float) -> str:
    """Harvester's side: submit workers with the plugins, monitor them to the end, stop one."""
    from siteagent.harvester.backends import shutdown_backends
    from siteagent.harvester.base import ST_CANCELLED, ST_FINISHED
    from siteagent.harvester.monitor import GlobusComputeMonitor
    from siteagent.harvester.submitter import GlobusComputeSubmitter
    from siteagent.harvester.sweeper import GlobusComputeSweeper
    from siteagent.pilot.report import read_report

    class Worker:  # the WorkSpec fields the plugins read and write
        def __init__(self, worker_id: int):
            self.workerID, self.nCore, self.maxWalltime, self.batchID = worker_id, 1, 600, None

    keys = {"site": site, "backend": "local-engine", "workdir": str(base / "harvester")}
    payload = ["bash", "-c", "echo pilot rank $SITE_AGENT_RANK of worker $SITE_AGENT_WORKER_ID"]
    submitter = GlobusComputeSubmitter(**keys, payload=payload)
    monitor = GlobusComputeMonitor(**keys)
    long_submitter = GlobusComputeSubmitter(**keys, payload=["sleep", "600"])
    sweeper = GlobusComputeSweeper(**keys)
    state = base / "state"
    saved = os.environ.get("SITE_AGENT_STATE")
    os.environ["SITE_AGENT_STATE"] = str(state)  # the engine's workers inherit it
    t0 = time.monotonic()
    try:
        workers, victim = [Worker(1), Worker(2)], Worker(3)
        answers = submitter.submit_workers(workers) + long_submitter.submit_workers([victim])
        if any(ok is not True for ok, _ in answers):
            raise SiteAgentError(f"submit_workers: {answers}")
        deadline = time.monotonic() + timeout

        def wait_for(what: str, done: Callable[[], Any]) -> Any:
            while not (value := done()):
                if time.monotonic() > deadline:
                    raise SiteAgentError(f"timed out waiting for {what}")
                time.sleep(0.1)
            return value

        def pilot_report(worker: int) -> dict[str, Any]:
            try:
                return read_report(state / "pilots" / f"{site}-{worker}-r0.json")
            except (OSError, ValueError):  # not written yet
                return {}

        # stop the long worker once its pilot wrapper runs the payload
        wait_for("the worker to stop to start", lambda: pilot_report(3).get("state") == "running")
        [(ok, detail)] = sweeper.kill_workers([victim])
        if not ok:
            raise SiteAgentError(f"kill_workers: {detail}")
        want = [ST_FINISHED, ST_FINISHED, ST_CANCELLED]

        def states_as_wanted() -> bool:
            ok, states = monitor.check_workers([*workers, victim])
            return ok and [s for s, _ in states] == want

        wait_for(f"check_workers to say {want}", states_as_wanted)
        for w in [*workers, victim]:
            sweeper.sweep_worker(w)

        # each rank's pilot wrapper left its final report where a monitor finds it
        def final_reasons() -> dict[int, str] | None:
            reports = {w: pilot_report(w) for w in (1, 3)}
            if all(r.get("state") == "done" for r in reports.values()):
                return {w: r["reason"] for w, r in reports.items()}
            return None

        reasons = wait_for("the pilot wrapper reports", final_reasons)
        if reasons != {1: "finished", 3: "signalled"}:
            raise SiteAgentError(f"pilot wrapper reports: {reasons}")
    finally:
        shutdown_backends()
        if saved is None:
            os.environ.pop("SITE_AGENT_STATE", None)
        else:
            os.environ["SITE_AGENT_STATE"] = saved
    return (
        f"2 workers submitted and finished, 1 stopped by the sweeper ({detail}); "
        f"pilot wrapper reports {reasons} in {time.monotonic() - t0:.1f}s"
    )


def _wait_no_workers(run_root: Path, seconds: float) -> list[int]:
    """PIDs of worker pools started for ``run_root`` that are still alive after ``seconds``."""
    import psutil

    marker = str(run_root)
    deadline = time.monotonic() + seconds
    while True:
        alive = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "process_worker_pool" in cmd and marker in cmd:
                alive.append(p.info["pid"])
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def host_summary() -> str:
    return f"{socket.gethostname()} python {sys.version.split()[0]}"
