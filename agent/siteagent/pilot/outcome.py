"""Why a pilot run ended and with which exit code, decided from what happened (pure: no
processes, no clock), so every combination is testable.

The rules, first match wins:

1. a setup error (a layer, the workdir or starting the payload failed): ``setup-error``, 70;
2. the payload never started because a stopping signal (TERM, INT, HUP) came first:
   ``signalled``, 128 + the first signal received;
3. the payload ran; its exit code is kept, and a death by signal N (return code -N) becomes
   128 + N with the signal's name recorded. The reason is ``walltime`` when the walltime
   margin was reached (this wins over signals), else ``signalled`` when a stopping signal
   came, or any signal (SIGUSR1) with a non-zero exit, else ``finished`` (0) or ``failed``.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass

SETUP_ERROR_EXIT = 70  # EX_SOFTWARE: the payload never ran
# these start the grace period, then SIGKILL; SIGUSR1 is only passed on
STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class Happened:
    """What a run saw: signals in arrival order, the payload's return code (None: it never
    ran; negative: killed by that signal), the walltime margin reached, a setup error."""

    received: Sequence[int] = ()
    returncode: int | None = None
    walltime_hit: bool = False
    setup_error: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How a run ended: its reason and exit code."""

    reason: str  # one of report.REASONS
    exit_code: int
    signal: str | None = None  # the signal that ended the payload, if one did


def stopped(received: Sequence[int]) -> bool:
    """Whether a signal that stops the pilot (not SIGUSR1) was received."""
    return any(s in STOPPING for s in received)


def _reason(happened: Happened, exit_code: int) -> str:
    """Why a payload that ran ended."""
    if happened.walltime_hit:
        return "walltime"
    if stopped(happened.received) or (happened.received and exit_code != 0):
        return "signalled"
    return "finished" if exit_code == 0 else "failed"


def decide(happened: Happened) -> Outcome:
    """The report's reason, exit code and signal name for ``happened`` (rules above)."""
    if happened.setup_error is not None:
        return Outcome("setup-error", SETUP_ERROR_EXIT)
    rc = happened.returncode
    if rc is None:
        if not stopped(happened.received):
            raise ValueError("a payload that never ran needs a setup error or a stop signal")
        return Outcome("signalled", 128 + happened.received[0])
    if rc < 0:
        return Outcome(_reason(happened, 128 - rc), 128 - rc, signal.Signals(-rc).name)
    return Outcome(_reason(happened, rc), rc)
