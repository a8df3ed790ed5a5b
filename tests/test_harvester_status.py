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
    assert from_record(_record(f)) == (ST_SUBMITTED, "")
    f.set_running_or_notify_cancel()
    assert from_record(_record(f)) == (ST_RUNNING, "")
    f.set_exception(RuntimeError("engine gone\nlast words"))
    assert from_record(_record(f)) == (ST_FAILED, "RuntimeError: last words")
    g = concurrent.futures.Future()
    g.cancel()
    assert from_record(_record(g))[0] == ST_CANCELLED
    # stopped by the sweeper: cancelled at once, before the engine learns the job is gone
    h = concurrent.futures.Future()
    stopped = _record(h, stopped_at=1000.0, stop_detail="stopped by the sweeper (x)")
    assert from_record(stopped) == (ST_CANCELLED, "stopped by the sweeper (x)")


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


def test_long_pending_task_is_asked_about_and_lost_when_the_endpoint_forgot_it():
    from functools import cached_property

    from siteagent.harvester.monitor import GlobusComputeMonitor
    from siteagent.harvester.registry import Registry

    running_id = "00000000-0000-0000-0000-000000000001"
    forgotten_id = "00000000-0000-0000-0000-000000000002"
    fresh_id = "00000000-0000-0000-0000-000000000003"
    service = BatchStatusService({running_id: {"pending": True, "status": "running"}})
    backend = GlobusBackend("11111111-2222-3333-4444-555555555555", 8, client=service)

    class Monitor(GlobusComputeMonitor):
        registry = Registry()

        @cached_property
        def gc_backend(self):
            return backend

    monitor = Monitor(site="local", lostAfterSeconds=600)
    futures = {}
    for task_id, age in ((running_id, 700), (forgotten_id, 700), (fresh_id, 10)):
        futures[task_id] = concurrent.futures.Future()
        record = TaskRecord(batch_id=task_id, worker_id="w", future=futures[task_id])
        record.submitted_at -= age
        monitor.registry.add(record)

    class WS:
        def __init__(self, batch_id):
            self.batchID = batch_id

    ok, states = monitor.check_workers([WS(running_id), WS(forgotten_id), WS(fresh_id)])
    assert ok
    assert states[0] == (ST_RUNNING, "")
    assert states[1][0] == ST_FAILED and states[1][1].startswith("lost:")
    assert states[2] == (ST_SUBMITTED, "")
    assert service.calls == [2]  # one call, only for the two that waited too long
    assert futures[forgotten_id].cancelled()
    assert monitor.registry.get(running_id).confirmed_at is not None
    # confirmed just now: the next check does not ask again
    monitor.check_workers([WS(running_id)])
    assert service.calls == [2]
