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
    pilot_code = _int(attributes.get("pilotErrorCode"))
    trans_code = _int(attributes.get("transExitCode"))
    if status == "finished" and not pilot_code and not trans_code:
        return True, "", 0
    words = [f"PanDA job {attributes.get('jobId', '?')} {status}"]
    if pilot_code:
        words.append(f"pilotErrorCode {pilot_code} {attributes.get('pilotErrorDiag') or ''}")
    if trans_code:
        words.append(f"transExitCode {trans_code} {attributes.get('exeErrorDiag') or ''}")
    return False, "; ".join(w.strip() for w in words)[:500], pilot_code or trans_code or 1


def ended_state(task: WorkerState, report: dict[str, Any] | None) -> WorkerState:
    """A worker whose task ended: the job's own outcome when its pilot reported one."""
    attributes = (report or {}).get("attributes")
    if task.status == ST_CANCELLED or not isinstance(attributes, dict):
        return task
    ok, diag, code = job_outcome(attributes)
    if ok:
        return WorkerState(ST_FINISHED, "", task.native, 0)
    return WorkerState(ST_FAILED, diag, task.native, code)


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
        quiet = now - float(seen.get("since") or now)
        if quiet > lost_timeout:
            diag = (
                f"lost: no change in the worker's files in {report.get('dir')} for "
                f"{quiet:.0f} s (lostTimeout {lost_timeout:g} s)"
            )
            return WorkerState(ST_FAILED, diag, STALLED), seen
    else:
        seen = {"signature": signature, "since": now}
    attributes = report.get("attributes")
    diag = ""
    if isinstance(attributes, dict):
        diag = f"PanDA job {attributes.get('jobId', '?')} {attributes.get('jobStatus', '?')}"
    native = task.native if task.status == ST_RUNNING else "running"
    return WorkerState(ST_RUNNING, diag, native), seen
