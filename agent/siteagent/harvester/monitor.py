"""Harvester monitor: worker states from task futures, with one batched status call for the rest."""

from __future__ import annotations

from typing import Any

from siteagent.harvester.plugin import GlobusComputePlugin
from siteagent.harvester.status import from_record, from_remote


class GlobusComputeMonitor(GlobusComputePlugin):
    def check_workers(self, workspec_list: list[Any]) -> tuple[bool, list[tuple[str, str]] | str]:
        """``(True, [(status, diagnostic), ...])`` in order, or ``(False, why)`` when the
        state cannot be learned now (Harvester checks again later)."""
        lost_after = self.gc_queue.lost_after_seconds
        out: list[tuple[str, str] | None] = []
        unknown: dict[str, list[int]] = {}
        for i, ws in enumerate(workspec_list):
            record = self.registry.get(ws.batchID)
            if record is None:
                unknown.setdefault(str(ws.batchID), []).append(i)
                out.append(None)
            else:
                out.append(from_record(record, lost_after))
        if unknown:
            remote = self.gc_backend.remote_status(list(unknown))
            if remote is None:
                return False, "task status service unreachable: will check again"
            for task_id, indexes in unknown.items():
                state = from_remote(remote.get(task_id))
                for i in indexes:
                    out[i] = state
        return True, out  # type: ignore[return-value]
