"""Why a pilot run ended and with which exit code, decided from what happened (pure: no
processes, no clock), so every combination is testable.

The rules, first match wins:

1. a setup error (a layer, the workdir or starting the payload failed): ``setup-error``, 64;
2. the payload never started because a stopping signal (TERM, INT, HUP, QUIT, XCPU, USR2)
   came first:
   ``signalled``, 128 + the first signal received;
3. the payload ran; its exit code is kept, and a death by signal N (return code -N) becomes
   128 + N with the signal's name recorded. The reason is ``walltime`` when the walltime
   margin was reached (this wins over signals), else ``signalled`` when a stopping signal
   came, or any signal (SIGUSR1) with a non-zero exit, else ``finished`` (0) or ``failed``.

Exit codes a caller (Harvester) sees: 64 the wrapper's setup failed (Harvester's wrapper
convention for CVMFS/setup trouble, PanDAWMS/pilot-wrapper ``runpilot2-wrapper.sh``: 64 setup,
1 retryable, 2 fatal); anything else is pilot3's own code (pilot/util/auxiliary.py
``get_error_code_translation_dictionary``: 65-79, e.g. 68 no proxy, 70 UNKNOWNEXCEPTION, which
is why the wrapper no longer uses 70) or 128 + the signal that killed it.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence

from siteagent.records import record

SETUP_ERROR_EXIT = 64  # the payload never ran (Harvester: CVMFS/setup trouble)
# these start the grace period, then SIGKILL; SIGUSR1 is only passed on. pilot3 stops on
# SIGQUIT and SIGXCPU as on SIGTERM (pilot/workflow/generic.py run: register_signals). It does
# not handle SIGUSR2 (neither 3.7 nor 3.11), so SIGUSR2, forwarded as the ATLAS wrapper does
# (runpilot2-wrapper.sh trap_handler), ends it like any process without a handler.
STOPPING = (
    signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGXCPU, signal.SIGUSR2,
)  # fmt: skip


@record(frozen=True)
class Happened:
    """What a run saw: signals in arrival order, the payload's return code (None: it never
    ran; negative: killed by that signal), the walltime margin reached, a setup error."""

    received: Sequence[int] = ()
    returncode: int | None = None
    walltime_hit: bool = False
    setup_error: str | None = None


@record(frozen=True)
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
    code = 128 - rc if rc < 0 else rc  # a death by signal N is 128 + N, as a shell says
    return Outcome(_reason(happened, code), code, signal.Signals(-rc).name if rc < 0 else None)
