"""Push mode test parts: a pilot3 directory whose pilot.py runs the real pilot3 in a network
namespace of its own with no network at all, and a Harvester access point holding one job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .test_harvester import WorkSpec

QUEUE = "SITEAGENT_PUSH"
# the transformation pilot3 runs (generic user: ./<trf> <jobPars>); Harvester's preparator
# places it in the access point, pilot3 copies it from $HARVESTER_WORKDIR instead of curl
TRF_URL = "http://pandaserver-doma.cern.ch:25080/trf/user/siteagent-push.sh"
TRF = """#!/bin/sh
echo "payload on $(hostname): $*"
echo "network devices: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
code="$1"
echo "{\\"exitCode\\": $code, \\"exitMsg\\": \\"exit $code\\"}" > jobReport.json
echo "payload ends with $code" >&2
exit "$code"
"""

SHIM = """import os, sys
# the real pilot3, with no network at all (not even loopback) and its own PID namespace
os.execvp("unshare", ["unshare", "--net", "--pid", "--fork", "--mount-proc",
                      sys.executable, {real!r}, *sys.argv[1:]])
"""


def netless_pilot_dir(pilot3_dir: Path, into: Path) -> Path:
    """pilot3 (its package, version and user plug-ins) with a pilot.py that runs the real one
    under ``unshare --net --pid --fork --mount-proc``; skips where that cannot run."""
    probe = ["unshare", "--net", "--pid", "--fork", "--mount-proc", "true"]
    try:
        ok = subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail("unshare --net --pid --fork --mount-proc does not work here")
        pytest.skip("unshare --net --pid needs root here")
    into.mkdir(parents=True, exist_ok=True)
    (into / "pilot").symlink_to(pilot3_dir / "pilot")
    shutil.copy2(pilot3_dir / "PILOTVERSION", into / "PILOTVERSION")
    (into / "pilot.py").write_text(SHIM.format(real=str(pilot3_dir / "pilot.py")))
    assert sys.executable
    return into


def queuedata(queue: str = QUEUE) -> dict:
    return {
        "nickname": queue, "panda_resource": queue, "atlas_site": queue, "state": "ACTIVE",
        "status": "online", "maxtime": 3600, "corecount": 1, "catchall": "", "params": {},
        "acopytools": {}, "astorages": {}, "copytools": {}, "container_type": "",
        "container_options": "",
    }  # fmt: skip


def job(panda_id: int, exit_code: int) -> dict:
    """A job spec as Harvester's JobSpec.get_job_params gives it: the transformation runs
    ``siteagent-push.sh <exit_code>``; no input, no output, no log file to stage."""
    return {
        "PandaID": panda_id, "jobsetID": 1, "taskID": 77, "jobName": f"push-{panda_id}",
        "prodSourceLabel": "managed", "transformation": TRF_URL, "jobPars": str(exit_code),
        "inFiles": "", "outFiles": "", "logFile": "", "destinationDblock": "",
        "destinationSE": "", "realDatasets": "", "swRelease": "", "homepackage": "",
        "coreCount": 1, "GUID": "", "scopeLog": "", "logGUID": "", "scopeOut": "",
        "ddmEndPointOut": "", "computingSite": QUEUE,
    }  # fmt: skip


@dataclass
class JobSpec:
    """The JobSpec fields the submitter reads (pandaharvester is not installable here)."""

    PandaID: int
    jobParams: dict

    def get_job_params(self, strip: bool) -> dict:
        return dict(self.jobParams)


@dataclass
class PushWorkSpec(WorkSpec):
    accessPoint: str | None = None
    nodeID: str | None = None
    jobs: list | None = None

    def get_access_point(self) -> str | None:
        return self.accessPoint

    def get_jobspec_list(self) -> list | None:
        return self.jobs


def push_worker(root: Path, worker_id: int, panda_id: int, exit_code: int) -> PushWorkSpec:
    """A worker with one job and its access point as Harvester's messenger and preparator
    leave it: the transformation and the queue's data."""
    ap = root / f"ap-{worker_id}"
    ap.mkdir(parents=True)
    (ap / "siteagent-push.sh").write_text(TRF)
    (ap / "queuedata.json").write_text(json.dumps(queuedata()))
    return PushWorkSpec(
        workerID=worker_id,
        maxWalltime=900,
        accessPoint=str(ap),
        jobs=[JobSpec(panda_id, job(panda_id, exit_code))],
    )
