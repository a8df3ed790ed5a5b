"""Harvester plugins against a real Slurm: the engine's SlurmProvider submits the worker's
batch job with sbatch, the execution wrapper runs its ranks with srun, the pilot wrapper binds
their GPUs, and the sweeper stops a worker by cancelling its batch job with scancel."""

from __future__ import annotations

import datetime
import json
import os
import time

import pytest
import yaml

from siteagent.harvester.backends import shutdown_backends
from siteagent.harvester.base import ST_CANCELLED, ST_FINISHED
from siteagent.harvester.monitor import GlobusComputeMonitor
from siteagent.harvester.registry import REGISTRY
from siteagent.harvester.submitter import GlobusComputeSubmitter
from siteagent.harvester.sweeper import GlobusComputeSweeper
from siteagent.profiles import deep_merge

from .conftest import REPO
from .test_harvester import WorkSpec, wait_status

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

PRINT = "echo rank=$SLURM_PROCID local=$SLURM_LOCALID cuda=$CUDA_VISIBLE_DEVICES job=$SLURM_JOB_ID"


@pytest.fixture
def site(slurm, tmp_path, monkeypatch):
    """Perlmutter's node shape and binding on the test Slurm node, and its plugins' keys."""
    data = yaml.safe_load((REPO / "site-profiles" / "perlmutter.yaml").read_text())
    data = deep_merge(
        data,
        {
            "name": "perlmutter-test",
            "endpoint": {"name": "pm-test", "strategy_period": 0.5, "max_blocks": 2},
            "node": {"cores": 16, "threads_per_core": 1, "memory_gb": None},
            "limits": {"max_nodes": 1, "queues": ["debug"]},
            "directives": {"queue": "debug", "extra": [], "exclusive": False, "account": "test"},
            "environment": {"worker_init": []},
            "container": {"runtime": "none"},
            "cvmfs": {"mode": "none", "repositories": []},
        },
    )
    data["directives"].pop("constraint")
    data["node"].pop("memory_gb")
    profile = tmp_path / "perlmutter-test.yaml"
    profile.write_text(yaml.safe_dump(data))
    state = tmp_path / "state"
    # sbatch/squeue/scancel of the engine and of its workers find the test cluster
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    monkeypatch.setenv("SITE_AGENT_STATE", str(state))
    keys = {
        "site": str(profile),
        "backend": "local-engine",
        "workdir": str(tmp_path / "engine"),
        "ranksPerNode": 2,
        "gpusPerWorker": 2,
    }
    yield keys, state
    shutdown_backends()


def test_worker_runs_as_a_slurm_job_with_bound_gpus(site, slurm):
    keys, state = site
    submitter = GlobusComputeSubmitter(**keys, payload=["bash", "-c", PRINT])
    monitor = GlobusComputeMonitor(**keys)
    ws = WorkSpec(workerID=1, nCore=2, maxWalltime=600)
    assert submitter.submit_workers([ws]) == [(True, "")]
    states = wait_status(monitor, [ws], ST_FINISHED, timeout=120)
    assert states == [(ST_FINISHED, "")], states
    result = REGISTRY.get(ws.batchID).result()
    lines = sorted(ln for ln in result.stdout.splitlines() if ln.startswith("rank="))
    jobs = {ln.split("job=")[1] for ln in lines}
    assert len(jobs) == 1 and jobs != {""}, lines  # both ranks in one batch job
    # Perlmutter's reverse order: local rank 0 is closest to GPU 3
    assert [ln.rsplit(" job=", 1)[0] for ln in lines] == [
        "rank=0 local=0 cuda=3",
        "rank=1 local=1 cuda=2",
    ]
    for rank in range(2):
        report = json.loads((state / "pilots" / f"perlmutter-test-1-r{rank}.json").read_text())
        assert (report["reason"], report["exit_code"]) == ("finished", 0)


def test_sweeper_cancels_the_batch_job_of_a_worker_on_another_node(site, slurm):
    keys, state = site
    submitter = GlobusComputeSubmitter(**keys, payload=["sleep", "300"])
    monitor = GlobusComputeMonitor(**keys)
    sweeper = GlobusComputeSweeper(**keys)
    ws = WorkSpec(workerID=2, maxWalltime=600)
    assert submitter.submit_workers([ws]) == [(True, "")]
    record = state / "workers" / "perlmutter-test-2.json"
    deadline = time.monotonic() + 120
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert record.exists(), "the worker never started"
    data = json.loads(record.read_text())
    job_id = data["job_id"]
    assert job_id and slurm.job_state(job_id) == "RUNNING"
    # on a real site the control task runs on the login node, not where the worker runs
    record.write_text(json.dumps(data | {"host": "compute-node-0042"}))
    ws.killTime = datetime.datetime.now()  # Harvester marks the worker to kill, then kills it
    [(ok, detail)] = sweeper.kill_workers([ws])
    assert (ok, detail) == (True, f"cancelled: scancel {job_id}")
    assert slurm.wait_job(job_id) == "CANCELLED"
    # the endpoint fails the task once it has lost the job's manager (HTEX's heartbeat
    # threshold, 120 s); a worker Harvester asked to kill that fails was cancelled
    [(status, diag)] = wait_status(monitor, [ws], ST_CANCELLED, timeout=240)
    assert status == ST_CANCELLED and diag.startswith("killed by Harvester: "), diag
    assert os.environ["SLURM_CONF"] == str(slurm.conf)
