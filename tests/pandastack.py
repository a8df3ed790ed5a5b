"""The real PanDA server of scripts/panda-devstack.sh, for tests marked ``panda``.

``panda_stack`` (session fixture in conftest.py) brings the stack up once: it
reuses a stack that is already up (CI's .ci/run starts it before pytest) and stops at the end
only one it started itself. Where the stack cannot come up it skips, except in CI (CI=true),
where that is an error. Jobs are submitted and read with the real panda-client in the server
venv (scripts/panda_devstack_jobs.py).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import REPO

DEVSTACK = REPO / "scripts" / "panda-devstack.sh"
JOBS = REPO / "scripts" / "panda_devstack_jobs.py"


# what a job is once the Setupper has run: activated, or already taken or ended
SET_UP = ("activated", "sent", "starting", "running", "holding", "transferring", "finished",
          "failed", "cancelled", "closed")  # fmt: skip


@dataclass
class PandaStack:
    env: dict[str, str]  # devstack.env: URLs, certificates, queues, pilot config

    @property
    def queue(self) -> str:
        return self.env["PANDA_DEVSTACK_QUEUE"]

    @property
    def offline_queue(self) -> str:
        return self.env["PANDA_DEVSTACK_OFFLINE_QUEUE"]

    @property
    def state(self) -> Path:
        return Path(self.env["PANDA_DEVSTACK_DIR"])

    @property
    def access_log(self) -> Path:
        return self.state / "log" / "httpd_access.log"

    def server_log(self, name: str = "JobDispatcher") -> Path:
        """One of the server's own logs (JobDispatcher: every getJob's parameters, the
        updateWorkerPilotStatus calls)."""
        return self.state / "log" / "panda" / f"panda-{name}.log"

    def register_worker(
        self, harvester_id: str, worker_id: int, queue: str, resource_type: str
    ) -> None:
        """What Harvester has written before its worker's pilot starts: its instance and the
        submitted worker. The server only updates a worker's pilot status (it does not insert
        the worker), and maps a dispatched job to a worker only for a known Harvester."""
        self.psql(
            "INSERT INTO doma_panda.harvester_instances (harvester_id, description, starttime,"
            f" lastupdate) VALUES ('{harvester_id}', 'site-agent tests', now(), now())"
            " ON CONFLICT DO NOTHING;"
            "INSERT INTO doma_panda.harvester_workers (harvesterid, workerid, lastupdate, status,"
            " computingsite, resourcetype, submittime, ncore, njobs)"
            f" VALUES ('{harvester_id}', {int(worker_id)}, now(), 'submitted', '{queue}',"
            f" '{resource_type}', now(), 1, 0)"
        )

    def _jobs(self, *args: str) -> dict:
        r = subprocess.run(
            [self.env["PANDA_DEVSTACK_PYTHON"], str(JOBS), *args],
            env=os.environ | self.env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd="/",
        )
        assert r.returncode == 0, f"panda_devstack_jobs.py {args}: {r.stderr[-2000:]}"
        return json.loads(r.stdout.splitlines()[-1])

    def submit(self, *job_args: str, queue: str | None = None, resource_type: str = "SCORE") -> int:
        """One job through panda-client's submitJobs, once the server has set it up; returns
        its PandaID. submitJobs returns before its Setupper thread has activated the job
        (TaskBuffer.storeJobs starts it without a join): until then the job is in jobsDefined4,
        out of the job statistics and of getJob."""
        q = queue or self.queue
        panda_id = self._jobs(
            "submit", "--queue", q, "--resource-type", resource_type, "--", *job_args
        )["PandaID"]
        job = self.wait_job(panda_id, SET_UP, timeout=60)
        assert job and job["jobStatus"] in SET_UP, f"job {panda_id} not set up: {job}"
        return panda_id

    def job(self, panda_id: int) -> dict:
        """The job as panda-client's getJobStatus sees it (jobStatus, pilotErrorCode, ...)."""
        return self._jobs("status", str(panda_id))[str(panda_id)]

    def pilot_config(self, pilot3_dir: Path) -> str:
        """pilot3's configuration pointed at the stack (HARVESTER_PILOT_CONFIG)."""
        r = devstack("pilot-config", str(pilot3_dir))
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def psql(self, sql: str) -> str:
        """SQL on panda_db as the database superuser (the stack's own psql)."""
        r = devstack("psql", "-At", "-c", sql)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def refresh_job_stats(self) -> None:
        """What pg_cron does every minute: the statistics behind the server's statistics API."""
        self.psql("CALL doma_panda.update_jobsact_stats_by_gshare()")

    def drop_job(self, panda_id: int) -> None:
        """Remove a job that no pilot will take. panda-client's killJobs cannot: on PostgreSQL,
        panda-server 0.8.1's killJob raises LockNotAvailable for any job not in jobsDefined4
        (its emulation of Oracle's NOWAIT counts the rows of the first table it looks in)."""
        self.psql(f"DELETE FROM doma_panda.jobsactive4 WHERE pandaid = {int(panda_id)}")
        self.refresh_job_stats()

    def wait_job(self, panda_id: int, states: tuple[str, ...], timeout: float = 60) -> dict:
        end = time.monotonic() + timeout
        while True:
            job = self.job(panda_id)
            if (job and job["jobStatus"] in states) or time.monotonic() > end:
                return job
            time.sleep(1)


def read_env(path: Path) -> dict[str, str]:
    """KEY='value' lines, as panda-devstack.sh writes them."""
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        out[key] = shlex.split(value)[0] if value else ""
    return out


def devstack(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(DEVSTACK), *args], capture_output=True, text=True, timeout=timeout
    )


def stack_session():
    """Generator behind the ``panda_stack`` fixture (conftest.py): the stack, up."""
    started = devstack("status").returncode != 0
    if started:
        r = devstack("up")
        if r.returncode != 0:
            msg = f"the PanDA dev stack did not come up: {(r.stderr or r.stdout)[-1500:]}"
            if os.environ.get("CI") == "true":
                pytest.fail(msg)
            pytest.skip(msg)
    env = devstack("env")
    assert env.returncode == 0, env.stderr
    state = Path(
        next(
            line.split("=", 1)[1].strip("'")
            for line in env.stdout.splitlines()
            if line.startswith("export PANDA_DEVSTACK_DIR=")
        )
    )
    yield PandaStack(read_env(state / "devstack.env"))
    if started:
        devstack("down")
