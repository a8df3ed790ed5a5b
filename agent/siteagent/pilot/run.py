"""Run a pilot plan: set up each layer (timed), start the payload in its own process group,
forward signals to that group, enforce the walltime margin, clean up, report.

Guarantees, on every exit path: the report ends in state ``done`` with a reason; no process
started by the payload survives (the wrapper is a child subreaper, so even daemonised
grandchildren come back to it and are killed); the per-pilot workdir is removed. CVMFS mounts
made by cvmfsexec live in its namespace and go with its processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from siteagent.errors import SiteAgentError
from siteagent.pilot.report import LayerReport, PilotReport, write_report

if TYPE_CHECKING:
    from siteagent.pilot.plan import PilotOptions, PilotPlan

SETUP_ERROR_EXIT = 70  # EX_SOFTWARE: the payload never ran
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
# these start the grace period, then SIGKILL; SIGUSR1 is only passed on
STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
POLL = 0.05
LEFTOVER_GRACE = 2.0


@dataclass
class _State:
    proc: object | None = None  # subprocess.Popen once started
    received: list[int] = field(default_factory=list)
    kill_at: float | None = None  # monotonic time of the SIGKILL
    walltime_hit: bool = False


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _become_subreaper() -> None:
    """Orphans of the payload re-parent to us instead of init, so we can find and end them."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass  # not Linux: process-group cleanup still applies


def _end_leftovers(pgid: int | None) -> list[int]:
    """TERM, then KILL, every process still below us or in the payload's group."""
    import psutil

    def send(procs: list, action: str) -> None:
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                getattr(p, action)()

    me = psutil.Process()
    if pgid is not None:
        _killpg(pgid, signal.SIGTERM)
    procs = me.children(recursive=True)
    send(procs, "terminate")
    _, alive = psutil.wait_procs(procs, timeout=LEFTOVER_GRACE)
    if pgid is not None:
        _killpg(pgid, signal.SIGKILL)
    send(alive, "kill")
    psutil.wait_procs(alive, timeout=LEFTOVER_GRACE)
    late = me.children(recursive=True)  # orphans that re-parented to us meanwhile
    send(late, "kill")
    psutil.wait_procs(late, timeout=LEFTOVER_GRACE)
    return [p.pid for p in procs + late]


def _setup_layers(plan: PilotPlan, env: dict[str, str], report: PilotReport) -> None:
    """Make each layer real, in order, timing each; raises SiteAgentError on failure."""
    for layer in plan.layers:
        entry = LayerReport(layer.name, layer.summary)
        report.layers.append(entry)
        t = time.monotonic()
        if layer.name == "cvmfs" and plan.cvmfs.mode == "cvmfsexec":
            from siteagent.cvmfs import prepare_cvmfs

            entry.actions = prepare_cvmfs(plan.cvmfs, env)
        elif layer.name == "container" and plan.container is not None:
            from siteagent.container import check_runtime

            check_runtime(plan.container, env.get("PATH"))
            entry.actions = [f"{plan.container.runtime} --version ok"]
        elif layer.name == "env" and plan.env_plan is not None:
            from siteagent.conda import ensure_env

            created = ensure_env(plan.env_plan, env)
            entry.actions = ["created" if created else "reused"]
        entry.seconds = round(time.monotonic() - t, 4)


