"""What the three plugins share: the checked queue config, the profile, the backend, and
each worker's state from the WorkSpec and the endpoint alone."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from siteagent.harvester.backends import Backend, backend_for
from siteagent.harvester.base import PluginBase
from siteagent.harvester.config import QueueConfig, queue_config
from siteagent.harvester.registry import REGISTRY, Registry
from siteagent.harvester.status import NEVER_SUBMITTED, WorkerState, from_future, from_task

# the WorkSpec's workAttributes key holding the worker's name on the site
WORKER_KEY = "siteAgentWorker"
# ... and what the submitter changed of the shape Harvester asked for
SHAPE_KEY = "siteAgentShape"


class GlobusComputePlugin(PluginBase):
    """Reads its queue-config keys once, on first use (a bad key fails that call, clearly).

    Its own attributes start with ``gc_``: Harvester sets every queue-config key as an
    attribute, so plain names (``backend``, ``queue``) would collide.
    """

    registry: Registry = REGISTRY

    @cached_property
    def gc_queue(self) -> QueueConfig:
        return queue_config(self)

    @cached_property
    def gc_profile(self) -> Any:
        from siteagent.profiles import load_profile

        return load_profile(self.gc_queue.site)

    @property
    def gc_backend(self) -> Backend[Any]:
        return backend_for(self.gc_queue)

    def gc_worker_name(self, workspec: Any) -> str:
        """The worker's name on the site: as the submitter wrote it on the WorkSpec, else
        made again from the queue config (a WorkSpec from before it was written there)."""
        from siteagent.harvester.shape import worker_id

        attributes = getattr(workspec, "workAttributes", None) or {}
        return attributes.get(WORKER_KEY) or worker_id(self.gc_queue, self.gc_profile, workspec)

    def _name_if_any(self, workspec: Any) -> str:
        from siteagent.errors import SiteAgentError

        try:
            return self.gc_worker_name(workspec)
        except SiteAgentError:  # only the local engine uses it, to see the worker started
            return ""

    def gc_states(self, workspec_list: list[Any]) -> list[WorkerState | None]:
        """Each worker's state, in order; None where it cannot be learned now.

        A task that ended in this process is read from its future; every other one is asked
        about in one batched status call to the endpoint (``get_batch_result``), so a plugin
        in another process, or after a restart, gives the same answers.
        """
        return [state for state, _ in self.gc_states_and_results(workspec_list)]

    def gc_states_and_results(
        self, workspec_list: list[Any]
    ) -> list[tuple[WorkerState | None, Any]]:
        """``gc_states`` with each ended task's result (its ShellResult, or the endpoint's
        form of it; None while the task has not ended)."""
        out = [self._local_state(ws) for ws in workspec_list]
        ask = {
            str(ws.batchID): self._name_if_any(ws)
            for ws, (state, _) in zip(workspec_list, out, strict=True)
            if state is None
        }
        remote = self.gc_backend.task_status(ask) if ask else None
        if remote is None:
            return out
        for i, ws in enumerate(workspec_list):
            if out[i][0] is None:
                info = remote.get(str(ws.batchID))
                out[i] = (from_task(info), (info or {}).get("result"))
        return out

    def _local_state(self, ws: Any) -> tuple[WorkerState | None, Any]:
        """The worker's state and result from its task's future in this process; (None,
        None) while they are to be asked of the endpoint."""
        batch_id = getattr(ws, "batchID", None)
        if batch_id is None:
            return NEVER_SUBMITTED, None
        future = self.registry.get(batch_id)
        state = from_future(future) if future is not None else None
        return state, (_future_result(future) if state is not None else None)


def _future_result(future: Any) -> Any:
    if future.cancelled() or future.exception() is not None:
        return None
    return future.result()
