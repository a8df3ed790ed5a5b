"""Where the plugins send tasks: a ``concurrent.futures`` executor per user endpoint config.

``globus``: ``globus_compute_sdk.Executor`` against the site's template endpoint (production).
``local-engine``: the real Globus Compute engine started in this process from the rendered
endpoint (tests and ``site-agent smoke-test --harvester``); only the cloud hop is missing.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import tempfile
import threading
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

    def executor(self, config: dict[str, Any]) -> ExecutorT:
        key = config_key(config)
        with self._lock:
            if key not in self._executors:
                log.info("%s: executor for user endpoint config %s", self, mask_data(config))
                self._executors[key] = self._make_executor(config)
            return self._executors[key]

    def _make_executor(self, config: dict[str, Any]) -> ExecutorT:
        raise NotImplementedError

    def release(self, config: dict[str, Any]) -> None:
        """Stop the executor of ``config`` if there is one (its tasks are done): the engine
        ends its blocks, and the next use of the config starts a new one."""
        with self._lock:
            ex = self._executors.pop(config_key(config), None)
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)

    def remote_status(self, task_ids: list[str]) -> dict[str, dict[str, Any]] | None:
        """Status of tasks this process holds no future for (after a Harvester restart), as
        ``{task_id: {"pending": bool, "status": str, ...}}``; None when it cannot be known now."""
        raise NotImplementedError

    def shutdown(self) -> None:
        with self._lock:
            executors, self._executors = list(self._executors.values()), {}
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

    def remote_status(self, task_ids: list[str]) -> dict[str, dict[str, Any]] | None:
        out: dict[str, dict[str, Any]] = {}
        try:
            for i in range(0, len(task_ids), STATUS_CHUNK):
                out.update(self.client.get_batch_result(task_ids[i : i + STATUS_CHUNK]))
        except Exception as err:  # the service is unreachable now: Harvester retries the check
            log.warning("%s: task status unavailable: %s: %s", self, type(err).__name__, err)
            return None
        return out


class EngineBackend(Backend["EngineExecutor"]):
    """The real engine in this process, one per config, from the endpoint rendered for ``site``."""

    def __init__(self, site: str, workdir: Path | None = None):
        super().__init__()
        from siteagent.endpoint.render import render_endpoint, write_endpoint
        from siteagent.profiles import load_profile

        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="site-agent-harvester-"))
        self.endpoint_dir = self.workdir / "endpoint"
        profile = load_profile(site)
        write_endpoint(render_endpoint(profile, self.endpoint_dir), self.endpoint_dir, force=True)

    def __str__(self) -> str:
        return f"engine in {self.workdir}"

    def _make_executor(self, config: dict[str, Any]) -> EngineExecutor:
        from siteagent.endpoint.engine import EngineExecutor
        from siteagent.endpoint.validate import validate_endpoint

        loaded = validate_endpoint(self.endpoint_dir, config).config
        run = self.workdir / "run" / hashlib.sha256(config_key(config).encode()).hexdigest()[:12]
        return EngineExecutor(loaded.engine, run)

    def remote_status(self, task_ids: list[str]) -> dict[str, dict[str, Any]] | None:
        # an in-process engine knows only the tasks it still holds: any other id is lost
        with self._lock:
            executors = list(self._executors.values())
        held = set().union(*(ex.pending_ids() for ex in executors)) if executors else set()
        return {
            tid: {"pending": True, "status": "waiting"}
            if tid in held
            else {"pending": False, "status": "unknown"}
            for tid in task_ids
        }


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
