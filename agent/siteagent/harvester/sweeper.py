"""Harvester sweeper: stop workers, and clean up after them, through control tasks on the
site's login node."""

from __future__ import annotations

from concurrent.futures import Future, wait
from typing import Any

from siteagent.harvester.base import worker_logger
from siteagent.harvester.control import forget_worker, stop_worker
from siteagent.harvester.plugin import GlobusComputePlugin
from siteagent.userconfig import CONTROL_CONFIG


class GlobusComputeSweeper(GlobusComputePlugin):
    def kill_workers(self, workspec_list: list[Any]) -> list[tuple[bool, str]]:
        """Per worker, in order: (True, what was done) or (False, why it could not be).

        Only workers whose task is still queued or running get a stop task: Harvester also
        calls this for workers that ended, or were never submitted, before sweeping them.
        """
        results: list[tuple[bool, str]] = [(False, "")] * len(workspec_list)
        stops: list[tuple[int, Any, str, Future]] = []
        states = self.gc_states([ws for ws in workspec_list if ws.batchID is not None])
        for i, ws in enumerate(workspec_list):
            log = worker_logger(__name__, ws.workerID, "kill_workers")
            state = states.pop(0) if ws.batchID is not None else None
            if ws.batchID is None:
                results[i] = (True, "never submitted: nothing to stop")
            elif state is None:
                results[i] = (False, "task status unavailable: will try again")
            elif state.lost:
                results[i] = (True, f"nothing to stop: {state.diag}")
            elif state.ended:
                results[i] = (True, f"already ended ({state.status})")
            else:
                wid = self.gc_worker_name(ws)
                try:
                    stops.append((i, ws, wid, self._control(stop_worker, wid)))
                    continue
                except Exception as err:
                    results[i] = (False, f"cannot send the stop task: {type(err).__name__}: {err}")
            (log.info if results[i][0] else log.warning)("task %s: %s", ws.batchID, results[i][1])
        wait([f for *_, f in stops], timeout=self.gc_queue.result_timeout)
        for i, ws, wid, future in stops:
            results[i] = self._answer(future)
            log = worker_logger(__name__, ws.workerID, "kill_workers")
            (log.info if results[i][0] else log.error)("worker %s: %s", wid, results[i][1])
        return results

    def kill_worker(self, workspec: Any) -> tuple[bool, str]:
        return self.kill_workers([workspec])[0]

    def sweep_worker(self, workspec: Any) -> tuple[bool, str]:
        """Remove what the worker left on the site (stop mark, record) and forget its task.
        (False, why) keeps the worker in Harvester's table, to be swept again later."""
        log = worker_logger(__name__, workspec.workerID, "sweep_worker")
        self.registry.forget(workspec.batchID)
        if workspec.batchID is None:
            log.info("swept: never submitted, nothing on the site")
            return True, ""
        wid = self.gc_worker_name(workspec)
        try:
            future = self._control(forget_worker, wid)
            wait([future], timeout=self.gc_queue.result_timeout)
            ok, detail = self._answer(future)
        except Exception as err:
            ok, detail = False, f"cannot send the clean-up task: {type(err).__name__}: {err}"
        (log.info if ok else log.warning)("worker %s swept: %s", wid, detail)
        return ok, "" if ok else detail

    def _control(self, fn: Any, wid: str) -> Future:
        return self.gc_backend.executor(CONTROL_CONFIG).submit(fn, wid)

    def _answer(self, future: Future) -> tuple[bool, str]:
        """What a control task did, from its future."""
        if not future.done():
            future.cancel()
            return False, f"control task gave no answer in {self.gc_queue.result_timeout:g} s"
        if future.exception() is not None:
            return False, f"control task failed: {future.exception()}"
        answer = future.result()
        return True, f"{answer['action']}: {answer['detail']}"
