"""`site-agent pilot --site perlmutter --container IMAGE` through real podman-hpc over real
podman: the pilot's binds, variables and GPU/CVMFS modules reach the payload, its exit code
and signals pass through, and nothing is left running after SIGTERM, SIGKILL or the walltime.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from .podman_site import PodmanUnavailable, start_podman_site, stop_podman_site

pytestmark = pytest.mark.podman
CVMFS_REPOS = ("atlas", "atlas-condb", "atlas-nightlies", "sft", "unpacked")


@pytest.fixture(scope="session")
def podman(tmp_path_factory):
    """The podman-hpc site; skips only where podman cannot run at all (fails in CI)."""
    try:
        site = start_podman_site(tmp_path_factory.mktemp("podman-hpc"))
    except PodmanUnavailable as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"podman-hpc must run in CI: {err}")
        pytest.skip(f"podman cannot run here: {err}")
    yield site
    stop_podman_site(site)


@pytest.fixture
def node(tmp_path, podman):
    """A Perlmutter compute node: 4 A100s (a fake /proc tree), native /cvmfs, SLURM_LOCALID."""
    gpus = tmp_path / "gpus"
    for i in range(4):
        (gpus / f"proc/driver/nvidia/gpus/0000:{i:02x}:00.0").mkdir(parents=True)
    cvmfs = tmp_path / "cvmfs"
    for repo in CVMFS_REPOS:
        (cvmfs / f"{repo}.cern.ch").mkdir(parents=True)
    (cvmfs / "atlas.cern.ch" / "marker").write_text("from the host\n")
    (tmp_path / "home").mkdir()
    scrub = ("SLURM_", "SITE_AGENT_", "PALS_", "PMI_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(scrub)}
    return (
        env
        | podman.env
        | {
            "HOME": str(tmp_path / "home"),
            "TMPDIR": str(tmp_path),
            "SITE_AGENT_GPU_ROOT": str(gpus),
            "SITE_AGENT_CVMFS_ROOT": str(cvmfs),
            "SLURM_LOCALID": "1",
            "SLURM_JOB_ID": "4242",
            "PYTHONUNBUFFERED": "1",
        }
    )


def pilot(node, report: Path, image: str, script: str, *opts: str) -> subprocess.Popen:
    """The pilot running ``sh -c script TOKEN`` (``proc.token``: the payload's $0, so its
    processes can be found inside the container and out)."""
    args = ["pilot", "--site", "perlmutter", "--container", image, "--report", str(report)]
    token = f"payload-{uuid.uuid4().hex[:12]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "siteagent", *args, *opts, "--", "sh", "-c", script, token],
        env=node, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    proc.token = token  # type: ignore[attr-defined]
    return proc


def wait_ready(proc: subprocess.Popen) -> None:
    """Until the payload inside the container prints `ready`."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "ready":
            return
    pytest.fail(f"the payload never started: {proc.wait()} {proc.stderr.read()}")


