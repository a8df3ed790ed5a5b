"""Where the plugins send tasks: a ``concurrent.futures`` executor per user endpoint config.

``globus``: ``globus_compute_sdk.Executor`` against the site's template endpoint (production).
``local-engine``: the real Globus Compute engine started in this process from the rendered
endpoint (tests and ``site-agent smoke-test --harvester``); only the cloud hop is missing.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from siteagent.errors import ConfigError
from siteagent.harvester.config import QueueConfig
from siteagent.secrets import mask_data
from siteagent.userconfig import config_key

if TYPE_CHECKING:
    from siteagent.endpoint.engine import EngineExecutor

log = logging.getLogger(__name__)
ExecutorT = TypeVar("ExecutorT", bound=concurrent.futures.Executor)

# at most this many task ids per status request to the web service
STATUS_CHUNK = 1000


class Backend(Generic[ExecutorT]):
    """One executor per distinct user endpoint config, created on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executors: dict[str, ExecutorT] = {}
        self._making: dict[str, threading.Lock] = {}  # one per config being created
        self._borrowed: set[str] = set()  # executors of others: never shut down here

    def executor(self, config: dict[str, Any]) -> ExecutorT:
        key = config_key(config)
        with self._lock:
            making = self._making.setdefault(key, threading.Lock())
        # created under its config's own lock, not the backend's: executors of different
        # configs (an engine and its worker pool each) start at the same time
        with making:
            with self._lock:
                if key in self._executors:
                    return self._executors[key]
            log.info("%s: executor for user endpoint config %s", self, mask_data(config))
            created = self._make_executor(config)
            with self._lock:
                self._executors[key] = created
            return created

    def adopt(self, config: dict[str, Any], executor: ExecutorT) -> None:
        """Send ``config``'s tasks to ``executor``, which its owner shuts down (the smoke
        test's engine, already running for the same user endpoint config)."""
        key = config_key(config)
        with self._lock:
            self._executors[key] = executor
            self._borrowed.add(key)

    def _make_executor(self, config: dict[str, Any]) -> ExecutorT:
        raise NotImplementedError

    def release(self, config: dict[str, Any]) -> None:
        """Stop the executor of ``config`` if there is one (its tasks are done): the engine
        ends its blocks, and the next use of the config starts a new one."""
        with self._lock:
            ex = self._executors.pop(config_key(config), None)
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)

    def task_status(self, tasks: dict[str, str]) -> dict[str, dict[str, Any]] | None:
        """One batched status request for ``{task_id: worker name}``, answered as the web
        service's ``get_batch_result`` (``{task_id: {"pending", "status", "result" |
        "exception"}}``); None when the endpoint cannot be reached now."""
        raise NotImplementedError

    def forget(self, task_id: str) -> None:
        """Drop what this backend keeps of an ended task (the service keeps its own)."""

    def shutdown(self) -> None:
        with self._lock:
            executors = [ex for k, ex in self._executors.items() if k not in self._borrowed]
            self._executors, self._borrowed = {}, set()
        for ex in executors:
            ex.shutdown(wait=False, cancel_futures=True)
        if executors:
            log.info("%s: %d executor(s) shut down", self, len(executors))


