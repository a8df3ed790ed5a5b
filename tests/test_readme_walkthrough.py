"""Issue #15: the README's Deploy commands for the local profile, run line by line in a fresh
HOME as a new site admin would (a real git clone of a bundle of this checkout, the real install
script, pip without an index, see offline_pip.py), and every "next step" they print run too."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO
from .offline_pip import offline_pip_env
from .test_install_script import _copy_checkout
from .test_next_steps import run_step


def local_block() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Deploy\n", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"\*\*This machine \(local profile\)\*\*.*?```bash\n(.*?)```", section, re.S)
    assert m, "README Deploy has no local-profile block"
    return [ln for ln in m[1].splitlines() if ln and not ln.startswith("#")]


def _bundle(tmp_path: Path, dest: Path) -> None:
    """``site-agent.bundle`` of this working tree, as the README says to make it."""
    src = _copy_checkout(tmp_path / "src").parents[1]
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(src)]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "checkout"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    subprocess.run([*git, "bundle", "create", str(dest), "HEAD"], check=True, capture_output=True)


def _next_steps(stdout: str) -> list[str]:
    steps = []
    for ln in stdout.split("next steps:\n", 1)[1].splitlines():
        if not ln.startswith("  "):
            break
        steps.append(ln.strip())
    return steps


@pytest.mark.slow
def test_local_deploy_walkthrough(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    _bundle(tmp_path, home / "site-agent.bundle")
    env = offline_pip_env() | {
        "HOME": str(home),
        "GLOBUS_COMPUTE_USER_DIR": "",
        "XDG_DATA_HOME": "",
    }
    # without an index the new venv takes its dependencies from this one (PYTHONPATH), so
    # their programs (globus-compute-endpoint, which the engine starts) are in this venv's bin
    env["PATH"] = os.pathsep.join([env.get("PATH", ""), str(Path(sys.executable).parent)])
    state: list[str] = []  # the block's cd and export, in effect for every later line

    def run(line: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return run_step("\n".join(["set -euo pipefail", *state, line]), env, home, timeout)

    lines = local_block()
    assert lines[0] == "git clone site-agent.bundle ~/site-agent && cd ~/site-agent"
    install_line = ""
    for line in lines:
        if "install-login-node.sh" in line and os.getuid() == 0:
            line += " --allow-root"  # CI runs as root; the script refuses root otherwise
        r = run(line)
        assert r.returncode == 0, (line, r.stdout, r.stderr)
        if line.startswith("git clone"):
            state.append("cd ~/site-agent")
        elif line.startswith("export "):
            state.append(line)
        elif "install-login-node.sh" in line:
            install_line = line
            _check_install_output(r.stdout, lines, home)
            _run_next_steps(_next_steps(r.stdout), run)
        elif line.startswith("site-agent uninstall"):
            again = run(line)
            assert again.returncode == 0 and again.stdout.startswith("nothing to uninstall")

    # item 10: a second run reports every step's state, pilot3 included
    pilot3 = home / ".local/share/site-agent/venv/pilot3"
    pilot3.mkdir()
    (pilot3 / "pilot.py").write_text("# pilot3\n")
    version = importlib.metadata.version("panda-pilot")
    (pilot3 / "PILOTVERSION").write_text(f"{version}\n")
    r = run(install_line)
    assert r.returncode == 0, r.stderr
    states = [ln.split()[0] for ln in r.stdout.splitlines()[:3]]
    assert states == ["unchanged", "unchanged", "unchanged"], r.stdout
    assert f"unchanged   {pilot3} (PanDA pilot3 {version})" in r.stdout


def _check_install_output(stdout: str, lines: list[str], home: Path) -> None:
    # item 10: pip's step is announced, and its duration said
    assert re.search(r"^pip         installing site-agent .* \.\.\.$", stdout, re.M), stdout
    assert re.search(r"^installed   site-agent \S+ source \S+ \(\d+ s\)$", stdout, re.M), stdout
    # the PATH line the script prints is the README's
    printed = stdout.split("add it to PATH with:\n", 1)[1].splitlines()[0].strip()
    readme = next(ln for ln in lines if ln.startswith("export PATH="))
    assert printed == readme.replace("$HOME", str(home), 1)


def _run_next_steps(steps: list[str], run) -> None:
    """Each printed step works as printed; the login (a browser) only as far as its --help."""
    assert len(steps) == 3, steps
    for step in steps:
        words = shlex.split(step)
        program = Path(words[0]).name
        if words[1:] == ["login"]:
            assert program == "globus-compute-endpoint"
            r = run(f"{step} --help")
            assert r.returncode == 0, r.stderr
        elif program == "globus-compute-endpoint":
            assert words[1:] == ["start", "site-agent-local"]
            r = run(step, timeout=120)
            out = r.stdout + r.stderr
            assert "Failed to find endpoint configuration" not in out, out
            assert "Failed to find or parse endpoint configuration" not in out, out
        else:
            assert program == "site-agent" and words[1:] == ["smoke-test", "--site", "local"]
            r = run(step)
            assert r.returncode == 0, r.stdout + r.stderr
            assert "smoke test passed on site 'local'" in r.stdout
