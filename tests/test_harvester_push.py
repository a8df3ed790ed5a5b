"""Push mode end to end: Harvester's job goes into the Globus Compute task (real engine), the
pilot wrapper writes it into the worker's push directory and runs the real pilot3 in PUSH mode
in a network namespace with no network at all; what pilot3 reports comes back into the
worker's Harvester access point (shared-file messenger names), where the assertions read it."""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
from pathlib import Path

import pytest
import yaml

from siteagent.harvester.backends import shutdown_backends
from siteagent.harvester.base import ST_FAILED, ST_FINISHED, ST_RUNNING
from siteagent.harvester.monitor import GlobusComputeMonitor
from siteagent.harvester.submitter import GlobusComputeSubmitter
from siteagent.profiles import deep_merge
from siteagent.userconfig import CONTROL_CONFIG

from .conftest import REPO
from .gridproxy import GridCA
from .pushsite import QUEUE, netless_pilot_dir, push_worker
from .test_harvester import wait_status

pytestmark = pytest.mark.slow

PILOT_ARGS = ["--noproxyverification", "--use-https=False", "--pilot-user=generic"]


@pytest.fixture(scope="module")
def push_plugins(engine_dir, pilot3_dir, tmp_path_factory):
    """Submitter and monitor of a push-mode queue on the local engine; the engine's workers
    find the network-less pilot3 through $SITE_AGENT_PILOT_DIR."""
    root = tmp_path_factory.mktemp("push")
    pilot = netless_pilot_dir(pilot3_dir, root / "pilot3")
    # the credentials layer wants an X509 proxy (push mode talks to no server: any proxy)
    proxy = GridCA().proxy(root / "x509up", 86400)
    old = {v: os.environ.get(v) for v in ("SITE_AGENT_PILOT_DIR", "X509_USER_PROXY")}
    os.environ["SITE_AGENT_PILOT_DIR"] = str(pilot)
    os.environ["X509_USER_PROXY"] = str(proxy)
    workdir, state = engine_dir
    keys = {
        "site": "local", "backend": "local-engine", "workdir": str(workdir), "mode": "push",
        "pandaQueue": QUEUE, "pilotArgs": PILOT_ARGS, "resultTimeout": 60,
    }  # fmt: skip
    yield GlobusComputeSubmitter(**keys), GlobusComputeMonitor(**keys), root, state
    for var, value in old.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


def wait_end(monitor, ws, timeout=300.0):
    """The worker's state once it ended (or what it is at ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        ok, [state] = monitor.check_workers([ws])
        assert ok
        if state[0] in (ST_FINISHED, ST_FAILED) or time.monotonic() > deadline:
            return state
        time.sleep(1)


def test_push_job_runs_without_network_and_reports_to_the_access_point(push_plugins):
    submitter, monitor, root, state = push_plugins
    ws = push_worker(root, 1, 5001, 0)
    assert submitter.submit_workers([ws]) == [(True, "")]
    assert wait_end(monitor, ws) == (ST_FINISHED, "")
    ap = Path(ws.accessPoint)
    attributes = json.loads((ap / "worker_attributes.json").read_text())
    assert attributes["jobId"] == "5001"
    assert attributes["jobStatus"] == "finished"
    assert (attributes["pilotErrorCode"], attributes["transExitCode"]) == (0, 0)
    assert json.loads((ap / "jobReport.json").read_text()) == {"exitCode": 0, "exitMsg": "exit 0"}
    stdout = (ap / "payload.stdout").read_text()
    assert "payload on " in stdout
    assert "network devices: lo \n" in stdout  # no network at all: loopback only, and down
    assert "payload ends with 0" in (ap / "payload.stderr").read_text()
    assert (ap / "worker_heartbeat.json").exists()
    assert ws.nativeExitCode == 0
    # the job arrived as data, in the worker's push directory on the site
    push = state / "push" / f"{QUEUE}-1"
    assert json.loads((push / "siteagent_push.json").read_text())["job"]["5001"]["jobPars"] == "0"
    assert "pilot has finished (exit code=0" in (ap / "pilotlog.txt").read_text()


def test_failing_push_job_returns_its_error_codes(push_plugins):
    submitter, monitor, root, _ = push_plugins
    ws = push_worker(root, 2, 5002, 3)
    assert submitter.submit_workers([ws]) == [(True, "")]
    status, diag = wait_end(monitor, ws)
    assert status == ST_FAILED, diag
    attributes = json.loads((Path(ws.accessPoint) / "worker_attributes.json").read_text())
    assert attributes["jobStatus"] == "failed"
    assert attributes["transExitCode"] == 3
    assert diag.startswith("PanDA job 5002 failed"), diag
    assert "transExitCode 3" in diag, diag
    assert ws.nativeExitCode == (attributes["pilotErrorCode"] or 3)
    report = json.loads((Path(ws.accessPoint) / "jobReport.json").read_text())
    assert report["exitCode"] == 3


def test_running_push_worker_is_running_from_its_files(push_plugins):
    """While the pilot runs, the monitor's control task reads its files: running."""
    submitter, monitor, root, _ = push_plugins
    ws = push_worker(root, 3, 5003, 0)
    ws.jobs[0].jobParams["jobPars"] = "0; sleep 20"
    assert submitter.submit_workers([ws]) == [(True, "")]
    [(status, diag)] = wait_status(monitor, [ws], ST_RUNNING, timeout=200)
    assert status == ST_RUNNING
    assert diag in ("", "PanDA job 5003 starting", "PanDA job 5003 running"), diag
    assert (Path(ws.accessPoint) / "worker_heartbeat.json").exists()
    assert wait_end(monitor, ws) == (ST_FINISHED, "")


