"""The report's reason and exit code, decided from what happened (no processes): every
combination of received signals, return code, walltime and setup error."""

from __future__ import annotations

import itertools
import signal

import pytest

from siteagent.pilot.outcome import SETUP_ERROR_EXIT, Happened, Outcome, decide
from siteagent.pilot.report import REASONS

TERM, INT, HUP, USR1, KILL = (
    signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGKILL,
)  # fmt: skip
SIGNALS = (TERM, INT, HUP, USR1)
# every order of up to two signals the wrapper forwards (first one decides an early stop)
RECEIVED = [()] + [(s,) for s in SIGNALS] + list(itertools.permutations(SIGNALS, 2))
RETURN_CODES = (None, 0, 1, 3, 137, -int(TERM), -int(KILL), -int(USR1))
CASES = list(itertools.product(RECEIVED, RETURN_CODES, (False, True), (None, "boom")))


# ---------------------------------------------------------------- the behaviour, by example
@pytest.mark.parametrize(
    ("happened", "expected"),
    [
        (Happened(returncode=0), Outcome("finished", 0)),
        (Happened(returncode=3), Outcome("failed", 3)),
        (Happened(received=(USR1,), returncode=0), Outcome("finished", 0)),
        (Happened(received=(USR1,), returncode=1), Outcome("signalled", 1)),
        (Happened(received=(TERM,)), Outcome("signalled", 128 + 15)),  # before the start
        (Happened(received=(HUP, TERM)), Outcome("signalled", 128 + 1)),  # the first counts
        (Happened(received=(TERM,), returncode=0), Outcome("signalled", 0)),  # a clean stop
        (Happened(received=(TERM,), returncode=-15), Outcome("signalled", 143, "SIGTERM")),
        (Happened(returncode=-9), Outcome("failed", 137, "SIGKILL")),
        (Happened(returncode=-9, walltime_hit=True), Outcome("walltime", 137, "SIGKILL")),
        (Happened(received=(TERM,), returncode=0, walltime_hit=True), Outcome("walltime", 0)),
        (Happened(received=(TERM,), setup_error="x"), Outcome("setup-error", SETUP_ERROR_EXIT)),
        (Happened(returncode=0, setup_error="x"), Outcome("setup-error", 64)),
    ],
)
def test_outcome_examples(happened, expected):
    assert decide(happened) == expected


def test_a_payload_that_neither_ran_nor_was_stopped_is_a_bug():
    for received in ((), (USR1,)):
        with pytest.raises(ValueError, match="never ran"):
            decide(Happened(received=received))


# ---------------------------------------------------------------- the rules, over every input
def _stopped(received) -> bool:
    return any(s in (TERM, INT, HUP) for s in received)


@pytest.mark.parametrize(("received", "rc", "walltime_hit", "error"), CASES)
def test_outcome_rules_hold_for_every_input(received, rc, walltime_hit, error):
    happened = Happened(received, rc, walltime_hit, error)
    if error is None and rc is None and not _stopped(received):
        with pytest.raises(ValueError):
            decide(happened)
        return
    out = decide(happened)
    assert out.reason in REASONS
    assert 0 <= out.exit_code <= 255
    if error is not None:  # a setup error wins over everything: the payload never ran
        assert out == Outcome("setup-error", SETUP_ERROR_EXIT)
    elif rc is None:  # stopped before the start: 128 + the first signal, no payload signal
        assert out == Outcome("signalled", 128 + received[0])
    else:
        # the payload's own code is kept; a death by signal N is 128 + N, named
        assert out.exit_code == (128 - rc if rc < 0 else rc)
        assert out.signal == (signal.Signals(-rc).name if rc < 0 else None)
        if walltime_hit:  # the walltime wins over signals
            assert out.reason == "walltime"
        elif _stopped(received) or (received and out.exit_code != 0):
            assert out.reason == "signalled"
        else:  # no signal, or SIGUSR1 alone with a clean exit
            assert out.reason == ("finished" if rc == 0 else "failed")
