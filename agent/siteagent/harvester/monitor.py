"""Harvester monitor: worker states from task futures, with one batched status call for the rest."""

from __future__ import annotations

import logging
import time
from typing import Any

from siteagent.harvester.base import ST_RUNNING
from siteagent.harvester.plugin import GlobusComputePlugin
from siteagent.harvester.status import LOST, from_record, from_remote

log = logging.getLogger(__name__)


class GlobusComputeMonitor(GlobusComputePlugin):
    def check_workers(self, workspec_list: list[Any]) -> tuple[bool, list[tuple[str, str]] | str]:
        """``(True, [(status, diagnostic), ...])`` in order, or ``(False, why)`` when the
        state cannot be learned now (Harvester checks again later).

        Workers without a future here (Harvester restarted) and workers whose task has been
        pending for ``lostAfterSeconds`` since the endpoint last confirmed it are asked about
        in one batched status call; a task the endpoint no longer knows is failed as lost.
        """
        lost_after = self.gc_queue.lost_after_seconds
        now = time.time()
        out: list[tuple[str, str] | None] = []
        ask: dict[str, list[int]] = {}
        for i, ws in enumerate(workspec_list):
            record = self.registry.get(ws.batchID)
            if record is None:
                ask.setdefault(str(ws.batchID), []).append(i)
                out.append(None)
                continue
            state = from_record(record)
            out.append(state)
            if record.last_status != state[0]:  # one line per change, not per check
                record.last_status = state[0]
                log.info("worker %s (task %s): %s", record.worker_id, ws.batchID, _say(state))
            last_seen = record.confirmed_at or record.submitted_at
            if (
                not record.future.done()
                and record.stopped_at is None
                and now - last_seen > lost_after
            ):
                ask.setdefault(str(ws.batchID), []).append(i)
        if ask and not self._ask_endpoint(ask, out, now):
            return False, "task status service unreachable: will check again"
        return True, out  # type: ignore[return-value]

    def _ask_endpoint(
        self, ask: dict[str, list[int]], out: list[tuple[str, str] | None], now: float
    ) -> bool:
        """Fill ``out`` from one batched status call; False when the service is unreachable."""
        remote = self.gc_backend.remote_status(list(ask))
        if remote is None:
            return False
        for task_id, indexes in ask.items():
            state = from_remote(remote.get(task_id))
            record = self.registry.get(task_id)
            if record is not None:
                if state != LOST:
                    # still there: keep our own view, but learn that it started
                    record.confirmed_at = now
                    if state[0] != ST_RUNNING:
                        continue
                else:
                    record.future.cancel()  # the endpoint forgot it: no result will come
                    log.warning("worker %s (task %s): %s", record.worker_id, task_id, state[1])
            elif state[0] != ST_RUNNING:
                log.info("task %s: %s (the endpoint's word after a restart)", task_id, _say(state))
            for i in indexes:
                out[i] = state
        return True


def _say(state: tuple[str, str]) -> str:
    return f"{state[0]}: {state[1]}" if state[1] else state[0]
