"""What Harvester is told about a worker: the state and the one-line diagnostic an operator
reads, for each way a pilot can end and each answer the web service can give."""

from __future__ import annotations

import concurrent.futures

import pytest

from siteagent.harvester.base import ST_CANCELLED, ST_FAILED, ST_FINISHED, ST_RUNNING, ST_SUBMITTED
from siteagent.harvester.status import (
    LOST,
    WorkerState,
    after_kill,
    from_future,
    from_result,
    from_task,
)


class ShellResult:
    """What a Globus Compute ShellFunction returns (returncode, stdout, stderr)."""

    def __init__(self, returncode, stderr=None):
        self.returncode, self.stderr, self.stdout = returncode, stderr, ""


def said(state):
    """What Harvester shows an operator: the status and the diagnostic."""
    return state.status, state.diag


# pilot3's exit codes and the word the operator gets for each
@pytest.mark.parametrize(
    ("rc", "diagnostic"),
    [
        (64, "exit 64; site offline or CVMFS unavailable"),
        (65, "exit 65; general pilot error"),
        (68, "exit 68; proxy problem"),
        (80, "exit 80; proxy problem"),
        (124, "exit 124; walltime reached"),
        (137, "exit 137; killed (SIGKILL)"),
        (1, "exit 1"),
        (66, "exit 66"),
        (83, "exit 83"),
        (125, "exit 125"),
        (138, "exit 138"),
        (144, "exit 144"),
    ],
)
def test_a_failed_pilot_is_failed_with_its_meaning(rc, diagnostic):
    assert said(from_result(ShellResult(rc))) == (ST_FAILED, diagnostic)
    state = from_result({"returncode": rc})
    assert said(state) == (ST_FAILED, diagnostic)
    assert (state.exit_code, state.native, state.ended, state.lost) == (rc, "success", True, False)


def test_sigterm_is_the_sweepers_stop_so_cancelled():
    state = from_result(ShellResult(143))
    assert said(state) == (ST_CANCELLED, "exit 143; terminated (SIGTERM)")
    assert state.exit_code == 143 and state.ended


def test_no_job_from_panda_is_a_normal_end():
    assert said(from_result(ShellResult(82))) == (
        ST_FINISHED,
        "exit 82: no job from the PanDA server",
    )
    assert said(from_result(ShellResult(0, "noise"))) == (ST_FINISHED, "")
    assert from_result(ShellResult(0)).exit_code == 0


@pytest.mark.parametrize("result", [None, "done", 0, {}, {"stdout": "x"}, {"returncode": None}])
def test_a_result_without_exit_code_is_finished(result):
    state = from_result(result, "success")
    assert said(state) == (ST_FINISHED, "") and state.exit_code is None


def test_diagnostic_ends_with_the_last_two_lines_of_stderr():
    stderr = "first\n  second  \n\n   \n third \n"
    assert said(from_result(ShellResult(3, stderr))) == (ST_FAILED, "exit 3; second | third")
    assert from_result({"returncode": 3, "stderr": stderr}).diag == "exit 3; second | third"
    assert from_result({"returncode": 65, "stderr": None}).diag == "exit 65; general pilot error"
    one = from_result(ShellResult(65, "only line"))
    assert said(one) == (ST_FAILED, "exit 65; general pilot error; only line")


def test_a_long_stderr_line_is_cut_at_300_characters():
    assert from_result(ShellResult(3, "x" * 400 + "\n")).diag == "exit 3; " + "x" * 300


def test_a_future_that_has_not_ended_says_nothing_yet():
    assert from_future(concurrent.futures.Future()) is None


def test_a_finished_future_reports_the_pilot_exit_code():
    f = concurrent.futures.Future()
    f.set_running_or_notify_cancel()
    f.set_result(ShellResult(65, "pilot: giving up\n"))
    assert said(from_future(f)) == (ST_FAILED, "exit 65; general pilot error; pilot: giving up")
    g = concurrent.futures.Future()
    g.set_result(ShellResult(0))
    assert said(from_future(g)) == (ST_FINISHED, "")


