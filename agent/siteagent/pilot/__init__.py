"""GPU pilot wrapper: bind GPUs, enter CVMFS, container and environment, run the PanDA pilot."""

from __future__ import annotations

import signal

# signals that arrived before the Supervisor took over (during imports and planning)
EARLY_SIGNALS: list[int] = []


def catch_early_signals() -> None:
    """Remember SIGTERM/SIGINT/SIGHUP from now on instead of dying without a report;
    the Supervisor reads them and ends as "signalled" before the payload starts."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: EARLY_SIGNALS.append(signum))
