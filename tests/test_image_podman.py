"""Image mode for real: an endpoint written from inside the site-agent image by real podman, whose
worker pool the real engine (in this process, on the host) starts inside that same image.

Needs the built image: ``SITE_AGENT_TEST_IMAGE=localhost/site-agent:latest`` (``.ci/image.sh``
builds it and runs this file); skipped without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import uuid

import pytest

from siteagent.endpoint.engine import EngineExecutor
from siteagent.endpoint.validate import validate_endpoint
from siteagent.image import RunningImage, detect
from siteagent.pilot.report import read_report

IMAGE = os.environ.get("SITE_AGENT_TEST_IMAGE", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not IMAGE or shutil.which("podman") is None,
        reason="needs podman and SITE_AGENT_TEST_IMAGE (the image .ci/image.sh builds)",
    ),
]


def podman(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120, **kw)


def containers_of(label: str) -> list[str]:
    r = podman("ps", "-a", "-q", "--filter", f"ancestor={IMAGE}", "--filter", f"volume={label}")
    return r.stdout.split()


def test_endpoint_written_in_the_image_runs_its_workers_in_the_image(tmp_path):
    ep = tmp_path / "ep"
    ep.mkdir()
    uid = f"{os.getuid()}:{os.getgid()}"
    # install from inside the image, as the calling user with a writable HOME (as apptainer runs)
    r = podman(
        "run", "--rm", "--user", uid, "-e", "HOME=/tmp", "-v", f"{tmp_path}:{tmp_path}",
        IMAGE, "install", "--site", "local", "--endpoint-dir", str(ep), "--image", IMAGE,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"note: workers start in the image: podman {IMAGE}" in r.stdout

    # the image is found from the environment too, and its absence is one line naming --image
    for env, want in (("SITE_AGENT_IMAGE=" + IMAGE, 0), ("SITE_AGENT_IMAGE=", 2)):
        r = podman(
            "run", "--rm", "--user", uid, "-e", "HOME=/tmp", "-e", env, "-v", f"{tmp_path}:{tmp_path}",
            IMAGE, "install", "--site", "local", "--endpoint-dir", str(tmp_path / "ep2"),
        )  # fmt: skip
        assert r.returncode == want, r.stdout + r.stderr
        if want:
            assert r.stderr == (
                "site-agent: error: --image: podman does not say which image site-agent runs "
                "from; name it (--image localhost/site-agent:latest)\n"
            )
        else:
            assert f"note: workers start in the image: podman {IMAGE}" in r.stdout
    shutil.rmtree(tmp_path / "ep2")

    result = validate_endpoint(ep, {})
    engine = result.config.engine
    assert (engine.container_type, engine.container_uri) == ("podman", IMAGE)
    options = engine.container_cmd_options.split()
    assert {"--rm", "--init", "--network=host", f"--user={uid}", f"--volume={ep}:{ep}"} <= set(
        options
    )
    assert f"--env=SITE_AGENT_IMAGE={IMAGE}" in options
    # the image's venv, which only the image has, is no longer put on PATH by worker_init
    assert "export PATH=" not in result.rendered_yaml

    ex = EngineExecutor(engine, ep / "run", endpoint_id=uuid.uuid4())
    try:
        assert ex.engine.executor.launch_cmd.startswith("podman run --rm --init --network=host")
        # Python functions on the worker: site-agent's own detection there names this image
        assert ex.submit(detect).result(timeout=180) == RunningImage("podman", IMAGE)
        paths = ex.submit(sysconfig.get_paths).result(timeout=60)
        assert paths["data"] == "/opt/site-agent/venv"  # the image's venv, not this one
        assert ex.submit(os.getuid).result(timeout=60) == os.getuid()

        from globus_compute_sdk import ShellFunction

        report = ep / "pilot.json"
        cmd = (
            f'"$SITE_AGENT_EXEC" -- site-agent pilot --site "$SITE_AGENT_SITE" --report {report} '
            "-- sh -c 'cat /opt/site-agent/IMAGE; echo site=$SITE_AGENT_SITE; ps -o comm= -p 1'"
        )
        res = ex.submit(ShellFunction(cmd, walltime=120)).result(timeout=180)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "site=local" in res.stdout and "site-agent, version" in res.stdout
        found = read_report(report)
        assert (found["reason"], found["exit_code"]) == ("finished", 0)
        assert found["image"] == {"runtime": "podman", "uri": IMAGE}
    finally:
        ex.shutdown()
    # the worker pool's container went with the engine (--rm)
    for _ in range(30):
        if not containers_of(str(ep)):
            break
        subprocess.run(["sleep", "1"])
    left = containers_of(str(ep))
    if left:
        podman("rm", "-f", *left)
    assert not left, f"worker containers left behind: {json.dumps(left)}"
