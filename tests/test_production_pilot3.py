"""What production queues need, seen by the real PanDA pilot (pilot3) under `site-agent pilot`
against the PanDA server stand-in on loopback (tests/pandaserver.py): the Harvester identity
and the job label in getJob, an ePIC queue's queuedata URL, a failed pilot's kept log."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .gridproxy import GridCA
from .pandaserver import PandaServer
from .pilotsite import clean_env, make_site

QUEUE = "SITEAGENT_TEST"


def own_pid_namespace() -> list[str]:
    """``unshare`` into a PID namespace of its own, where this machine allows it: whatever
    pilot3 does to "orphans" (the wrapper sets PILOT_NOKILL=1 as well) stays inside."""
    cmd = ["unshare", "--pid", "--fork", "--mount-proc"]
    try:
        ok = subprocess.run([*cmd, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok and os.environ.get("CI") == "true":
        pytest.fail("unshare --pid --fork --mount-proc does not work here")
    return cmd if ok else []


def run_pilot(
    site, server, pilot3_dir, tmp_path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, Path]:
    """`site-agent pilot` on the test site with the real pilot3, configured for ``server``,
    with a valid X509 proxy from a test CA, in a PID namespace of its own; returns the
    finished process and its report path."""
    config = server.pilot_config(
        pilot3_dir / "pilot" / "util" / "default.cfg", tmp_path / "pilot.cfg"
    )
    report = tmp_path / "r.json"
    proxy = GridCA().proxy(tmp_path / "x509up", 86400)
    env = {"HARVESTER_PILOT_CONFIG": str(config), "X509_USER_PROXY": str(proxy)} | (env or {})
    r = subprocess.run(
        [
            *own_pid_namespace(),
            *(sys.executable, "-m", "siteagent", "pilot", "--site", str(site.profile)),
            *("--pilot-dir", str(pilot3_dir), "--cvmfs", "none", "--report", str(report)),
            "--pilot-arg=--use-https=False",
            *args,
        ],
        env=clean_env(site.env | env),
        capture_output=True,
        text=True,
        timeout=400,
        cwd=site.root,
    )
    return r, report


@pytest.mark.slow
def test_real_pilot_sends_harvester_identity_and_asks_for_managed_jobs(tmp_path, pilot3_dir):
    """pilot3 itself, run as a Harvester worker's rank 3: getJob carries prodSourceLabel
    managed (the profile's default, pilot3's own is ptest) and the worker and Harvester ids,
    and it reports the worker started and finished (updateWorkerPilotStatus)."""
    with PandaServer(QUEUE) as server:
        site = make_site(
            tmp_path / "site",
            pilot_extra=f"  server_url: http://127.0.0.1\n  server_port: {server.port}\n",
        )
        state = tmp_path / "state"
        r, report = run_pilot(
            site, server, pilot3_dir, tmp_path,
            *("--harvester-id", "CERN_central_k8s", "--harvester-worker-id", "4242"),
            *("--walltime", "00:20:00", "--pilot-arg=--noproxyverification"),
            "--pilot-arg=--getjobrequests=1",
            env={"SITE_AGENT_STATE": str(state), "SITE_AGENT_RANK": "3",
                 "SITE_AGENT_WORKER_ID": "SITEAGENT_TEST-4242"},
        )  # fmt: skip
        get_job = server.calls("/server/panda/getJob")
        worker = server.calls("/server/panda/updateWorkerPilotStatus")
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    assert len(get_job) == 1, log[-3000:]
    assert get_job[0]["prodSourceLabel"] == "managed"
    assert (get_job[0]["harvester_id"], get_job[0]["worker_id"]) == ("CERN_central_k8s", "4242")
    assert [w["status"] for w in worker] == ["started", "finished"]
    assert {(w["harvesterID"], w["workerID"]) for w in worker} == {("CERN_central_k8s", "4242")}
    data = json.loads(report.read_text())
    assert data["pilot_id"] == "SITEAGENT_TEST-4242-r3" and data["rank"] == 3
    assert data["pilot"]["version"] == "3.7.0.36"
    assert data["logs"] is None  # finished: nothing kept
    # each rank's GTAG (the pilotID PanDA records with its jobs) is its own
    plan = subprocess.run(
        [sys.executable, "-m", "siteagent", "pilot", "--site", str(site.profile), "--dry-run",
         "--json", "--pilot-dir", str(pilot3_dir), "--harvester-id", "H1"],
        env=clean_env(site.env | {"SITE_AGENT_STATE": str(state), "SITE_AGENT_RANK": "3",
                                  "SITE_AGENT_WORKER_ID": "Q-7", "HARVESTER_WORKER_ID": "7"}),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    identity = next(x for x in json.loads(plan.stdout)["layers"] if x["name"] == "identity")
    assert identity["env"] == {
        "GTAG": f"file://{socket.gethostname().split('.')[0]}{state}/pilot-logs/Q-7-r3",
        "HARVESTER_ID": "H1", "PANDA_JSID": "harvester-H1", "HARVESTER_WORKER_ID": "7",
    }  # fmt: skip


@pytest.mark.slow
def test_real_epic_pilot_reads_its_queue_from_the_instances_queuedata_url(tmp_path, pilot3_dir):
    """An ePIC queue (pilot.instance: bnl) passes --queuedata-url and --storagedata-url, as the
    pilot wrapper's eic branch does; pilot3 reads the queue from there, not its default.cfg."""
    with PandaServer(QUEUE) as server:
        site = make_site(
            tmp_path / "site",
            pilot_extra=(
                f"  instance: bnl\n  server_url: http://127.0.0.1\n  server_port: {server.port}\n"
                f"  queuedata_url: {server.url}/bnl/cache/schedconfig/{{queue}}.all.json\n"
                f"  storagedata_url: {server.url}/cric/ddmendpoints.json\n"
            ),
        )
        r, _ = run_pilot(
            site, server, pilot3_dir, tmp_path,
            *("--walltime", "00:20:00", "--pilot-arg=--noproxyverification"),
            *("--pilot-arg=--noserverupdate", "--pilot-arg=--getjobrequests=1"),
        )  # fmt: skip
        gets = [path for method, path, _ in server.requests if method == "GET"]
        get_job = server.calls("/server/panda/getJob")
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    assert f"/bnl/cache/schedconfig/{QUEUE}.all.json" in gets, gets
    assert f"/cache/schedconfig/{QUEUE}.all.json" not in gets  # default.cfg's is not used
    assert len(get_job) == 1 and get_job[0]["prodSourceLabel"] == "managed"


