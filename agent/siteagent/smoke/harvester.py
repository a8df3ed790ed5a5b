"""``smoke-test --harvester``: Harvester's side on the in-process engine. Submit workers with
the plugins, monitor them to the end, stop one, and read each pilot wrapper's report."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from siteagent.errors import SiteAgentError
from siteagent.names import Var


class Worker:
    """The WorkSpec fields the plugins read and write."""

    def __init__(self, worker_id: int, n_core: int = 1, walltime: int = 600):
        self.workerID, self.nCore, self.maxWalltime = worker_id, n_core, walltime
        self.batchID: str | None = None


class HarvesterRound:
    """Two workers that finish and one the sweeper stops while its payload runs."""

    def __init__(
        self, site: str, base: Path, timeout: float, shape: tuple[int, int] = (1, 600)
    ) -> None:
        """``shape``: the workers' ``(nCore, maxWalltime)``."""
        from siteagent.harvester.monitor import GlobusComputeMonitor
        from siteagent.harvester.submitter import GlobusComputeSubmitter
        from siteagent.harvester.sweeper import GlobusComputeSweeper

        keys = {"site": site, "backend": "local-engine", "workdir": str(base / "harvester")}
        payload = ["bash", "-c", f"echo pilot rank ${Var.RANK} of worker ${Var.WORKER_ID}"]
        self.submitter = GlobusComputeSubmitter(**keys, payload=payload)
        self.long_submitter = GlobusComputeSubmitter(**keys, payload=["sleep", "600"])
        self.monitor = GlobusComputeMonitor(**keys)
        self.sweeper = GlobusComputeSweeper(**keys)
        self.site, self.state, self.timeout = site, base / "state", timeout
        self.workers = [Worker(1, *shape), Worker(2, *shape)]
        self.victim = Worker(3, *shape)
        self.deadline = 0.0
        self.shared = False  # the workers run on an engine the caller lent (share)

    def start(self, running: dict[str, Any] | None = None) -> None:
        """Set ``$SITE_AGENT_STATE`` (the engine's workers inherit it: call this before the
        engine they run on starts). ``running``: the user endpoint config of the caller's
        engine, which the round may share (see ``share``)."""
        from siteagent.harvester.shape import worker_config
        from siteagent.userconfig import config_key

        self._saved_state = os.environ.get(Var.STATE)
        os.environ[Var.STATE] = str(self.state)
        queue, profile = self.submitter.gc_queue, self.submitter.gc_profile
        workers = worker_config(queue, profile, self.workers[0])
        self.shared = running is not None and config_key(running) == config_key(workers)

    def share(self, config: dict[str, Any], executor: Any) -> None:
        """Run the workers, and the sweeper's control tasks, on ``executor``: it already runs
        the workers' user endpoint config (equal configs share one user endpoint), and on this
        one machine the control endpoint's LocalProvider would only start the same kind of
        worker pool a second time. Its owner stops it."""
        from siteagent.userconfig import CONTROL_CONFIG

        if self.shared:
            for each in (config, CONTROL_CONFIG):
                self.submitter.gc_backend.adopt(each, executor)

    def close(self) -> None:
        """Stop the engines and restore ``$SITE_AGENT_STATE``."""
        from siteagent.harvester.backends import shutdown_backends

        shutdown_backends()
        saved = getattr(self, "_saved_state", None)
        if saved is None:
            os.environ.pop(Var.STATE, None)
        else:
            os.environ[Var.STATE] = saved

    def run(self) -> str:
        """Run the round (starting it unless ``start`` already did), then close it."""
        if os.environ.get(Var.STATE) != str(self.state):
            self.start()
        t0 = time.monotonic()
        try:
            detail, reasons = self.submit_stop_and_wait()
        finally:
            self.close()
        return (
            f"2 workers submitted and finished, 1 stopped by the sweeper ({detail}); "
            f"pilot wrapper reports {_words(reasons)} in {time.monotonic() - t0:.1f}s"
        )

    def submit_stop_and_wait(self) -> tuple[str, dict[int, str]]:
        from siteagent.harvester.base import ST_CANCELLED, ST_FINISHED

        self._submit()
        self.deadline = time.monotonic() + self.timeout
        detail = self._stop_victim()
        everyone = [*self.workers, self.victim]
        want = [ST_FINISHED, ST_FINISHED, ST_CANCELLED]

        def states_as_wanted() -> bool:
            ok, states = self.monitor.check_workers(everyone)
            return ok and isinstance(states, list) and [s for s, _ in states] == want

        self.wait_for(f"check_workers to say {want}", states_as_wanted)
        # each rank's pilot wrapper left its final report where a monitor finds it
        reasons = self.wait_for("the pilot wrapper reports", self.final_reasons)
        if reasons != {1: "finished", 3: "signalled"}:
            raise SiteAgentError(f"pilot wrapper reports: {reasons}")
        for w in everyone:
            swept, why = self.sweeper.sweep_worker(w)
            if not swept:
                raise SiteAgentError(f"sweep_worker: {why}")
        # and the sweep took them away with the workers' other files
        left = [w.workerID for w in everyone if self.report_path(w.workerID).exists()]
        if left:
            raise SiteAgentError(f"sweep_worker left the pilot reports of workers {left}")
        return detail, reasons

    def _submit(self) -> None:
        """Submit the two short workers and the long one (the victim)."""
        answers = self.submitter.submit_workers(self.workers)
        answers += self.long_submitter.submit_workers([self.victim])
        if any(ok is not True for ok, _ in answers):
            raise SiteAgentError(f"submit_workers: {answers}")

    def _stop_victim(self) -> str:
        """Stop the long worker once its pilot wrapper runs the payload; the sweeper's word."""
        self.wait_for(
            "the worker to stop to start", lambda: self.pilot_report(3).get("state") == "running"
        )
        [(stopped, detail)] = self.sweeper.kill_workers([self.victim])
        if not stopped:
            raise SiteAgentError(f"kill_workers: {detail}")
        return detail

    def wait_for(self, what: str, done: Callable[[], Any]) -> Any:
        while not (value := done()):
            if time.monotonic() > self.deadline:
                raise SiteAgentError(f"timed out waiting for {what}")
            time.sleep(0.1)
        return value

    def report_path(self, worker: int) -> Path:
        """Where the rank of worker number ``worker`` reports."""
        return self.state / "pilots" / f"{self.site}-{worker}-r0.json"

    def pilot_report(self, worker: int) -> dict[str, Any]:
        from siteagent.pilot.report import read_report

        try:
            return read_report(self.report_path(worker))
        except (OSError, ValueError):  # not written yet
            return {}

    def final_reasons(self) -> dict[int, str] | None:
        reports = {w: self.pilot_report(w) for w in (1, 3)}
        if all(r.get("state") == "done" for r in reports.values()):
            return {w: r["reason"] for w, r in reports.items()}
        return None


def _words(reasons: dict[int, str]) -> str:
    """``worker 1 finished, worker 3 signalled`` (not a Python dict)."""
    return ", ".join(f"worker {n} {reason}" for n, reason in sorted(reasons.items()))
