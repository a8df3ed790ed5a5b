"""Drive a real Globus Compute engine in-process, as the endpoint's interchange does.

``EngineExecutor`` is a ``concurrent.futures.Executor``: ``submit(fn, *args)`` packs the call
exactly as the Globus Compute web service hands it to an endpoint (a messagepack ``Task``
whose buffer holds the serialized function and arguments), gives it to the engine, and
unpacks the ``Result``. Only the cloud hop is missing; the engine, its provider, the
HighThroughputExecutor and its workers are the real ones. Harvester plugins use this in
tests in place of ``globus_compute_sdk.Executor``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import sys
import threading
import uuid
from pathlib import Path
from typing import Any, cast

FN_CACHE_SIZE = 256  # distinct function objects whose serialized form is kept


class TaskFailed(Exception):
    """The task raised on the worker; the message is the remote error text."""

    def __init__(self, remote_error: str, task_id: uuid.UUID):
        super().__init__(remote_error.strip().splitlines()[-1] if remote_error.strip() else "")
        self.remote_error = remote_error
        self.task_id = task_id


class TaskLost(Exception):
    """The engine stopped before the task ended; its result will never come."""

    def __init__(self, task_id: uuid.UUID):
        super().__init__(f"task {task_id} lost: the engine stopped before it ended")
        self.task_id = task_id


class EngineExecutor(concurrent.futures.Executor):
    """A started Globus Compute engine behind the ``concurrent.futures`` interface."""

    def __init__(self, engine: Any, run_dir: Path, endpoint_id: uuid.UUID | None = None):
        from globus_compute_sdk.serialize import ComputeSerializer

        self.engine = engine
        self.endpoint_id = endpoint_id or uuid.uuid4()
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._serde = ComputeSerializer()
        self._lock = threading.Lock()
        self._futures: dict[uuid.UUID, concurrent.futures.Future] = {}
        self._fn_cache: dict[Any, str] = {}
        self._no_kwargs = self._serde.serialize({})
        self._closed = False
        _ensure_on_path(Path(sys.executable).parent)
        engine.start(endpoint_id=self.endpoint_id, run_dir=str(self.run_dir))

    def pack(self, fn: Any, args: tuple, kwargs: dict, task_id: uuid.UUID) -> bytes:
        from globus_compute_common import messagepack
        from globus_compute_common.messagepack.message_types import Task

        s = self._serde
        buffer = s.pack_buffers(
            [
                self._serialized_fn(fn),
                s.serialize(args),
                s.serialize(kwargs) if kwargs else self._no_kwargs,
            ]
        )
        return messagepack.pack(Task(task_id=task_id, task_buffer=buffer))

    def _serialized_fn(self, fn: Any) -> str:
        """The function serialized once per function object (dill of the code is most of a
        submit's cost), as the SDK's Executor registers a function once; bounded LRU."""
        try:
            hash(fn)
        except TypeError:  # an unhashable callable: nothing to key a cache on
            return self._serde.serialize(fn)
        with self._lock:
            hit = self._fn_cache.pop(fn, None)
            if hit is not None:
                self._fn_cache[fn] = hit  # most recent last
                return hit
        ser = self._serde.serialize(fn)
        with self._lock:
            self._fn_cache[fn] = ser
            while len(self._fn_cache) > FN_CACHE_SIZE:
                self._fn_cache.pop(next(iter(self._fn_cache)))
        return ser

    def submit(self, fn, /, *args, **kwargs) -> concurrent.futures.Future:
        from globus_compute_endpoint.engines.base import GCFuture

        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit after shutdown")
        task_id = uuid.uuid4()
        out: concurrent.futures.Future = concurrent.futures.Future()
        out.task_id = task_id  # type: ignore[attr-defined]
        gc_future = GCFuture(task_id)
        gc_future.add_done_callback(lambda f: self._finish(f, out))
        with self._lock:
            self._futures[task_id] = out
        self.engine.submit(
            gc_future, self.pack(fn, args, kwargs, task_id), resource_specification={}
        )
        return out

    def _finish(self, gc_future, out: concurrent.futures.Future) -> None:
        from globus_compute_common import messagepack
        from globus_compute_common.messagepack.message_types import Result

        with self._lock:
            self._futures.pop(gc_future.gc_task_id, None)
        if not _claim(out):
            return
        try:
            result = cast(Result, messagepack.unpack(gc_future.result()))
            if result.is_error:
                out.set_exception(TaskFailed(result.data, gc_future.gc_task_id))
            else:
                out.set_result(self._serde.deserialize(result.data))
        except Exception as err:  # engine-side failure: report on the future, never hang
            out.set_exception(err)

    def pending_ids(self) -> set[str]:
        """Ids of the tasks the engine holds that have not ended."""
        with self._lock:
            return {str(task_id) for task_id in self._futures}

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = list(self._futures.values())
        if cancel_futures:
            for f in pending:
                f.cancel()
        self.engine.shutdown()
        # what the engine never answered is lost with it: say so rather than hang a waiter
        for f in pending:
            if _claim(f):
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    f.set_exception(TaskLost(f.task_id))  # type: ignore[attr-defined]


def _claim(f: concurrent.futures.Future) -> bool:
    """Mark ``f`` running, so that this caller settles it; False if it was cancelled or
    settled already (by the result coming in, or by shutdown)."""
    if f.done():
        return False
    try:
        return f.set_running_or_notify_cancel()
    except RuntimeError:  # settled by the other side meanwhile
        return False


def _ensure_on_path(bin_dir: Path) -> None:
    # The engine starts its interchange as `globus-compute-endpoint`, found on PATH; a venv
    # used without activation (python -m, a console script) does not put it there.
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if str(bin_dir) not in parts:
        os.environ["PATH"] = os.pathsep.join([str(bin_dir), *parts])
