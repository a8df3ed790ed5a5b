"""Run a pilot plan: set up each layer (timed), start the payload in its own process group,
forward signals to that group, enforce the walltime margin, clean up, report.

Guarantees, on every exit path: the report ends in state ``done`` with a reason; no process
started by the payload survives (the wrapper is a child subreaper, so even daemonised
grandchildren come back to it and are killed); the per-pilot workdir is removed, after the
logs of a run that did not finish are kept (pilot/logs.py). CVMFS mounts made by cvmfsexec
live in its namespace and go with its processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from siteagent.errors import SiteAgentError
from siteagent.pilot.leftovers import end_leftovers, remove_workdir
from siteagent.pilot.outcome import SETUP_ERROR_EXIT, STOPPING, Happened, decide, stopped
from siteagent.pilot.report import LayerReport, PilotReport, utc_now, write_report

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    import subprocess
    from typing import Any

    from siteagent.pilot.plan import PilotOptions, PilotPlan

# what batch systems send before the end (SIGXCPU, SIGUSR2 on some), and what pilot3 handles
# (pilot/workflow/generic.py run: register_signals INT TERM QUIT SEGV XCPU USR1 BUS)
FORWARDED = (
    signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGXCPU,
    signal.SIGUSR1, signal.SIGUSR2,
)  # fmt: skip
POLL = 0.05


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _libc() -> Any:
    """The C library, for ``prctl``; loaded once, by the wrapper (a dlopen in the payload's
    forked child, before its exec, cost every rank 0.2 ms)."""
    if not _LIBC:
        import ctypes

        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


_LIBC: list[Any] = []


def _become_subreaper() -> None:
    """Orphans of the payload re-parent to us instead of init, so we can find and end them."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: process groups still apply
        _libc().prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _die_with_parent(parent: int) -> None:
    """In the payload's child process before exec: SIGKILL when the wrapper dies, even by
    SIGKILL (which it cannot forward); if it is already gone, do not start at all."""
    try:
        _libc().prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux
    if os.getppid() != parent:  # the wrapper died before prctl took effect
        os._exit(SETUP_ERROR_EXIT)


def new_report(plan: PilotPlan, plan_seconds: float) -> PilotReport:
    """The report as the run starts: who, where, which GPUs, the command, the planning time."""
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
    return report


