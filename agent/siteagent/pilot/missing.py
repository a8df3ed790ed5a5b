"""``site-agent pilot --dry-run`` shows the plan even when a real run would stop: a payload
that cannot be planned yet (no PanDA pilot3, no queue) is shown as missing, with the reason,
instead of an error that hides every other layer."""

from __future__ import annotations

from siteagent.errors import ConfigError
from siteagent.records import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from typing import Any

# the errors of the payload layer that mean "not there yet" (payload.py, pilot/source.py)
MISSING_PHRASES = ("PanDA pilot3 not found", "no PanDA queue", "is not there")


@record(frozen=True)
class MissingPayload:
    """The payload layer's detail when its plan failed in a dry run."""

    reason: str
    walltime_s: int | None = None  # unknown: no walltime line


def plan_layer(cls: Any, ctx: Any) -> Any:
    """``cls().plan(ctx)``; in a dry run, a payload that cannot be planned is marked missing."""
    from siteagent.pilot.layers import Layer

    try:
        return cls().plan(ctx)
    except ConfigError as err:
        if cls.name != "payload" or not ctx.opts.dry_run or not is_missing(err):
            raise
        return Layer(cls.name, f"MISSING: {err}", detail=MissingPayload(str(err)))


def is_missing(err: ConfigError) -> bool:
    """Something not there yet (pilot3, a queue), as opposed to a wrong value."""
    return any(phrase in str(err) for phrase in MISSING_PHRASES)


def missing_reasons(plan: Any) -> list[str]:
    """What a dry-run plan lacks, one line each."""
    return [
        layer.detail.reason for layer in plan.layers if isinstance(layer.detail, MissingPayload)
    ]
