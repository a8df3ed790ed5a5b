"""Harvester sweeper: stop workers, and clean up after them, through control tasks on the
site's login node."""

from __future__ import annotations

from concurrent.futures import Future, wait
from functools import cached_property
from typing import Any

from siteagent.harvester.base import worker_logger
from siteagent.harvester.control import forget_worker, stop_worker
from siteagent.harvester.plugin import GlobusComputePlugin
from siteagent.harvester.status import WorkerState
from siteagent.userconfig import CONTROL_CONFIG


class GlobusComputeSweeper(GlobusComputePlugin):
    @cached_property
    def gc_cleaned(self) -> set[str]:
        """Workers whose site files this instance already removed (Harvester's sweeper uses
        one instance for a round of kill_workers, then sweep_worker on each worker)."""
        return set()

    def kill_workers(self, workspec_list: list[Any]) -> list[tuple[bool, str]]:
        """Per worker, in order: (True, what was done) or (False, why it could not be).

        Only workers whose task is still queued or running get a stop task: Harvester also
        calls this for workers that ended, or were never submitted, before sweeping them.
        Workers that ended get their site files removed here, all at once, rather than one
        control task at a time in sweep_worker.
        """
        results: list[tuple[bool, str]] = [(False, "")] * len(workspec_list)
        stops, cleanups = self._send_kills(workspec_list, results)
        wait(
            [f for *_, f in stops] + [f for _, f in cleanups], timeout=self.gc_queue.result_timeout
        )
        for i, ws, wid, future in stops:
            results[i] = self._stop_answer(ws, wid, future)
        self.gc_cleaned.update(wid for wid, f in cleanups if self._answer(f)[0])
        return results

    def _send_kills(
        self, workspec_list: list[Any], results: list[tuple[bool, str]]
    ) -> tuple[list[tuple[int, Any, str, Future]], list[tuple[str, Future]]]:
        """Send the stop and clean-up tasks; the answer of each worker that needs no stop
        goes into ``results`` at once. Returns the stops (index, WorkSpec, name, future) and
        the clean-ups (name, future) sent."""
        stops: list[tuple[int, Any, str, Future]] = []
        cleanups: list[tuple[str, Future]] = []
        states = iter(self.gc_states([ws for ws in workspec_list if ws.batchID is not None]))
        for i, ws in enumerate(workspec_list):
            state = next(states) if ws.batchID is not None else None
            answer, stop, cleanup = self._kill_one(ws, state)
            cleanups += cleanup
            if stop is not None:
                stops.append((i, ws, *stop))
                continue
            results[i] = answer
            log = worker_logger(__name__, ws.workerID, "kill_workers")
            (log.info if answer[0] else log.warning)("task %s: %s", ws.batchID, answer[1])
        return stops, cleanups

    def _stop_answer(self, ws: Any, wid: str, future: Future) -> tuple[bool, str]:
        """What the worker's stop task did, logged."""
        answer = self._answer(future)
        log = worker_logger(__name__, ws.workerID, "kill_workers")
        (log.info if answer[0] else log.error)("worker %s: %s", wid, answer[1])
        return answer

    def _kill_one(
        self, ws: Any, state: Any
    ) -> tuple[tuple[bool, str], tuple[str, Future] | None, list[tuple[str, Future]]]:
        """For one worker: the answer when no stop is sent, the stop sent (its name and
        future) if one is, and the clean-up tasks of a worker that ended."""
        answer = _without_stop(ws, state)
        if answer is not None:
            ended = state is not None and state.ended
            return answer, None, self._clean_up_soon(ws) if ended else []
        wid = self.gc_worker_name(ws)
        try:
            return (True, ""), (wid, self._control(stop_worker, wid)), []
        except Exception as err:
            return (False, f"cannot send the stop task: {type(err).__name__}: {err}"), None, []

    def _clean_up_soon(self, ws: Any) -> list[tuple[str, Future]]:
        """The clean-up task of a worker that ended; none if it cannot be sent now
        (sweep_worker sends it again)."""
        wid = self.gc_worker_name(ws)
        try:
            return [(wid, self._control(forget_worker, wid))]
        except Exception:
            return []

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
        ok, detail = self._clean_up(wid)
        if ok:
            self.gc_backend.forget(str(workspec.batchID))
        (log.info if ok else log.warning)("worker %s swept: %s", wid, detail)
        return ok, "" if ok else detail

    def _clean_up(self, wid: str) -> tuple[bool, str]:
        """Remove the worker's site files, unless kill_workers did already."""
        if wid in self.gc_cleaned:
            return True, "site files removed with kill_workers"
        try:
            future = self._control(forget_worker, wid)
            wait([future], timeout=self.gc_queue.result_timeout)
            return self._answer(future)
        except Exception as err:
            return False, f"cannot send the clean-up task: {type(err).__name__}: {err}"

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


def _without_stop(ws: Any, state: WorkerState | None) -> tuple[bool, str] | None:
    """The answer for a worker that needs no stop task; None when it does (its task is
    queued or running)."""
    if ws.batchID is None:
        return True, "never submitted: nothing to stop"
    if state is None:
        return False, "task status unavailable: will try again"
    if state.lost:
        return True, f"nothing to stop: {state.diag}"
    if state.ended:
        return True, f"already ended ({state.status})"
    return None