class GlobusBackend(Backend[concurrent.futures.Executor]):
    """The Globus Compute web service, through the SDK (needs a logged-in identity)."""

    def __init__(self, endpoint_id: str, batch_size: int, client: Any = None):
        super().__init__()
        self.endpoint_id = endpoint_id
        self.batch_size = batch_size
        self._client = client

    def __str__(self) -> str:
        return f"endpoint {self.endpoint_id}"

    @property
    def client(self) -> Any:
        if self._client is None:
            from globus_compute_sdk import Client

            self._client = Client()
        return self._client

    def _make_executor(self, config: dict[str, Any]) -> concurrent.futures.Executor:
        from globus_compute_sdk import Executor

        return Executor(
            endpoint_id=self.endpoint_id,
            client=self.client,
            user_endpoint_config=config,
            batch_size=self.batch_size,
        )

    def task_status(self, tasks: dict[str, str]) -> dict[str, dict[str, Any]] | None:
        ids = list(tasks)
        out: dict[str, dict[str, Any]] = {}
        try:
            for i in range(0, len(ids), STATUS_CHUNK):
                out.update(self._chunk_status(ids[i : i + STATUS_CHUNK]))
        except Exception as err:  # the service is unreachable now: Harvester retries the check
            log.warning("%s: task status unavailable: %s: %s", self, type(err).__name__, err)
            return None
        return out

    def _chunk_status(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        from globus_compute_sdk.errors import TaskExecutionFailed

        try:
            return self.client.get_batch_result(ids)
        except TaskExecutionFailed:
            pass  # the SDK raises for the whole batch when one task raised: ask one by one
        out: dict[str, dict[str, Any]] = {}
        for task_id in ids:
            try:
                out.update(self.client.get_batch_result([task_id]))
            except TaskExecutionFailed as err:
                out[task_id] = {"pending": False, "status": "failed", "exception": str(err)}
        return out


class EngineBackend(Backend["concurrent.futures.Executor"]):
    """The real engine in this process, one per config, from the endpoint rendered for ``site``.

    It keeps a task table in ``workdir/tasks`` as the web service does (a file per task: queued,
    then its result), so a monitor or sweeper in another process, or after a restart, gets the
    same answers; a queued task is running once its worker left its record on the site.
    """

    def __init__(self, site: str, workdir: Path | None = None):
        super().__init__()
        self.site = site
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="site-agent-harvester-"))
        self.endpoint_dir = self.workdir / "endpoint"
        self.table = TaskTable(self.workdir / "tasks")
        self._rendered = False

    def __str__(self) -> str:
        return f"engine in {self.workdir}"

    def _make_executor(self, config: dict[str, Any]) -> concurrent.futures.Executor:
        from siteagent.endpoint.engine import EngineExecutor
        from siteagent.endpoint.render import render_endpoint, write_endpoint
        from siteagent.endpoint.validate import validate_endpoint
        from siteagent.profiles import load_profile

        if not self._rendered:  # only a process that submits needs the endpoint
            endpoint = render_endpoint(load_profile(self.site), self.endpoint_dir)
            write_endpoint(endpoint, self.endpoint_dir, force=True)
            self._rendered = True
        loaded = validate_endpoint(self.endpoint_dir, config).config
        run = self.workdir / "run" / hashlib.sha256(config_key(config).encode()).hexdigest()[:12]
        executor = EngineExecutor(loaded.engine, run)
        if "control" in config:  # the sweeper waits for its control tasks: no table entry
            return executor
        return TableExecutor(executor, self.table)

    def adopt(self, config: dict[str, Any], executor: Any) -> None:
        # a lent engine's tasks go in the task table like those of the engines made here
        if "control" not in config:
            executor = TableExecutor(executor, self.table)
        super().adopt(config, executor)

    def task_status(self, tasks: dict[str, str]) -> dict[str, dict[str, Any]] | None:
        return {task_id: self.table.status(task_id, worker) for task_id, worker in tasks.items()}

    def forget(self, task_id: str) -> None:
        self.table.forget(task_id)


