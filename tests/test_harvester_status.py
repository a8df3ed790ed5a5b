"""State mapping and the web-service status path (the Globus cloud cannot exist here: its
client is replaced at the SDK's get_batch_result, which is strict about what it is asked)."""

from __future__ import annotations

import concurrent.futures

import pytest

from siteagent.harvester.backends import STATUS_CHUNK, GlobusBackend
from siteagent.harvester.base import ST_CANCELLED, ST_FAILED, ST_FINISHED, ST_RUNNING, ST_SUBMITTED
from siteagent.harvester.registry import TaskRecord
from siteagent.harvester.status import from_record, from_remote, from_result


class ShellResult:
    def __init__(self, returncode, stderr=""):
        self.returncode, self.stderr, self.stdout = returncode, stderr, ""


class BatchStatusService:
    """Answers get_batch_result like the web service: only UUID task ids, at most 1000 a call."""

    def __init__(self, states, fail=False):
        self.states, self.fail, self.calls = states, fail, []

    def get_batch_result(self, task_ids):
        assert isinstance(task_ids, list) and 0 < len(task_ids) <= 1000, len(task_ids)
        self.calls.append(len(task_ids))
        if self.fail:
            raise ConnectionError("service unreachable")
        return {t: self.states.get(t, {"pending": True, "status": "unknown"}) for t in task_ids}


@pytest.mark.parametrize(
    ("rc", "stderr", "want"),
    [
        (0, "", (ST_FINISHED, "")),
        (82, "", (ST_FINISHED, "exit 82: no job from the PanDA server")),
        (65, "boom\n\n", (ST_FAILED, "exit 65; general pilot error; boom")),
        (3, "", (ST_FAILED, "exit 3")),
        (124, "", (ST_FAILED, "exit 124; walltime reached")),
    ],
)
def test_exit_codes_map_to_states(rc, stderr, want):
    assert from_result(ShellResult(rc, stderr)) == want
    assert from_result({"returncode": rc, "stderr": stderr}) == want


def _record(future, **kw):
    return TaskRecord(batch_id="b", worker_id="w", future=future, **kw)


def test_record_states():
    f = concurrent.futures.Future()
    assert from_record(_record(f), 60) == (ST_SUBMITTED, "")
    f.set_running_or_notify_cancel()
    assert from_record(_record(f), 60) == (ST_RUNNING, "")
    f.set_exception(RuntimeError("engine gone\nlast words"))
    assert from_record(_record(f), 60) == (ST_FAILED, "RuntimeError: last words")
    g = concurrent.futures.Future()
    g.cancel()
    assert from_record(_record(g), 60)[0] == ST_CANCELLED
    # stopped, no answer yet: still submitted until the stop is old, then cancelled
    h = concurrent.futures.Future()
    stopped = _record(h, stopped_at=1000.0, stop_detail="stopped by the sweeper (x)")
    assert from_record(stopped, 60, now=1030.0) == (ST_SUBMITTED, "")
    assert from_record(stopped, 60, now=1061.0) == (ST_CANCELLED, "stopped by the sweeper (x)")


def test_remote_states():
    assert from_remote(None)[1].startswith("lost:")
    assert from_remote({"pending": True, "status": "unknown"})[1].startswith("lost:")
    assert from_remote({"pending": True, "status": "waiting-for-nodes"}) == (ST_SUBMITTED, "")
    assert from_remote({"pending": True, "status": "running"}) == (ST_RUNNING, "")
    done = {"pending": False, "status": "success", "result": ShellResult(0)}
    assert from_remote(done) == (ST_FINISHED, "")
    failed = {"pending": False, "status": "failed", "exception": "Traceback...\nValueError: x"}
    assert from_remote(failed) == (ST_FAILED, "ValueError: x")


def test_batch_status_is_chunked_and_unreachable_means_check_again():
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(2500)]
    service = BatchStatusService({ids[0]: {"pending": True, "status": "running"}})
    backend = GlobusBackend("11111111-2222-3333-4444-555555555555", 128, client=service)
    got = backend.remote_status(ids)
    assert service.calls == [STATUS_CHUNK, STATUS_CHUNK, 500]
    assert got[ids[0]]["status"] == "running" and len(got) == 2500
    assert (
        GlobusBackend("x", 1, client=BatchStatusService({}, fail=True)).remote_status(ids) is None
    )