@pytest.fixture
def frontier(slurm, pilot3_dir, tmp_path, monkeypatch):
    """Frontier's profile (its GPU binding, its node) on the test Slurm node, push mode."""
    data = yaml.safe_load((REPO / "site-profiles" / "frontier.yaml").read_text())
    data = deep_merge(
        data,
        {
            "name": "frontier-test",
            "endpoint": {"name": "frontier-test", "strategy_period": 0.5, "max_blocks": 1},
            "node": {"cores": 16, "threads_per_core": 1},
            "limits": {"max_nodes": 1, "queues": [{"name": "debug"}]},
            "directives": {"queue": "debug", "extra": [], "exclusive": False, "account": "test"},
            "environment": {"worker_init": []},
            "container": {"runtime": "none"},
            "cvmfs": {"mode": "none", "repositories": []},
        },
    )
    data["node"].pop("memory_gb")
    profile = tmp_path / "frontier-test.yaml"
    profile.write_text(yaml.safe_dump(data))
    pilot = netless_pilot_dir(pilot3_dir, tmp_path / "pilot3")
    state = tmp_path / "state"
    # sbatch of the engine and the batch job's environment: the test cluster, this state
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    monkeypatch.setenv("SITE_AGENT_STATE", str(state))
    monkeypatch.setenv("SITE_AGENT_PILOT_DIR", str(pilot))
    monkeypatch.setenv("X509_USER_PROXY", str(GridCA().proxy(tmp_path / "x509up", 86400)))
    keys = {
        "site": str(profile), "backend": "local-engine", "workdir": str(tmp_path / "engine"),
        "mode": "push", "pandaQueue": QUEUE, "pilotArgs": PILOT_ARGS, "gpusPerWorker": 8,
        "resultTimeout": 60,
    }  # fmt: skip
    yield keys, state
    shutdown_backends()


@pytest.mark.slurm
def test_frontier_push_job_runs_in_a_slurm_job_without_network(frontier, tmp_path):
    keys, state = frontier
    submitter, monitor = GlobusComputeSubmitter(**keys), GlobusComputeMonitor(**keys)
    ws = push_worker(tmp_path, 7, 5007, 0)
    ws.nCore = 2  # as the other Slurm tests ask; asking all 16 it stayed queued (not diagnosed)
    ws.jobs[0].jobParams["jobPars"] = "0; echo gpus=$ROCR_VISIBLE_DEVICES job=$SLURM_JOB_ID"
    assert submitter.submit_workers([ws]) == [(True, "")]
    assert wait_end(monitor, ws, timeout=400) == (ST_FINISHED, "")
    ap = Path(ws.accessPoint)
    attributes = json.loads((ap / "worker_attributes.json").read_text())
    assert (attributes["jobId"], attributes["jobStatus"]) == ("5007", "finished")
    stdout = (ap / "payload.stdout").read_text()
    assert "network devices: lo \n" in stdout
    # Frontier's closest-GCD order, all 8 GCDs to the one rank; inside the batch job
    line = next(ln for ln in stdout.splitlines() if ln.startswith("gpus="))
    gpus, job = line.split(" job=")
    assert gpus == "gpus=4,5,2,3,6,7,0,1" and job, line
    report = json.loads((state / "pilots" / f"{QUEUE}-7-r0.json").read_text())
    assert report["reason"] == "finished"