class TaskTable:
    """The local engine's task states on disk, in the web service's ``get_batch_result`` form."""

    # the last this many characters of a task's stdout and stderr are kept
    KEEP = 4000

    def __init__(self, directory: Path):
        self.dir = directory

    def queued(self, task_id: str) -> None:
        self._write(task_id, {"pending": True, "status": "waiting-for-nodes", "at": time.time()})

    def ended(self, task_id: str, future: concurrent.futures.Future) -> None:
        if future.cancelled():
            entry: dict[str, Any] = {"pending": False, "status": "failed", "exception": "cancelled"}
        elif future.exception() is not None:
            err = future.exception()
            entry = {
                "pending": False,
                "status": "failed",
                "exception": f"{type(err).__name__}: {err}",
            }
        else:
            from siteagent.push import RESULT_PREFIX

            res = future.result()
            stdout = getattr(res, "stdout", None) or ""
            result = {
                "returncode": getattr(res, "returncode", None),
                "stdout": stdout[-self.KEEP :],
                "stderr": (getattr(res, "stderr", None) or "")[-self.KEEP :],
            }
            if RESULT_PREFIX in stdout:  # a push-mode worker's report, whole, as the service has it
                result["push"] = stdout[stdout.rindex(RESULT_PREFIX) :].split("\n", 1)[0]
            entry = {"pending": False, "status": "success", "result": result}
        self._write(task_id, entry | {"completion_t": time.time()})

    def status(self, task_id: str, worker: str) -> dict[str, Any]:
        try:
            entry = json.loads((self.dir / f"{_safe(task_id)}.json").read_text())
        except (OSError, ValueError):
            return {"pending": True, "status": "unknown"}  # what the service says, too
        if entry["pending"] and _started(worker, entry["at"]):
            entry["status"] = "running"
        return entry

    def forget(self, task_id: str) -> None:
        (self.dir / f"{_safe(task_id)}.json").unlink(missing_ok=True)

    def _write(self, task_id: str, entry: dict[str, Any]) -> None:
        from siteagent.fileio import atomic_write

        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / f"{_safe(task_id)}.json", json.dumps(entry), mode=0o600)


class TableExecutor(concurrent.futures.Executor):
    """An engine executor that notes each task in the task table: queued, then ended."""

    def __init__(self, inner: EngineExecutor, table: TaskTable):
        self.inner, self.table = inner, table

    def submit(self, fn, /, *args, **kwargs) -> concurrent.futures.Future:
        future = self.inner.submit(fn, *args, **kwargs)
        task_id = str(future.task_id)  # type: ignore[attr-defined]
        self.table.queued(task_id)  # before the callback, which may run at once
        future.add_done_callback(lambda f: self.table.ended(task_id, f))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.inner.shutdown(wait, cancel_futures=cancel_futures)


def _safe(task_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", task_id):
        return hashlib.sha256(task_id.encode()).hexdigest()
    return task_id


def _started(worker: str, since: float) -> bool:
    """The worker script's record (while it runs) or its first pilot report (after) on this
    host, as the endpoint's manager learns that a task runs."""
    from siteagent.harvester.control import state_dir
    from siteagent.names import WORKER_ID_RE

    if not WORKER_ID_RE.match(worker):  # a name from the WorkSpec, used in a path
        return False
    state = state_dir()
    if (state / "workers" / f"{worker}.json").exists():
        return True
    try:
        return (state / "pilots" / f"{worker}-r0.json").stat().st_mtime >= since - 1
    except OSError:
        return False


_cache: dict[tuple, Backend[Any]] = {}
_cache_lock = threading.Lock()


def backend_for(qc: QueueConfig) -> Backend[Any]:
    """The backend of a queue config, shared by the plugins of this process."""
    key = (qc.backend, qc.endpoint_id, qc.site, qc.workdir)
    with _cache_lock:
        if key not in _cache:
            if qc.backend == "globus":
                if not qc.endpoint_id:
                    raise ConfigError("queue config: endpointId: required with backend 'globus'")
                from siteagent.harvester.login import require_login

                require_login()  # never the SDK's interactive login (a permanent error instead)
                _cache[key] = GlobusBackend(qc.endpoint_id, qc.batch_size)
            else:
                _cache[key] = EngineBackend(qc.site, Path(qc.workdir) if qc.workdir else None)
        return _cache[key]


def shutdown_backends() -> None:
    """Stop every backend of this process (tests, smoke test, Harvester shutdown)."""
    with _cache_lock:
        backends = list(_cache.values())
        _cache.clear()
    for b in backends:
        b.shutdown()