def leftovers(token: str) -> list[str]:
    """Processes whose command line carries ``token`` (the payload's, inside or outside)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if token in cmd:
            found.append(f"{p.pid} {cmd}")
    return found


def test_the_payload_runs_in_the_image_with_the_pilots_binds_variables_and_modules(
    podman, node, tmp_path
):
    report = tmp_path / "r.json"
    script = (
        'echo "gpu=$CUDA_VISIBLE_DEVICES enable_gpu=$ENABLE_GPU enable_cvmfs=$ENABLE_CVMFS '
        'job=$SLURM_JOB_ID nokill=$PILOT_NOKILL pwd=$(pwd) user=$USER"; '
        "cat /cvmfs/atlas.cern.ch/marker; ls /bin/busybox; exit 3"
    )
    proc = pilot(node, report, f"docker://{podman.image}", script)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err  # the payload's exit code is the pilot's
    data = json.loads(report.read_text())
    # the workdir has a random part (issue #11: nobody can plant it in advance)
    workdir = re.escape(f"{tmp_path}/site-agent-pilot-{data['pilot_id']}-") + "[0-9a-f]{16}"
    # Perlmutter: GPU = 3 - local rank; the gpu and cvmfs modules of podman-hpc are on
    assert re.search(
        f"gpu=2 enable_gpu=1 enable_cvmfs=1 job=4242 nokill=1 pwd={workdir} user=", out
    )
    assert "from the host" in out and "/bin/busybox" in out  # /cvmfs bound, the image's /bin
    assert (data["reason"], data["exit_code"]) == ("failed", 3)
    assert data["argv"][:4] == ["podman-hpc", "run", "--rm", "--init"]
    assert "--gpu" in data["argv"] and "--cvmfs" in data["argv"]
    assert data["argv"][data["argv"].index("--cvmfs") + 1] == podman.image  # docker:// dropped
    assert podman.containers() == []  # --rm


def test_the_pilots_credentials_identity_and_machinefeatures_reach_the_container(
    podman, node, tmp_path
):
    """podman passes no variable and binds no directory unasked: the proxy Harvester left
    outside the workdir, the Harvester ids, GTAG and $MACHINEFEATURES are all seen inside."""
    creds = tmp_path / "harvester-creds"
    creds.mkdir()
    (creds / "x509up").write_text("a proxy\n")
    node = node | {"X509_USER_PROXY": str(creds / "x509up"), "HARVESTER_WORKER_ID": "w7"}
    script = (
        'echo "proxy=$(cat "$X509_USER_PROXY") worker=$HARVESTER_WORKER_ID gtag=$GTAG '
        'end=$(cat "$MACHINEFEATURES/shutdowntime")"'
    )
    report = tmp_path / "r.json"
    proc = pilot(node, report, f"docker://{podman.image}", script, "--walltime", "00:30:00")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    data = json.loads(report.read_text())
    assert f"{creds}:{creds}" in data["argv"]
    found = re.search(r"proxy=a proxy worker=w7 gtag=file://\S+ end=(\d+)$", out, re.M)
    assert found, out
    assert abs(int(found[1]) - (time.time() + 1800)) < 120  # the job's end, 30 min from now


def test_sigterm_reaches_the_payload_in_the_container_and_nothing_is_left(podman, node, tmp_path):
    report = tmp_path / "r.json"
    script = 'trap "echo got-term; exit 42" TERM; echo ready; while :; do sleep 1; done'
    proc = pilot(node, report, podman.image, script, "--grace", "20")
    wait_ready(proc)
    assert leftovers(proc.token)  # the payload's shell, inside the container, is seen
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert "got-term" in out
    assert proc.returncode == 42
    data = json.loads(report.read_text())
    assert (data["reason"], data["received_signals"]) == ("signalled", ["SIGTERM"])
    assert podman.containers() == []
    assert leftovers(proc.token) == []


def test_a_payload_that_ignores_sigterm_is_killed_and_its_container_removed(podman, node, tmp_path):
    report = tmp_path / "r.json"
    script = 'trap "" TERM; echo ready; while :; do sleep 1; done'
    proc = pilot(node, report, podman.image, script, "--grace", "2")
    wait_ready(proc)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 30
    data = json.loads(report.read_text())
    assert data["reason"] == "signalled" and data["exit_code"] == 137
    teardown = next(e for e in data["layers"] if e["name"] == "container")["actions"][-1]
    assert teardown.startswith("podman-hpc rm --force --ignore --time 0 site-agent-")
    assert podman.containers() == []  # conmon outlived the killed podman; the teardown won
    assert leftovers(proc.token) == []


def test_the_walltime_stops_the_container(podman, node, tmp_path):
    report = tmp_path / "r.json"
    script = "echo ready; while :; do sleep 1; done"
    opts = ("--walltime", "00:00:04", "--margin", "1", "--grace", "5")
    proc = pilot(node, report, podman.image, script, *opts)
    _out, err = proc.communicate(timeout=60)
    data = json.loads(report.read_text())
    assert data["reason"] == "walltime", err
    assert data["exit_code"] == 143  # TERM reached sh through the container's init
    assert podman.containers() == []
    assert leftovers(proc.token) == []


def test_an_image_podman_hpc_cannot_take_is_one_line(node, tmp_path, run_cli):
    r = run_cli(
        "pilot", "--site", "perlmutter", "--container", "/images/x.sif", "--dry-run", "--",
        "true", env=node,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "site-agent: error: --container: '/images/x.sif' is not a registry image; podman-hpc "
        "takes a reference such as docker.io/library/ubuntu:22.04"
    ]


def test_check_asks_podman_hpc_the_way_it_answers(podman, monkeypatch):
    """podman-hpc has no --version: `check` asks `podman-hpc version` (podman's own)."""
    from siteagent.checks.local import check_container
    from siteagent.profiles import load_profile

    for key, value in podman.env.items():
        monkeypatch.setenv(key, value)
    r = check_container(load_profile("perlmutter"), 60)
    assert r.status == "pass", r
    assert r.reason.startswith("podman-hpc: ") and r.reason[len("podman-hpc: ") :][:1].isdigit()
