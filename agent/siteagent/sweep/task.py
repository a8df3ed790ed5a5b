"""The function each sweep run sends to the endpoint; it runs on a worker of the user endpoint.

It starts the payload the way a Harvester worker does, through the execution wrapper
(``$SITE_AGENT_EXEC``, which the user endpoint's worker_init exports) and one pilot wrapper per
rank, times it, and returns what the login node needs: exit code, wall time, every rank's pilot
report (layer timings), the JSON objects the payload printed, and the batch job's queue wait.
It runs in the worker's interpreter, where site-agent is installed (the pilot wrapper is).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from typing import Any

from siteagent.names import Var
from siteagent.pilot.report import read_report

OUTPUT_TAIL = 4000  # characters of stdout/stderr kept in the result


def run_point(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one sweep point once; ``spec`` is made by ``siteagent.sweep.payload.task_spec``."""
    wid = spec["worker_id"]
    env, state = _run_environment(spec)
    t0 = time.time()
    proc = subprocess.run(
        _argv(spec, env), env=env, capture_output=True, text=True, errors="replace"
    )
    seconds = time.time() - t0
    reports = _take_reports(env.get(Var.WORKDIR) or state, wid)
    shutil.rmtree(state, ignore_errors=True)
    job_id = env.get("SLURM_JOB_ID") or env.get("PBS_JOBID") or None
    return {
        "host": socket.gethostname(),
        "started": t0,
        "seconds": round(seconds, 4),
        "exit_code": proc.returncode,
        "metrics": json_objects(proc.stdout),
        "reports": reports,
        "job_id": job_id,
        "queue": queue_times(env, job_id),
        "stdout_tail": proc.stdout[-OUTPUT_TAIL:],
        "stderr_tail": proc.stderr[-OUTPUT_TAIL:],
    }


def _run_environment(spec: dict[str, Any]) -> tuple[dict[str, str], str]:
    """The run's environment and its own state directory (made here)."""
    wid = spec["worker_id"]
    env = dict(os.environ)
    # the ranks' pilot reports go to a directory of this run where every node of the job sees
    # it (the state directory, else the home directory, as for Harvester's workers)
    root = env.get(Var.STATE) or os.path.join(os.path.expanduser("~"), ".site-agent")
    os.makedirs(os.path.join(root, "sweep"), exist_ok=True)
    state = tempfile.mkdtemp(prefix=f"{wid}-", dir=os.path.join(root, "sweep"))
    env[Var.STATE] = state
    env[Var.WORKER_ID] = wid
    if spec.get("pythonpath"):
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, (spec["pythonpath"], env.get("PYTHONPATH")))
        )
    return env, state


def _argv(spec: dict[str, Any], env: dict[str, str]) -> list[str]:
    """Execution wrapper, then the pilot wrapper, then the payload."""
    wrapper = env.get(Var.EXEC) or "site-agent-exec"
    # the site as the sweep was given it (a profile name or path), as Harvester's workers do
    pilot = [sys.executable, "-m", "siteagent", "pilot", "--site", spec["site"]]
    if spec["kind"] == "callable":
        payload = [sys.executable, "-m", "siteagent.sweep.call", spec["payload"]]
    else:
        payload = ["bash", "-c", spec["payload"]]
    return [wrapper, "--", *pilot, "--", *payload]


def _take_reports(base: str, wid: str) -> list[dict[str, Any]]:
    """The ranks' pilot reports under ``base``, read and removed (unreadable ones skipped)."""
    reports = []
    for path in sorted(glob.glob(os.path.join(base, "pilots", f"{wid}-r*.json"))):
        try:
            reports.append(read_report(path))
            os.unlink(path)
        except (OSError, ValueError):
            continue
    return reports


def json_objects(stdout: str) -> list[dict[str, Any]]:
    """Every JSON object the ranks printed on a line of their own.

    Ranks share one stdout, and an unbuffered print writes the text and its newline apart, so
    two ranks' objects can meet on one line (``{...}{...}``): each is read whole all the same.
    """
    decoder = json.JSONDecoder()
    return [obj for line in stdout.splitlines() for obj in _line_objects(decoder, line.strip())]


def _line_objects(decoder: json.JSONDecoder, text: str) -> list[dict[str, Any]]:
    """The JSON objects that follow one another from the start of ``text``."""
    found = []
    i = 0
    while i < len(text) and text[i] == "{":
        try:
            value, end = decoder.raw_decode(text, i)
        except ValueError:
            break
        if isinstance(value, dict):
            found.append(value)
        i = len(text) - len(text[end:].lstrip())  # past the whitespace after it
    return found


def queue_times(env: dict[str, str], job_id: str | None) -> dict[str, float] | None:
    """``{"submit": epoch, "start": epoch}`` of the batch job, where the scheduler says."""
    if not job_id:
        return None
    try:
        if env.get("SLURM_JOB_ID"):
            return _slurm_times(env, job_id)
        return _pbs_times(env, job_id)
    except Exception:  # the scheduler does not say (no command, other format): no queue wait
        return None


def _slurm_times(env: dict[str, str], job_id: str) -> dict[str, float]:
    out = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%V %S"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.split()
    submit, start = (datetime.fromisoformat(v).timestamp() for v in out[:2])
    return {"submit": submit, "start": start}


def _pbs_times(env: dict[str, str], job_id: str) -> dict[str, float]:
    qstat = subprocess.run(
        ["qstat", "-f", "-F", "json", job_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    job = next(iter(json.loads(qstat)["Jobs"].values()))
    fmt = "%a %b %d %H:%M:%S %Y"
    return {
        "submit": datetime.strptime(job["qtime"], fmt).timestamp(),
        "start": datetime.strptime(job["stime"], fmt).timestamp(),
    }
