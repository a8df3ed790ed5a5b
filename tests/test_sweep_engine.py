"""site-agent sweep on the local profile with the real Globus Compute engine: every run goes
through the execution wrapper and the pilot wrapper on the engine's workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from siteagent.userconfig import config_key

pytestmark = pytest.mark.slow

PAYLOADS = Path(__file__).parent / "sweep_payloads"
WORK = 4_000_000


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ranking_follows_the_measured_times(run_cli, tmp_path):
    payload = f"python3 {PAYLOADS / 'split_work.py'} {WORK}"
    r = run_cli(
        "sweep", "--payload", payload, "--grid", "ranks_per_node=1,2", "--grid",
        "gpus_per_rank=0,1", "-r", "2", "--results", "r.jsonl", "--json", timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    # the impossible shapes (this machine has no GPU) were skipped, not run
    assert [s["point"] for s in doc["skipped"]] == [
        {"ranks_per_node": 1, "gpus_per_rank": 1},
        {"ranks_per_node": 2, "gpus_per_rank": 1},
    ]
    assert {s["reason"] for s in doc["skipped"]} == {"gpus_per_rank: must be <= 0"}
    runs = records(tmp_path / "r.jsonl")
    assert len(runs) == 4 and all(x["ok"] for x in runs), runs
    assert {x["point"]["gpus_per_rank"] for x in runs} == {0}
    for x in runs:
        ranks = x["config"]["ranks_per_node"]
        # each rank did its share of the fixed work, through its own pilot wrapper
        assert x["metrics"]["items"] == WORK
        assert [(k["rank"], k["reason"]) for k in x["ranks"]] == [
            (i, "finished") for i in range(ranks)
        ]
        assert {"plan", "gpu-binding", "container", "payload"} <= set(x["layers"])
        assert 0 < x["layers"]["payload"] < x["seconds"] <= x["turnaround_s"]
        assert x["node_hours"] == pytest.approx(x["seconds"] / 3600, abs=1e-8)
    # the ranking is the order of the recorded medians, whatever this machine's load did
    medians: dict[str, list[float]] = {}
    for x in runs:
        medians.setdefault(config_key(x["config"]), []).append(x["seconds"])
    want = sorted(medians, key=lambda k: statistics.median(medians[k]))
    assert [config_key(p["config"]) for p in doc["points"]] == want
    assert [p["rank"] for p in doc["points"]] == [1, 2]
    assert doc["points"][0]["value"] == statistics.median(medians[want[0]])
    best = json.loads(want[0])
    assert doc["winner"]["ranksPerNode"] == best["ranks_per_node"]
    html = (tmp_path / "r.html").read_text()
    assert "<svg" in html and "★ ranks_per_node=" in html
    # piped: plain progress lines
    assert "[4/4] done 4 (0 failed), running 0, queued 0, elapsed " in r.stderr


def test_python_callable_and_throughput(run_cli, tmp_path):
    shutil.copy(PAYLOADS / "calls.py", tmp_path / "calls.py")
    r = run_cli(
        "sweep", "--payload", "calls:events", "--grid", "ranks_per_node=1,2",
        "--objective", "throughput", "--metric", "events", "--results", "r.jsonl",
        "--plot", "chart.svg", timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    runs = records(tmp_path / "r.jsonl")
    # rank r reports 10 * (r + 1) events: 10 with one rank, 10 + 20 with two
    assert sorted(x["metrics"]["events"] for x in runs) == [10, 30]
    lines = r.stdout.splitlines()
    best = next(ln for ln in lines if "★ best" in ln)
    assert "│ 1 │ 2 " in best and "30.00" in best
    winner = json.loads(r.stdout.split("for the Harvester queue config:\n")[1].split("\nplot:")[0])
    assert winner["ranksPerNode"] == 2 and winner["nodesPerWorker"] == 1
    assert (tmp_path / "chart.svg").read_text().startswith("<svg")


def leftovers(arg: str) -> list[int]:
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if (p.info["cmdline"] or [])[-2:] == ["sleep", arg]
    ]


def test_interrupted_sweep_keeps_what_finished_and_resumes(run_cli, tmp_path):
    nap = "1.37"  # the payload, recognisable among this machine's processes
    args = [
        "sweep", "--payload", f"sleep {nap}", "--grid", "ranks_per_node=1,2", "-r", "2",
        "--results", "r.jsonl",
    ]  # fmt: skip
    results = tmp_path / "r.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "siteagent", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 180
    # stop once a run has finished and the next one's payload runs
    while not (results.exists() and results.read_text().count("\n") >= 1 and leftovers(nap)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no run finished"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("site-agent: error: interrupted: ") and "rerun to resume" in last
    kept = results.read_text().splitlines()
    assert 1 <= len(kept) < 4 and f"{len(kept)} run(s) finished" in last
    assert ", 1 in flight cancelled, " in last
    # what was in flight was stopped, not left running
    deadline = time.monotonic() + 20
    while leftovers(nap) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not leftovers(nap)

    r = run_cli(*args, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = results.read_text().splitlines()
    assert lines[: len(kept)] == kept and len(lines) == 4
    runs = [json.loads(x) for x in lines]
    assert sorted((x["config"]["ranks_per_node"], x["rep"]) for x in runs) == [
        (1, 0), (1, 1), (2, 0), (2, 1),
    ]  # fmt: skip
    assert all(x["ok"] for x in runs)
    assert f"[{4 - len(kept)}/{4 - len(kept)}] done" in r.stderr

    # everything measured: a third run submits nothing and prints the same ranking
    again = run_cli(*args, timeout=60)
    assert again.returncode == 0 and results.read_text().splitlines() == lines
    assert "★ best" in again.stdout and "done" not in again.stderr


def test_points_in_flight_together_and_the_node_hour_budget(run_cli, tmp_path):
    from datetime import datetime

    r = run_cli(
        "sweep", "--payload", "sleep 10", "--grid", "ranks_per_node=1,2", "-j", "2",
        "--results", "r.jsonl", timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "running 2, queued 0" in r.stderr
    first, second = sorted(records(tmp_path / "r.jsonl"), key=lambda x: x["started"])
    start = [datetime.fromisoformat(x["started"]).timestamp() for x in (first, second)]
    # (10 s runs: room for the second user endpoint's start-up on a busy machine)
    assert start[1] < start[0] + first["seconds"], "the two runs did not overlap"

    # a budget smaller than one run: the first run spends it, the rest never starts
    r = run_cli(
        "sweep", "--payload", "true", "--grid", "ranks_per_node=1,2", "-r", "2",
        "--max-node-hours", "0.0000001", "--results", "b.jsonl", timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(records(tmp_path / "b.jsonl")) == 1
    assert "budget reached: 3 run(s) not started" in r.stdout


def test_progress_is_live_on_a_terminal(tmp_path):
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "siteagent", "sweep", "--payload", "true", "--grid",
         "ranks_per_node=1", "--results", "r.jsonl"],
        cwd=tmp_path, stdin=follower, stdout=follower, stderr=follower, close_fds=True,
        env=os.environ | {"TERM": "xterm", "COLUMNS": "160"},
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    text = b"".join(chunks).decode(errors="replace")
    # rich's live line (cursor control), the finished run above it, the table in colour
    assert "\x1b[" in text and "done 0 (0 failed), running 1, queued 0" in text
    assert "ranks_per_node=1 rep 0: " in text and "★ best" in text
