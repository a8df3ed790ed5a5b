"""Execution wrappers on a real Slurm: headers through sbatch, ranks through srun, scancel.

The test node declares 16 CPUs and 12 GPUs (see slurm_cluster.py); site GPU shapes run on it
with the site's binding, with scheduler/launcher switched to slurm/srun where the site uses PBS.
"""

from __future__ import annotations

import time

import psutil
import pytest
import yaml

from siteagent.profiles import load_profile, parse_profile
from siteagent.wrappers.render import render_batch_header

from .conftest import REPO
from .test_wrappers import PRINT_RANK, rank_lines, write_wrapper

pytestmark = pytest.mark.slurm


def on_test_node(site: str):
    """A site's node shape and binding, as a profile for the test Slurm node."""
    data = yaml.safe_load((REPO / "site-profiles" / f"{site}.yaml").read_text())
    data["directives"].pop("constraint", None)  # no node features on the test node
    over = {
        "scheduler": "slurm",
        "launcher": "srun",
        "node": {"cores": 16, "threads_per_core": 1, "reserved_cores": []},
        "limits": {"max_nodes": 1, "queues": ["debug"]},
        "directives": {"queue": "debug", "extra": [], "exclusive": False},
    }
    return parse_profile(yaml.safe_dump(data), f"{site}.yaml", overrides=over)


def submit(slurm, tmp_path, profile, request, body_args, name="pilot", prelude=""):
    w = write_wrapper(tmp_path, profile)
    header = render_batch_header(profile, request, name)
    script = tmp_path / f"{name}.sbatch"
    script.write_text(header + prelude + f"{w} {body_args} -- bash -c '{PRINT_RANK}'\n")
    out = tmp_path / f"{name}.out"
    r = slurm.run("sbatch", "--parsable", f"--output={out}", str(script), cwd=tmp_path)
    return r.stdout.strip().split(";")[0], out


@pytest.mark.parametrize(
    ("site", "ranks", "expect"),
    [
        ("polaris", 4, lambda r: {"cuda": str(3 - r)}),
        ("perlmutter", 4, lambda r: {"cuda": str(3 - r)}),
        # OLCF: the GCD closest to each rank's L3 region
        ("frontier", 8, lambda r: {"rocr": "45236701"[r], "cuda": "unset", "hip": "unset"}),
        ("aurora", 12, lambda r: {"ze": f"{r // 2}.{r % 2}", "zeh": "COMPOSITE"}),
    ],
)
def test_sbatch_header_and_srun_binding(slurm, tmp_path, site, ranks, expect):
    profile = on_test_node(site)
    request = {
        "account": "test",
        "ranks_per_node": ranks,
        "gpus_per_rank": 1,
        "cores_per_rank": 1,
        "walltime": "00:05:00",
    }
    header = render_batch_header(profile, request, "x")
    assert f"#SBATCH --ntasks-per-node={ranks}\n" in header
    assert f"#SBATCH --gpus-per-node={ranks}\n" in header
    body = f"--ranks-per-node {ranks} --gpus-per-rank 1 --cores-per-rank 1"
    job, out = submit(slurm, tmp_path, profile, request, body, name=f"bind-{site}")
    assert slurm.wait_job(job) == "COMPLETED", out.read_text() if out.exists() else ""
    got = rank_lines(out.read_text())
    assert sorted(got) == list(range(ranks))
    for rank, fields in got.items():
        assert fields["local"] == str(rank)
        for key, value in expect(rank).items():
            assert fields[key] == value, (rank, key, fields)


def test_frontier_unsets_cuda_and_hip_set_by_the_job(slurm, tmp_path):
    profile = on_test_node("frontier")
    request = {
        "account": "t",
        "ranks_per_node": 2,
        "gpus_per_rank": 4,
        "cores_per_rank": 1,
        "walltime": "00:05:00",
    }
    job, out = submit(
        slurm,
        tmp_path,
        profile,
        request,
        "--ranks-per-node 2 --gpus-per-rank 4 --cores-per-rank 1",
        name="stale",
        prelude="export CUDA_VISIBLE_DEVICES=0,1 HIP_VISIBLE_DEVICES=0\n",
    )
    assert slurm.wait_job(job) == "COMPLETED"
    got = rank_lines(out.read_text())
    assert {k: v["rocr"] for k, v in got.items()} == {0: "4,5,2,3", 1: "6,7,0,1"}
    assert all(v["cuda"] == "unset" and v["hip"] == "unset" for v in got.values())


def test_no_gpu_shape(slurm, tmp_path):
    profile = on_test_node("perlmutter")
    job, out = submit(
        slurm,
        tmp_path,
        profile,
        {"account": "t", "ranks_per_node": 2, "walltime": "00:05:00"},
        "--ranks-per-node 2 --cores-per-rank 1",
        name="nogpu",
    )
    assert slurm.wait_job(job) == "COMPLETED"
    got = rank_lines(out.read_text())
    assert sorted(got) == [0, 1]
    assert all(v["cuda"] == "unset" for v in got.values())


def test_scancel_is_reported_and_leaves_no_rank(slurm, tmp_path):
    profile = on_test_node("polaris")
    w = write_wrapper(tmp_path, profile)
    marker = tmp_path / "started"
    script = tmp_path / "long.sbatch"
    script.write_text(
        render_batch_header(
            profile, {"account": "t", "ranks_per_node": 2, "walltime": "00:05:00"}, "long"
        )
        + f"{w} --ranks-per-node 2 --cores-per-rank 1 -- bash -c "
        f"'touch {marker}.$SITE_AGENT_RANK; exec sleep 347'\n"
    )
    out = tmp_path / "long.out"
    job = slurm.run("sbatch", "--parsable", f"--output={out}", str(script)).stdout.strip()
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"started.{r}").exists() for r in (0, 1)):
        assert time.monotonic() < deadline, out.read_text() if out.exists() else "job never started"
        time.sleep(0.2)
    slurm.run("scancel", job)
    state = slurm.wait_job(job)
    assert state == "CANCELLED"
    deadline = time.monotonic() + 30
    while "received SIGTERM" not in out.read_text():
        assert time.monotonic() < deadline, out.read_text()
        time.sleep(0.2)
    assert "site-agent-exec: received SIGTERM, stopping 2 ranks" in out.read_text()
    # a duration no other test sleeps for: only this job's ranks can match
    sleepers = [
        p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "347"]
    ]
    assert sleepers == []


def test_real_profile_header_is_accepted_by_sbatch_test_only(slurm, tmp_path):
    """sbatch --test-only parses every directive of a real site's header (perlmutter's
    --module=cvmfs is a NERSC plugin option, so frontier's header is used)."""
    profile = load_profile("frontier")
    header = render_batch_header(
        profile,
        {"account": "hep1", "nodes": 1, "ranks_per_node": 8, "gpus_per_rank": 1},
        "frontier-pilot",
    )
    script = tmp_path / "f.sbatch"
    script.write_text(header + "true\n")
    r = slurm.run("sbatch", "--test-only", "--partition=debug", str(script), check=False)
    # the directives parse; only the partition/node shape of the real site is missing here
    assert "invalid option" not in r.stderr.lower() and "unrecognized" not in r.stderr.lower(), (
        r.stderr
    )
