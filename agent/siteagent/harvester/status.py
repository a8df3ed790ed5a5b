"""From a task's outcome (this process's future, or the endpoint's word on it) to Harvester's
worker status, diagnostic, ``nativeStatus`` and ``nativeExitCode``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from siteagent.harvester.base import ST_CANCELLED, ST_FAILED, ST_FINISHED, ST_RUNNING, ST_SUBMITTED

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
# SIGTERM: the sweeper's stop (signal, scancel/qdel, or the stop mark of a queued worker)
CANCELLED_EXIT = {143}
# Globus Compute task states (globus_compute_common.tasks.TaskState) of a task on a worker
# now; every other pending state (received, waiting-for-ep, waiting-for-nodes,
# waiting-for-launch) is still queued
RUNNING_STATES = {"running", "execution-start", "execution-end"}
# the endpoint's answer for a task id it does not know
UNKNOWN = "unknown"
LOST_DIAG = "lost: the endpoint does not know this task (restarted?)"


@dataclass(frozen=True)
class WorkerState:
    """One worker's answer to Harvester: ``status`` and ``diag`` go back from check_workers,
    ``native`` and ``exit_code`` onto the WorkSpec (nativeStatus, nativeExitCode)."""

    status: str
    diag: str = ""
    native: str = UNKNOWN
    exit_code: int | None = None

    @property
    def ended(self) -> bool:
        return self.status in (ST_FINISHED, ST_FAILED, ST_CANCELLED)

    @property
    def lost(self) -> bool:
        return self.status == ST_FAILED and self.native == UNKNOWN


LOST = WorkerState(ST_FAILED, LOST_DIAG, UNKNOWN)
NEVER_SUBMITTED = WorkerState(ST_FAILED, "no batchID: never submitted", UNKNOWN)


def _last_line(text: str | None, count: int = 1) -> str:
    lines = [ln.strip()[:300] for ln in (text or "").splitlines() if ln.strip()]
    return " | ".join(lines[-count:])


def _field(result: Any, name: str) -> Any:
    if isinstance(result, dict):
        return result.get(name)
    return getattr(result, name, None)


def from_result(result: Any, native: str = "success") -> WorkerState:
    """The state of a worker whose ShellFunction returned ``result`` (a ShellResult, or its
    fields as a dict)."""
    rc = _field(result, "returncode")
    if rc is None:
        return WorkerState(ST_FINISHED, "", native)
    if rc in NORMAL_EXIT:
        return WorkerState(ST_FINISHED, _normal_exit_diag(rc), native, rc)
    status = ST_CANCELLED if rc in CANCELLED_EXIT else ST_FAILED
    return WorkerState(status, _exit_diag(rc, result), native, rc)


def _normal_exit_diag(rc: int) -> str:
    """Nothing for exit 0, else what pilot3 means by an exit that still counts as finished."""
    return "" if rc == 0 else f"exit {rc}: {PILOT_EXIT[rc]}"


def _exit_diag(rc: int, result: Any) -> str:
    """The exit code, what pilot3 means by it, and the payload's last word then the pilot
    wrapper's summary (reason, report path)."""
    tail = _last_line(_field(result, "stderr"), 2)
    return "; ".join(x for x in (f"exit {rc}", PILOT_EXIT.get(rc, ""), tail) if x)


def from_future(fut: Any) -> WorkerState | None:
    """The state of a task whose future ended in this process; None while it has not."""
    if not fut.done():
        return None
    if fut.cancelled():
        return WorkerState(ST_CANCELLED, "cancelled before it was sent", "cancelled")
    err = fut.exception()
    if err is not None:
        return _raised(err)
    return from_result(fut.result())


def _raised(err: BaseException) -> WorkerState:
    """A task whose future raised ``err``: failed, with the exception's last line."""
    why = _last_line(str(err)) or "no message"
    return WorkerState(ST_FAILED, f"{type(err).__name__}: {why}", "failed")


def from_task(info: dict[str, Any] | None) -> WorkerState:
    """The state of a task from the endpoint's batch status (``get_batch_result``'s entry:
    ``{"pending": bool, "status": TaskState value, "result" | "exception": ...}``)."""
    if not info:
        return LOST
    state = str(info.get("status", UNKNOWN)).lower()
    if state == UNKNOWN:
        return LOST
    if info.get("pending", True):
        return _pending_task(state)
    return _ended_task(info, state)


def _pending_task(state: str) -> WorkerState:
    """A task the endpoint has not ended: running once a worker has it, else submitted."""
    return WorkerState(ST_RUNNING if state in RUNNING_STATES else ST_SUBMITTED, "", state)


def _ended_task(info: dict[str, Any], state: str) -> WorkerState:
    """A task the endpoint says has ended: its result's state, else why it failed."""
    if state == "success":
        return from_result(info.get("result"), state)
    why = info.get("exception") or info.get("reason") or state
    return WorkerState(ST_FAILED, _last_line(str(why)), state)


def after_kill(state: WorkerState, workspec: Any) -> WorkerState:
    """A worker Harvester asked to kill (``killTime`` set, harvestercore/db_proxy.py:
    mark_workers_to_kill_*) that then fails was cancelled: its batch job was cancelled under
    it, or the endpoint lost it with the job."""
    if state.status != ST_FAILED or getattr(workspec, "killTime", None) is None:
        return state
    return WorkerState(
        ST_CANCELLED, f"killed by Harvester: {state.diag}", state.native, state.exit_code
    )
