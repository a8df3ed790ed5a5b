"""Harvester submitter: one Globus Compute task per worker, batched per user endpoint config."""

from __future__ import annotations

import logging
import time
from typing import Any

from siteagent.errors import SiteAgentError
from siteagent.harvester.plugin import GlobusComputePlugin
from siteagent.harvester.registry import TaskRecord
from siteagent.harvester.shape import (
    payload_argv,
    shape_key,
    shell_walltime,
    worker_command,
    worker_config,
    worker_id,
)

log = logging.getLogger(__name__)


class GlobusComputeSubmitter(GlobusComputePlugin):
    """``submit_workers`` turns each WorkSpec into a ShellFunction task running the pilot."""

    def submit_workers(self, workspec_list: list[Any]) -> list[tuple[bool | None, str]]:
        """Per worker, in order: (True, "") submitted, (False, why) never will be, (None, why)
        try again later. Sets ``batchID`` to the task id."""
        results: list[tuple[bool | None, str]] = [(None, "")] * len(workspec_list)
        try:
            qc, profile, backend = self.gc_queue, self.gc_profile, self.gc_backend
        except SiteAgentError as err:
            return [(False, str(err))] * len(workspec_list)
        pending: list[tuple[int, Any, str, Any]] = []
        configs: dict[tuple, dict[str, Any]] = {}
        for i, ws in enumerate(workspec_list):
            try:
                wid, config, fn = self._task(ws, profile, configs)
            except SiteAgentError as err:
                results[i] = (False, str(err))
                log.error("worker %s: not submitted: %s", ws.workerID, err)
                continue
            try:
                future = backend.executor(config).submit(fn)
            except Exception as err:  # the service or engine is down now: Harvester retries
                results[i] = (None, f"submit failed: {type(err).__name__}: {err}")
                log.warning("worker %s: %s (will retry)", wid, results[i][1])
                continue
            pending.append((i, ws, wid, future))

        # the SDK sends tasks in batches from a background thread; ids arrive with the batch
        deadline = time.monotonic() + qc.result_timeout
        for i, ws, wid, future in pending:
            task_id = _task_id(future, deadline)
            if task_id is None:
                future.cancel()
                results[i] = (None, f"no task id within {qc.result_timeout:g} s: not submitted")
                log.warning("worker %s: %s (will retry)", wid, results[i][1])
                continue
            ws.batchID = str(task_id)
            self.registry.add(TaskRecord(batch_id=ws.batchID, worker_id=wid, future=future))
            results[i] = (True, "")
            log.info("worker %s: submitted as task %s", wid, ws.batchID)
        return results

    def _task(
        self, ws: Any, profile: Any, configs: dict[tuple, dict[str, Any]]
    ) -> tuple[str, dict, Any]:
        """The worker's name, user endpoint config and ShellFunction (SiteAgentError if the
        worker cannot be made). ``configs`` caches one config per shape."""
        from globus_compute_sdk import ShellFunction

        qc = self.gc_queue
        wid = worker_id(qc, profile, ws)
        key = shape_key(ws)
        if key not in configs:  # validate each shape once, not each worker
            configs[key] = worker_config(qc, profile, ws)
        config = configs[key]
        command = worker_command(wid, payload_argv(qc, ws))
        return wid, config, ShellFunction(command, walltime=shell_walltime(config))


def _task_id(future: Any, deadline: float) -> Any:
    """The future's task id once the SDK's batch has it; None past ``deadline``."""
    task_id = getattr(future, "task_id", None)
    while task_id is None and not future.done() and time.monotonic() < deadline:
        time.sleep(0.01)
        task_id = getattr(future, "task_id", None)
    return task_id
