"""Harvester's PluginBase and WorkSpec statuses when pandaharvester is installed, and the same
contract (queue-config keys become attributes) when it is not."""

from __future__ import annotations

try:  # the real thing, inside Harvester
    from pandaharvester.harvestercore.plugin_base import PluginBase
    from pandaharvester.harvestercore.work_spec import WorkSpec

    ST_SUBMITTED, ST_RUNNING, ST_FINISHED = (
        WorkSpec.ST_submitted,
        WorkSpec.ST_running,
        WorkSpec.ST_finished,
    )
    ST_FAILED, ST_CANCELLED = WorkSpec.ST_failed, WorkSpec.ST_cancelled
except ImportError:  # pragma: no cover - exercised where Harvester is absent (here)

    class PluginBase:  # type: ignore[no-redef]
        """Harvester's contract: every queue-config key becomes an attribute."""

        def __init__(self, **kwarg):
            for key, value in kwarg.items():
                setattr(self, key, value)

    ST_SUBMITTED, ST_RUNNING, ST_FINISHED = "submitted", "running", "finished"
    ST_FAILED, ST_CANCELLED = "failed", "cancelled"
