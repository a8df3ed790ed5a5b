"""Checks of this node: scheduler, GPUs, container runtime, cvmfsexec prerequisites, disk,
Python. Each returns a CheckResult and never raises."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from siteagent.checks.model import FAIL, PASS, SKIP, WARN, CheckResult
from siteagent.profiles import Profile
from siteagent.schedulers import scheduler_for

CONTAINER_BINARIES = {
    "apptainer": ("apptainer", "singularity"),
    "singularity": ("singularity", "apptainer"),
    "podman-hpc": ("podman-hpc",),
    "shifter": ("shifter",),
}


def _timed(name: str, fn: Callable[[], tuple[str, str, str]]) -> CheckResult:
    t0 = time.monotonic()
    try:
        status, reason, hint = fn()
    except Exception as err:  # a check must report, never crash the run
        status, reason, hint = FAIL, f"{type(err).__name__}: {err}", ""
    return CheckResult(
        name=name, status=status, seconds=time.monotonic() - t0, reason=reason, hint=hint
    )


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


Outcome = tuple[str, str, str]  # status, reason, hint


def check_scheduler(profile: Profile, timeout: float) -> CheckResult:
    return _timed("scheduler", partial(_scheduler, profile, timeout))


def _scheduler(profile: Profile, timeout: float) -> Outcome:
    probe = scheduler_for(profile).probe_command
    if probe is None:
        return SKIP, f"no batch scheduler on the {profile.scheduler} profile", ""
    if shutil.which(probe[0]) is None:
        return (
            FAIL,
            f"{probe[0]} not found on PATH",
            f"load the {profile.scheduler} module or run on a login node",
        )
    return _ask_scheduler(list(probe), timeout)


def _ask_scheduler(cmd: list[str], timeout: float) -> Outcome:
    """Run the scheduler's probe command: does its controller answer?"""
    tool = cmd[0]
    try:
        r = _run(cmd, timeout)
    except subprocess.TimeoutExpired:
        return (
            FAIL,
            f"{' '.join(cmd)} did not answer in {timeout:.0f}s",
            "the scheduler controller may be down",
        )
    if r.returncode != 0:
        err = (r.stderr or r.stdout).strip().splitlines()
        return (
            FAIL,
            f"{' '.join(cmd)} exited {r.returncode}: {err[0] if err else ''}",
            "is the scheduler up?",
        )
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    return PASS, f"{tool} answered ({len(lines)} lines)", ""


def check_gpus(profile: Profile, root: str = "/") -> CheckResult:
    return _timed("gpus", partial(_gpus, profile, root))


def _gpus(profile: Profile, root: str) -> Outcome:
    from siteagent.gpus import discover_gpus

    found = discover_gpus(root)
    node = profile.node
    if node.gpus == 0:
        return PASS, f"profile expects no GPU; found {found.count}", ""
    if found.count == 0:
        return (
            WARN,
            f"no GPU visible here; a {profile.name} compute node has {node.gpus} {node.gpu_vendor}",
            "expected on a login node; run the check on a compute node to verify",
        )
    if found.vendor != node.gpu_vendor or found.count != node.gpus:
        return (
            FAIL,
            f"found {found.count} {found.vendor} GPUs, profile says {node.gpus} {node.gpu_vendor}",
            "fix node.gpus / node.gpu_vendor in the profile",
        )
    return PASS, f"{found.count} {found.vendor} GPUs", ""


def check_container(profile: Profile, timeout: float) -> CheckResult:
    return _timed("container", partial(_container, profile, timeout))


def _container(profile: Profile, timeout: float) -> Outcome:
    runtime = profile.container.runtime
    if runtime == "none":
        return SKIP, "profile uses no container", ""
    for binary in CONTAINER_BINARIES[runtime]:
        path = shutil.which(binary)
        if path:
            return _runtime_version(binary, path, timeout)
    setup = "; ".join(profile.container.setup) or f"install {runtime}"
    return FAIL, f"{runtime} not found on PATH", f"try: {setup}"


def _runtime_version(binary: str, path: str, timeout: float) -> Outcome:
    """Ask the runtime found at ``path`` its version, each runtime its own way (podman-hpc
    has no --version, shifter only --help)."""
    from siteagent.pilot.layers.runtimes import RUNTIMES

    args = RUNTIMES[binary].version_args
    asked = " ".join((binary, *args))
    try:
        r = _run([path, *args], timeout)
    except subprocess.TimeoutExpired:
        return FAIL, f"{asked} did not answer", ""
    version = (r.stdout or r.stderr).strip().splitlines()
    if r.returncode != 0:
        return FAIL, f"{asked} exited {r.returncode}", (version or [""])[-1][:120]
    return PASS, f"{binary}: {version[0] if version else 'present'}", ""


def check_credentials(profile: Profile) -> CheckResult:
    """The X509 proxy and PanDA token the pilots get (pilot/layers/credentials.py), as this
    node sees them: present, private, and valid for ``credentials.min_lifetime`` more."""
    return _timed("credentials", partial(_credentials, profile))


