"""The pilot's floor (benchmarks/floors/pilot_floor.py) is the yardstick of goal 1 of #16:
it must do the duties it claims, or the ratio against it means nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

FLOOR = Path(__file__).parents[1] / "benchmarks" / "floors" / "pilot_floor.py"


def floor(directory: Path, *payload: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-I", "-S", str(FLOOR), str(directory), "--", *payload], **kw
    )


def test_the_floor_reports_done_with_the_payloads_exit_code(tmp_path):
    proc = floor(tmp_path, "sh", "-c", "exit 3")
    assert proc.wait(timeout=30) == 3
    (report,) = tmp_path.glob("floor-*.json")
    data = json.loads(report.read_text())
    assert (data["state"], data["exit_code"], data["pid"]) == ("done", 3, proc.pid)
    assert data["payload_pid"] != proc.pid and data["finished"] >= data["started"]


def test_the_floor_marks_unfinished_reports_of_gone_wrappers_lost(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / "a.json").write_text(json.dumps({"state": "running", "pid": gone.pid}))
    (tmp_path / "b.json").write_text(json.dumps({"state": "running", "pid": os.getpid()}))
    done = json.dumps({"state": "done", "pid": gone.pid, "reason": "finished"})
    (tmp_path / "c.json").write_text(done)
    assert floor(tmp_path, "true").wait(timeout=30) == 0
    assert json.loads((tmp_path / "a.json").read_text())["reason"] == "lost"
    assert json.loads((tmp_path / "b.json").read_text())["state"] == "running"  # alive
    assert (tmp_path / "c.json").read_text() == done


def test_the_floors_payload_dies_with_it(tmp_path):
    pidfile = tmp_path / "payload.pid"
    script = f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile} && exec sleep 60"
    proc = floor(tmp_path, "sh", "-c", script)
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists():
            assert time.monotonic() < deadline, "the payload never started"
            time.sleep(0.02)
        payload = int(pidfile.read_text())
        assert os.getpgid(payload) == payload  # its own process group
        proc.send_signal(signal.SIGKILL)  # cannot be forwarded: the kernel kills the payload
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(payload):
            assert time.monotonic() < deadline, "the payload outlived its wrapper"
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()


def test_the_floor_ends_the_payloads_leftovers(tmp_path):
    pidfile = tmp_path / "leftover.pid"
    # a daemon in a session of its own: no process group signal reaches it, only the sweep
    script = f"setsid sleep 60 & echo $! > {pidfile}"
    assert floor(tmp_path, "sh", "-c", script).wait(timeout=30) == 0
    leftover = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(leftover):
        assert time.monotonic() < deadline, "the payload's leftover survived the floor"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False