def run_plan(plan: PilotPlan, *, plan_seconds: float = 0.0) -> PilotReport:
    """Run ``plan`` to the end and return its final report (also written to disk)."""
    import shutil
    import subprocess

    t0 = time.monotonic()
    report = PilotReport(
        pilot_id=plan.pilot_id,
        site=plan.site,
        host=plan.host,
        pid=os.getpid(),
        local_rank=plan.local_rank,
        rank=plan.rank,
        walltime_s=plan.walltime_s,
        gpus={
            "vendor": plan.gpus.vendor,
            "count": plan.gpus.count,
            "slots": list(plan.binding.slots),
            "set": plan.binding.set,
        },
        argv=list(plan.argv),
    )
    report.layers.append(LayerReport("plan", "profile, GPU discovery, layer plan", plan_seconds))
    state = _State()

    def on_signal(signum: int, _frame: object) -> None:
        state.received.append(signum)
        if state.proc is not None:
            _killpg(state.proc.pid, signum)  # type: ignore[attr-defined]
            if signum in STOPPING and state.kill_at is None:
                state.kill_at = time.monotonic() + plan.grace_s

    previous = {s: signal.signal(s, on_signal) for s in FORWARDED}
    from siteagent.pilot import EARLY_SIGNALS

    state.received.extend(EARLY_SIGNALS)
    _become_subreaper()
    env = plan.environment(dict(os.environ))
    deadline = t0 + plan.walltime_s - plan.margin_s if plan.walltime_s else None
    pgid = None
    try:
        write_report(plan.report_path, report)
        try:
            _setup_layers(plan, env, report)
            os.makedirs(plan.workdir, exist_ok=True)
        except (SiteAgentError, OSError) as err:
            report.reason, report.exit_code, report.error = (
                "setup-error",
                SETUP_ERROR_EXIT,
                str(err),
            )
            return report
        if any(s in STOPPING for s in state.received):  # stopped before the payload began
            report.reason = "signalled"
            report.exit_code = 128 + state.received[0]
            return report
        started = time.monotonic()
        try:
            # its own process group, but not its own session: pilot3 calls os.setpgrp(), which
            # a session leader may not (EPERM kills its job validation thread)
            state.proc = proc = subprocess.Popen(
                list(plan.argv), env=env, cwd=plan.workdir, process_group=0
            )
        except OSError as err:
            report.reason, report.exit_code = "setup-error", SETUP_ERROR_EXIT
            report.error = f"payload: cannot start {plan.argv[0]}: {err.strerror}"
            return report
        pgid = proc.pid
        report.state, report.payload_pid = "running", proc.pid
        write_report(plan.report_path, report)
        while True:
            try:
                rc = proc.wait(timeout=POLL)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if deadline is not None and now >= deadline and not state.walltime_hit:
                state.walltime_hit = True
                _killpg(pgid, signal.SIGTERM)
                state.kill_at = now + plan.grace_s
            if state.kill_at is not None and now >= state.kill_at:
                _killpg(pgid, signal.SIGKILL)
                state.kill_at = float("inf")
        report.payload_seconds = round(time.monotonic() - started, 3)
        if rc < 0:
            report.signal = signal.Signals(-rc).name
            rc = 128 - rc
        report.exit_code = rc
        if state.walltime_hit:
            report.reason = "walltime"
        elif any(s in STOPPING for s in state.received) or (state.received and rc != 0):
            report.reason = "signalled"
        else:
            report.reason = "finished" if rc == 0 else "failed"
        return report
    except BaseException as err:  # report even what we did not foresee, then re-raise
        report.reason = report.reason or "setup-error"
        report.exit_code = report.exit_code if report.exit_code is not None else SETUP_ERROR_EXIT
        report.error = report.error or f"{type(err).__name__}: {err}"
        raise
    finally:
        _end_leftovers(pgid)
        shutil.rmtree(plan.workdir, ignore_errors=True)
        for s, handler in previous.items():
            signal.signal(s, handler)
        report.received_signals = [signal.Signals(s).name for s in state.received]
        report.state = "done"
        report.finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        report.seconds = round(time.monotonic() - t0, 3)
        write_report(plan.report_path, report)


def report_plan_error(opts: PilotOptions, error: Exception) -> tuple[str, PilotReport]:
    """A plan that could not even be built still leaves a report (reason setup-error)."""
    import socket
    from pathlib import Path

    from siteagent.pilot.plan import default_report_path, pilot_id

    environ = dict(os.environ)
    host = socket.gethostname().split(".")[0]
    rank = environ.get("SITE_AGENT_RANK", "0")
    pid_ = pilot_id(environ, host, int(rank) if rank.isdigit() else 0, os.getpid())
    path = Path(opts.report).expanduser() if opts.report else default_report_path(environ, pid_)
    report = PilotReport(pilot_id=pid_, site=opts.site, host=host, pid=os.getpid())
    report.state, report.reason, report.exit_code = "done", "setup-error", SETUP_ERROR_EXIT
    report.error = str(error)
    report.finished = report.started
    write_report(path, report)
    return str(path), report
