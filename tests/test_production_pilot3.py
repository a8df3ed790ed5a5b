"""What production queues need, seen by the real PanDA pilot (pilot3) under `site-agent pilot`
against the real PanDA server of scripts/panda-devstack.sh: the Harvester identity and the job
label in getJob (as the server records them), an ePIC queue's queuedata URL, a failed pilot's
kept log.

pilot3 runs only through the wrapper, which sets PILOT_NOKILL=1, and in a PID namespace of its
own. Its jobs and requests stay apart from tests/test_panda_e2e.py's: they are of a resource type
no other test uses.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .pilotsite import clean_env, make_site

pytestmark = [pytest.mark.panda, pytest.mark.slow]

HARVESTER_ID = "CERN_central_k8s"
# no other test submits jobs of this resource type or runs pilots for it
RESOURCE_TYPE = "MCORE_HIMEM"
NO_JOB_ARGS = ("--pilot-arg=--getjobrequests=1", "--pilot-arg=--getjobfailures=1")


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


def stack_site(stack, root: Path, pilot_extra: str = "", **kw):
    """The test site with pilot3 pointed at the stack's HTTPS server (its certificate's DN is
    a production DN there) and the stack's Apache as the compute nodes' proxy, which serves
    the job scripts of pilot3's allow-listed host."""
    port = re.search(r":(\d+)/", stack.env["PANDA_URL_SSL"]).group(1)
    return make_site(
        root,
        pilot_extra=f"  server_url: https://127.0.0.1\n  server_port: {port}\n{pilot_extra}",
        proxy=stack.env["PANDA_DEVSTACK_HTTP_PROXY"],
        **kw,
    )


def run_pilot(
    site, stack, pilot3_dir, tmp_path, queue: str, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, Path]:
    """`site-agent pilot` for ``queue`` on the test site with the real pilot3 configured for
    the stack (its queuedata URLs, the stack's user certificate and CA), in a PID namespace of
    its own; returns the finished process and its report path."""
    report = tmp_path / "r.json"
    env = {
        "HARVESTER_PILOT_CONFIG": stack.pilot_config(pilot3_dir),
        "X509_USER_PROXY": stack.env["X509_USER_PROXY"],
        "X509_CERT_DIR": stack.env["X509_CERT_DIR"],
    } | (env or {})
    r = subprocess.run(
        [
            *own_pid_namespace(),
            *(sys.executable, "-m", "siteagent", "pilot", "--site", str(site.profile)),
            *("--queue", queue, "--pilot-dir", str(pilot3_dir), "--cvmfs", "none"),
            *("--report", str(report)),
            "--pilot-arg=--noproxyverification",  # a certificate, not a proxy
            *args,
        ],
        env=clean_env(site.env | env),
        capture_output=True,
        text=True,
        timeout=400,
        cwd=site.root,
    )
    return r, report


def log_since(path: Path, offset: int) -> str:
    """What a log got after ``offset`` (all of it if it was rotated meanwhile)."""
    data = path.read_bytes()
    return data[offset if len(data) >= offset else 0 :].decode(errors="replace")


def get_job_lines(log: str, queue: str) -> list[str]:
    """The server's record of each getJob for ``queue``: all the request's parameters."""
    return [line for line in log.splitlines() if " getJob " in line and f" {queue},nJobs=" in line]


def clear_jobs(stack) -> None:
    """No job of RESOURCE_TYPE that an earlier run left behind is waiting in the queue."""
    stack.psql(
        "DELETE FROM doma_panda.jobsactive4 WHERE jobstatus = 'activated'"
        f" AND computingsite = '{stack.queue}' AND resource_type = '{RESOURCE_TYPE}'"
    )


