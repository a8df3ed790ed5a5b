"""The pilot rank's JSON report as a monitor reads it: what a fresh report says, when it was
started, and how it lands on disk (whole, world-readable, no passwords)."""

from __future__ import annotations

import calendar
import json
import os
import stat
import subprocess
import time

import psutil
import pytest

from siteagent.pilot.report import (
    REASONS,
    LayerReport,
    PilotReport,
    mark_lost,
    read_report,
    write_report,
)


def _utc(stamp: str) -> float:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


def test_a_fresh_report_says_starting_and_when():
    before = int(time.time())
    report = PilotReport(pilot_id="1-h-r0-9", site="polaris", host="h", pid=9)
    after = time.time()
    assert before <= _utc(report.started) <= after  # UTC, to the second
    d = report.to_dict()
    assert d["state"] == "starting"
    assert (d["reason"], d["exit_code"], d["signal"], d["finished"]) == (None, None, None, None)
    assert (d["local_rank"], d["rank"], d["seconds"]) == (0, 0, 0.0)
    assert (d["payload_pid"], d["payload_seconds"], d["walltime_s"]) == (None, None, None)
    assert (d["received_signals"], d["gpus"], d["layers"], d["argv"]) == ([], {}, [], [])
    assert d["report_version"] == 1


def test_a_layer_not_yet_timed_took_no_time():
    layer = LayerReport("cvmfs", "mounted atlas.cern.ch")
    assert (layer.seconds, layer.actions) == (0.0, [])