def _credentials(profile: Profile) -> Outcome:
    from siteagent.pilot.layers.credentials import assess, find_credentials

    creds = find_credentials(profile.credentials, os.environ)
    if creds.require == "none":
        return SKIP, "credentials.require is none", ""
    good, problems = assess(creds)
    hint = "mode 0600 files where the profile's credentials section says (README: Credentials)"
    if problems:
        return FAIL, "; ".join(problems), hint
    return PASS, "; ".join(good.values()), ""


def check_cvmfs(profile: Profile, timeout: float) -> CheckResult:
    return _timed("cvmfs", partial(_cvmfs, profile, timeout))


def _cvmfs(profile: Profile, timeout: float) -> Outcome:
    mode = profile.cvmfs.mode
    if mode == "none":
        return SKIP, "profile uses no CVMFS", ""
    if mode == "native":
        return _native_cvmfs(profile.cvmfs.repositories[:1])
    return _cvmfsexec(profile, timeout)


def _native_cvmfs(repos: Sequence[str]) -> Outcome:
    for repo in repos:
        if not os.path.isdir(f"/cvmfs/{repo}"):
            return (
                WARN,
                f"/cvmfs/{repo} not mounted here",
                "native CVMFS is on compute nodes (Perlmutter: #SBATCH --module=cvmfs)",
            )
    return PASS, "native /cvmfs present", ""


def _cvmfsexec(profile: Profile, timeout: float) -> Outcome:
    """cvmfsexec, /dev/fuse and unprivileged user namespaces, which cvmfsexec needs."""
    problems = [*_cvmfsexec_missing(profile), *_fuse_problems(), *_userns_problems(timeout)]
    if not problems:
        return PASS, "cvmfsexec, /dev/fuse and user namespaces available", ""
    hint = (
        "cvmfsexec needs /dev/fuse and unprivileged user namespaces "
        "(sysctl user.max_user_namespaces > 0)"
    )
    if problems[0].startswith("no cvmfsexec"):
        hint = _provision_hint(profile)
    return FAIL, "cvmfsexec cannot run: " + "; ".join(problems), hint


def _fuse_problems() -> list[str]:
    if not os.path.exists("/dev/fuse"):
        return ["/dev/fuse missing"]
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return ["/dev/fuse not read-writable"]
    return []


def _userns_problems(timeout: float) -> list[str]:
    if shutil.which("unshare") is None:
        return ["unshare not found"]
    try:
        r = _run(["unshare", "-rU", "true"], timeout)
    except subprocess.TimeoutExpired:
        return ["unshare hung"]
    if r.returncode != 0:
        return [f"unprivileged user namespaces refused ({r.stderr.strip()[:80]})"]
    return []


def check_disk(path: Path, min_free_gb: float, label: str, must_exist: bool = False) -> CheckResult:
    """Free space and inodes at ``path`` (or its nearest existing parent: the endpoint
    directory may not exist yet); ``must_exist``: a missing ``path`` is a warning."""
    return _timed(f"disk {label}", partial(_disk, path, min_free_gb, must_exist))


def _disk(path: Path, min_free_gb: float, must_exist: bool) -> Outcome:
    probe = _nearest_existing(Path(path).expanduser())
    if must_exist and probe != Path(path).expanduser():
        return (
            WARN,
            f"{path} does not exist on this node (nearest existing: {probe})",
            "fix the profile's check.scratch_dirs, or check that the file system is mounted",
        )
    return _space(probe, min_free_gb)


def _space(probe: Path, min_free_gb: float) -> Outcome:
    """Free space (at least ``min_free_gb``) and inodes at the existing directory ``probe``."""
    st = os.statvfs(probe)
    free_gb = st.f_bavail * st.f_frsize / 2**30
    free_inodes = st.f_favail
    if free_gb < min_free_gb:
        return (
            FAIL,
            f"{free_gb:.1f} GB free at {probe}, need {min_free_gb:g}",
            "free space or point the profile's check.scratch_dirs elsewhere",
        )
    if st.f_files and free_inodes < 10000:
        return (
            FAIL,
            f"only {free_inodes} inodes free at {probe}",
            "remove small files (old task dirs, logs)",
        )
    return PASS, f"{free_gb:.1f} GB and {free_inodes} inodes free at {probe}", ""


def _nearest_existing(path: Path) -> Path:
    """``path``, or its nearest parent that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_python() -> CheckResult:
    return _timed("python", _python)


def _python() -> Outcome:
    v = sys.version_info
    if v < (3, 11):
        return FAIL, f"Python {v.major}.{v.minor}", "site-agent needs Python 3.11+"
    return PASS, f"Python {v.major}.{v.minor}.{v.micro}", ""


def _cvmfsexec_missing(profile: Profile) -> list[str]:
    """``no cvmfsexec in DIR`` where the pilot will look for it, else nothing."""
    from siteagent.cvmfsexec import status

    found = status(profile)
    return [] if found.present else [f"no cvmfsexec in {found.directory}"]


def _provision_hint(profile: Profile) -> str:
    from siteagent.cvmfsexec import provision_commands, shell_text, status

    commands = provision_commands(profile, status(profile).directory)
    return f"site-agent install --site {profile.name} --cvmfsexec, or run: {shell_text(commands)}"
