"""What Harvester is told about a worker: the state and the one-line diagnostic an operator
reads, for each way a pilot can end and each answer the web service can give."""

from __future__ import annotations

import concurrent.futures

import pytest

from siteagent.harvester.base import ST_CANCELLED, ST_FAILED, ST_FINISHED, ST_RUNNING, ST_SUBMITTED
from siteagent.harvester.registry import TaskRecord
from siteagent.harvester.status import from_record, from_remote, from_result


class ShellResult:
    """What a Globus Compute ShellFunction returns (returncode, stdout, stderr)."""

    def __init__(self, returncode, stderr=None):
        self.returncode, self.stderr, self.stdout = returncode, stderr, ""


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
        (143, "exit 143; terminated (SIGTERM)"),
        (1, "exit 1"),
        (66, "exit 66"),
        (83, "exit 83"),
        (125, "exit 125"),
        (138, "exit 138"),
        (144, "exit 144"),
    ],
)
def test_a_failed_pilot_is_failed_with_its_meaning(rc, diagnostic):
    assert from_result(ShellResult(rc)) == (ST_FAILED, diagnostic)
    assert from_result({"returncode": rc}) == (ST_FAILED, diagnostic)


def test_no_job_from_panda_is_a_normal_end():
    assert from_result(ShellResult(82)) == (ST_FINISHED, "exit 82: no job from the PanDA server")
    assert from_result(ShellResult(0, "noise")) == (ST_FINISHED, "")


@pytest.mark.parametrize("result", [None, "done", 0, {}, {"stdout": "x"}, {"returncode": None}])
def test_a_result_without_exit_code_is_finished(result):
    assert from_result(result) == (ST_FINISHED, "")


def test_diagnostic_ends_with_the_last_two_lines_of_stderr():
    stderr = "first\n  second  \n\n   \n third \n"
    assert from_result(ShellResult(3, stderr)) == (ST_FAILED, "exit 3; second | third")
    assert from_result({"returncode": 3, "stderr": stderr})[1] == "exit 3; second | third"
    assert from_result({"returncode": 65, "stderr": None})[1] == "exit 65; general pilot error"
    one = from_result(ShellResult(65, "only line"))
    assert one == (ST_FAILED, "exit 65; general pilot error; only line")


def test_a_long_stderr_line_is_cut_at_300_characters():
    _, diagnostic = from_result(ShellResult(3, "x" * 400 + "\n"))
    assert diagnostic == "exit 3; " + "x" * 300


def _record(future, **kw):
    return TaskRecord(batch_id="b", worker_id="w", future=future, **kw)


def test_a_finished_future_reports_the_pilot_exit_code():
    f = concurrent.futures.Future()
    f.set_running_or_notify_cancel()
    f.set_result(ShellResult(65, "pilot: giving up\n"))
    assert from_record(_record(f)) == (ST_FAILED, "exit 65; general pilot error; pilot: giving up")
    g = concurrent.futures.Future()
    g.set_result(ShellResult(0))
    assert from_record(_record(g)) == (ST_FINISHED, "")


def test_an_exception_without_message_still_says_something():
    f = concurrent.futures.Future()
    f.set_exception(TimeoutError())
    assert from_record(_record(f)) == (ST_FAILED, "TimeoutError: no message")
    g = concurrent.futures.Future()
    g.set_exception(RuntimeError("first\nsecond\nthird"))
    assert from_record(_record(g)) == (ST_FAILED, "RuntimeError: third")


def test_a_stopped_worker_is_cancelled_even_when_its_future_finished():
    f = concurrent.futures.Future()
    f.set_result(ShellResult(0))
    assert from_record(_record(f, stopped_at=5.0)) == (ST_CANCELLED, "stopped by the sweeper")
    assert from_record(_record(f, stopped_at=0.0, stop_detail="scancel 12")) == (
        ST_CANCELLED,
        "scancel 12",
    )


def test_a_cancelled_future_is_cancelled_before_start():
    f = concurrent.futures.Future()
    f.cancel()
    assert from_record(_record(f)) == (ST_CANCELLED, "cancelled before it started")


LOST = (ST_FAILED, "lost: the endpoint does not know this task (restarted?)")


@pytest.mark.parametrize(
    ("info", "want"),
    [
        (None, LOST),
        ({}, LOST),
        ({"pending": True}, LOST),
        ({"pending": True, "status": "unknown"}, LOST),
        ({"pending": False, "status": "unknown"}, LOST),
        ({"status": "waiting-for-nodes"}, (ST_SUBMITTED, "")),
        ({"pending": True, "status": "waiting-for-launch"}, (ST_SUBMITTED, "")),
        ({"pending": True, "status": "running"}, (ST_RUNNING, "")),
        ({"pending": True, "status": "RUNNING"}, (ST_RUNNING, "")),
        ({"pending": True, "status": "exec-start"}, (ST_RUNNING, "")),
        ({"pending": True, "status": "exec-end"}, (ST_RUNNING, "")),
        ({"pending": False, "status": "failed"}, (ST_FAILED, "failed")),
        (
            {"pending": False, "status": "failed", "exception": "Traceback\n  x\nOSError: disk"},
            (ST_FAILED, "OSError: disk"),
        ),
        # a "success" of the web service is the pilot's exit code, not the end of the story
        (
            {"pending": False, "status": "success", "result": ShellResult(65)},
            (ST_FAILED, "exit 65; general pilot error"),
        ),
        (
            {"pending": False, "status": "success", "result": {"returncode": 82}},
            (ST_FINISHED, "exit 82: no job from the PanDA server"),
        ),
        ({"pending": False, "status": "success", "result": ShellResult(0)}, (ST_FINISHED, "")),
    ],
)
def test_web_service_answers(info, want):
    assert from_remote(info) == want
