"""The real PanDA pilot (pilot3 from the panda-pilot package) run by `site-agent pilot` against
the PanDA server stand-in on loopback (tests/pandaserver.py)."""

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
def test_real_pilot_asks_for_a_job_and_exits_with_its_own_code(tmp_path, pilot3_dir):
    with PandaServer(QUEUE) as server:
        site = make_site(
            tmp_path / "site",
            pilot_extra=f"  server_url: http://127.0.0.1\n  server_port: {server.port}\n",
        )
        r, report = run_pilot(
            site,
            server,
            pilot3_dir,
            tmp_path,
            *("--walltime", "00:10:00", "--pilot-arg=--noproxyverification"),
            *("--pilot-arg=--noserverupdate", "--pilot-arg=--getjobrequests=1"),
        )
        get_job = server.calls("/server/panda/getJob")
    log = r.stdout + r.stderr
    # pilot3 ends with 0 when its getjob requests are used up with "no job" (StatusCode 20)
    assert r.returncode == 0, log[-3000:]
    assert "PanDA Pilot version" in log
    assert len(get_job) == 1, log[-3000:]
    assert get_job[0]["siteName"] == QUEUE and get_job[0]["resourceType"] == "SCORE"
    assert server.calls(f"/cache/schedconfig/{QUEUE}.all.json")
    data = json.loads(report.read_text())
    assert (data["reason"], data["exit_code"]) == ("finished", 0)
    pilot_argv = data["argv"]
    assert pilot_argv[:2] == ["python3", str(pilot3_dir / "pilot.py")]
    assert "-l" in pilot_argv and pilot_argv[pilot_argv.index("-l") + 1] == str(600 - 240)
    # the pilot worked in the per-pilot directory, which is gone now
    assert list(site.scratch.iterdir()) == []


@pytest.mark.slow
def test_real_pilot_for_an_offline_queue_fails_with_its_own_code(tmp_path, pilot3_dir):
    with PandaServer(QUEUE, state="OFFLINE") as server:
        site = make_site(
            tmp_path / "site",
            pilot_extra=f"  server_url: http://127.0.0.1\n  server_port: {server.port}\n",
        )
        r, report = run_pilot(site, server, pilot3_dir, tmp_path, "--pilot-arg=--noserverupdate")
        assert server.calls("/server/panda/getJob") == []
    data = json.loads(report.read_text())
    # the queue is not ACTIVE, so the pilot stops before asking for work; its exit code (not
    # ours) reaches the caller and the report
    log = r.stdout + r.stderr
    assert "specified queue is NOT ACTIVE" in log
    # pilot3 3.7.0.36 means to exit with PANDAQUEUENOTACTIVE but its wrap_up() then fails
    # (AttributeError on `trace.pilot`), so Python's 1 is what a monitor really sees
    assert "AttributeError" in log
    assert r.returncode == data["exit_code"] == 1
    assert data["reason"] == "failed"
    # the failed pilot's own log survives the workdir, its tail is in the report
    kept = Path(data["logs"])
    assert "specified queue is NOT ACTIVE" in (kept / "pilotlog.txt").read_text()
    assert any("NOT ACTIVE" in line or "AttributeError" in line for line in data["log_tail"])
    assert (kept / "wrapper.log").is_file()


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


TRF = "http://pandaserver-doma.cern.ch:25080/trf/user/hello.sh"  # a base URL pilot3 accepts
JOB = {
    "PandaID": 4242,
    "jobsetID": 1,
    "taskID": 1,
    "transformation": TRF,
    "jobPars": "world",
    "prodSourceLabel": "user",
    "swRelease": "",
    "homepackage": "",
    "inFiles": "",
    "outFiles": "",
    "logFile": "",
    "coreCount": 1,
    "attemptNr": 1,
    "maxCpuCount": 0,
    "minRamCount": 0,
    "maxDiskCount": 0,
}


@pytest.mark.slow
def test_real_pilot_runs_one_tiny_job(tmp_path, pilot3_dir):
    """The pilot gets a job, downloads its transform with curl through the site proxy (the
    proxy layer: the stand-in is also the proxy), runs it and reports it finished."""
    with PandaServer(QUEUE, jobs=[dict(JOB)]) as server:
        server.files[TRF] = b'#!/bin/sh\necho "hello $1" > hello.txt\n'
        site = make_site(
            tmp_path / "site",
            pilot_extra=f"  server_url: http://127.0.0.1\n  server_port: {server.port}\n",
        )
        site.profile.write_text(
            site.profile.read_text().replace("http://proxy.example.org:3128", server.url)
        )
        r, report = run_pilot(
            site,
            server,
            pilot3_dir,
            tmp_path,
            *("--pilot-arg=--noproxyverification", "--pilot-arg=--getjobrequests=1"),
        )
        updates = server.calls("/server/panda/updateJob")
        trf_downloads = [p for m, p, _ in server.requests if p == TRF]
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    assert trf_downloads == [TRF]  # through the proxy the wrapper set
    assert "main payload execution returned zero exit code" in log
    final = [u for u in updates if u.get("jobId") == "4242" and u.get("state") == "finished"]
    assert final, updates
    data = json.loads(report.read_text())
    assert (data["reason"], data["exit_code"]) == ("finished", 0)
    assert list(site.scratch.iterdir()) == []
