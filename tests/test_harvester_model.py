"""The plugins driven the way Harvester drives them (tests/harvester_model.py), on the real
local engine and the real control endpoint, with pilots still running when the monitor asks."""

from __future__ import annotations

import datetime
import json
import logging
import subprocess
import sys
import time
import uuid

import pytest

from siteagent.errors import ConfigError
from siteagent.harvester import backends
from siteagent.harvester.backends import GlobusBackend
from siteagent.harvester.config import queue_config
from siteagent.harvester.registry import REGISTRY
from siteagent.harvester.shape import payload_argv, worker_shape
from siteagent.harvester.submitter import GlobusComputeSubmitter
from siteagent.profiles import load_profile
from siteagent.userconfig import canonicalize

from .conftest import REPO
from .harvester_model import (
    ST_CANCELLED,
    ST_FINISHED,
    ST_MISSED,
    ST_RUNNING,
    ST_SUBMITTED,
    Harvester,
    WorkSpec,
    get_plugin,
    now,
    plugin_configs,
)
from .test_pilot import report_state, wait_for

pytestmark = pytest.mark.slow

# Harvester's queue name for a unified queue: PanDA queue / resource type
QUEUE = "TEST_SITEAGENT/SCORE"
PLUGINS = {
    "submitter": "GlobusComputeSubmitter",
    "monitor": "GlobusComputeMonitor",
    "sweeper": "GlobusComputeSweeper",
}


def queue_dict(site, payload, **common):
    """A panda_queueconfig.json entry: the shared keys once, in "common" (as README says)."""
    workdir, _ = site
    shared = {"site": "local", "backend": "local-engine", "workdir": str(workdir)} | common
    out = {
        kind: {"module": f"siteagent.harvester.{kind}", "name": name}
        for kind, name in PLUGINS.items()
    }
    out["submitter"]["payload"] = payload
    return {"common": shared, **out}


def monitor_until(harvester, worker_id, status, timeout=60.0):
    """Monitor cycles until the worker's status is ``status``; the worker of the last cycle."""
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
    while True:
        [ws] = harvester.monitor([worker_id])
        if ws.status == status or datetime.datetime.now() > deadline:
            return ws
        time.sleep(0.2)


