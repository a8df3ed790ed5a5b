"""The futures of the tasks this process submitted: a cache, never the only record.

A future that has ended saves the monitor a question to the endpoint. Everything else the
monitor and the sweeper need is on the WorkSpec (``batchID``, ``workAttributes``) or at the
endpoint, so a plugin in another process, or after a restart, gives the same answers.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future


class Registry:
    """Thread-safe map of batchID (the task id) to the task's future."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[str, Future] = {}

    def add(self, batch_id: str, future: Future) -> None:
        with self._lock:
            self._futures[batch_id] = future

    def get(self, batch_id: str | None) -> Future | None:
        if batch_id is None:
            return None
        with self._lock:
            return self._futures.get(batch_id)

    def forget(self, batch_id: str | None) -> None:
        with self._lock:
            self._futures.pop(str(batch_id), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._futures)


REGISTRY = Registry()