def test_real_pilot_sends_harvester_identity_and_asks_for_managed_jobs(
    panda_stack, pilot3_dir, tmp_path
):
    """pilot3 itself, run as a Harvester worker's rank 3: getJob carries prodSourceLabel
    managed (the profile's default, pilot3's own is ptest) and the worker and Harvester ids,
    so the server gives it the managed job and maps it to the worker; and it reports the
    worker started and finished (updateWorkerPilotStatus)."""
    stack, queue = panda_stack, panda_stack.queue
    worker_id = random.randrange(10**6, 10**9)  # this run's own, in the tables and the logs
    stack.register_worker(HARVESTER_ID, worker_id, queue, RESOURCE_TYPE)
    clear_jobs(stack)
    panda_id = stack.submit("world", resource_type=RESOURCE_TYPE)  # prodSourceLabel managed
    site = stack_site(stack, tmp_path / "site")
    state = tmp_path / "state"
    try:
        r, report = run_pilot(
            site, stack, pilot3_dir, tmp_path, queue,
            *("--harvester-id", HARVESTER_ID, "--harvester-worker-id", str(worker_id)),
            *("--resource-type", RESOURCE_TYPE, "--walltime", "00:20:00"),
            "--pilot-arg=--getjobrequests=1",
            env={"SITE_AGENT_STATE": str(state), "SITE_AGENT_RANK": "3",
                 "SITE_AGENT_WORKER_ID": f"{queue}-{worker_id}"},
        )  # fmt: skip
    finally:
        if stack.job(panda_id)["jobStatus"] == "activated":  # no pilot took it
            stack.drop_job(panda_id)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    server_log = stack.server_log().read_text(errors="replace")
    # what the server got: one getJob with the label, the ids, the DN with its production role
    identity = f",harvester_id={HARVESTER_ID},worker_id={worker_id},"
    get_job = [line for line in get_job_lines(server_log, queue) if identity in line]
    assert len(get_job) == 1, log[-3000:]
    dn = stack.env["PANDA_DEVSTACK_USER_DN"]
    for part in (",source_label=managed,", f",rt={RESOURCE_TYPE},", f",DN={dn},role=True,"):
        assert part in get_job[0], get_job[0]
    # what it did with them: the managed job went to this worker, which it marked running
    assert stack.psql(
        "SELECT pandaid FROM doma_panda.harvester_rel_jobs_workers"
        f" WHERE harvesterid = '{HARVESTER_ID}' AND workerid = {worker_id}"
    ).split() == [str(panda_id)]
    # and the pilot's own word on the worker: started, then finished, each answered with success
    worker_status = re.findall(
        rf"updateWorkerPilotStatus : {worker_id} {HARVESTER_ID} (\w+) ret -> (.*)", server_log
    )
    assert [status for status, _ in worker_status] == ["started", "finished"], worker_status
    assert all('"StatusCode": 0' in ret for _, ret in worker_status), worker_status
    assert stack.psql(
        "SELECT status, njobs, pilotstatus, pilotstarttime <= pilotendtime"
        " FROM doma_panda.harvester_workers"
        f" WHERE harvesterid = '{HARVESTER_ID}' AND workerid = {worker_id}"
    ).split() == ["running|1|finished|t"]
    # the job's record: the rank's GTAG as its pilotID, the Harvester as its scheduler
    host = socket.gethostname().split(".")[0]
    gtag = f"file://{host}{state}/pilot-logs/{queue}-{worker_id}-r3"
    job_row = stack.psql(
        f"SELECT schedulerid, pilotid FROM doma_panda.jobsactive4 WHERE pandaid = {panda_id}"
        " UNION ALL SELECT schedulerid, pilotid FROM doma_panda.jobsarchived4"
        f" WHERE pandaid = {panda_id}"
    ).split("|")
    assert job_row[:2] == [f"harvester-{HARVESTER_ID}", gtag], job_row
    data = json.loads(report.read_text())
    assert data["pilot_id"] == f"{queue}-{worker_id}-r3" and data["rank"] == 3
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
    identity_layer = next(x for x in json.loads(plan.stdout)["layers"] if x["name"] == "identity")
    assert identity_layer["env"] == {
        "GTAG": f"file://{host}{state}/pilot-logs/Q-7-r3",
        "HARVESTER_ID": "H1", "PANDA_JSID": "harvester-H1", "HARVESTER_WORKER_ID": "7",
    }  # fmt: skip


@contextmanager
def file_server(root: Path):
    """A plain HTTP file server for ``root`` on loopback (another instance's cache, as far as
    pilot3 can tell); yields its URL and the list of paths it was asked for."""
    asked: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            asked.append(self.path)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", asked
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_real_epic_pilot_reads_its_queue_from_the_instances_queuedata_url(
    panda_stack, pilot3_dir, tmp_path
):
    """An ePIC queue (pilot.instance: bnl) passes --queuedata-url and --storagedata-url, as the
    pilot wrapper's eic branch does; pilot3 reads the queue from there (here: another server
    with the stack's own queue file), not from its default.cfg's URL (the stack's cache), and
    asks the real server for its jobs."""
    stack, queue = panda_stack, panda_stack.queue
    clear_jobs(stack)
    www = stack.state / "www"
    cache = tmp_path / "bnl-www"
    (cache / "bnl/cache/schedconfig").mkdir(parents=True)
    shutil.copy(www / f"schedconfig/{queue}.all.json", cache / "bnl/cache/schedconfig")
    (cache / "bnl/cric").mkdir()
    shutil.copy(www / "cric/ddmendpoints.json", cache / "bnl/cric")
    access_start = stack.access_log.stat().st_size
    server_start = stack.server_log().stat().st_size
    with file_server(cache) as (url, asked):
        site = stack_site(
            stack,
            tmp_path / "site",
            "  instance: bnl\n"
            f"  queuedata_url: {url}/bnl/cache/schedconfig/{{queue}}.all.json\n"
            f"  storagedata_url: {url}/bnl/cric/ddmendpoints.json\n",
        )
        r, _ = run_pilot(
            site, stack, pilot3_dir, tmp_path, queue,
            *("--resource-type", RESOURCE_TYPE, "--walltime", "00:20:00"),
            "--pilot-arg=--noserverupdate", *NO_JOB_ARGS,
        )  # fmt: skip
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    assert f"/bnl/cache/schedconfig/{queue}.all.json" in asked, asked
    # default.cfg's queuedata URL, the stack's cache, was not asked
    assert f"/cache/schedconfig/{queue}.all.json" not in log_since(stack.access_log, access_start)
    get_job = [
        line
        for line in get_job_lines(log_since(stack.server_log(), server_start), queue)
        if f",rt={RESOURCE_TYPE}," in line
    ]
    assert len(get_job) == 1 and ",source_label=managed," in get_job[0], get_job


def test_failed_real_pilot_leaves_its_log_and_its_own_exit_code(panda_stack, pilot3_dir, tmp_path):
    """The stack's offline queue: pilot3 stops before asking for work. Its exit code reaches
    the caller, and its pilotlog.txt outlives the workdir, its tail in the report."""
    stack, queue = panda_stack, panda_stack.offline_queue
    site = stack_site(stack, tmp_path / "site")
    access_start = stack.access_log.stat().st_size
    server_start = stack.server_log().stat().st_size
    r, report = run_pilot(site, stack, pilot3_dir, tmp_path, queue, "--pilot-arg=--noserverupdate")
    # it read the queue's state from the stack and never asked the server for a job
    assert f'"GET /cache/schedconfig/{queue}.all.json HTTP/1.1" 200' in log_since(
        stack.access_log, access_start
    )
    assert get_job_lines(log_since(stack.server_log(), server_start), queue) == []
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
