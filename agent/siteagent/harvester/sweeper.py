"""Harvester sweeper: stop workers through a control task on the site's login node."""

from __future__ import annotations

import logging
import time
from concurrent.futures import wait
from typing import Any

from siteagent.harvester.control import stop_worker
from siteagent.harvester.plugin import GlobusComputePlugin
from siteagent.harvester.registry import TaskRecord
from siteagent.harvester.shape import worker_id
from siteagent.userconfig import CONTROL_CONFIG

log = logging.getLogger(__name__)


class GlobusComputeSweeper(GlobusComputePlugin):
    def kill_workers(self, workspec_list: list[Any]) -> list[tuple[bool, str]]:
        """Per worker, in order: (True, what was done) or (False, why it could not be)."""
        results: list[tuple[bool, str]] = [(False, "")] * len(workspec_list)
        stops: list[tuple[int, str, Any, Any]] = []
        for i, ws in enumerate(workspec_list):
            record = self.registry.get(ws.batchID)
            if record is not None and record.future.done():
                results[i] = (True, "already ended")
                log.info("worker %s (task %s): already ended", record.worker_id, ws.batchID)
                continue
            # no local cancel: the task is with the endpoint already (it has an id), so only a
            # stop task on the site can end it, or keep it from starting
            wid = record.worker_id if record else worker_id(self.gc_queue, self.gc_profile, ws)
            try:
                future = self.gc_backend.executor(CONTROL_CONFIG).submit(stop_worker, wid)
            except Exception as err:
                results[i] = (False, f"cannot send the stop task: {type(err).__name__}: {err}")
                log.error("worker %s: %s", wid, results[i][1])
                continue
            stops.append((i, wid, record, future))
        wait([f for *_, f in stops], timeout=self.gc_queue.result_timeout)
        for i, wid, record, future in stops:
            results[i] = self._answer(record, future)
            log_as = log.info if results[i][0] else log.error
            log_as("worker %s: %s", wid, results[i][1])
        return results

    def _answer(self, record: TaskRecord | None, future: Any) -> tuple[bool, str]:
        """What the stop task did, from its future; notes the stop on the worker's record."""
        if not future.done():
            future.cancel()
            return False, f"stop task gave no answer in {self.gc_queue.result_timeout:g} s"
        if future.exception() is not None:
            return False, f"stop failed: {future.exception()}"
        answer = future.result()
        detail = f"{answer['action']}: {answer['detail']}"
        if record is not None:
            record.stopped_at = time.time()
            record.stop_detail = f"stopped by the sweeper ({detail})"
        return True, detail

    def kill_worker(self, workspec: Any) -> tuple[bool, str]:
        return self.kill_workers([workspec])[0]

    def sweep_worker(self, workspec: Any) -> tuple[bool, str]:
        """Forget the worker's task; its files on the site are removed by the worker itself."""
        record = self.registry.get(workspec.batchID)
        self.registry.forget(workspec.batchID)
        name = record.worker_id if record else workspec.workerID
        log.info("worker %s: swept (task %s forgotten)", name, workspec.batchID)
        return True, ""
