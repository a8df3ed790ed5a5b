"""site-agent sweep on the test Slurm cluster: each shape's runs go to its own user endpoint,
whose SlurmProvider submits a batch job with sbatch; ranks start through srun and the pilot
wrapper; the queue wait comes from Slurm."""

from __future__ import annotations

import pytest

from siteagent.sweep.run import SweepOptions, execute, prepare

from .test_harvester_slurm import site  # noqa: F401  (Perlmutter's shape on the test node)
from .test_sweep_engine import PAYLOADS

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_two_shapes_as_slurm_jobs(site, slurm, tmp_path):  # noqa: F811
    keys, _state = site
    opts = SweepOptions(
        site=keys["site"],
        payload=f"python3 {PAYLOADS / 'split_work.py'} 400000",
        grid=["ranks_per_node=1,2"],
        config={"gpus_per_rank": 1, "walltime": "00:10:00"},
        repetitions=2,
        backend="engine",
        results=tmp_path / "r.jsonl",
        workdir=tmp_path / "engine",
    )
    outcome = execute(prepare(opts))
    records = outcome.summary.records
    assert len(records) == 4 and all(r["ok"] for r in records), [
        (r["error"], r["ranks"], r["exit_code"]) for r in records
    ]
    jobs = {}
    for r in records:
        assert r["job_id"] and r["queue_wait_s"] is not None and r["queue_wait_s"] >= 0
        jobs.setdefault(r["config"]["ranks_per_node"], set()).add(r["job_id"])
        assert [k["reason"] for k in r["ranks"]] == ["finished"] * r["config"]["ranks_per_node"]
        assert r["layers"]["payload"] > 0 and r["metrics"]["items"] == 400000
    # one batch job per shape (its user endpoint's block), released after its last run
    assert len(jobs[1]) == 1 and len(jobs[2]) == 1 and jobs[1] != jobs[2]
    for job in jobs[1] | jobs[2]:
        assert slurm.wait_job(job) in ("CANCELLED", "COMPLETED")
    assert [e.rank for e in outcome.ranked] == [1, 2]
    assert outcome.best.value == min(e.value for e in outcome.ranked)
