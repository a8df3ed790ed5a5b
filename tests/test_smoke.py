"""`site-agent smoke-test`: the real engine, in-process, on the local profile."""

from __future__ import annotations

import json

import psutil
import pytest

pytestmark = pytest.mark.slow


def _worker_pools(marker: str) -> list[int]:
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "process_worker_pool" in cmd and marker in cmd:
            found.append(p.info["pid"])
    return found


def test_smoke_test_runs_work_on_real_workers(run_cli, tmp_path):
    workdir = tmp_path / "smoke"
    r = run_cli("smoke-test", "--json", "--harvester", "--workdir", str(workdir), "--timeout", "90")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True
    names = [s["name"] for s in report["steps"]]
    assert names[:2] == ["render endpoint", "render user endpoint"]
    assert "python function" in names and "shell command" in names and names[-1] == "stop engine"
    assert all(s["ok"] for s in report["steps"])
    harvester = next(s for s in report["steps"] if s["name"] == "harvester workers")
    assert "2 workers submitted and finished, 1 stopped by the sweeper" in harvester["detail"]
    # the engine really ran its provider: the LocalProvider submit script exists
    assert list((workdir / "run" / "submit_scripts").glob("*.sh"))
    assert _worker_pools(str(workdir)) == []


def test_smoke_test_human_output_and_bad_config(run_cli):
    r = run_cli("smoke-test", "--config", '{"nodes": 5}')
    assert r.returncode == 2 and r.stdout == ""  # bad input: refused before anything starts
    assert r.stderr == "site-agent: error: user_endpoint_config: nodes: must be <= 1\n"


def test_smoke_test_on_batch_site_uses_the_installed_endpoint(run_cli, tmp_path):
    # no in-process engine for pbspro: it goes to the installed endpoint, which is not there
    env = {"HOME": str(tmp_path), "GLOBUS_COMPUTE_USER_DIR": ""}
    r = run_cli(
        "smoke-test", "--site", "polaris", "--json", "--config", '{"account": "a"}', env=env
    )
    assert r.returncode == 1 and json.loads(r.stdout)["exit_code"] == 1  # --json: JSON errors
    assert r.stderr.startswith("site-agent: error: endpoint 'polaris-panda' is not installed")
