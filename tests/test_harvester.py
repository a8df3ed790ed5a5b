"""Harvester plugins driven through the real Globus Compute engine (in-process, local provider)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from siteagent.endpoint.render import render_endpoint, write_endpoint
from siteagent.errors import ConfigError
from siteagent.harvester.base import ST_CANCELLED, ST_FAILED, ST_FINISHED, ST_RUNNING
from siteagent.harvester.config import KEYS, QueueConfig, keys_table, queue_config
from siteagent.harvester.control import stop_worker
from siteagent.harvester.monitor import GlobusComputeMonitor
from siteagent.harvester.registry import REGISTRY
from siteagent.harvester.shape import worker_command, worker_config
from siteagent.harvester.submitter import GlobusComputeSubmitter
from siteagent.harvester.sweeper import GlobusComputeSweeper
from siteagent.profiles import load_profile

from .test_pilot import report_state, wait_for


@dataclass
class WorkSpec:
    """The WorkSpec fields the plugins read and write (pandaharvester is not installable here)."""

    workerID: int
    nCore: int | None = None
    maxWalltime: int | None = None
    minRamCount: int | None = None
    resourceType: str | None = None
    batchID: str | None = None
    workAttributes: dict | None = None
    nativeStatus: str | None = None
    nativeExitCode: int | None = None
    diagMessage: str | None = None
    killTime: object = None


def plugins(engine_dir, **keys):
    workdir, _ = engine_dir
    keys = {"site": "local", "backend": "local-engine", "workdir": str(workdir)} | keys
    return (
        GlobusComputeSubmitter(**keys),
        GlobusComputeMonitor(**keys),
        GlobusComputeSweeper(**keys),
    )


def wait_status(monitor, workers, want, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        ok, states = monitor.check_workers(workers)
        assert ok, states
        if all(s == want for s, _ in states) or time.monotonic() > deadline:
            return states
        time.sleep(0.2)


pytestmark = pytest.mark.slow


def sleeping_payloads(cmdline, state):
    """Processes running ``cmdline`` for workers of this test's state directory (other
    checkouts on the machine may run the same test at the same time)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.info["cmdline"] == cmdline and p.environ().get("SITE_AGENT_STATE") == str(state):
                found.append(p)
        except psutil.Error:  # ended meanwhile
            continue
    return found


def test_workers_run_through_the_execution_wrapper_and_finish(engine_dir):
    submitter, monitor, _ = plugins(
        engine_dir,
        ranksPerNode=2,
        payload=["bash", "-c", "echo rank=$SITE_AGENT_RANK worker=$SITE_AGENT_WORKER_ID"],
    )
    workers = [WorkSpec(workerID=i, nCore=2, maxWalltime=3599) for i in range(1, 4)]
    assert submitter.submit_workers(workers) == [(True, "")] * 3
    assert len({w.batchID for w in workers}) == 3
    states = wait_status(monitor, workers, ST_FINISHED)
    assert states == [(ST_FINISHED, "")] * 3
    result = REGISTRY.get(workers[0].batchID).result()
    assert set(result.stdout.splitlines()) == {f"rank={r} worker=local-1" for r in range(2)}


def test_failing_payload_is_failed_with_the_pilot_meaning(engine_dir):
    submitter, monitor, _ = plugins(
        engine_dir, payload=["bash", "-c", "echo cvmfs is missing >&2; exit 64"]
    )
    ws = WorkSpec(workerID=10)
    assert submitter.submit_workers([ws]) == [(True, "")]
    [(status, diag)] = wait_status(monitor, [ws], ST_FAILED)
    assert status == ST_FAILED
    assert diag.startswith("exit 64; site offline or CVMFS unavailable")
    assert "cvmfs is missing | site-agent pilot: failed, exit code 64; report " in diag
    report = json.loads((engine_dir[1] / "pilots" / "local-10-r0.json").read_text())
    assert (report["reason"], report["exit_code"]) == ("failed", 64)


