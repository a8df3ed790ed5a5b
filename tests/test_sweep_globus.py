"""site-agent sweep on a batch site: the installed endpoint through the Globus Compute SDK's
Executor, built the way Harvester's GlobusBackend builds it. The Globus cloud is not here, so
the SDK's Executor and Client are the strict stand-ins of test_site_smoke (they render each
point's user endpoint with globus-compute-endpoint's own code and run the task after its
worker_init, under a PBS-like job with the PALS mpiexec stand-in)."""

from __future__ import annotations

import json
import os
import uuid

import globus_compute_sdk
import pytest
import yaml

from siteagent.harvester.backends import GlobusBackend
from siteagent.install import install
from siteagent.profiles import deep_merge, load_profile
from siteagent.sweep.run import SweepOptions, execute, prepare

from .conftest import REPO
from .standins.globus_compute.executor import StandinClient, StandinExecutor
from .test_site_smoke import PBS_STANDINS, home  # noqa: F401

pytestmark = pytest.mark.slow

EVENTS = 'echo "{\\"events\\": $((10 * (SITE_AGENT_RANK + 1)))}"'


class RecordingExecutor(StandinExecutor):
    configs: list[dict] = []

    def __init__(self, *args, **kwargs):
        type(self).configs.append(kwargs.get("user_endpoint_config"))
        super().__init__(*args, **kwargs)


@pytest.fixture
def polaris_here(tmp_path):
    """Polaris as a profile file, minus what this machine cannot answer (apptainer, FUSE)."""
    data = yaml.safe_load((REPO / "site-profiles" / "polaris.yaml").read_text())
    data = deep_merge(
        data,
        {
            "container": {"runtime": "none"},
            "cvmfs": {"mode": "none", "repositories": []},
            "check": {"targets": []},
        },
    )
    path = tmp_path / "polaris.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_sweep_through_the_installed_endpoint(home, polaris_here, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("PATH", f"{PBS_STANDINS}:{os.environ['PATH']}")  # qstat, mpiexec
    profile = load_profile(str(polaris_here))
    report = install(profile)
    ep_id = str(uuid.uuid4())
    (report.directory / "endpoint.json").write_text(json.dumps({"endpoint_id": ep_id}))
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_ID", "c")
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_SECRET", "s")
    monkeypatch.setattr(globus_compute_sdk, "Executor", RecordingExecutor)
    RecordingExecutor.configs.clear()
    StandinExecutor.submitted.clear()
    opts = SweepOptions(
        site=str(polaris_here),
        payload=EVENTS,
        grid=["nodes=1,2", "ranks_per_node=1,4", "gpus_per_rank=1,2"],
        config={"account": "hep"},
        objective="throughput",
        metric="events",
        results=tmp_path / "r.jsonl",
    )
    plan = prepare(opts)
    # 4 ranks x 2 GPUs needs 8 of a Polaris node's 4: skipped, never submitted
    assert [s.values for s in plan.skipped] == [
        {"nodes": n, "ranks_per_node": 4, "gpus_per_rank": 2} for n in (1, 2)
    ]
    outcome = execute(
        plan, backend_factory=lambda ep: GlobusBackend(ep, batch_size=8, client=StandinClient())
    )
    records = outcome.summary.records
    assert all(r["ok"] for r in records), [r["error"] for r in records]
    # one SDK Executor per point, with the point's canonical config, one run_point task each
    assert RecordingExecutor.configs == [p.config for p in plan.points]
    assert [name for name, _ in StandinExecutor.submitted] == ["run_point"] * 6
    assert [r["job_id"] for r in records] == ["1.standin"] * 6
    # rank r prints 10 * (r + 1) events: 1, 2, 4 or 8 ranks
    assert sorted(r["metrics"]["events"] for r in records) == [10, 10, 30, 30, 100, 360]
    best = outcome.best
    assert (best.config["nodes"], best.config["ranks_per_node"], best.value) == (2, 4, 360)
    for r in records:  # every rank, on every node, went through the pilot wrapper
        ranks = r["config"]["nodes"] * r["config"]["ranks_per_node"]
        assert [k["rank"] for k in r["ranks"]] == list(range(ranks))
        assert {"plan", "gpu-binding", "payload"} <= set(r["layers"])
        assert r["node_hours"] == pytest.approx(
            r["config"]["nodes"] * r["seconds"] / 3600, abs=1e-8
        )


def test_batch_site_without_login_submits_nothing(run_cli, home, polaris_here, tmp_path):  # noqa: F811
    assert run_cli("install", "--site", str(polaris_here), env=home).returncode == 0
    r = run_cli(
        "sweep", "--site", str(polaris_here), "--payload", "true", "--grid", "ranks_per_node=1,2",
        "--config", '{"account": "hep"}', env=home,
    )  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1].startswith("site-agent: error: not logged in to Globus")
    assert not (
        r.cwd if hasattr(r, "cwd") else polaris_here.parent / "sweep-results.jsonl"
    ).exists()


def test_a_point_whose_user_endpoint_cannot_start_is_a_failed_run(
    home,  # noqa: F811
    polaris_here,
    monkeypatch,
    tmp_path,
):
    profile = load_profile(str(polaris_here))
    report = install(profile)
    (report.directory / "endpoint.json").write_text(json.dumps({"endpoint_id": str(uuid.uuid4())}))
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_ID", "c")
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_SECRET", "s")
    monkeypatch.setattr(globus_compute_sdk, "Executor", StandinExecutor)
    opts = SweepOptions(
        site=str(polaris_here),
        payload="true",
        grid=["ranks_per_node=1,2"],
        config={"account": "hep"},
        results=tmp_path / "r.jsonl",
    )
    # the service does not know this endpoint: the SDK Executor refuses each point
    unknown = str(uuid.uuid4())
    outcome = execute(
        prepare(opts),
        backend_factory=lambda ep: GlobusBackend(unknown, batch_size=8, client=StandinClient()),
    )
    errors = [r["error"] for r in outcome.summary.records]
    assert (
        errors == [f"submit: LookupError: stand-in Executor: no registered endpoint {unknown}"] * 2
    )
    assert outcome.best is None and [e.rank for e in outcome.ranked] == [None, None]
