"""Harvester monitor: worker states from task futures, with one batched status call for the rest."""

from __future__ import annotations

import time
from typing import Any

from siteagent.harvester.base import ST_RUNNING
from siteagent.harvester.plugin import GlobusComputePlugin
from siteagent.harvester.status import LOST, from_record, from_remote


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
            out.append(from_record(record))
            last_seen = record.confirmed_at or record.submitted_at
            if (
                not record.future.done()
                and record.stopped_at is None
                and now - last_seen > lost_after
            ):
                ask.setdefault(str(ws.batchID), []).append(i)
        if ask:
            remote = self.gc_backend.remote_status(list(ask))
            if remote is None:
                return False, "task status service unreachable: will check again"
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
                for i in indexes:
                    out[i] = state
        return True, out  # type: ignore[return-value]
