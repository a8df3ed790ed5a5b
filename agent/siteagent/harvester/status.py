"""From a task's future (or the web service's word on it) to Harvester's (status, diagnostic)."""

from __future__ import annotations

from typing import Any

from siteagent.harvester.base import ST_CANCELLED, ST_FAILED, ST_FINISHED, ST_RUNNING, ST_SUBMITTED
from siteagent.harvester.registry import TaskRecord

# PanDA pilot exit codes worth a word in the diagnostic (pilot3's own meaning)
PILOT_EXIT = {
    64: "site offline or CVMFS unavailable",
    65: "general pilot error",
    68: "proxy problem",
    80: "proxy problem",
    82: "no job from the PanDA server",
    124: "walltime reached",
    137: "killed (SIGKILL)",
    143: "terminated (SIGTERM)",
}
# exit codes that end a worker normally: it ran, or found nothing to run
NORMAL_EXIT = {0, 82}
# a task the endpoint no longer knows: never running forever
LOST = (ST_FAILED, "lost: the endpoint does not know this task (restarted?)")
# web-service task states that mean the task is on a worker now
REMOTE_RUNNING = {"running", "exec-start", "exec-end"}


def _last_line(text: str | None, count: int = 1) -> str:
    lines = [ln.strip()[:300] for ln in (text or "").splitlines() if ln.strip()]
    return " | ".join(lines[-count:])


def from_result(result: Any) -> tuple[str, str]:
    """The status of a worker whose ShellFunction returned ``result``."""
    rc = getattr(result, "returncode", None)
    if rc is None and isinstance(result, dict):
        rc = result.get("returncode")
    if rc is None:
        return ST_FINISHED, ""
    if rc in NORMAL_EXIT:
        return ST_FINISHED, "" if rc == 0 else f"exit {rc}: {PILOT_EXIT[rc]}"
    stderr = getattr(result, "stderr", None) or (
        result.get("stderr") if isinstance(result, dict) else ""
    )
    why = PILOT_EXIT.get(rc, "")
    # the payload's last word, then the pilot wrapper's summary (reason, report path)
    tail = _last_line(stderr, 2)
    return ST_FAILED, "; ".join(x for x in (f"exit {rc}", why, tail) if x)


def from_record(record: TaskRecord) -> tuple[str, str]:
    """The status of a worker this process submitted, from its future."""
    fut = record.future
    if record.stopped_at is not None:
        # the stop task did its part (signal, scancel/qdel, or a mark that keeps it from
        # starting): the worker is over even before its batch system or engine says so
        return ST_CANCELLED, record.stop_detail or "stopped by the sweeper"
    if fut.cancelled():
        return ST_CANCELLED, "cancelled before it started"
    if not fut.done():
        return (ST_RUNNING if fut.running() else ST_SUBMITTED), ""
    err = fut.exception()
    if err is not None:
        return ST_FAILED, f"{type(err).__name__}: {_last_line(str(err)) or 'no message'}"
    return from_result(fut.result())


def from_remote(info: dict[str, Any] | None) -> tuple[str, str]:
    """The status of a task known only by its id, from the web service's batch status."""
    if not info:
        return LOST
    state = str(info.get("status", "unknown")).lower()
    if info.get("pending", True):
        if state == "unknown":
            return LOST
        return (ST_RUNNING if state in REMOTE_RUNNING else ST_SUBMITTED), ""
    if state == "success":
        return from_result(info.get("result"))
    if state == "unknown":
        return LOST
    return ST_FAILED, _last_line(str(info.get("exception") or state))
