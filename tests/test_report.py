"""The pilot rank's JSON report as a monitor reads it: what a fresh report says, when it was
started, and how it lands on disk (whole, world-readable, no passwords)."""

from __future__ import annotations

import calendar
import json
import os
import stat
import time

import pytest

from siteagent.pilot.report import LayerReport, PilotReport, read_report, write_report


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
