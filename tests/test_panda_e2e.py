"""The whole chain against a real PanDA server (scripts/panda-devstack.sh): a job submitted with
panda-client is fetched and run by real pilot3 under `site-agent pilot` (GPU binding, proxy and
report layers), started by the Harvester submitter through the real Globus Compute engine
(backend local-engine); the monitor follows the worker, the server the job.

pilot3 runs only through the wrapper, which sets PILOT_NOKILL=1.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from siteagent.harvester.backends import shutdown_backends
from siteagent.harvester.base import ST_FAILED, ST_FINISHED
from siteagent.harvester.monitor import GlobusComputeMonitor
from siteagent.harvester.registry import REGISTRY
from siteagent.harvester.submitter import GlobusComputeSubmitter

from .test_harvester import WorkSpec

pytestmark = [pytest.mark.panda, pytest.mark.slow]

# A local site with 4 NVIDIA GPUs (a fake /proc, SITE_AGENT_GPU_ROOT) and the dev stack's Apache
# as the compute nodes' HTTP proxy: pilot3 fetches job scripts only from its allow-listed hosts
# (http://pandaserver-doma.cern.ch:25080/trf/user), which the proxy serves from the stack.
PROFILE = """\
name: pandae2e
scheduler: local
launcher: none
endpoint:
  name: pandae2e
  address: 127.0.0.1
  max_blocks: 1
  init_blocks: 1
  strategy_period: 0.5
  max_workers_per_node: 4
limits: {{max_nodes: 1, max_walltime: "04:00:00"}}
node:
  cores: 4
  gpus: 4
  gpu_vendor: nvidia
  gpu_binding: {{variable: CUDA_VISIBLE_DEVICES, order: reverse}}
proxy:
  http: {proxy}
  https: {proxy}
  no_proxy: [localhost, 127.0.0.1]
  scope: compute
container: {{runtime: none}}
cvmfs: {{mode: none}}
environment:
  variables: {{TMPDIR: {scratch}}}
pilot:
  panda_queue: {queue}
  pilot_user: generic
  server_url: https://127.0.0.1
  server_port: {port}
"""

PILOT_ARGS = ["--noproxyverification", "--getjobrequests=1", "-j", "managed"]


@pytest.fixture(scope="module")
def harvester(panda_stack, pilot3_dir, tmp_path_factory):
    """Submitter and monitor for the dev stack's queue, and the worker state directory. The
    engine's workers inherit this process's environment: the pilot's certificates, CA
    directory, pilot3 and its configuration, the fake GPUs."""
    root = tmp_path_factory.mktemp("pandae2e")
    gpu_root = root / "gpuroot"
    for i in range(4):
        (gpu_root / f"proc/driver/nvidia/gpus/0000:{i:02x}:00.0").mkdir(parents=True)
    (root / "scratch").mkdir()
    profile = root / "pandae2e.yaml"
    port = re.search(r":(\d+)/", panda_stack.env["PANDA_URL_SSL"]).group(1)
    profile.write_text(
        PROFILE.format(
            proxy=panda_stack.env["PANDA_DEVSTACK_HTTP_PROXY"],
            scratch=root / "scratch",
            queue=panda_stack.queue,
            port=port,
        )
    )
    state = root / "state"
    env = {
        "SITE_AGENT_STATE": str(state),
        "SITE_AGENT_PILOT_DIR": str(pilot3_dir),
        "SITE_AGENT_GPU_ROOT": str(gpu_root),
        "HARVESTER_PILOT_CONFIG": panda_stack.pilot_config(pilot3_dir),
        "X509_USER_PROXY": panda_stack.env["X509_USER_PROXY"],
        "X509_CERT_DIR": panda_stack.env["X509_CERT_DIR"],
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)

    def plugins(**keys):
        keys = {
            "site": str(profile),
            "backend": "local-engine",
            "workdir": str(root / "engine"),
            "pandaQueue": panda_stack.queue,
            "gpusPerWorker": 2,
            "pilotArgs": PILOT_ARGS,
        } | keys
        return GlobusComputeSubmitter(**keys), GlobusComputeMonitor(**keys)

    yield plugins, state
    shutdown_backends()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@dataclass
class Run:
    """One Harvester worker: its PanDA job (None: no job for it), the monitor's last word,
    its pilot report and the pilot's output."""

    panda_id: int | None
    status: str
    diag: str
    report: dict
    output: str


def start_worker(plugins, worker_id: int, resource_type: str = "SCORE", **keys):
    submitter, monitor = plugins(**keys)
    ws = WorkSpec(workerID=worker_id, nCore=1, maxWalltime=1800, resourceType=resource_type)
    assert submitter.submit_workers([ws]) == [(True, "")]
    return ws, monitor


def wait_done(ws, monitor, timeout: float = 300) -> tuple[str, str]:
    end = time.monotonic() + timeout
    while True:
        ok, [(status, diag)] = monitor.check_workers([ws])
        assert ok, diag
        if status in (ST_FINISHED, ST_FAILED) or time.monotonic() > end:
            return status, diag
        time.sleep(0.5)