class Supervisor:
    """One run of a plan: sets up the layers, starts the payload in its own process group,
    forwards signals to it, stops it at the walltime margin (TERM, then KILL after the grace
    period), and at the end sweeps up whatever the payload left behind."""

    def __init__(self, plan: PilotPlan, *, plan_seconds: float = 0.0) -> None:
        self.plan = plan
        self.t0 = time.monotonic()
        self.report = new_report(plan, plan_seconds)
        self.proc: subprocess.Popen | None = None
        self.received: list[int] = []
        self.kill_at: float | None = None  # monotonic time of the SIGKILL
        self.walltime_hit = False
        self.started = 0.0  # monotonic time the payload started
        walltime = plan.walltime_s
        self.deadline = self.t0 + walltime - plan.margin_s if walltime else None
        self._previous: dict[int, Any] = {}
        self._passed = 0  # how many of ``received`` were forwarded to the payload
        self.env: dict[str, str] = {}  # the payload's environment (after the layers' setup)
        self.workdir_made = False  # only a workdir this run created is removed

    def run(self) -> PilotReport:
        """Run to the end and return the final report (also written to disk)."""
        from siteagent.pilot import EARLY_SIGNALS

        self._previous = {s: signal.signal(s, self.on_signal) for s in FORWARDED}
        self.received.extend(EARLY_SIGNALS)
        _become_subreaper()
        env = self.env = self.plan.environment(dict(os.environ))
        try:
            write_report(self.plan.report_path, self.report)
            _mark_lost_neighbours(self.plan)
            error = self.start(env)
            rc = self.wait() if self.proc is not None else None
            self.conclude(
                Happened(
                    received=tuple(self.received), returncode=rc,
                    walltime_hit=self.walltime_hit, setup_error=error,
                )
            )  # fmt: skip
            return self.report
        except BaseException as err:  # report even what we did not foresee, then re-raise
            self._record_crash(err)
            raise
        finally:
            self.finish()

    def setup_layers(self, env: dict[str, str]) -> None:
        """Make each layer real, in order, timing each; raises SiteAgentError on failure."""
        from siteagent.pilot.layers import BY_NAME

        for layer in self.plan.layers:
            entry = LayerReport(layer.name, layer.summary)
            self.report.layers.append(entry)
            t = time.monotonic()
            entry.actions = BY_NAME[layer.name]().setup(layer, env)
            entry.seconds = round(time.monotonic() - t, 4)

    def teardown_layers(self) -> None:
        """Each layer's teardown, innermost first, once the payload has ended."""
        from siteagent.pilot.layers import BY_NAME

        for layer in reversed(self.plan.layers):
            done = BY_NAME[layer.name]().teardown(layer, self.env)
            entry = next((e for e in self.report.layers if e.name == layer.name), None)
            if done and entry is not None:
                entry.actions = [*entry.actions, *done]

    def start(self, env: dict[str, str]) -> str | None:
        """Set up the layers and start the payload, unless stopped first; the setup error."""
        import subprocess

        try:
            self.make_workdir()  # first: a layer may write into it (the machine features)
            self.setup_layers(env)
        except (SiteAgentError, OSError) as err:
            return str(err)
        self._passed = len(self.received)  # what came before is the wrapper's business
        if stopped(self.received):  # stopped before the payload began
            return None
        self.started = time.monotonic()
        try:
            # its own process group, but not its own session: pilot3 calls os.setpgrp(), which
            # a session leader may not (EPERM kills its job validation thread)
            wrapper = os.getpid()
            self.proc = subprocess.Popen(
                list(self.plan.argv),
                env=env,
                cwd=self.plan.workdir,
                process_group=0,
                preexec_fn=lambda: _die_with_parent(wrapper),
            )
        except OSError as err:
            return f"payload: cannot start {self.plan.argv[0]}: {err.strerror}"
        self._pass_on()  # what came while Popen ran (a fast shell payload may be waiting)
        self.report.state, self.report.payload_pid = "running", self.proc.pid
        self.report.pilot = pilot_record(self.plan)
        write_report(self.plan.report_path, self.report)
        return None  # no setup error: the payload runs

    def make_workdir(self) -> None:
        """Create the workdir exclusively and owner-only: ``mkdir`` fails on anything already
        there (a planted directory or symlink), which is never followed or reused."""
        path = self.plan.workdir
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            raise SiteAgentError(f"workdir: {path} exists already; refusing to use it") from None
        except OSError as err:
            raise SiteAgentError(f"workdir: cannot create {path}: {err.strerror}") from None
        self.workdir_made = True

    def wait(self) -> int:
        """Poll until the payload ends; its return code."""
        rc = self.poll()
        while rc is None:
            rc = self.poll()
        self.report.payload_seconds = round(time.monotonic() - self.started, 3)
        return rc

    def poll(self) -> int | None:
        """Wait a moment for the payload; enforce the walltime margin and the grace period."""
        import subprocess

        assert self.proc is not None
        try:
            return self.proc.wait(timeout=POLL)
        except subprocess.TimeoutExpired:
            pass
        self._enforce(self.proc.pid, time.monotonic())
        return None  # still running

    def _enforce(self, pgid: int, now: float) -> None:
        """TERM at the walltime margin (once), KILL when the grace period is over (once)."""
        if self.deadline is not None and now >= self.deadline and not self.walltime_hit:
            self.walltime_hit = True
            _killpg(pgid, signal.SIGTERM)
            self.kill_at = now + self.plan.grace_s
        if self.kill_at is not None and now >= self.kill_at:
            _killpg(pgid, signal.SIGKILL)
            self.kill_at = float("inf")

    def on_signal(self, signum: int, _frame: object) -> None:
        """Remember the signal and pass it to the payload's group; a stop starts the grace."""
        self.received.append(signum)
        if self.proc is not None:
            self._pass_on()

    def _pass_on(self) -> None:
        """Forward each received signal not forwarded yet, once: an index claimed before the
        kill, so a handler running in the middle does not send it again."""
        assert self.proc is not None
        while self._passed < len(self.received):
            signum = self.received[self._passed]
            self._passed += 1
            _killpg(self.proc.pid, signum)
            if signum in STOPPING and self.kill_at is None:
                self.kill_at = time.monotonic() + self.plan.grace_s

    def conclude(self, happened: Happened) -> None:
        outcome = decide(happened)
        self.report.reason, self.report.exit_code = outcome.reason, outcome.exit_code
        self.report.signal = outcome.signal
        if happened.setup_error is not None:
            self.report.error = happened.setup_error

    def _record_crash(self, err: BaseException) -> None:
        report = self.report
        report.reason = report.reason or "setup-error"
        report.exit_code = report.exit_code if report.exit_code is not None else SETUP_ERROR_EXIT
        report.error = report.error or f"{type(err).__name__}: {err}"

    def keep_logs(self) -> None:
        """Keep the logs of a run that did not finish cleanly (pilot/logs.py)."""
        from siteagent.pilot.logs import keep_logs

        report = self.report
        if report.reason == "finished" or not self.plan.logs_dir:
            return
        try:
            report.log_tail = keep_logs(
                self.plan.workdir, self.plan.logs_dir, report, self.plan.logs_kept
            )
            report.logs = self.plan.logs_dir if self.plan.logs_kept > 0 else None
        except OSError as err:  # a full disk must not hide how the pilot ended
            report.logs = f"not kept: {err}"

    def finish(self) -> None:
        """End every leftover process, remove the workdir, restore the signal handlers and
        write the final report (state ``done``)."""
        if self.proc is not None:
            self.teardown_layers()
        end_leftovers(self.proc.pid if self.proc is not None else None)
        self.keep_logs()
        if self.workdir_made:  # never one that was there before: it is not ours
            remove_workdir(self.plan.workdir)
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        report = self.report
        report.received_signals = [signal.Signals(s).name for s in self.received]
        report.state = "done"
        report.finished = utc_now()
        report.seconds = round(time.monotonic() - self.t0, 3)
        write_report(self.plan.report_path, report)