def test_sweeper_stops_a_running_worker_and_leaves_no_process(engine_dir, caplog):
    caplog.set_level(logging.INFO, logger="siteagent.harvester")
    _, state = engine_dir
    submitter, monitor, sweeper = plugins(engine_dir, payload=["sleep", "271"])
    ws = WorkSpec(workerID=20)
    assert submitter.submit_workers([ws]) == [(True, "")]
    record = state / "workers" / "local-20.json"
    report_path = state / "pilots" / "local-20-r0.json"
    assert wait_for(lambda: report_state(report_path) == "running"), "the worker never started"
    assert record.exists()
    # its pilot runs: the monitor says so, from the endpoint's word on the task
    assert monitor.check_workers([ws]) == (True, [(ST_RUNNING, "")])
    assert ws.nativeStatus == "running"
    [(ok, detail)] = sweeper.kill_workers([ws])
    assert ok, detail
    assert detail.startswith("signalled: SIGTERM to pid")
    [(status, diag)] = wait_status(monitor, [ws], ST_CANCELLED)
    assert status == ST_CANCELLED and diag.startswith("exit 143; terminated (SIGTERM)")
    assert (ws.nativeStatus, ws.nativeExitCode) == ("success", 143)
    assert wait_for(lambda: report_state(report_path) == "done")
    assert wait_for(lambda: not record.exists())
    assert sleeping_payloads(["sleep", "271"], state) == []
    report = json.loads(report_path.read_text())
    assert (report["reason"], report["signal"]) == ("signalled", "SIGTERM")
    assert sweeper.sweep_worker(ws) == (True, "")
    assert REGISTRY.get(ws.batchID) is None
    # one line per worker action in Harvester's log, from each plugin's own logger
    lines = [(r.name, r.getMessage()) for r in caplog.records if "<workerID=20>" in r.getMessage()]
    task = ws.batchID
    assert lines == [
        (
            "siteagent.harvester.submitter",
            f"<workerID=20> worker local-20 submitted as task {task}",
        ),
        ("siteagent.harvester.monitor", f"<workerID=20> task {task} running: running"),
        ("siteagent.harvester.sweeper", f"<workerID=20> worker local-20: {detail}"),
        ("siteagent.harvester.monitor", f"<workerID=20> task {task} success: cancelled: {diag}"),
        (
            "siteagent.harvester.sweeper",
            "<workerID=20> worker local-20 swept: forgot: removed pilots/local-20-r0.json",
        ),
    ]
    assert not report_path.exists()  # the report the monitor read, gone with the worker


def test_stop_task_keeps_a_queued_worker_from_starting(engine_dir, tmp_path):
    _, state = engine_dir
    # what the sweeper's control task does for a worker whose task is still queued
    answer = stop_worker("local-30")
    assert answer == {
        "worker": "local-30",
        "action": "marked",
        "detail": "not running: will not start",
    }
    assert (state / "workers" / "local-30.stop").exists()
    # when its batch job starts at last, the worker ends at once and cleans the mark
    endpoint = tmp_path / "ep"
    write_endpoint(render_endpoint(load_profile("local"), endpoint), endpoint)
    env = os.environ | {"SITE_AGENT_EXEC": str(endpoint / "bin" / "site-agent-exec")}
    cmd = worker_command("local-30", ["touch", str(tmp_path / "ran")]).format()
    out = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True)
    assert out.returncode == 143
    assert "stopped before it started" in out.stderr
    assert not (tmp_path / "ran").exists()
    assert not (state / "workers" / "local-30.stop").exists()


def test_sweeper_sends_no_stop_for_a_task_the_endpoint_does_not_know(engine_dir):
    _, state = engine_dir
    _, _, sweeper = plugins(engine_dir)
    [(ok, detail)] = sweeper.kill_workers([WorkSpec(workerID=31, batchID="forgotten")])
    assert (ok, detail) == (
        True,
        "nothing to stop: lost: the endpoint does not know this task (restarted?)",
    )
    assert not (state / "workers" / "local-31.stop").exists()


def test_unknown_task_is_lost_not_running_forever(engine_dir):
    _, monitor, _ = plugins(engine_dir)
    ok, [(status, diag)] = monitor.check_workers([WorkSpec(workerID=40, batchID="gone")])
    assert ok and status == ST_FAILED and diag.startswith("lost:")