@pytest.fixture(scope="module")
def runs(panda_stack, harvester) -> dict[str, Run]:
    """The cases at once (pilot3 waits about two minutes before its final update of a failed
    job): a good job, then a failing one once the first pilot holds the first job (so each pilot
    gets the job meant for it), a pilot for the offline queue, and one for a resource type no job
    has (SCORE_HIMEM)."""
    plugins, state = harvester
    good = panda_stack.submit("world")
    assert panda_stack.job(good)["jobStatus"] == "activated"
    workers = {"good": (good, *start_worker(plugins, 1))}
    fetched = panda_stack.wait_job(good, ("starting", "running", "holding", "finished", "failed"))
    assert fetched["jobStatus"] != "activated", fetched
    bad = panda_stack.submit("fail", "7")
    workers["bad"] = (bad, *start_worker(plugins, 2))
    workers["offline"] = (
        None,
        *start_worker(plugins, 3, pandaQueue=panda_stack.offline_queue),
    )
    # one "no job" answer ends it (else pilot3 sleeps 60 s and asks again)
    no_job_args = [*PILOT_ARGS, "--getjobfailures=1"]
    workers["nojob"] = (None, *start_worker(plugins, 4, "SCORE_HIMEM", pilotArgs=no_job_args))
    out = {}
    for name, (panda_id, ws, monitor) in workers.items():
        status, diag = wait_done(ws, monitor)
        queue = panda_stack.offline_queue if name == "offline" else panda_stack.queue
        report = json.loads((state / "pilots" / f"{queue}-{ws.workerID}-r0.json").read_text())
        result = REGISTRY.get(ws.batchID).result()
        out[name] = Run(panda_id, status, diag, report, result.stdout + result.stderr)
    return out


def test_job_from_panda_client_is_finished_by_a_harvester_worker(panda_stack, runs):
    run = runs["good"]
    assert (run.status, run.diag) == (ST_FINISHED, ""), run.output[-3000:]
    assert (run.report["reason"], run.report["exit_code"]) == ("finished", 0)
    # the wrapper's layers: this rank's 2 of the 4 GPUs (reverse order), the site proxy
    assert run.report["gpus"]["set"] == {"CUDA_VISIBLE_DEVICES": "3,2"}
    layers = {layer["name"]: layer["summary"] for layer in run.report["layers"]}
    assert layers["proxy"] == "site proxy"
    argv = run.report["argv"]
    assert argv[argv.index("-q") + 1] == panda_stack.queue
    assert argv[argv.index("--resource-type") + 1] == "SCORE"
    # pilot3 fetched this job over HTTPS with the test user's certificate and CA directory
    assert f"'PandaID': {run.panda_id}," in run.output
    assert f"--capath {panda_stack.env['X509_CERT_DIR']}" in run.output
    assert "https://127.0.0.1:" in run.output and "/server/panda/getJob" in run.output
    # and the job script through the proxy layer's http_proxy (the stack's Apache)
    assert "main payload execution returned zero exit code" in run.output
    assert (
        '"GET http://pandaserver-doma.cern.ch:25080/trf/user/devstack-hello.sh HTTP/1.1" 200'
        in panda_stack.access_log.read_text()
    )
    # the server's Adder archived it as finished
    job = panda_stack.wait_job(run.panda_id, ("finished", "failed"))
    assert job["jobStatus"] == "finished", job
    assert (job["pilotErrorCode"], job["transExitCode"]) == (0, "0")


def test_failing_payload_ends_failed_in_panda_with_the_pilot_error_code(panda_stack, runs):
    run = runs["bad"]
    assert f"'PandaID': {run.panda_id}," in run.output
    job = panda_stack.wait_job(run.panda_id, ("finished", "failed"))
    assert job["jobStatus"] == "failed", job
    # pilot3's code for a failed payload (PAYLOADEXECUTIONFAILURE), with the payload's exit code
    assert (job["pilotErrorCode"], job["pilotErrorDiag"]) == (1305, "Failed to execute payload")
    assert job["transExitCode"] == "7", job
    # the pilot itself ran to its end: the worker is finished, the job failed
    assert (run.status, run.report["reason"], run.report["exit_code"]) == (
        ST_FINISHED,
        "finished",
        0,
    ), run.diag


def test_offline_queue_gives_the_pilot_own_exit_code(panda_stack, runs):
    run = runs["offline"]
    # the pilot read the queue's state from the stack and stopped before asking for a job
    assert "specified queue is NOT ACTIVE" in run.output
    assert "/server/panda/getJob" not in run.output
    # pilot3 3.7.0.36 means to exit with PANDAQUEUENOTACTIVE but its wrap_up() then fails
    # (AttributeError on `trace.pilot`), so Python's 1 is what the monitor sees
    assert run.status == ST_FAILED
    assert run.diag.startswith("exit 1"), run.diag
    assert (run.report["reason"], run.report["exit_code"]) == ("failed", 1)


def test_no_job_for_the_resource_type_ends_the_pilot_with_zero(panda_stack, runs):
    run = runs["nojob"]
    # pilot3 ends with 0 when its getjob requests are used up with "no job" (StatusCode 20)
    assert (run.status, run.diag) == (ST_FINISHED, ""), run.output[-3000:]
    assert "'StatusCode': 20" in run.output
    assert (run.report["reason"], run.report["exit_code"]) == ("finished", 0)
    argv = run.report["argv"]
    assert argv[:2] == ["python3", str(Path(os.environ["SITE_AGENT_PILOT_DIR"]) / "pilot.py")]
    # the wrapper's lifetime for pilot3: the worker's 30 minutes less margin (60 s) and grace (180 s)
    assert argv[argv.index("-l") + 1] == str(1800 - 60 - 180)
    # what the server was asked for: this queue and resource type, with the user's DN
    dispatcher = (panda_stack.state / "log" / "panda" / "panda-JobDispatcher.log").read_text()
    dn = panda_stack.env["PANDA_DEVSTACK_USER_DN"]
    assert any(
        f" {panda_stack.queue},nJobs=" in line
        and ",rt=SCORE_HIMEM," in line
        and f"DN={dn},role=True" in line
        for line in dispatcher.splitlines()
    ), dispatcher[-2000:]
