"""Issue #15 items 1-2: every "next step" install and uninstall print is a command that works
for the directory given, and the smoke-test line's --config is one the site accepts."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from siteagent.profiles import load_profile
from siteagent.userconfig import canonicalize


def next_steps(stdout: str) -> list[str]:
    """The indented lines after ``next steps:``."""
    lines = stdout.split("next steps:\n", 1)[1].splitlines()
    return [ln.strip() for ln in lines if ln.startswith("  ")]


def run_step(step: str, env: dict[str, str], cwd: Path, timeout: float = 120):
    """Run a printed step as a shell would (its ``VAR=value`` prefix included)."""
    return subprocess.run(
        ["bash", "-c", step],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return {"HOME": str(h), "GLOBUS_COMPUTE_USER_DIR": ""}


def _start_finds_endpoint(step: str, env: dict[str, str], cwd: Path) -> None:
    """``globus-compute-endpoint start NAME`` as printed gets past finding the endpoint's
    configuration (it then stops at the login, or as root at the missing contact email)."""
    r = run_step(step, env, cwd, timeout=60)
    out = r.stdout + r.stderr
    assert "Failed to find endpoint configuration" not in out, out
    assert "Failed to find or parse endpoint configuration" not in out, out


def test_install_elsewhere_prints_commands_that_find_the_endpoint(run_cli, home, tmp_path):
    ep = tmp_path / "eps" / "x"
    r = run_cli("install", "--site", "polaris", "--endpoint-dir", str(ep), env=home)
    assert r.returncode == 0, r.stderr
    steps = next_steps(r.stdout)
    assert len(steps) == 3, steps
    login, start, smoke = steps
    prefix = f"GLOBUS_COMPUTE_USER_DIR={ep.parent} "
    assert login.startswith(prefix) and login.endswith("globus-compute-endpoint login")
    assert start.startswith(prefix) and start.endswith("globus-compute-endpoint start x")
    _start_finds_endpoint(start, os.environ | home, tmp_path)
    words = shlex.split(smoke)
    assert words[0] == prefix.strip() and Path(words[1]).name == "site-agent"
    assert words[2] == "smoke-test"
    assert words[words.index("--endpoint-dir") + 1] == str(ep)
    canonicalize(load_profile("polaris"), json.loads(words[words.index("--config") + 1]))


def test_install_default_dir_needs_no_prefix(run_cli, home, tmp_path):
    r = run_cli("install", "--site", "frontier", env=home)
    assert r.returncode == 0, r.stderr
    _login, start, smoke = next_steps(r.stdout)
    assert "GLOBUS_COMPUTE_USER_DIR" not in r.stdout.split("next steps:")[1]
    assert start.endswith("globus-compute-endpoint start frontier-panda")
    _start_finds_endpoint(start, os.environ | home, tmp_path)
    assert "--endpoint-dir" not in smoke


def test_install_local_suggests_a_smoke_test_that_passes(run_cli, home, tmp_path):
    r = run_cli("install", "--site", "local", env=home)
    assert r.returncode == 0, r.stderr
    steps = next_steps(r.stdout)
    # no --config: local has no account; this venv's site-agent, by path when not on PATH
    assert shlex.split(steps[0])[1:] == ["smoke-test", "--site", "local"]
    assert Path(shlex.split(steps[0])[0]).name == "site-agent"
    smoke = run_step(steps[0], os.environ | home, tmp_path, timeout=300)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr


def test_uninstall_running_hint_names_the_directory(run_cli, tmp_path):
    ep = tmp_path / "ep"
    assert run_cli("install", "--site", "local", "--endpoint-dir", str(ep)).returncode == 0
    (ep / "daemon.pid").write_text(f"{os.getpid()}\n")  # a live process
    r = run_cli("uninstall", "--endpoint-dir", str(ep))
    assert r.returncode == 1
    assert f"GLOBUS_COMPUTE_USER_DIR={tmp_path} " in r.stderr
    assert "globus-compute-endpoint stop ep`" in r.stderr
