"""Runs the pilot wrapper's Supervisor in a child process for the tests.

The Supervisor makes its own process a child subreaper and, at the end, ends every process
below it. Run inside pytest, that process would adopt the orphans of other tests and its sweep
would signal their processes (a session's slurmctld, a proxy, an engine). So every test that
runs it calls :func:`supervise`, which runs it in a fresh interpreter (with the same
``sys.path``, so a mutation run's copy of the package is the one imported) and hands back what
the test asserts on. ``tests/conftest.py`` fails any test after which the pytest process is a
subreaper (:func:`is_subreaper`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 1, 36, 37


def is_subreaper() -> bool:
    """Whether this process is a child subreaper (prctl PR_GET_CHILD_SUBREAPER)."""
    flag = ctypes.c_int(0)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_GET_CHILD_SUBREAPER)")
    return flag.value != 0


def set_subreaper(on: bool) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)


@dataclass
class Run:
    """What one Supervisor run in the child left: its report, the child's pid, the error it
    raised (``"Type: message"``), whether the signal handlers were as before, and what the
    ``watch-setup`` scenario saw on disk while the layers were being set up."""

    report: Any = None
    pid: int = 0
    raised: str | None = None
    handlers_restored: bool = False
    seen: list[dict] = field(default_factory=list)


# ------------------------------------------------------------------ in the child
def _scenario(name: str | None, arg: Any, result: Run) -> None:
    """Test doubles inside the child (the tests' monkeypatching, where the Supervisor runs)."""
    import json
    import time

    from siteagent import pilot
    from siteagent.pilot import run

    if name is None:
        return
    if name == "broken-wait":  # wait() fails once the payload wrote its pid
        pid_file = Path(arg)

        def broken_wait(self):
            while not pid_file.is_file() or not pid_file.read_text():
                time.sleep(0.01)
            raise RuntimeError("boom")

        run.Supervisor.wait = broken_wait  # type: ignore[method-assign]
    elif name == "early-stop":  # a TERM caught before the Supervisor took over
        pilot.EARLY_SIGNALS[:] = [signal.SIGTERM]
    elif name == "early-usr1":  # a USR1 caught before the Supervisor took over
        pilot.EARLY_SIGNALS[:] = [signal.SIGUSR1]
    elif name == "term-during-popen":  # a TERM lands while the payload is being started
        import subprocess

        real = subprocess.Popen

        def popen(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            return real(*args, **kwargs)

        subprocess.Popen = popen  # type: ignore[misc]
    elif name == "early-stop-real":  # as the execution wrapper's stop during start-up
        pilot.catch_early_signals()
        os.kill(os.getpid(), signal.SIGTERM)
    elif name == "no-subreaper":  # as where the kernel has none: orphans go elsewhere
        run._become_subreaper = lambda: set_subreaper(False)  # type: ignore[assignment]
    elif name == "watch-setup":  # a monitor looking while the layers are being set up
        setup = run.Supervisor.setup_layers

        def watched(self, env):
            result.seen.append(json.loads(Path(self.plan.report_path).read_text()))
            setup(self, env)

        run.Supervisor.setup_layers = watched  # type: ignore[method-assign]
    elif name == "coarse-clock":  # time(2), which gmtime() reads, a second behind time.time()
        real_gmtime = time.gmtime

        def gmtime(secs=None):
            return real_gmtime(time.time() - 1 if secs is None else secs)

        time.gmtime = gmtime  # type: ignore[assignment]
    else:
        raise ValueError(f"unknown scenario {name!r}")


def _child(job: Path, out: Path) -> None:
    # ends with the test's process (a killed or timed-out pytest leaves no Supervisor behind)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != int(os.environ.get("SUPERVISE_PARENT", os.getppid())):
        return  # the test's process ended before the line above
    plan, via, kwargs, scenario, arg = pickle.loads(job.read_bytes())
    from siteagent.pilot import run

    result = Run(pid=os.getpid())
    forwarded = (signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP, signal.SIGINT)
    _scenario(scenario, arg, result)
    before = {s: signal.getsignal(s) for s in forwarded}
    try:
        if via == "Supervisor":
            result.report = run.Supervisor(plan, **kwargs).run()
        else:
            result.report = run.run_plan(plan, **kwargs)
    except Exception as err:
        result.raised = f"{type(err).__name__}: {err}"
    result.handlers_restored = {s: signal.getsignal(s) for s in forwarded} == before
    out.write_bytes(pickle.dumps(result))


# ------------------------------------------------------------------ in the test
def supervise(
    plan: Any,
    *,
    via: str = "run_plan",
    plan_seconds: float | None = None,
    scenario: str | None = None,
    arg: Any = None,
    timeout: float = 60,
) -> Run:
    """Run ``plan`` in a child process (by ``run_plan`` or, ``via="Supervisor"``, by
    ``Supervisor(plan).run()``; ``plan_seconds`` passed only when given) and return what it
    left. The child inherits this process's environment."""
    with tempfile.TemporaryDirectory(prefix="supervise-") as tmp:
        job, out, log = Path(tmp, "job"), Path(tmp, "out"), Path(tmp, "log")
        kwargs = {} if plan_seconds is None else {"plan_seconds": plan_seconds}
        job.write_bytes(pickle.dumps((plan, via, kwargs, scenario, arg)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        env["SUPERVISE_PARENT"] = str(os.getpid())
        if sys.dont_write_bytecode:  # a mutation run: no stale .pyc of a same-sized mutant
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        code = "import sys, pathlib, tests.supervisor_child as c; c._child(*map(pathlib.Path, sys.argv[1:]))"
        with log.open("wb") as fh:
            # stdout to a file, not a pipe: a leftover the payload started would hold a pipe open
            proc = subprocess.Popen(
                [sys.executable, "-c", code, str(job), str(out)],
                stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                from siteagent.pilot.leftovers import descendants

                for pid in [*descendants(proc.pid), proc.pid]:  # the payload and its children
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                proc.wait()
                raise AssertionError(f"the Supervisor's child ran over {timeout} s") from None
        if rc != 0 or not out.is_file():
            raise AssertionError(f"the Supervisor's child exited {rc}:\n{log.read_text()[-3000:]}")
        return pickle.loads(out.read_bytes())
