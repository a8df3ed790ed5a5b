"""`site-agent smoke-test` on a batch site: the preconditions for real (Globus token storage
in a temporary HOME), the submission through a stand-in Executor (the Globus cloud is not here)."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import globus_compute_sdk
import pytest

from siteagent.errors import ConfigError
from siteagent.harvester.backends import GlobusBackend
from siteagent.install import install
from siteagent.profiles import load_profile
from siteagent.smoke.site import NotReadyError, logged_in, run_site_smoke_test

from .standins.globus_compute.executor import StandinClient, StandinExecutor

PBS_STANDINS = Path(__file__).parent / "standins" / "pbs"
NOT_LOGGED_IN = (
    "site-agent: error: not logged in to Globus: run `globus-compute-endpoint login` on this "
    "login node (or set GLOBUS_COMPUTE_CLIENT_ID and GLOBUS_COMPUTE_CLIENT_SECRET), then retry\n"
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh HOME with no Globus tokens, for this process and for subprocesses."""
    h = tmp_path / "home"
    h.mkdir()
    env = {"HOME": str(h), "GLOBUS_COMPUTE_USER_DIR": ""}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("GLOBUS_COMPUTE_CLIENT_ID", "GLOBUS_COMPUTE_CLIENT_SECRET"):
        monkeypatch.delenv(key, raising=False)
    return env


def store_tokens(expires_in: int, refresh: bool = True) -> None:
    """Tokens as `globus-compute-endpoint login` leaves them, through globus_sdk's own storage."""
    from globus_compute_endpoint.auth import get_globus_app_with_scopes
    from globus_sdk.token_storage import TokenStorageData

    app = get_globus_app_with_scopes()
    data = {
        rs: TokenStorageData(
            resource_server=rs,
            identity_id="11111111-2222-3333-4444-555555555555",
            scope=" ".join(str(s) for s in scopes),
            access_token=f"access-{rs}",
            refresh_token=f"refresh-{rs}" if refresh else None,
            expires_at_seconds=int(time.time()) + expires_in,
            token_type="Bearer",
        )
        for rs, scopes in app._scope_requirements.items()
    }
    app.token_storage.token_storage.store_token_data_by_resource_server(data)


def test_not_logged_in_is_one_line_and_creates_no_token_db(run_cli, home):
    assert run_cli("install", "--site", "polaris", env=home).returncode == 0
    r = run_cli("smoke-test", "--site", "polaris", "--config", '{"account": "hep"}', env=home)
    assert r.returncode == 1
    assert r.stderr == NOT_LOGGED_IN
    assert not (Path(home["HOME"]) / ".globus_compute" / "storage.db").exists()


def test_not_installed_says_what_to_run(run_cli, home):
    r = run_cli("smoke-test", "--site", "frontier", "--config", '{"account": "hep"}', env=home)
    assert r.returncode == 1
    assert r.stderr.startswith("site-agent: error: endpoint 'frontier-panda' is not installed in ")
    assert "`site-agent install --site frontier`" in r.stderr and r.stderr.count("\n") == 1


def test_bad_config_is_exit_2_before_anything(run_cli, home):
    r = run_cli("smoke-test", "--site", "polaris", env=home)
    assert r.returncode == 2
    assert r.stderr == "site-agent: error: user_endpoint_config: account: is required\n"


def test_login_state_comes_from_the_sdk_token_storage(home, monkeypatch):
    assert logged_in() is False
    store_tokens(expires_in=-60, refresh=False)  # expired and no way to refresh
    assert logged_in() is False
    store_tokens(expires_in=3600)
    assert logged_in() is True
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_SECRET", "s")  # half a client identity
    with pytest.raises(NotReadyError, match="GLOBUS_COMPUTE_CLIENT_ID"):
        logged_in()


def test_logged_in_but_not_registered(run_cli, home):
    assert run_cli("install", "--site", "polaris", env=home).returncode == 0
    store_tokens(expires_in=3600)
    r = run_cli("smoke-test", "--site", "polaris", "--config", '{"account": "hep"}', env=home)
    assert r.returncode == 1
    assert "endpoint 'polaris-panda' has no id yet" in r.stderr
    assert "`globus-compute-endpoint start polaris-panda`" in r.stderr


def _polaris_here():
    """Polaris as data, minus what this machine cannot answer (internet, apptainer, FUSE,
    a grid proxy)."""
    return load_profile(
        "polaris",
        overrides={
            "check": {"targets": [], "scratch_dirs": []},
            "credentials": {"require": "none"},
            "container": {"runtime": "none"},
            "cvmfs": {"mode": "none"},
        },
    )


def test_submission_through_the_installed_endpoint(home, monkeypatch):
    monkeypatch.setenv("PATH", f"{PBS_STANDINS}:{os.environ['PATH']}")  # qstat, mpiexec
    profile = _polaris_here()
    report = install(profile)
    ep_id = str(uuid.uuid4())
    (report.directory / "endpoint.json").write_text(json.dumps({"endpoint_id": ep_id}))
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_ID", "c")
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_SECRET", "s")
    # the boundary: the SDK's Executor and Client (the cloud); Harvester's GlobusBackend as is
    monkeypatch.setattr(globus_compute_sdk, "Executor", StandinExecutor)
    StandinExecutor.submitted.clear()
    seen = []
    result = run_site_smoke_test(
        profile,
        report.directory,
        {"account": "hep", "ranks_per_node": 4},
        timeout=120,
        on_step=seen.append,
        backend_factory=lambda ep: GlobusBackend(ep, batch_size=8, client=StandinClient()),
    )
    assert [s.name for s in seen] == ["check", "connect", "python function", "shell command"]
    assert result.ok, [(s.name, s.detail) for s in result.steps]
    assert ep_id in seen[1].detail and '"account": "hep"' in seen[1].detail
    assert "4 ranks" in seen[3].detail
    assert [name for name, _ in StandinExecutor.submitted] == ["probe", "ShellFunction"]


def test_failed_check_stops_before_submitting(home, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")  # no qstat: the check fails
    profile = _polaris_here()
    report = install(profile)
    (report.directory / "endpoint.json").write_text(json.dumps({"endpoint_id": str(uuid.uuid4())}))
    store_tokens(expires_in=3600)

    def never(endpoint_id):
        raise AssertionError("must not connect after a failed check")

    result = run_site_smoke_test(
        profile, report.directory, {"account": "hep"}, backend_factory=never
    )
    assert not result.ok and [s.name for s in result.steps] == ["check"]
    assert "scheduler" in result.steps[0].detail


def test_bad_user_config_is_refused_before_the_preflight(home):
    with pytest.raises(ConfigError, match="account"):
        run_site_smoke_test(load_profile("polaris"), Path(home["HOME"]) / "nowhere", {})


def test_harvester_flag_is_for_the_in_process_engine_only(run_cli, home):
    r = run_cli(
        "smoke-test", "--site", "polaris", "--harvester", "--config", '{"account": "a"}', env=home
    )
    assert r.returncode == 2
    assert r.stderr.startswith("site-agent: error: --harvester: runs the plugins on the in-process")
    assert r.stderr.count("\n") == 1
