"""Harvester monitor: each worker's state, from one batched status call to the endpoint."""

from __future__ import annotations

from typing import Any

from siteagent.errors import SiteAgentError
from siteagent.harvester.base import worker_logger
from siteagent.harvester.plugin import GlobusComputePlugin
from siteagent.harvester.status import WorkerState, after_kill

# Harvester's "could not check now": it keeps the worker's status and, after checkTimeout of
# such answers (harvesterbody/monitor.py, Monitor.check_workers), kills it
UNCHECKED = (None, "task status service unreachable: will check again")


class GlobusComputeMonitor(GlobusComputePlugin):
    def check_workers(self, workspec_list: list[Any]) -> tuple[bool, list[tuple[Any, str]]]:
        """``(True, [(status, diagnostic), ...])`` in order, with ``(None, why)`` for a worker
        whose state cannot be learned now. Sets ``nativeStatus`` (the Globus Compute task
        state) and, once the task ended, ``nativeExitCode`` on each WorkSpec.

        Tasks that have not ended in this process are asked about in one batched status call
        for all of them; a task the endpoint does not know is failed as lost.
        """
        try:
            if self.gc_queue.mode == "push":
                states = self._push_states(workspec_list)
            else:
                states = self.gc_states(workspec_list)
        except SiteAgentError as err:  # a bad queue config: Harvester's checkTimeout applies
            return True, [(None, str(err))] * len(workspec_list)
        out: list[tuple[Any, str]] = []
        for ws, state in zip(workspec_list, states, strict=True):
            if state is None:
                out.append(UNCHECKED)
                continue
            state = after_kill(state, ws)
            out.append((state.status, state.diag))
            _record(ws, state)
        return True, out

    def _push_states(self, workspec_list: list[Any]) -> list[WorkerState | None]:
        """Push mode: each worker's state from what its pilot left, written into its access
        point: from the task's result once it ended, else from one control task on the login
        node that reads the push directories of all running workers."""
        import time

        pairs = self.gc_states_and_results(workspec_list)
        running = [
            self.gc_worker_name(ws)
            for ws, (state, _) in zip(workspec_list, pairs, strict=True)
            if state is not None and not state.ended and ws.batchID is not None
        ]
        reports = self._collect(running) if running else {}
        now = time.time()
        return [
            self._push_state(ws, state, raw, reports, now)
            for ws, (state, raw) in zip(workspec_list, pairs, strict=True)
        ]

    def _push_state(
        self, ws: Any, state: WorkerState | None, raw: Any, reports: dict[str, Any], now: float
    ) -> WorkerState | None:
        """One push-mode worker's state, its pilot's report written into its access point."""
        from siteagent.harvester.pushstatus import ended_state, report_of_result

        if state is None or ws.batchID is None:
            return state
        if state.ended:
            report = report_of_result(raw)
            new = ended_state(state, report)
        else:
            report = reports.get(self.gc_worker_name(ws))
            new = _running(ws, state, report, now, self.gc_queue.lost_timeout)
        _write_back(ws, report, now)
        return new

    def _collect(self, workers: list[str]) -> dict[str, Any]:
        """One control task reading the push directories of ``workers`` on the login node;
        {} when it gives no answer in time (the task states still apply)."""
        from concurrent.futures import wait

        from siteagent.harvester.control import collect_workers
        from siteagent.userconfig import CONTROL_CONFIG

        try:
            future = self.gc_backend.executor(CONTROL_CONFIG).submit(collect_workers, workers)
            wait([future], timeout=self.gc_queue.result_timeout)
            if future.done() and future.exception() is None:
                return future.result() or {}
            future.cancel()
        except Exception as err:  # the running workers keep their task's state this cycle
            log = worker_logger(__name__, "-", "check_workers")
            log.warning("push reports unavailable: %s: %s", type(err).__name__, err)
        return {}


def _running(
    ws: Any, state: WorkerState, report: Any, now: float, lost_timeout: float
) -> WorkerState:
    """A running worker's state from its pilot's report, remembering its files' last change
    in the WorkSpec's workAttributes."""
    from siteagent.harvester.pushstatus import SEEN_KEY, running_state

    seen = (getattr(ws, "workAttributes", None) or {}).get(SEEN_KEY)
    new, seen = running_state(state, report, seen, now, lost_timeout)
    if seen is not None:
        _note(ws, SEEN_KEY, seen)
    return new


def _write_back(ws: Any, report: Any, now: float) -> None:
    """What the worker's pilot left, into its access point (and its node on the WorkSpec)."""
    from siteagent.harvester.pushjob import access_point, write_access_point

    ap = access_point(ws)
    if not report or not report.get("exists") or ap is None:
        return
    write_access_point(ap, report, float(report.get("signature") or now))
    node = (report.get("attributes") or {}).get("node")
    if node and hasattr(ws, "nodeID"):
        ws.nodeID = str(node)[:128]


def _note(ws: Any, key: str, value: Any) -> None:
    if hasattr(ws, "set_work_attributes"):
        ws.set_work_attributes({key: value})
    else:
        ws.workAttributes = (getattr(ws, "workAttributes", None) or {}) | {key: value}


def _record(ws: Any, state: WorkerState) -> None:
    """The task's state on the WorkSpec, logged when it changed."""
    if getattr(ws, "nativeStatus", None) != state.native:  # one line per change
        log = worker_logger(__name__, ws.workerID, "check_workers")
        said = f"{state.status}: {state.diag}" if state.diag else state.status
        log.info("task %s %s: %s", ws.batchID, state.native, said)
    ws.nativeStatus = state.native
    if state.exit_code is not None:
        ws.nativeExitCode = state.exit_code
