"""scripts/install-login-node.sh: a real venv and a real pip install from a copy of this
checkout (dependencies from this venv, see offline_pip.py), run twice: the second run changes
nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO
from .offline_pip import offline_pip_env

SCRIPT = REPO / "scripts" / "install-login-node.sh"
CHECKOUT_PARTS = ("pyproject.toml", "README.md", "agent", "site-profiles", "cvmfs", "scripts")


def _copy_checkout(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    dest.mkdir()
    for part in CHECKOUT_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore)
        else:
            shutil.copy2(src, dest / part)
    return dest / "scripts" / "install-login-node.sh"


def _run(script: Path, *args: str, home: Path, timeout: float = 300):
    env = offline_pip_env() | {
        "HOME": str(home),
        "GLOBUS_COMPUTE_USER_DIR": "",
        "XDG_DATA_HOME": "",
    }
    return subprocess.run(
        ["bash", str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=home,
    )


def _snapshot(*roots: Path) -> dict[str, tuple[int, int, str]]:
    """(mtime, mode, sha256) of every file and (mtime, mode) of every directory."""
    out = {}
    for root in roots:
        for p in [root, *root.rglob("*")]:
            st = p.lstat()
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            out[str(p)] = (st.st_mtime_ns, stat.S_IMODE(st.st_mode), digest)
    return out


@pytest.mark.slow
def test_install_twice_second_run_changes_nothing(tmp_path):
    script = _copy_checkout(tmp_path / "checkout")
    home = tmp_path / "home"
    home.mkdir()
    prefix = tmp_path / "prefix"
    args = ("--site", "polaris", "--prefix", str(prefix), "--allow-root")

    first = _run(script, *args, home=home)
    assert first.returncode == 0, first.stdout + first.stderr
    venv = prefix / "venv"
    ep = home / ".globus_compute" / "polaris-panda"
    assert f"created     {venv}" in first.stdout
    assert "installed   site-agent " in first.stdout
    assert f"created     {ep / 'config.yaml'}" in first.stdout
    # (here globus-compute-endpoint comes from PYTHONPATH, so without its venv bin/ path)
    assert "globus-compute-endpoint login\n" in first.stdout
    assert "globus-compute-endpoint start polaris-panda\n" in first.stdout
    assert f'export PATH="{venv}/bin:$PATH"' in first.stdout
    # no package index here: pilot3 cannot be fetched, which is said, and the install goes on
    assert "warning: could not fetch PanDA pilot3" in first.stderr
    assert "note: no PanDA pilot3 found" in first.stdout
    # a real, non-editable install of this checkout, with the profiles inside the package
    out = subprocess.run(
        [venv / "bin" / "site-agent", "profiles", "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=offline_pip_env(),
    )
    assert '"name": "frontier"' in out.stdout and str(tmp_path / "checkout") not in out.stdout
    # everything written is the user's; secrets and directories owner-only
    for p in [prefix, *prefix.rglob("*"), *ep.parent.rglob("*")]:
        assert p.lstat().st_uid == os.getuid(), p
    assert stat.S_IMODE(prefix.stat().st_mode) == 0o700
    assert stat.S_IMODE((ep / "user_environment.yaml").stat().st_mode) == 0o600
    assert stat.S_IMODE((ep / "cvmfs" / "default.local").stat().st_mode) == 0o600

    before = _snapshot(prefix, ep.parent)
    second = _run(script, *args, home=home)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _snapshot(prefix, ep.parent) == before
    assert f"unchanged   {venv}" in second.stdout
    assert "unchanged   site-agent " in second.stdout
    assert f"endpoint 'polaris-panda' unchanged in {ep}" in second.stdout
    assert not any(s in second.stdout for s in ("created", "installed  ", "updated"))

    # an edited endpoint file survives a re-run; a changed source is reinstalled
    (ep / "config.yaml").write_text((ep / "config.yaml").read_text() + "# site admin edit\n")
    init = script.parents[1] / "agent" / "siteagent" / "__init__.py"
    init.write_text(init.read_text() + "# changed\n")
    third = _run(script, *args, home=home)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "installed   site-agent " in third.stdout
    assert f"kept-edited {ep / 'config.yaml'}" in third.stdout
    assert "# site admin edit" in (ep / "config.yaml").read_text()
    installed = next(venv.glob("lib/python*/site-packages/siteagent/__init__.py"))
    assert installed.read_text().endswith("# changed\n")

    # a pilot3 release given by the admin reaches the workers through worker_init
    pilot3 = tmp_path / "pilot3"
    pilot3.mkdir()
    (pilot3 / "pilot.py").write_text("# pilot3\n")
    fourth = _run(script, *args, "--pilot-dir", str(pilot3), home=home)
    assert fourth.returncode == 0, fourth.stdout + fourth.stderr
    assert f"updated     {ep / 'user_config_template.yaml.j2'}" in fourth.stdout
    template = (ep / "user_config_template.yaml.j2").read_text()
    assert f"export SITE_AGENT_PILOT_DIR={pilot3}\n" in template
    assert "could not fetch" not in fourth.stderr
    bad = _run(script, *args, "--pilot-dir", str(tmp_path), home=home)
    assert bad.returncode == 2
    assert (
        bad.stderr.strip()
        == f"install-login-node.sh: error: --pilot-dir: no pilot.py in {tmp_path}"
    )


@pytest.mark.skipif(os.getuid() != 0, reason="the refusal needs root")
def test_refuses_root_without_allow_root(tmp_path):
    r = _run(SCRIPT, "--site", "polaris", "--prefix", str(tmp_path / "p"), home=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("install-login-node.sh: error: refusing to run as root")
    assert "--allow-root" in r.stderr and not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--site is required"),
        (("--site",), "--site needs a value"),
        (("--site", "polaris", "--bogus"), "unknown argument '--bogus'"),
        (("--site", "pol aris"), "--site: 'pol aris' has characters"),
        (("--site", "-x"), "--site: '-x' has characters"),
        (("--site", "polaris", "--prefix", "/tmp/a;rm"), "--prefix: '/tmp/a;rm' has characters"),
        (("--site", "polaris", "--python", "no-such-python3"), "--python: 'no-such-python3'"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, args, message):
    r = _run(SCRIPT, "--allow-root", *args, home=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith(f"install-login-node.sh: error: {message}"), r.stderr
    assert r.stderr.count("\n") == 1 and r.stdout == ""


def test_script_is_strict_bash():
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    assert os.access(SCRIPT, os.X_OK)
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