def pilot_record(plan: PilotPlan) -> dict[str, str] | None:
    """Which pilot3 ran: its source and version (None for a command given after --)."""
    source = plan.layer("payload").detail.source
    if source is None:
        return None
    from siteagent.pilot.source import pilot_version  # "unknown" where it cannot tell

    return {"source": source.kind, "origin": source.origin, "version": pilot_version(source.dir)}


def _mark_lost_neighbours(plan: PilotPlan) -> None:
    """Reports beside ours from this host whose wrapper was SIGKILLed end as ``lost``."""
    from siteagent.pilot.report import mark_lost

    with contextlib.suppress(OSError):
        mark_lost(os.path.dirname(plan.report_path), plan.host, skip=plan.report_path)


def run_plan(plan: PilotPlan, *, plan_seconds: float = 0.0) -> PilotReport:
    """Run ``plan`` to the end and return its final report (also written to disk)."""
    return Supervisor(plan, plan_seconds=plan_seconds).run()


def _early_report(opts: PilotOptions) -> tuple[str, PilotReport]:
    """Where this rank reports and its report, before the profile is loaded (the pilot id
    from the rank variable the execution wrapper exports)."""
    from siteagent.names import Var
    from siteagent.pilot.plan import hostname, pilot_id, report_path

    environ = dict(os.environ)
    host = hostname().split(".")[0]
    rank = environ.get(Var.RANK, "0")
    pid_ = pilot_id(environ, host, int(rank) if rank.isdigit() else 0, os.getpid())
    path = report_path(opts, environ, pid_)
    return path, PilotReport(pilot_id=pid_, site=opts.site, host=host, pid=os.getpid())


def report_starting(opts: PilotOptions) -> str:
    """Write a ``starting`` report before anything else, so even a SIGKILL during start-up
    leaves one (a later run marks it ``lost``); its path. Raises OSError when it cannot be
    written."""
    path, report = _early_report(opts)
    write_report(path, report)
    return path


def drop_own_report(path: str) -> None:
    """Remove the ``starting`` report at ``path`` if it is still this process's own (another
    rank may have written its report there since)."""
    from siteagent.pilot.report import read_report

    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = read_report(path)
        if data["pid"] == os.getpid() and data["state"] == "starting":
            os.unlink(path)


def report_plan_error(opts: PilotOptions, error: Exception) -> tuple[str, PilotReport]:
    """A plan that could not even be built still leaves a report (reason setup-error)."""
    path, report = _early_report(opts)
    report.state, report.reason, report.exit_code = "done", "setup-error", SETUP_ERROR_EXIT
    report.error = str(error)
    report.finished = report.started
    write_report(path, report)
    return path, report