def monitor_elsewhere(harvester, rows):
    """One monitor cycle of a Harvester in another process, from the same worker rows."""
    directory = harvester.rows_dir
    (directory / "queue.json").write_text(
        json.dumps({"name": harvester.queue_name, "config": harvester.queue_dict})
    )
    (directory / "rows.json").write_text(json.dumps(rows, default=lambda v: v.isoformat()))
    files = [str(directory / "queue.json"), str(directory / "rows.json")]
    out = subprocess.run(
        [sys.executable, "-m", "tests.harvester_model", "monitor", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def new_harvester(site, tmp_path, payload, **common):
    qd = queue_dict(site, payload, **common)
    harvester = Harvester(QUEUE, qd)
    harvester.queue_dict, harvester.rows_dir = qd, tmp_path
    return harvester


SEEN = ("status", "nativeStatus", "nativeExitCode", "diagMessage", "workParams")


def test_worker_goes_submitted_running_finished_and_a_second_monitor_agrees(
    engine_dir, tmp_path, caplog
):
    site = engine_dir
    caplog.set_level(logging.INFO, logger="siteagent.harvester")
    _, state = site
    go = tmp_path / "go"
    # the pilot wrapper runs this as the payload: it waits, then shows the wrapper's command
    wait_then_show = f"while [ ! -e {go} ]; do sleep 0.1; done; tr '\\0' ' ' </proc/$PPID/cmdline"
    harvester = new_harvester(site, tmp_path, ["bash", "-c", wait_then_show])
    [ws] = harvester.make_workers(1)
    assert (ws.nCore, ws.maxWalltime, ws.minRamCount) == (1, 1, 1)  # no CRIC: placeholders
    assert harvester.submit([ws]) == [(True, "")]
    row = harvester.rows[ws.workerID]
    assert row["status"] == ST_SUBMITTED and row["batchID"]
    assert row["workAttributes"]["siteAgentWorker"] == "TEST_SITEAGENT-1"
    # the placeholders are taken as unspecified: the profile's shape, said in the diagnostic
    local = load_profile("local")
    defaults = canonicalize(local, {"nodes": 1, "ranks_per_node": 1, "gpus_per_rank": 0})
    assert row["diagMessage"] == (
        f"nCore 1 taken as unspecified: cores_per_rank {defaults['cores_per_rank']}; "
        "maxWalltime 1 s taken as unspecified (below 600 s): walltime 01:00:00"
    )
    assert row["workAttributes"]["siteAgentShape"] == row["diagMessage"]

    report = state / "pilots" / "TEST_SITEAGENT-1-r0.json"
    assert wait_for(lambda: report_state(report) == "running", timeout=60)
    [ws] = harvester.monitor()
    assert (ws.status, ws.nativeStatus, ws.nativeExitCode) == (ST_RUNNING, "running", None)
    assert ws.startTime is not None and ws.endTime is None
    running_rows = [harvester.rows[ws.workerID]]
    # Harvester's monitor in another process: the same answer from the WorkSpec alone
    [elsewhere] = monitor_elsewhere(harvester, running_rows)
    assert {k: elsewhere[k] for k in SEEN} == {k: running_rows[0][k] for k in SEEN}

    go.touch()
    # the plugin says finished; Harvester holds it as running one cycle to post-process
    ws = wait_for(lambda: _final(harvester, ws.workerID), timeout=60)
    [held] = monitor_elsewhere(harvester, running_rows)
    assert held["workParams"] == {"finalMonStatus": ST_FINISHED}
    assert (held["status"], held["nativeStatus"], held["nativeExitCode"]) == (
        ST_RUNNING,
        "success",
        0,
    )
    [ws] = harvester.monitor()
    assert (ws.status, ws.nativeStatus, ws.nativeExitCode) == (ST_FINISHED, "success", 0)
    assert ws.endTime is not None
    assert ws.diagMessage == row["diagMessage"]  # an empty diagnostic keeps the last one
    # the PanDA queue came from Harvester's queueName (no pandaQueue in the queue config)
    command = REGISTRY.get(ws.batchID).result().stdout
    assert " --queue TEST_SITEAGENT --resource-type SCORE " in command, command
    assert json.loads(report.read_text())["reason"] == "finished"
    # one line per worker action, with Harvester's workerID token
    lines = [(r.name.rsplit(".", 1)[1], r.getMessage()) for r in caplog.records]
    task = ws.batchID
    assert [line for line in lines if "<workerID=1>" in line[1]] == [
        ("submitter", f"<workerID=1> shape changed: {row['diagMessage']}"),
        ("submitter", f"<workerID=1> worker TEST_SITEAGENT-1 submitted as task {task}"),
        ("monitor", f"<workerID=1> task {task} running: running"),
        ("monitor", f"<workerID=1> task {task} success: finished"),
    ]


def _final(harvester, worker_id):
    [ws] = harvester.workers([worker_id])
    if ws.get_work_params("finalMonStatus")[0]:
        return ws
    harvester.monitor([worker_id])
    return None


def test_a_stopped_worker_is_cancelled_and_the_sweep_leaves_nothing_behind(engine_dir, tmp_path):
    site = engine_dir
    _, state = site
    harvester = new_harvester(site, tmp_path, ["sleep", "272"])
    harvester.next_id = 10
    [ws] = harvester.make_workers(1)
    assert harvester.submit([ws]) == [(True, "")]
    report = state / "pilots" / "TEST_SITEAGENT-10-r0.json"
    assert wait_for(lambda: report_state(report) == "running", timeout=60)
    [(ok, detail)] = harvester.kill([ws.workerID])
    assert ok and detail.startswith("signalled: SIGTERM to pid"), detail
    ws = monitor_until(harvester, ws.workerID, ST_CANCELLED)
    assert (ws.status, ws.nativeStatus, ws.nativeExitCode) == (ST_CANCELLED, "success", 143)
    assert ws.diagMessage.startswith("exit 143; terminated (SIGTERM)"), ws.diagMessage

    # a worker that ended gets no stop task, and leaves no stop mark
    finisher = new_harvester(site, tmp_path, ["true"])
    finisher.rows, finisher.next_id = harvester.rows, 11
    [done] = finisher.make_workers(1)
    assert finisher.submit([done]) == [(True, "")]
    done = monitor_until(harvester, done.workerID, ST_FINISHED)
    assert done.status == ST_FINISHED
    assert harvester.kill([done.workerID]) == [(True, "already ended (finished)")]
    # nor does a worker that was never submitted (its submission failed: missed)
    broken = new_harvester(site, tmp_path, ["true"], ranksPerNode=2, gpusPerWorker=3)
    broken.rows, broken.next_id = harvester.rows, 12
    [never] = broken.make_workers(1)
    [(ok, msg)] = broken.submit([never])
    assert ok is False and msg.startswith("queue config: gpusPerWorker: 3 GPUs do not divide")
    assert harvester.rows[never.workerID]["status"] == ST_MISSED
    assert harvester.kill([never.workerID]) == [(True, "never submitted: nothing to stop")]
    workers = state / "workers"
    assert sorted(p.name for p in workers.glob("TEST_SITEAGENT-1[0-2]*")) == []

    # what a batch job killed under the worker leaves: its record, and an old stop mark
    (workers / "TEST_SITEAGENT-10.json").write_text("{}")
    (workers / "TEST_SITEAGENT-11.stop").write_text("stopped by the sweeper\n")
    assert harvester.clean_up() == [(True, "")] * 3
    assert harvester.rows == {}
    assert sorted(p.name for p in workers.glob("TEST_SITEAGENT-*")) == []
    # nor the reports of their pilots, which the monitor read before Harvester swept them
    assert report.parent.is_dir()
    assert sorted(p.name for p in report.parent.glob("TEST_SITEAGENT-1[0-2]-r*")) == []
    assert REGISTRY.get(ws.batchID) is None
    assert not (site[0] / "tasks" / f"{ws.batchID}.json").exists()  # the engine's table, too


def test_the_placeholder_shape_and_too_many_cores_on_a_real_node():
    profile = load_profile("perlmutter")
    plugin = GlobusComputeSubmitter(
        site="perlmutter", ranksPerNode=4, gpusPerWorker=4, userEndpointConfig={"account": "m1"}
    )
    qc = queue_config(plugin)
    placeholder = WorkSpec(workerID=1, nCore=1, maxWalltime=1, minRamCount=1)
    config, changed = worker_shape(qc, profile, placeholder)
    plain, nothing = worker_shape(qc, profile, WorkSpec(workerID=2))
    assert (config, nothing) == (plain, "")
    assert changed == (
        "nCore 1 taken as unspecified: cores_per_rank 16; "
        "maxWalltime 1 s taken as unspecified (below 600 s): walltime 01:00:00; "
        "minRamCount 1 MB taken as unspecified: mem_per_node_gb not set (the scheduler's default)"
    )
    big = WorkSpec(workerID=3, nCore=256, maxWalltime=7 * 86400, minRamCount=512 * 1024)
    config, changed = worker_shape(qc, profile, big)
    assert (config["cores_per_rank"], config["walltime"], config["mem_per_node_gb"]) == (
        32,
        "48:00:00",
        256,
    )
    assert changed == (
        "nCore 256 is more than a perlmutter node offers: cores_per_rank 32; "
        "maxWalltime 604800 s is beyond the site limit: walltime 48:00:00; "
        "minRamCount 524288 MB is more than a perlmutter node has: mem_per_node_gb 256"
    )
    fine = WorkSpec(workerID=4, nCore=64, maxWalltime=3599, minRamCount=64000)
    config, changed = worker_shape(qc, profile, fine)
    assert (config["cores_per_rank"], config["walltime"], config["mem_per_node_gb"]) == (
        16,
        "01:00:00",
        63,
    )
    assert changed == ""


@pytest.mark.parametrize(
    ("attributes", "queue"),
    [
        ({"queueName": "ANALY_X/SCORE", "siteName": "ANALY_X"}, "ANALY_X"),
        ({"queueName": "ANALY_X"}, "ANALY_X"),
        ({"queueName": "ANALY_X", "pandaQueue": "ANALY_Y"}, "ANALY_Y"),
        ({}, None),
    ],
)
def test_the_panda_queue_comes_from_harvester(attributes, queue, caplog):
    plugin = GlobusComputeSubmitter(site="polaris", **attributes)
    with caplog.at_level(logging.WARNING):
        qc = queue_config(plugin)
    assert qc.panda_queue == queue
    assert caplog.messages == []  # siteName and queueName are Harvester's, not unknown keys
    argv = payload_argv(qc, WorkSpec(workerID=1))
    assert (argv[4:6] == ["--queue", queue]) if queue else "--queue" not in argv


def test_a_bad_harvester_queue_name_is_named():
    plugin = GlobusComputeSubmitter(site="polaris", queueName="bad queue;x")
    with pytest.raises(ConfigError, match=r"^queue config: queueName: 'bad queue;x' is not"):
        queue_config(plugin)


class Unreachable:
    """The Globus Compute web service while the network is down (the SDK's get_batch_result
    raises); strict about what it is asked."""

    def __init__(self):
        self.calls = []

    def get_batch_result(self, task_ids):
        assert isinstance(task_ids, list) and all(uuid.UUID(t) for t in task_ids), task_ids
        self.calls.append(sorted(task_ids))
        raise ConnectionError("service unreachable")


def test_an_unreachable_service_is_unknown_per_worker_and_harvester_times_the_worker_out(
    monkeypatch, tmp_path
):
    endpoint = "11111111-2222-3333-4444-555555555555"
    service = Unreachable()
    backend = GlobusBackend(endpoint, 128, client=service)
    monkeypatch.setitem(backends._cache, ("globus", endpoint, "local", None), backend)
    qd = queue_dict((tmp_path, tmp_path), ["true"], backend="globus", endpointId=endpoint)
    del qd["common"]["workdir"]
    harvester = Harvester(QUEUE, qd, check_timeout=3600)
    ids = [str(uuid.uuid4()) for _ in range(2)]
    long_ago = now() - datetime.timedelta(hours=2)
    recently = now() - datetime.timedelta(minutes=5)
    for worker_id, task_id, checked in ((1, ids[0], long_ago), (2, ids[1], recently)):
        harvester.rows[worker_id] = WorkSpec(
            workerID=worker_id, batchID=task_id, status=ST_RUNNING, checkTime=checked
        ).row()
    old, fresh = harvester.monitor()
    assert service.calls == [sorted(ids)]  # one batched call for every worker
    # Harvester holds the worker as running for one cycle to post-process it, then cancels it
    assert (old.status, old.workParams) == (ST_RUNNING, {"finalMonStatus": ST_CANCELLED})
    assert old.diagMessage == (
        "Killed by Harvester due to consecutive worker check failures. "
        "task status service unreachable: will check again"
    )
    assert (fresh.status, fresh.checkTime) == (ST_RUNNING, recently)  # checked again later
    old, fresh = harvester.monitor()
    assert (old.status, fresh.status) == (ST_CANCELLED, ST_RUNNING)
    assert service.calls == [sorted(ids), [ids[1]]]


def test_readme_queue_config_puts_shared_keys_in_common(caplog):
    """README's example, through Harvester's queue config mapper and plugin factory: every
    plugin gets the shared keys from "common", and none is unknown."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Harvester plugins") :]
    example = section[
        section.index("```json") + 7 : section.index("```", section.index("```json") + 7)
    ]
    example = example.replace("<template endpoint uuid>", str(uuid.uuid4()))
    [(queue_name, queue)] = json.loads("{" + example + "}").items()
    assert set(queue) == {"common", *PLUGINS}
    assert all(set(queue[kind]) == {"module", "name"} for kind in PLUGINS)
    configs = plugin_configs(queue_name, queue)
    with caplog.at_level(logging.WARNING):
        for kind in PLUGINS:
            qc = queue_config(get_plugin(configs[kind]))
            assert (qc.site, qc.panda_queue, qc.gpus_per_worker) == ("polaris", queue_name, 4)
    assert caplog.messages == []
