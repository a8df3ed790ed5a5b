"""Harvester submitter: one Globus Compute task per worker, batched per user endpoint config."""

from __future__ import annotations

import time
from typing import Any

from siteagent.errors import SiteAgentError
from siteagent.harvester.base import worker_logger
from siteagent.harvester.plugin import SHAPE_KEY, WORKER_KEY, GlobusComputePlugin
from siteagent.harvester.shape import (
    payload_argv,
    shape_key,
    shell_walltime,
    worker_command,
    worker_id,
    worker_shape,
)


class GlobusComputeSubmitter(GlobusComputePlugin):
    """``submit_workers`` turns each WorkSpec into a ShellFunction task running the pilot."""

    def submit_workers(self, workspec_list: list[Any]) -> list[tuple[bool | None, str]]:
        """Per worker, in order: (True, "") submitted, (False, why) never will be, (None, why)
        try again later. Sets ``batchID`` to the task id, and in ``workAttributes`` the
        worker's name on the site (all the monitor and the sweeper need besides the id)."""
        results: list[tuple[bool | None, str]] = [(None, "")] * len(workspec_list)
        try:
            qc, profile, backend = self.gc_queue, self.gc_profile, self.gc_backend
        except SiteAgentError as err:
            return [(False, str(err))] * len(workspec_list)
        pending = self._send(workspec_list, profile, backend, results)
        # the SDK sends tasks in batches from a background thread; ids arrive with the batch
        deadline = time.monotonic() + qc.result_timeout
        for i, ws, wid, future in pending:
            results[i] = self._take_id(ws, wid, future, deadline)
        return results

    def _send(
        self,
        workspec_list: list[Any],
        profile: Any,
        backend: Any,
        results: list[tuple[bool | None, str]],
    ) -> list[tuple[int, Any, str, Any]]:
        """Submit a task per worker that can be made; the answer of each one that cannot goes
        into ``results``. Returns the tasks sent: (index, WorkSpec, name, future)."""
        pending: list[tuple[int, Any, str, Any]] = []
        shapes: dict[tuple, tuple[dict[str, Any], str]] = {}
        for i, ws in enumerate(workspec_list):
            log = worker_logger(__name__, ws.workerID, "submit_workers")
            try:
                wid, config, fn, changed = self._task(ws, profile, shapes)
            except SiteAgentError as err:
                results[i] = (False, str(err))
                log.error("not submitted: %s", err)
                continue
            try:
                future = backend.executor(config).submit(fn)
            except Exception as err:  # the service or engine is down now: Harvester retries
                results[i] = (None, f"submit failed: {type(err).__name__}: {err}")
                log.warning("%s (will retry)", results[i][1])
                continue
            pending.append((i, ws, wid, future))
            if changed:
                _note(ws, SHAPE_KEY, changed)
                log.info("shape changed: %s", changed)
        return pending

    def _take_id(self, ws: Any, wid: str, future: Any, deadline: float) -> tuple[bool | None, str]:
        """The worker's answer once its task has an id (then its ``batchID``), or by
        ``deadline`` (then cancelled, to be tried again)."""
        log = worker_logger(__name__, ws.workerID, "submit_workers")
        task_id = _task_id(future, deadline)
        if task_id is None:
            future.cancel()
            why = f"no task id within {self.gc_queue.result_timeout:g} s: not submitted"
            log.warning("%s (will retry)", why)
            return None, why
        ws.batchID = str(task_id)
        _note(ws, WORKER_KEY, wid)
        self.registry.add(ws.batchID, future)
        log.info("worker %s submitted as task %s", wid, ws.batchID)
        return True, ""

    def _task(
        self, ws: Any, profile: Any, shapes: dict[tuple, tuple[dict[str, Any], str]]
    ) -> tuple[str, dict, Any, str]:
        """The worker's name, user endpoint config, ShellFunction and what was changed of its
        shape (SiteAgentError if the worker cannot be made). ``shapes`` caches one config
        per shape."""
        from globus_compute_sdk import ShellFunction

        qc = self.gc_queue
        wid = worker_id(qc, profile, ws)
        key = shape_key(ws)
        if key not in shapes:  # validate each shape once, not each worker
            shapes[key] = worker_shape(qc, profile, ws)
        config, changed = shapes[key]
        push = None
        if qc.mode == "push":  # the job goes in the task: the node needs no network
            from siteagent.harvester.pushjob import push_bundle

            push = push_bundle(ws, qc.panda_queue).to_json()
        command = worker_command(wid, payload_argv(qc, ws), push)
        return wid, config, ShellFunction(command, walltime=shell_walltime(config)), changed


def _note(ws: Any, key: str, value: str) -> None:
    """Keep ``key`` in the WorkSpec's workAttributes (Harvester saves them with the worker)."""
    if hasattr(ws, "set_work_attributes"):
        ws.set_work_attributes({key: value})
    else:
        ws.workAttributes = (getattr(ws, "workAttributes", None) or {}) | {key: value}
    if key == SHAPE_KEY:  # and in its diagnostic, which the monitor's "" does not overwrite
        _set_diagnostic(ws, value)


def _set_diagnostic(ws: Any, text: str) -> None:
    """The WorkSpec's diagMessage, through its setter where it has one (Harvester's WorkSpec)."""
    if hasattr(ws, "set_dialog_message"):
        ws.set_dialog_message(text)
    else:
        ws.diagMessage = text[:500]


def _task_id(future: Any, deadline: float) -> Any:
    """The future's task id once the SDK's batch has it; None past ``deadline``."""
    task_id = getattr(future, "task_id", None)
    while task_id is None and not future.done() and time.monotonic() < deadline:
        time.sleep(0.01)
        task_id = getattr(future, "task_id", None)
    return task_id
