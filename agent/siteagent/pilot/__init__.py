"""GPU pilot wrapper: bind GPUs, enter CVMFS, container and environment, run the PanDA pilot."""

from __future__ import annotations

import signal

# signals that arrived before the Supervisor took over (during imports and planning)
EARLY_SIGNALS: list[int] = []


def catch_early_signals() -> None:
    """Remember the stopping signals (TERM, INT, HUP, QUIT, XCPU, USR2) from now on instead of
    dying without a report; the Supervisor reads them and ends as "signalled" before the
    payload starts."""
    from siteagent.pilot.outcome import STOPPING

    for sig in STOPPING:
        signal.signal(sig, lambda signum, _frame: EARLY_SIGNALS.append(signum))
