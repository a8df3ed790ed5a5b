"""Push mode's parts without pilot3: the bundle's checks, the worker command carrying it as
data, the queue-config key, the lost timeout, and the batched control task reading real
push directories."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from siteagent.errors import ConfigError
from siteagent.harvester.base import ST_FAILED, ST_FINISHED, ST_RUNNING, ST_SUBMITTED
from siteagent.harvester.config import queue_config
from siteagent.harvester.control import collect_workers, forget_worker
from siteagent.harvester.pushjob import push_bundle, write_access_point
from siteagent.harvester.pushstatus import ended_state, report_of_result, running_state
from siteagent.harvester.shape import payload_argv, worker_command
from siteagent.harvester.status import WorkerState
from siteagent.harvester.submitter import GlobusComputeSubmitter
from siteagent.push import RESULT_PREFIX, check_bundle, collect, parse_result, write_bundle

from .pushsite import QUEUE, job, push_worker
from .test_harvester import WorkSpec

JOB = {"5001": {"PandaID": 5001, "jobPars": "x"}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"job": {}}, "push job: job: must hold exactly one PanDA job"),
        ({"job": {"12a": {"x": 1}}}, "push job: job: PandaID '12a' is not a number"),
        ({"job": {"1": {"a b": 1}}}, "push job: job.1: parameter name 'a b' is not a word"),
        ({"job": {"1": {"x": [1]}}}, "push job: job.1.x: must be a string, number"),
        ({"job": JOB, "files": {"../x": ""}}, "push job: files: '../x' is not a plain file"),
        ({"job": JOB, "files": {".bashrc": ""}}, "push job: files: '.bashrc' is not a plain"),
        ({"job": JOB, "files": {"jobReport.json": ""}}, "push job: files.jobReport.json: is a"),
        ({"job": JOB, "files": {"a": 1}}, "push job: files.a: must be text"),
        ({"job": JOB, "queuedata": []}, "push job: queuedata: must be a JSON object"),
        ({"job": JOB, "extra": 1}, "push job: extra: is not a bundle field"),
        ({"job": JOB, "format": 2}, "push job: format: must be 1"),
    ],
)
def test_bad_bundles_are_refused_naming_the_field(data, message):
    with pytest.raises(ConfigError) as err:
        check_bundle(data)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"mode": "PUSH"}, "queue config: mode: must be 'pull' or 'push'"),
        ({"mode": "push", "ranksPerNode": 2}, "queue config: mode: push runs one PanDA job"),
        ({"mode": "push", "payload": ["true"]}, "queue config: mode: push runs one PanDA job"),
        ({"lostTimeout": 0}, "queue config: lostTimeout: must be a positive number"),
    ],
)
def test_bad_mode_keys_name_the_key(keys, message):
    with pytest.raises(ConfigError) as err:
        queue_config(GlobusComputeSubmitter(site="local", **keys))
    assert str(err.value).startswith(message)


def test_pull_queues_are_unchanged():
    qc = queue_config(GlobusComputeSubmitter(site="local"))
    assert qc.mode == "pull"
    assert "--push" not in payload_argv(qc, WorkSpec(workerID=1))
    assert worker_command("Q-1", ["x"]) == worker_command("Q-1", ["x"], None)
    assert "push" not in worker_command("Q-1", ["x"])


def test_job_content_reaches_the_node_as_data_never_as_shell(tmp_path):
    """A job parameter full of shell is decoded into the bundle file byte for byte and runs
    nothing: the worker command holds it only as base64 in a quoted here-document."""
    evil = f"$(touch {tmp_path}/pwned) `touch {tmp_path}/pwned2`; ' \" {{x}} \\n"
    ws = push_worker(tmp_path, 9, 9009, 0)
    ws.jobs[0].jobParams["jobPars"] = evil
    bundle = push_bundle(ws, QUEUE)
    qc = queue_config(GlobusComputeSubmitter(site="local", mode="push", pandaQueue=QUEUE))
    argv = payload_argv(qc, ws)
    assert argv[-1] == "--push"
    command = worker_command(f"{QUEUE}-9", argv, bundle.to_json()).format()  # as ShellFunction
    assert "touch" not in command
    state = tmp_path / "state"
    exec_stub = tmp_path / "exec"
    exec_stub.write_text("#!/bin/sh\nexit 0\n")
    exec_stub.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "SITE_AGENT_STATE": str(state), "HOME": str(tmp_path)}
    r = subprocess.run(
        ["bash", "-c", command], env=env | {"SITE_AGENT_EXEC": str(exec_stub)}, timeout=30
    )
    assert r.returncode == 0
    written = json.loads((state / "push" / f"{QUEUE}-9" / "siteagent_push.json").read_text())
    assert written["job"]["9009"]["jobPars"] == evil
    assert not list(tmp_path.glob("pwned*"))
    assert base64.b64decode("".join(command.split("<<'SITEAGENT_PUSH_END'")[1].split()[1:-1]))


def test_bundle_is_written_as_files_pilot3_reads(tmp_path):
    bundle = check_bundle(
        {"job": {"5": job(5, 0)}, "queuedata": {"nickname": QUEUE}, "files": {"t.sh": "x"}}
    )
    names = write_bundle(bundle, tmp_path / "w")
    assert names == sorted(
        ["pandaJobData.out", "queuedata.json", "cric_pandaqueues.json",
         "cric_ddmendpoints.json", "t.sh"]
    )  # fmt: skip
    assert json.loads((tmp_path / "w" / "cric_pandaqueues.json").read_text()) == {
        QUEUE: {"nickname": QUEUE}
    }
    assert json.loads((tmp_path / "w" / "pandaJobData.out").read_text())["5"]["PandaID"] == 5


def _pilot_files(directory: Path, status: str, pilot_code: int = 0, trans: int = 0) -> None:
    """What pilot3 3.7 leaves in a push directory (names and shapes from a real run)."""
    jobdir = directory / "PanDA_Pilot3_1_1" / "PanDA_Pilot-42"
    jobdir.mkdir(parents=True)
    attrs = {"jobId": "42", "jobStatus": status, "pilotErrorCode": pilot_code,
             "pilotErrorDiag": "stage-out failed" if pilot_code else "",
             "transExitCode": trans, "exeErrorDiag": "", "node": "nid001"}  # fmt: skip
    (directory / "worker_attributes.json").write_text(json.dumps(attrs))
    (jobdir / "jobReport.json").write_text('{"exitCode": 0}')
    (jobdir / "payload.stdout").write_text("out\n" * 5000)
    (jobdir / "pilotlog.txt").write_text("log\n")
    deep = jobdir / "payload" / "outputs"  # what the payload makes below: not read each cycle
    deep.mkdir(parents=True)
    (deep / "big.root").write_text("x")


def test_one_control_task_reads_every_worker_push_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("SITE_AGENT_STATE", str(tmp_path))
    _pilot_files(tmp_path / "push" / "Q-1", "running")
    (tmp_path / "push" / "Q-2").mkdir(parents=True)
    out = collect_workers(["Q-1", "Q-2", "Q-3", "../etc"])
    assert set(out) == {"Q-1", "Q-2", "Q-3", "../etc"}
    assert out["Q-1"]["attributes"]["jobStatus"] == "running"
    assert out["Q-1"]["job_report"] == {"exitCode": 0}
    assert len(out["Q-1"]["payload_stdout"]) == 8192  # a tail, not the whole file
    assert out["Q-1"]["ended"] is False
    assert out["Q-1"]["files"] == 4  # attributes, report, stdout, pilot log: not payload/...
    signature = out["Q-1"]["signature"]
    os.utime(tmp_path / "push" / "Q-1" / "worker_attributes.json", (signature + 5,) * 2)
    assert collect_workers(["Q-1"])["Q-1"]["signature"] == signature + 5
    assert (out["Q-2"]["exists"], out["Q-2"]["files"]) == (True, 0)
    assert out["Q-3"] == {"dir": str(tmp_path / "push" / "Q-3"), "exists": False}
    assert out["../etc"] is None
    # the sweeper's clean-up removes a swept worker's push directory
    assert forget_worker("Q-1")["detail"] == "removed push/Q-1"
    assert not (tmp_path / "push" / "Q-1").exists()
    assert forget_worker("Q-1")["detail"] == "nothing left on the site"


def test_the_sweepers_clean_up_removes_exactly_the_workers_pilot_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("SITE_AGENT_STATE", str(tmp_path))
    pilots = tmp_path / "pilots"
    pilots.mkdir()
    mine = ["Q-1-r0.json", "Q-1-r1.json", "Q-1-r12.json"]
    # another worker's (Q-10, and Q-1-rx-7 whose id starts like Q-1's ranks), a by-hand
    # rank's, and what only looks like a rank of Q-1
    others = ["Q-10-r0.json", "Q-1-rx-7-r0.json", "local-vm-r0-123.json", "Q-1-r.json",
              "Q-1-r0.json.tmp", "Q-1-r\u0662.json"]  # fmt: skip
    for name in mine + others:
        (pilots / name).write_text("{}")
    answer = forget_worker("Q-1")
    assert answer["detail"] == f"removed {', '.join(f'pilots/{n}' for n in sorted(mine))}"
    assert sorted(p.name for p in pilots.iterdir()) == sorted(others)
    assert forget_worker("Q-1")["detail"] == "nothing left on the site"
    pilots.rename(tmp_path / "elsewhere")  # no pilots directory at all: nothing to remove
    assert forget_worker("Q-10")["detail"] == "nothing left on the site"


def test_running_worker_is_lost_once_its_files_stop_changing(tmp_path):
    task = WorkerState(ST_RUNNING, "", "running")
    report = {"exists": True, "files": 3, "signature": 100.0, "dir": "/d", "attributes": None}
    state, seen = running_state(task, report, None, now=1000.0, lost_timeout=60)
    assert (state.status, seen) == (ST_RUNNING, {"signature": 100.0, "since": 1000.0})
    state, seen = running_state(task, report, seen, now=1060.0, lost_timeout=60)
    assert state.status == ST_RUNNING  # at the limit, not past it
    state, _ = running_state(task, report, seen, now=1061.0, lost_timeout=60)
    assert state.status == ST_FAILED
    assert state.diag == "lost: no change in the worker's files in /d for 61 s (lostTimeout 60 s)"
    # a change resets the clock
    moved = report | {"signature": 101.0}
    state, seen = running_state(task, moved, seen, now=1061.0, lost_timeout=60)
    assert (state.status, seen) == (ST_RUNNING, {"signature": 101.0, "since": 1061.0})


def test_queued_worker_without_files_keeps_its_task_state():
    task = WorkerState(ST_SUBMITTED, "", "waiting-for-nodes")
    for report in (None, {"exists": False}, {"exists": True, "files": 0}):
        assert running_state(task, report, None, 5.0, 1.0) == (task, None)


def test_ended_worker_takes_the_job_outcome(tmp_path):
    _pilot_files(tmp_path / "ok", "finished")
    _pilot_files(tmp_path / "bad", "failed", pilot_code=1137)
    line = RESULT_PREFIX + json.dumps(collect(tmp_path / "bad"))
    task = WorkerState(ST_FINISHED, "", "success", 0)
    # the task's result, as a ShellResult-like object and as the endpoint's stored form
    assert parse_result(f"noise\n{line}\n") == json.loads(line[len(RESULT_PREFIX) :])
    bad = report_of_result({"returncode": 1, "stdout": "", "push": line})
    state = ended_state(task, bad)
    assert (state.status, state.exit_code) == (ST_FAILED, 1137)
    assert state.diag == "PanDA job 42 failed; pilotErrorCode 1137 stage-out failed"
    assert ended_state(task, collect(tmp_path / "ok")) == WorkerState(ST_FINISHED, "", "success", 0)
    assert ended_state(task, None) == task  # the wrapper failed before pilot3 reported


def test_access_point_gets_the_messenger_files(tmp_path):
    _pilot_files(tmp_path / "w", "finished")
    ap = tmp_path / "ap"
    written = write_access_point(ap, collect(tmp_path / "w"), changed_at=1234.0)
    assert sorted(written) == [
        "jobReport.json", "payload.stdout", "pilotlog.txt", "worker_attributes.json"
    ]  # fmt: skip
    assert json.loads((ap / "worker_attributes.json").read_text())["node"] == "nid001"
    assert (ap / "worker_heartbeat.json").stat().st_mtime == 1234.0
    # the same report again writes nothing new
    assert write_access_point(ap, collect(tmp_path / "w"), changed_at=1234.0) == []


def _bundle_on_site(state: Path, worker: str, data: dict) -> None:
    directory = state / "push" / worker
    directory.mkdir(parents=True)
    (directory / "siteagent_push.json").write_text(json.dumps(data))


def test_pilot_dry_run_shows_the_push_mode_command(run_cli, tmp_path, pilot3_dir):
    state = tmp_path / "state"
    _bundle_on_site(state, "Q-4", {"job": {"44": job(44, 0)}, "queuedata": {"nickname": QUEUE}})
    env = {"SITE_AGENT_STATE": str(state), "SITE_AGENT_WORKER_ID": "Q-4"}
    r = run_cli(
        "pilot", "--site", "local", "--queue", QUEUE, "--push", "--pilot-dir", str(pilot3_dir),
        "--dry-run", "--json", env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    [payload] = [layer for layer in plan["layers"] if layer["name"] == "payload"]
    push = str(state / "push" / "Q-4")
    assert payload["summary"].endswith(f"push mode: PanDA job 44 in {push}")
    argv = payload["command"]
    i = argv.index("--harvester-submit-mode")
    assert argv[i - 1 : i + 2] == ["-z", "--harvester-submit-mode", "PUSH"]
    assert argv[argv.index("-a") + 1] == push
    assert argv[argv.index("--queuedata-url") + 1] == f"{push}/queuedata.json"
    assert "PULL" not in argv
    assert payload["env"]["HARVESTER_WORKDIR"] == push
    assert payload["env"]["LOCAL_AGIS_SCHEDCONF"] == f"{push}/cric_pandaqueues.json"
    assert payload["env"]["PILOT_NOKILL"] == "1"


@pytest.mark.parametrize(
    ("data", "env", "message"),
    [
        ({"job": JOB, "files": {"a/b": "x"}}, {}, "push job: files: 'a/b' is not a plain file"),
        ({"job": JOB}, {"SITE_AGENT_WORLD_SIZE": "2"}, "--push: one PanDA job runs on one rank"),
    ],
)
def test_pilot_refuses_a_bad_push_job_in_one_line(run_cli, tmp_path, data, env, message):
    state = tmp_path / "state"
    _bundle_on_site(state, "Q-5", data)
    env = {"SITE_AGENT_STATE": str(state), "SITE_AGENT_WORKER_ID": "Q-5"} | env
    r = run_cli("pilot", "--site", "local", "--queue", QUEUE, "--push", "--dry-run", env=env)
    assert r.returncode == 2
    assert r.stderr.startswith(f"site-agent: error: {message}"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