@pytest.mark.slow
def test_failed_real_pilot_leaves_its_log_and_its_own_exit_code(tmp_path, pilot3_dir):
    """An offline queue: pilot3 stops before asking for work. Its exit code reaches the
    caller, and its pilotlog.txt outlives the workdir, its tail in the report."""
    with PandaServer(QUEUE, state="OFFLINE") as server:
        site = make_site(
            tmp_path / "site",
            pilot_extra=f"  server_url: http://127.0.0.1\n  server_port: {server.port}\n",
        )
        r, report = run_pilot(site, server, pilot3_dir, tmp_path, "--pilot-arg=--noserverupdate")
        assert server.calls("/server/panda/getJob") == []
    data = json.loads(report.read_text())
    log = r.stdout + r.stderr
    assert "specified queue is NOT ACTIVE" in log
    # pilot3 3.7.0.36 means to exit with PANDAQUEUENOTACTIVE but its wrap_up() then fails
    # (AttributeError on `trace.pilot`), so Python's 1 is what a monitor really sees
    assert r.returncode == data["exit_code"] == 1 and data["reason"] == "failed"
    kept = Path(data["logs"])
    assert "specified queue is NOT ACTIVE" in (kept / "pilotlog.txt").read_text()
    assert (
        data["log_tail"]
        and data["log_tail"] == ((kept / "pilotlog.txt").read_text().splitlines()[-20:])
    )
    assert "ended: failed, exit code 1" in (kept / "wrapper.log").read_text()
    assert list(site.scratch.iterdir()) == []  # the workdir itself is gone
