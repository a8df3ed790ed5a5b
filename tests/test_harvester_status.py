"""State mapping and the web-service status path (the Globus cloud cannot exist here: its
client is replaced at the SDK's get_batch_result, which is strict about what it is asked)."""

from __future__ import annotations

import concurrent.futures

import pytest

from siteagent.harvester.backends import STATUS_CHUNK, GlobusBackend
from siteagent.harvester.base import ST_CANCELLED, ST_FAILED, ST_FINISHED, ST_RUNNING, ST_SUBMITTED
from siteagent.harvester.status import WorkerState, from_future, from_result, from_task


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
        (143, "stopped\n", (ST_CANCELLED, "exit 143; terminated (SIGTERM); stopped")),
    ],
)
def test_exit_codes_map_to_states(rc, stderr, want):
    assert from_result(ShellResult(rc, stderr)) == WorkerState(*want, "success", rc)
    assert from_result({"returncode": rc, "stderr": stderr}) == WorkerState(*want, "success", rc)


def test_future_states():
    f = concurrent.futures.Future()
    assert from_future(f) is None  # not ended: ask the endpoint
    f.set_running_or_notify_cancel()
    assert from_future(f) is None
    f.set_exception(RuntimeError("engine gone\nlast words"))
    assert from_future(f) == WorkerState(ST_FAILED, "RuntimeError: last words", "failed")
    g = concurrent.futures.Future()
    g.cancel()
    assert from_future(g).status == ST_CANCELLED
    h = concurrent.futures.Future()
    h.set_result(ShellResult(0))
    assert from_future(h) == WorkerState(ST_FINISHED, "", "success", 0)


def test_task_states():
    # globus_compute_common.tasks.TaskState values, as get_batch_result gives them
    assert from_task(None).diag.startswith("lost:")
    assert from_task({"pending": True, "status": "unknown"}).lost
    for queued in ("received", "waiting-for-ep", "waiting-for-nodes", "waiting-for-launch"):
        assert from_task({"pending": True, "status": queued}) == WorkerState(
            ST_SUBMITTED, "", queued
        )
    for running in ("running", "execution-start", "execution-end"):
        assert from_task({"pending": True, "status": running}) == WorkerState(
            ST_RUNNING, "", running
        )
    done = {"pending": False, "status": "success", "result": ShellResult(0)}
    assert from_task(done) == WorkerState(ST_FINISHED, "", "success", 0)
    failed = {"pending": False, "status": "failed", "exception": "Traceback...\nValueError: x"}
    assert from_task(failed) == WorkerState(ST_FAILED, "ValueError: x", "failed")


def test_the_running_state_names_are_globus_compute_task_states():
    from globus_compute_common.tasks import TaskState

    from siteagent.harvester.status import RUNNING_STATES

    assert not RUNNING_STATES - {s.value for s in TaskState}


def test_batch_status_is_chunked_and_unreachable_means_check_again():
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(2500)]
    service = BatchStatusService({ids[0]: {"pending": True, "status": "running"}})
    backend = GlobusBackend("11111111-2222-3333-4444-555555555555", 128, client=service)
    got = backend.task_status(dict.fromkeys(ids, "w"))
    assert service.calls == [STATUS_CHUNK, STATUS_CHUNK, 500]
    assert got[ids[0]]["status"] == "running" and len(got) == 2500
    unreachable = GlobusBackend("x", 1, client=BatchStatusService({}, fail=True))
    assert unreachable.task_status(dict.fromkeys(ids, "w")) is None


def test_a_task_that_raised_does_not_hide_the_others():
    """The SDK raises TaskExecutionFailed for a whole get_batch_result call when one of its
    tasks raised on the endpoint; each task is then asked about alone."""
    from globus_compute_sdk.errors import TaskExecutionFailed

    ok_id, raised_id = (f"00000000-0000-0000-0000-00000000000{i}" for i in (1, 2))

    class Service(BatchStatusService):
        def get_batch_result(self, task_ids):
            got = super().get_batch_result(task_ids)
            if raised_id in task_ids:
                raise TaskExecutionFailed("Traceback\nManagerLost: node gone", "0")
            return got

    service = Service({ok_id: {"pending": True, "status": "running"}})
    backend = GlobusBackend("11111111-2222-3333-4444-555555555555", 8, client=service)
    got = backend.task_status({ok_id: "w1", raised_id: "w2"})
    assert service.calls == [2, 1, 1]
    assert got[ok_id] == {"pending": True, "status": "running"}
    assert from_task(got[raised_id]) == WorkerState(ST_FAILED, "ManagerLost: node gone", "failed")


def test_one_batched_call_for_every_worker_that_has_not_ended_here():
    from functools import cached_property

    from siteagent.harvester.monitor import GlobusComputeMonitor
    from siteagent.harvester.registry import Registry

    running_id = "00000000-0000-0000-0000-000000000001"
    forgotten_id = "00000000-0000-0000-0000-000000000002"
    ended_id = "00000000-0000-0000-0000-000000000003"
    queued_id = "00000000-0000-0000-0000-000000000004"
    service = BatchStatusService(
        {
            running_id: {"pending": True, "status": "running"},
            queued_id: {"pending": True, "status": "waiting-for-nodes"},
        }
    )
    backend = GlobusBackend("11111111-2222-3333-4444-555555555555", 8, client=service)

    class Monitor(GlobusComputeMonitor):
        registry = Registry()

        @cached_property
        def gc_backend(self):
            return backend

    monitor = Monitor(site="local")
    ended = concurrent.futures.Future()
    ended.set_result(ShellResult(82))
    monitor.registry.add(ended_id, ended)
    monitor.registry.add(running_id, concurrent.futures.Future())  # the SDK's: never running

    class WS:
        def __init__(self, n, batch_id):
            self.workerID, self.batchID, self.workAttributes = n, batch_id, None
            self.nativeStatus = self.nativeExitCode = None

    workers = [WS(1, running_id), WS(2, forgotten_id), WS(3, ended_id), WS(4, queued_id)]
    ok, states = monitor.check_workers([*workers, WS(5, None)])
    assert ok
    assert states[4] == (ST_FAILED, "no batchID: never submitted")  # submission never returned
    assert states[0] == (ST_RUNNING, "")
    assert states[1][0] == ST_FAILED and states[1][1].startswith("lost:")
    assert states[2] == (ST_FINISHED, "exit 82: no job from the PanDA server")
    assert states[3] == (ST_SUBMITTED, "")
    assert service.calls == [3]  # one call, for the three that have not ended here
    assert [(w.nativeStatus, w.nativeExitCode) for w in workers] == [
        ("running", None),
        ("unknown", None),
        ("success", 82),
        ("waiting-for-nodes", None),
    ]


def test_a_worker_harvester_asked_to_kill_that_fails_is_cancelled():
    from types import SimpleNamespace

    from siteagent.harvester.status import after_kill

    lost = from_task({"pending": False, "status": "failed", "exception": "ManagerLost: gone"})
    marked, unmarked = SimpleNamespace(killTime="2026-01-01"), SimpleNamespace(killTime=None)
    assert after_kill(lost, marked) == WorkerState(
        ST_CANCELLED, "killed by Harvester: ManagerLost: gone", "failed"
    )
    assert after_kill(lost, unmarked) == lost
    finished = from_result(ShellResult(0))
    assert after_kill(finished, marked) == finished
