"""The Containerfile: its instructions, and its install steps run for real in a fresh venv."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from siteagent import __version__

from .conftest import REPO
from .offline_pip import offline_pip_env

CONTAINERFILE = REPO / "Containerfile"


def parse(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "Containerfile ends inside a continued line"
    return out


def env_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in instructions:
        if word == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = expand(value, env)
    return env


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m[1], m[0]), value)


def labels(instructions: list[tuple[str, str]]) -> dict[str, str]:
    out = {}
    for word, args in instructions:
        if word == "LABEL":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                out[key] = value
    return out


@pytest.fixture(scope="module")
def instructions():
    return parse(CONTAINERFILE.read_text())


def test_instructions_are_known_and_base_is_small(instructions):
    known = {"FROM", "LABEL", "ENV", "ARG", "COPY", "RUN", "USER", "WORKDIR", "ENTRYPOINT", "CMD"}
    assert {w for w, _ in instructions} <= known
    # the base is a build argument (a site's mirror, or CI's stand-in), python:3.11-slim by default
    assert instructions[0][0] == "ARG" and instructions[1] == ("FROM", "${BASE_IMAGE}")
    name, _, default = instructions[0][1].partition("=")
    assert name == "BASE_IMAGE"
    assert re.fullmatch(r"(docker\.io/library/)?python:3\.1[1-9]-slim", default)


def test_image_has_ps_for_parsl_and_the_pilot(instructions):
    """Parsl stops its worker pools with `ps -o pgid=`; slim bases have no ps."""
    apt = [args for w, args in instructions if w == "RUN" and "apt-get install" in args]
    assert len(apt) == 1 and "procps" in apt[0].split()
    assert "rm -rf /var/lib/apt/lists/*" in apt[0]


def test_every_copy_source_exists_and_lands_in_the_app_dir(instructions):
    env = env_of(instructions)
    copies = [shlex.split(args) for w, args in instructions if w == "COPY"]
    assert copies
    for *sources, dest in copies:
        assert expand(dest, env).startswith(env["SITE_AGENT_HOME"] + "/src/")
        for src in sources:
            assert not src.startswith("--"), f"COPY option {src} not expected"
            assert (REPO / src).exists(), f"COPY source {src} is not in the repository"
    copied = {s.rstrip("/") for *sources, _ in copies for s in sources}
    # what pyproject's wheel build needs (force-include of profiles and cvmfs) is all there
    assert {"pyproject.toml", "README.md", "agent", "site-profiles", "cvmfs", "scripts"} <= copied


def test_entrypoint_user_and_labels(instructions):
    entry = [args for w, args in instructions if w == "ENTRYPOINT"]
    assert len(entry) == 1 and json.loads(entry[0]) == ["/usr/local/bin/site-agent-entrypoint"]
    # the entrypoint is the repository's script, installed by a RUN step
    runs = " ".join(args for w, args in instructions if w == "RUN")
    assert 'scripts/image-entrypoint.sh" /usr/local/bin/site-agent-entrypoint' in runs
    assert (REPO / "scripts" / "image-entrypoint.sh").stat().st_mode & 0o111
    users = [args for w, args in instructions if w == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    # the last USER comes after every RUN: nothing runs as root at run time
    last_user = max(i for i, (w, _) in enumerate(instructions) if w == "USER")
    assert all(i < last_user for i, (w, _) in enumerate(instructions) if w == "RUN")
    lab = labels(instructions)
    assert lab["org.opencontainers.image.version"] == __version__
    assert lab["org.opencontainers.image.title"] == "site-agent"


@pytest.mark.slow
def test_install_steps_of_the_containerfile_work_in_a_fresh_venv(instructions, tmp_path):
    """COPY as the build would, then run the RUN line that installs, with the app dir in
    tmp_path: a real venv and a real pip install of the copied sources (dependencies from this
    venv, see offline_pip.py)."""
    env = {"SITE_AGENT_HOME": str(tmp_path / "opt")}
    for word, args in instructions:
        if word != "COPY":
            continue
        *sources, dest = shlex.split(args)
        dest_path = Path(expand(dest, env))
        for src in sources:
            s = REPO / src
            if s.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(s, dest_path, dirs_exist_ok=True, ignore=ignore)
            else:
                dest_path.mkdir(parents=True, exist_ok=True)
                shutil.copy2(s, dest_path / s.name)
    # `python` in the image is 3.11; here it is the interpreter running the tests
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    run_env = offline_pip_env() | {
        "SITE_AGENT_HOME": env["SITE_AGENT_HOME"],
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
    }
    install_runs = [args for w, args in instructions if w == "RUN" and "pip" in args]
    assert len(install_runs) == 1
    r = subprocess.run(
        ["/bin/sh", "-c", install_runs[0]],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No broken requirements found." in r.stdout
    venv_bin = tmp_path / "opt" / "venv" / "bin"
    # a real (not editable) install into the fresh venv, which brings globus-compute-endpoint
    site = next((tmp_path / "opt" / "venv").glob("lib/python*/site-packages"))
    assert (site / "siteagent" / "site_profiles" / "polaris.yaml").is_file()
    meta = next(site.glob("site_agent-*.dist-info")) / "METADATA"
    assert "Requires-Dist: globus-compute-endpoint==4.19.0" in meta.read_text()
    out = subprocess.run(
        [venv_bin / "site-agent", "--version"],
        capture_output=True,
        text=True,
        check=True,
        env=run_env,
    )
    assert __version__ in out.stdout
    # the shipped profiles are inside the installed package, not read from the sources
    shutil.rmtree(tmp_path / "opt" / "src")
    out = subprocess.run(
        [venv_bin / "site-agent", "profiles", "show", "polaris", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=run_env,
    )
    assert json.loads(out.stdout)["scheduler"] == "pbspro"