def test_written_report_reads_back_whole_and_world_readable(tmp_path):
    path = tmp_path / "pilots" / "1-h-r0-9.json"
    report = PilotReport(pilot_id="1-h-r0-9", site="polaris", host="h", pid=9, rank=3)
    report.layers.append(LayerReport("plan", "profile", 0.25, ["read polaris"]))
    report.state, report.reason, report.exit_code = "done", "failed", 65
    report.finished = report.started
    write_report(path, report)
    assert read_report(path) == report.to_dict()
    assert read_report(path)["layers"] == [
        {"name": "plan", "summary": "profile", "seconds": 0.25, "actions": ["read polaris"]}
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text().endswith("}\n")
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind
    # a later write replaces the report whole
    report.rank = 4
    write_report(str(path), report)
    assert json.loads(path.read_text())["rank"] == 4


def test_proxy_passwords_never_reach_the_report(tmp_path):
    report = PilotReport(pilot_id="p", site="s", host="h", pid=1)
    report.argv = ["--proxy", "http://alice:hunter2@proxy:3128"]
    report.error = "cannot reach http://alice:hunter2@proxy:3128"
    assert report.to_dict()["argv"] == ["--proxy", "http://alice:***@proxy:3128"]
    write_report(tmp_path / "r.json", report)
    text = (tmp_path / "r.json").read_text()
    assert "hunter2" not in text
    assert read_report(tmp_path / "r.json")["error"] == "cannot reach http://alice:***@proxy:3128"


def test_the_report_says_which_image_the_rank_ran_in(tmp_path, monkeypatch):
    image = pytest.importorskip("siteagent.image")  # the appliance image (issue #7)
    marker = tmp_path / "IMAGE"
    monkeypatch.setattr(image, "MARKER", marker)
    monkeypatch.setenv("APPTAINER_CONTAINER", "/sif/site-agent.sif")
    assert PilotReport(pilot_id="p", site="s", host="h", pid=1).to_dict()["image"] is None
    marker.write_text("site-agent\n")
    report = PilotReport(pilot_id="p", site="s", host="h", pid=1)
    assert report.to_dict()["image"] == {"runtime": "apptainer", "uri": "/sif/site-agent.sif"}


# ---------------------------------------------------------------- reports of SIGKILLed wrappers
def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _unfinished(path, pid: int, started: str, *, state="running", host="h", **more) -> dict:
    data = {"state": state, "host": host, "pid": pid, "started": started, **more}
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live():
    """A running process (a wrapper that is still alive) and its start time."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid, psutil.Process(proc.pid).create_time()
    proc.kill()
    proc.wait()


def test_a_report_whose_wrapper_is_gone_is_marked_lost(tmp_path):
    pid = _dead_pid()
    running = tmp_path / "r0.json"
    _unfinished(running, pid, _stamp(time.time()), site="polaris", payload_pid=77)
    starting = tmp_path / "r1.json"
    _unfinished(starting, pid, _stamp(time.time()), state="starting")
    before = int(time.time())
    assert sorted(mark_lost(str(tmp_path), "h")) == [str(running), str(starting)]
    data = read_report(running)
    assert (data["state"], data["reason"]) == ("done", "lost")
    assert data["reason"] in REASONS  # a reason monitors know
    assert data["error"] == f"wrapper pid {pid} ended without a report"
    assert before <= _utc(data["finished"]) <= time.time()
    assert (data["site"], data["payload_pid"]) == ("polaris", 77)  # the rest is kept
    assert read_report(starting)["reason"] == "lost"
    # whole and world-readable, like every other report
    assert running.read_text().endswith("}\n")
    assert stat.S_IMODE(running.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["r0.json", "r1.json"]
    assert mark_lost(tmp_path, "h") == []  # done now: a later run leaves them be


def test_a_lost_report_keeps_the_error_its_wrapper_gave(tmp_path):
    path = tmp_path / "r.json"
    _unfinished(path, _dead_pid(), _stamp(time.time()), error="cvmfs: not mounted")
    assert mark_lost(tmp_path, "h") == [str(path)]
    assert read_report(path)["error"] == "cvmfs: not mounted"


def test_a_zombie_wrapper_is_gone(tmp_path):
    proc = subprocess.Popen(["true"])  # never waited for: a zombie until the end of the test
    try:
        end = time.monotonic() + 10
        while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < end
            time.sleep(0.01)
        path = tmp_path / "r.json"
        _unfinished(path, proc.pid, _stamp(time.time()))
        assert mark_lost(tmp_path, "h") == [str(path)]
    finally:
        proc.wait()


def test_a_report_whose_wrapper_runs_is_left_alone(tmp_path, live):
    pid, created = live
    path = tmp_path / "r.json"
    # the tightest case: the wrapper wrote its report within the second it started
    data = _unfinished(path, pid, _stamp(created))
    assert mark_lost(tmp_path, "h") == []
    assert read_report(path) == data


def test_a_wrappers_start_time_is_read_from_proc_as_the_kernel_keeps_it(live):
    """What decides "the wrapper still runs" against "its pid was reused": the start time
    read from /proc (no psutil on a rank) is the one psutil reports."""
    from siteagent.pilot.report import _started_at

    pid, created = live
    assert _started_at(pid) == pytest.approx(created, abs=1.0)


def test_a_reused_pid_is_not_the_wrapper(tmp_path, live):
    """The pid now belongs to a process younger than the report: the wrapper is gone."""
    pid, created = live
    path = tmp_path / "r.json"
    _unfinished(path, pid, _stamp(created - 60))
    assert mark_lost(tmp_path, "h") == [str(path)]


def test_an_unreadable_start_time_counts_as_alive_while_the_pid_runs(tmp_path, live):
    pid, _ = live
    alive, dead = tmp_path / "alive.json", tmp_path / "dead.json"
    _unfinished(alive, pid, "yesterday")
    _unfinished(dead, _dead_pid(), "yesterday")
    assert mark_lost(tmp_path, "h") == [str(dead)]
    assert read_report(alive)["state"] == "running"


def test_only_unfinished_reports_of_this_host_are_marked(tmp_path):
    pid, now = _dead_pid(), _stamp(time.time())
    done = _unfinished(tmp_path / "done.json", pid, now, state="done", reason="finished")
    elsewhere = _unfinished(tmp_path / "other.json", pid, now, host="h2")
    _unfinished(tmp_path / "mine.json", pid, now)
    (tmp_path / "notes.txt").write_text("not a report")
    (tmp_path / "list.json").write_text("[1, 2]\n")
    (tmp_path / "nopid.json").write_text('{"state": "running", "host": "h"}\n')
    (tmp_path / "torn.json").write_text('{"state": "running", "ho')
    skipped = _unfinished(tmp_path / "self.json", pid, now)
    # what a writer SIGKILLed within atomic_write leaves: a whole report, yet no *.json
    tmp = _unfinished(tmp_path / f".mine.json.{pid}.0123456789ab.tmp", pid, now)
    assert mark_lost(tmp_path, "h", skip=str(tmp_path / "self.json")) == [
        str(tmp_path / "mine.json")
    ]
    assert read_report(tmp_path / f".mine.json.{pid}.0123456789ab.tmp") == tmp
    assert read_report(tmp_path / "done.json") == done
    assert read_report(tmp_path / "other.json") == elsewhere
    assert read_report(tmp_path / "self.json") == skipped  # the caller's own report
    assert read_report(tmp_path / "mine.json")["reason"] == "lost"
    assert mark_lost(tmp_path / "nosuch", "h") == []


def test_a_report_that_cannot_be_rewritten_does_not_stop_the_others(tmp_path):
    pid, now = _dead_pid(), _stamp(time.time())
    # a name that leaves no room for the temporary file beside it (NAME_MAX)
    stuck = _unfinished(tmp_path / ("x" * 240 + ".json"), pid, now)
    other = tmp_path / "r.json"
    _unfinished(other, pid, now)
    assert mark_lost(tmp_path, "h") == [str(other)]
    assert read_report(tmp_path / ("x" * 240 + ".json")) == stuck


def test_the_own_report_is_skipped_however_its_path_is_spelled(tmp_path, monkeypatch):
    """``skip`` names the caller's report as Path would compare it (``./``, ``//``); the
    paths marked are ``directory`` joined with each name, as strings."""
    pid, now = _dead_pid(), _stamp(time.time())
    (tmp_path / "pilots").mkdir()
    _unfinished(tmp_path / "pilots" / "self.json", pid, now)
    _unfinished(tmp_path / "pilots" / "other.json", pid, now)
    monkeypatch.chdir(tmp_path)
    assert mark_lost("pilots", "h", skip=".//pilots/./self.json") == ["pilots/other.json"]
    assert read_report(tmp_path / "pilots" / "self.json")["state"] == "running"
