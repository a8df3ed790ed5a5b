"""The futures of the workers this Harvester process submitted, shared by its plugins.

Harvester builds the submitter, the monitor and the sweeper as separate objects; they meet
here, keyed by the worker's batchID (the Globus Compute task id).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field


@dataclass
class TaskRecord:
    batch_id: str
    worker_id: str
    future: Future
    submitted_at: float = field(default_factory=time.time)
    # when the endpoint last said it still has the task (the monitor asks again after a while)
    confirmed_at: float | None = None
    stopped_at: float | None = None
    stop_detail: str = ""
    # the status the monitor last reported (it logs changes only)
    last_status: str | None = None


class Registry:
    """Thread-safe map of batchID to TaskRecord."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, TaskRecord] = {}

    def add(self, record: TaskRecord) -> None:
        with self._lock:
            self._records[record.batch_id] = record

    def get(self, batch_id: str | None) -> TaskRecord | None:
        if batch_id is None:
            return None
        with self._lock:
            return self._records.get(batch_id)

    def forget(self, batch_id: str | None) -> None:
        with self._lock:
            self._records.pop(str(batch_id), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


REGISTRY = Registry()