class CountingExecutor(concurrent.futures.Executor):
    """The real control executor, noting what is submitted to it."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def submit(self, fn, /, *args, **kwargs):
        self.calls.append((fn.__name__, args))
        return self.inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, *, cancel_futures=False):
        self.inner.shutdown(wait, cancel_futures=cancel_futures)


def test_one_control_task_per_cycle_reads_all_running_workers(push_plugins):
    submitter, monitor, root, _ = push_plugins
    workers = [push_worker(root, 20 + i, 5020 + i, 0) for i in range(2)]
    for ws in workers:
        ws.jobs[0].jobParams["jobPars"] = "0; sleep 30"
    assert submitter.submit_workers(workers) == [(True, "")] * 2
    assert [s for s, _ in wait_status(monitor, workers, ST_RUNNING, timeout=200)] == [
        ST_RUNNING
    ] * 2
    backend = monitor.gc_backend
    counting = CountingExecutor(backend.executor(CONTROL_CONFIG))
    backend.adopt(CONTROL_CONFIG, counting)
    try:
        ok, states = monitor.check_workers(workers)
    finally:
        backend.release(CONTROL_CONFIG)
    assert ok and [s for s, _ in states] == [ST_RUNNING] * 2, states
    assert counting.calls == [("collect_workers", ([f"{QUEUE}-20", f"{QUEUE}-21"],))]
    for ws in workers:
        assert wait_end(monitor, ws) == (ST_FINISHED, "")


def frontier_here(tmp_path: Path) -> Path:
    """Frontier's profile as it is (GPUs, binding order, proxy, pilot settings) with this
    machine's scheduler: no Slurm, the engine's LocalProvider."""
    data = yaml.safe_load((REPO / "site-profiles" / "frontier.yaml").read_text())
    data.pop("directives")
    data["limits"].pop("queues")
    data = deep_merge(
        data,
        {
            "name": "frontier-local", "scheduler": "local", "launcher": "none",
            "endpoint": {
                "name": "frontier-local", "address": "127.0.0.1", "max_blocks": 1,
                "init_blocks": 1, "strategy_period": 0.5, "max_workers_per_node": 2,
            },
            "node": {"cores": 16, "threads_per_core": 1},
            "limits": {"max_nodes": 1, "max_walltime": "04:00:00"},
            "environment": {"worker_init": []},
            "container": {"runtime": "none"},
            "cvmfs": {"mode": "none", "repositories": []},
        },
    )  # fmt: skip
    data["node"].pop("memory_gb")
    profile = tmp_path / "frontier-local.yaml"
    profile.write_text(yaml.safe_dump(data))
    return profile


def test_frontier_profile_push_job_on_the_local_engine(push_plugins, tmp_path):
    """The Frontier profile in push mode without Slurm: its GPU binding reaches the payload
    that real pilot3 runs with no network."""
    _, _, root, _ = push_plugins
    keys = {
        "site": str(frontier_here(tmp_path)), "backend": "local-engine",
        "workdir": str(tmp_path / "engine"), "mode": "push", "pandaQueue": QUEUE,
        "pilotArgs": PILOT_ARGS, "gpusPerWorker": 8, "resultTimeout": 60,
    }  # fmt: skip
    submitter, monitor = GlobusComputeSubmitter(**keys), GlobusComputeMonitor(**keys)
    ws = push_worker(root, 30, 5030, 0)
    ws.jobs[0].jobParams["jobPars"] = (
        "0; echo gpus=$ROCR_VISIBLE_DEVICES cuda=$CUDA_VISIBLE_DEVICES"
    )
    assert submitter.submit_workers([ws]) == [(True, "")]
    assert wait_end(monitor, ws) == (ST_FINISHED, "")
    stdout = (Path(ws.accessPoint) / "payload.stdout").read_text()
    assert "network devices: lo \n" in stdout
    # Frontier's closest-GCD order, all 8 GCDs for the one rank; CUDA_VISIBLE_DEVICES unset
    assert "gpus=4,5,2,3,6,7,0,1 cuda=\n" in stdout, stdout
    attributes = json.loads((Path(ws.accessPoint) / "worker_attributes.json").read_text())
    assert (attributes["jobId"], attributes["jobStatus"]) == ("5030", "finished")
