"""What the three plugins share: the checked queue config, the profile and the backend."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from siteagent.harvester.backends import Backend, backend_for
from siteagent.harvester.base import PluginBase
from siteagent.harvester.config import QueueConfig, queue_config
from siteagent.harvester.registry import REGISTRY, Registry


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
