"""Push mode: a worker's Harvester status from what its pilot left (worker attributes, job
report, its files' last change) and from its task's state."""

from __future__ import annotations

from typing import Any

from siteagent.harvester.base import ST_CANCELLED, ST_FAILED, ST_FINISHED, ST_RUNNING
from siteagent.harvester.status import WorkerState
from siteagent.push import parse_result

# workAttributes key: the newest change seen in the worker's files, and since when it is
SEEN_KEY = "siteAgentPushSeen"
STALLED = "stalled"
# pilot3's worker attributes of a failed job: (its error code, that error's diagnostic)
FAULTS = (("pilotErrorCode", "pilotErrorDiag"), ("transExitCode", "exeErrorDiag"))


def report_of_result(raw: Any) -> dict[str, Any] | None:
    """The collected report a push-mode task returned (ShellResult, or the endpoint's dict)."""
    if isinstance(raw, dict):
        line = raw.get("push")
        return parse_result(line if isinstance(line, str) else raw.get("stdout"))
    return parse_result(getattr(raw, "stdout", None))


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def job_outcome(attributes: dict[str, Any]) -> tuple[bool, str, int]:
    """(did the job succeed, the diagnostic, the exit code) from pilot3's worker attributes
    (its final heartbeat: jobStatus, pilotErrorCode/Diag, transExitCode, exeErrorDiag)."""
    status = str(attributes.get("jobStatus") or attributes.get("state") or "unknown")
    codes = [_int(attributes.get(key)) for key, _ in FAULTS]
    code = next(filter(None, codes), 0)
    if status == "finished" and not code:
        return True, "", 0
    return False, _diagnostic(attributes, status, codes), code or 1


def _diagnostic(attributes: dict[str, Any], status: str, codes: list[int]) -> str:
    """A failed job's diagnostic: its status, then each error code with its diagnostic."""
    words = [f"PanDA job {attributes.get('jobId', '?')} {status}"]
    words += [
        f"{key} {value} {attributes.get(diag) or ''}"
        for (key, diag), value in zip(FAULTS, codes, strict=True)
        if value
    ]
    return "; ".join(w.strip() for w in words)[:500]


def ended_state(task: WorkerState, report: dict[str, Any] | None) -> WorkerState:
    """A worker whose task ended: the job's own outcome when its pilot reported one."""
    attributes = (report or {}).get("attributes")
    if task.status == ST_CANCELLED or not isinstance(attributes, dict):
        return task
    ok, diag, code = job_outcome(attributes)
    if ok:
        return WorkerState(ST_FINISHED, "", task.native, 0)
    return WorkerState(ST_FAILED, diag, task.native, code)


def _lost(
    report: dict[str, Any], seen: dict[str, float], now: float, lost_timeout: float
) -> WorkerState | None:
    """Failed as lost when the worker's files have not changed for ``lost_timeout`` s."""
    quiet = now - float(seen.get("since") or now)
    if quiet <= lost_timeout:
        return None
    diag = (
        f"lost: no change in the worker's files in {report.get('dir')} for "
        f"{quiet:.0f} s (lostTimeout {lost_timeout:g} s)"
    )
    return WorkerState(ST_FAILED, diag, STALLED)


def _job_diag(report: dict[str, Any]) -> str:
    """The running PanDA job and its status, from its pilot's worker attributes."""
    attributes = report.get("attributes")
    if not isinstance(attributes, dict):
        return ""
    return f"PanDA job {attributes.get('jobId', '?')} {attributes.get('jobStatus', '?')}"


def running_state(
    task: WorkerState,
    report: dict[str, Any] | None,
    seen: dict[str, float] | None,
    now: float,
    lost_timeout: float,
) -> tuple[WorkerState, dict[str, float] | None]:
    """A worker whose task has not ended, and what to remember of it: running once its pilot
    left files; lost (failed) when none of them changed for ``lost_timeout`` seconds."""
    if not report or not report.get("exists") or not report.get("files"):
        return task, seen  # not started yet, or the control task could not say
    signature = float(report.get("signature") or 0.0)
    if seen and seen.get("signature") == signature:
        lost = _lost(report, seen, now, lost_timeout)
        if lost is not None:
            return lost, seen
    else:
        seen = {"signature": signature, "since": now}
    native = task.native if task.status == ST_RUNNING else "running"
    return WorkerState(ST_RUNNING, _job_diag(report), native), seen
