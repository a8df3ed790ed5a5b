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


def _record(ws: Any, state: WorkerState) -> None:
    """The task's state on the WorkSpec, logged when it changed."""
    if getattr(ws, "nativeStatus", None) != state.native:  # one line per change
        log = worker_logger(__name__, ws.workerID, "check_workers")
        said = f"{state.status}: {state.diag}" if state.diag else state.status
        log.info("task %s %s: %s", ws.batchID, state.native, said)
    ws.nativeStatus = state.native
    if state.exit_code is not None:
        ws.nativeExitCode = state.exit_code