def test_an_exception_without_message_still_says_something():
    f = concurrent.futures.Future()
    f.set_exception(TimeoutError())
    assert said(from_future(f)) == (ST_FAILED, "TimeoutError: no message")
    assert from_future(f).native == "failed"
    g = concurrent.futures.Future()
    g.set_exception(RuntimeError("first\nsecond\nthird"))
    assert said(from_future(g)) == (ST_FAILED, "RuntimeError: third")


def test_a_cancelled_future_is_cancelled_before_it_was_sent():
    f = concurrent.futures.Future()
    f.cancel()
    state = from_future(f)
    assert said(state) == (ST_CANCELLED, "cancelled before it was sent")
    assert state.native == "cancelled"


class Killed:
    killTime = "2026-11-28 03:00:00"


class NotKilled:
    killTime = None


def test_a_worker_harvester_killed_that_fails_is_cancelled():
    failed = from_result(ShellResult(137))
    assert said(after_kill(failed, Killed())) == (
        ST_CANCELLED,
        "killed by Harvester: exit 137; killed (SIGKILL)",
    )
    assert after_kill(failed, Killed()).exit_code == 137
    assert after_kill(failed, NotKilled()) is failed
    finished = from_result(ShellResult(0))
    assert after_kill(finished, Killed()) is finished


LOST_SAID = (ST_FAILED, "lost: the endpoint does not know this task (restarted?)")


@pytest.mark.parametrize(
    ("info", "want", "native"),
    [
        (None, LOST_SAID, "unknown"),
        ({}, LOST_SAID, "unknown"),
        ({"pending": True}, LOST_SAID, "unknown"),
        ({"pending": True, "status": "unknown"}, LOST_SAID, "unknown"),
        ({"pending": False, "status": "unknown"}, LOST_SAID, "unknown"),
        ({"status": "waiting-for-nodes"}, (ST_SUBMITTED, ""), "waiting-for-nodes"),
        (
            {"pending": True, "status": "waiting-for-launch"},
            (ST_SUBMITTED, ""),
            "waiting-for-launch",
        ),
        ({"pending": True, "status": "received"}, (ST_SUBMITTED, ""), "received"),
        ({"pending": True, "status": "running"}, (ST_RUNNING, ""), "running"),
        ({"pending": True, "status": "RUNNING"}, (ST_RUNNING, ""), "running"),
        ({"pending": True, "status": "execution-start"}, (ST_RUNNING, ""), "execution-start"),
        ({"pending": True, "status": "execution-end"}, (ST_RUNNING, ""), "execution-end"),
        ({"pending": False, "status": "failed"}, (ST_FAILED, "failed"), "failed"),
        (
            {"pending": False, "status": "failed", "exception": "Traceback\n  x\nOSError: disk"},
            (ST_FAILED, "OSError: disk"),
            "failed",
        ),
        # a "success" of the web service is the pilot's exit code, not the end of the story
        (
            {"pending": False, "status": "success", "result": ShellResult(65)},
            (ST_FAILED, "exit 65; general pilot error"),
            "success",
        ),
        (
            {"pending": False, "status": "success", "result": {"returncode": 82}},
            (ST_FINISHED, "exit 82: no job from the PanDA server"),
            "success",
        ),
        (
            {"pending": False, "status": "success", "result": ShellResult(0)},
            (ST_FINISHED, ""),
            "success",
        ),
    ],
)
def test_web_service_answers(info, want, native):
    state = from_task(info)
    assert (said(state), state.native) == (want, native)
    assert state.lost == (want == LOST_SAID)


def test_the_lost_state_is_one_constant():
    assert from_task(None) is LOST and LOST.lost and LOST.ended


def test_a_failed_task_says_why_from_its_exception_else_its_reason_else_its_state():
    exc = {"pending": False, "status": "failed", "exception": "Traceback\nOSError: disk"}
    assert from_task(exc) == WorkerState(ST_FAILED, "OSError: disk", "failed")
    reason = {"pending": False, "status": "failed", "reason": "endpoint stopped\nby admin"}
    assert from_task(reason) == WorkerState(ST_FAILED, "by admin", "failed")
    assert from_task({"pending": False, "status": "failed"}) == WorkerState(
        ST_FAILED, "failed", "failed"
    )
