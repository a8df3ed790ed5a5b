"""Harvester's PluginBase, WorkSpec statuses and logger convention when pandaharvester is
installed, and the same contract (queue-config keys become attributes) when it is not."""

from __future__ import annotations

import logging
from typing import Any

try:  # the real thing, inside Harvester
    from pandaharvester.harvestercore import core_utils
    from pandaharvester.harvestercore.plugin_base import PluginBase
    from pandaharvester.harvestercore.work_spec import WorkSpec

    ST_SUBMITTED, ST_RUNNING, ST_FINISHED = (
        WorkSpec.ST_submitted,
        WorkSpec.ST_running,
        WorkSpec.ST_finished,
    )
    ST_FAILED, ST_CANCELLED = WorkSpec.ST_failed, WorkSpec.ST_cancelled
except ImportError:  # pragma: no cover - exercised where Harvester is absent (here)
    core_utils = None

    class PluginBase:  # type: ignore[no-redef]
        """Harvester's contract: every queue-config key becomes an attribute."""

        def __init__(self, **kwarg):
            for key, value in kwarg.items():
                setattr(self, key, value)

    ST_SUBMITTED, ST_RUNNING, ST_FINISHED = "submitted", "running", "finished"
    ST_FAILED, ST_CANCELLED = "failed", "cancelled"

_base_loggers: dict[str, Any] = {}


class _WorkerLog(logging.LoggerAdapter):
    """``<workerID=N> message``, the token Harvester's make_logger puts in its lines."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"<workerID={self.extra['worker']}> {msg}", kwargs  # type: ignore[index]


def worker_logger(name: str, worker_id: Any, method: str) -> Any:
    """A logger for one worker's lines: Harvester's ``core_utils.make_logger(baseLogger,
    "workerID=N", method_name=...)`` inside Harvester (so operators find the plugins in its
    logs, as its own plugins log), else the module logger ``name`` with the same token."""
    if core_utils is None:
        return _WorkerLog(logging.getLogger(name), {"worker": worker_id})
    if name not in _base_loggers:  # one Harvester log per plugin, e.g. siteagent_monitor
        _base_loggers[name] = core_utils.setup_logger(name.replace(".harvester.", "_"))
    return core_utils.make_logger(_base_loggers[name], f"workerID={worker_id}", method_name=method)