def test_bad_worker_shape_is_a_permanent_error_naming_the_key(engine_dir):
    submitter, _, _ = plugins(engine_dir, ranksPerNode=2, gpusPerWorker=3)
    [(ok, msg)] = submitter.submit_workers([WorkSpec(workerID=50)])
    assert ok is False
    assert msg.startswith("queue config: gpusPerWorker: 3 GPUs do not divide")
    submitter, _, _ = plugins(engine_dir, site="nowhere-site")
    [(ok, msg)] = submitter.submit_workers([WorkSpec(workerID=51)])
    assert ok is False and "nowhere-site" in msg


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"endpointId": "not-a-uuid"}, "queue config: endpointId: must be a UUID"),
        ({"ranksPerNode": 0}, "queue config: ranksPerNode: must be a whole number"),
        ({"backend": "cloud"}, "queue config: backend: must be"),
        ({"pilotArgs": ["-q", "x rm"]}, "queue config: pilotArgs: must be a list of printable"),
        ({"pilotType": "XX"}, "queue config: pilotType: must be PR, RC, ALRB or PT"),
        ({"resultTimeout": -1}, "queue config: resultTimeout: must be a positive"),
    ],
)
def test_queue_config_errors_name_the_key(keys, message):
    plugin = GlobusComputeSubmitter(**keys)
    with pytest.raises(ConfigError, match=f"^{message}"):
        queue_config(plugin)


def test_equal_worker_shapes_share_one_user_endpoint_config():
    profile = load_profile("perlmutter")
    plugin = GlobusComputeSubmitter(
        site="perlmutter", ranksPerNode=4, gpusPerWorker=4, userEndpointConfig={"account": "m1"}
    )
    qc = queue_config(plugin)
    a = worker_config(qc, profile, WorkSpec(workerID=1, nCore=64, maxWalltime=3599))
    b = worker_config(qc, profile, WorkSpec(workerID=2, nCore=64, maxWalltime=3600))
    assert a == b
    assert (a["gpus_per_rank"], a["cores_per_rank"], a["walltime"]) == (1, 16, "01:00:00")
    c = worker_config(qc, profile, WorkSpec(workerID=3, nCore=64, maxWalltime=7200))
    assert c != a


# worker_command's output before its bash moved from an f-string to templates/worker.sh.in
OLD_WORKER_COMMAND = (
    "W=ANALY_X-42\n"
    'd="${{SITE_AGENT_STATE:-$HOME/.site-agent}}/workers"\n'
    'mkdir -p "$d" && chmod 700 "$d" || exit 64\n'
    'if [ -e "$d/$W.stop" ]; then rm -f "$d/$W.stop"; echo "site-agent: worker $W was stopped'
    ' before it started" >&2; exit 143; fi\n'
    'SITE_AGENT_WORKER_ID=$W "$SITE_AGENT_EXEC" -- site-agent pilot --site polaris --queue'
    " ANALY_X '--pilot-arg=--x=a b' 'it'\"'\"'s' '{{x}}' &\n"
    "p=$!\n"
    """printf '{{"worker": "%s", "host": "%s", "pid": %d, "job_id": "%s"}}\\n' "$W" "$HOSTNAME" """
    '"$p" "${{SLURM_JOB_ID:-${{PBS_JOBID:-}}}}" >"$d/$W.json.$$" && mv -f "$d/$W.json.$$"'
    ' "$d/$W.json"\n'
    'wait "$p"; rc=$?\n'
    'rm -f "$d/$W.json" "$d/$W.stop"\n'
    "exit $rc\n"
)


def test_worker_command_renders_exactly_as_before():
    argv = ["site-agent", "pilot", "--site", "polaris", "--queue", "ANALY_X"]
    argv += ["--pilot-arg=--x=a b", "it's", "{x}"]
    assert worker_command("ANALY_X-42", argv) == OLD_WORKER_COMMAND


def test_queue_keys_table_is_in_the_readme():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert keys_table() in readme
    assert set(KEYS) == {f.metadata["key"] for f in dataclasses.fields(QueueConfig)}


def test_unknown_queue_key_is_logged_not_fatal(caplog):
    plugin = GlobusComputeSubmitter(site="local", gpuPerWorker=4, module="m", dbInterface=None)
    with caplog.at_level(logging.WARNING, logger="siteagent.harvester.config"):
        qc = queue_config(plugin)
    assert qc.gpus_per_worker == 0
    assert caplog.messages == ["queue config: unknown keys ignored: gpuPerWorker"]
