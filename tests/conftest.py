"""Shared fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .supervisor_child import is_subreaper, set_subreaper

REPO = Path(__file__).resolve().parents[1]
PROFILE_NAMES = ("local", "perlmutter", "polaris", "aurora", "frontier")


@pytest.fixture(autouse=True)
def never_a_subreaper():
    """Fails a test after which the pytest process is a child subreaper: it would adopt the
    orphans of later tests, and a Supervisor's leftover sweep run here would signal other
    tests' processes. Run the Supervisor with tests/supervisor_child.py instead."""
    yield
    if is_subreaper():
        set_subreaper(False)  # so the tests after this one are not blamed too
        pytest.fail(
            "the pytest process became a child subreaper: run the Supervisor (or anything "
            "that sweeps leftovers) in a child process (tests/supervisor_child.py)"
        )


@pytest.fixture
def run_cli(tmp_path):
    """Run the real console entry point in a subprocess; returns CompletedProcess."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
        full_env = os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {})
        return subprocess.run(
            [sys.executable, "-m", "siteagent", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=tmp_path,
        )

    return run


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A real one-node Slurm cluster (see slurm_cluster.py). Skips where Slurm cannot start,
    except in CI (CI=true), where that is an error: CI installs and must start it."""
    from .slurm_cluster import SlurmUnavailable, start_cluster, stop_cluster

    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    except SlurmUnavailable as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Slurm must start in CI: {err}")
        pytest.skip(f"Slurm cannot start here: {err}")
    yield cluster
    stop_cluster(cluster)


@pytest.fixture(scope="session")
def pilot3_dir() -> Path:
    """pilot3 with pilot.py, unpacked by scripts/get-panda-pilot.sh (CI runs it at install
    time: the wheel has no pilot.py and tests may not download)."""
    path = Path(os.environ.get("SITE_AGENT_TEST_PILOT_DIR") or REPO / ".cache" / "pilot3")
    if not (path / "pilot.py").is_file():
        msg = f"no pilot3 in {path}: run scripts/get-panda-pilot.sh {path}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def panda_stack():
    """The real PanDA server of scripts/panda-devstack.sh, up (see pandastack.py)."""
    from .pandastack import stack_session

    yield from stack_session()


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory):
    """``(engine directory, $SITE_AGENT_STATE)`` of a module's local-engine backends: the
    engine's workers inherit the variable, so worker records and pilot reports land in the
    test's directory; the backends are stopped and the variable restored afterwards."""
    from siteagent.harvester.backends import shutdown_backends

    state = tmp_path_factory.mktemp("state")
    old = os.environ.get("SITE_AGENT_STATE")
    os.environ["SITE_AGENT_STATE"] = str(state)
    yield tmp_path_factory.mktemp("engine"), state
    shutdown_backends()
    if old is None:
        os.environ.pop("SITE_AGENT_STATE", None)
    else:
        os.environ["SITE_AGENT_STATE"] = old
