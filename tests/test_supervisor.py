"""The pilot wrapper's Supervisor, run with short shell payloads (no CLI start-up): what the
report says, which signals reach the payload, when the walltime margin and the grace period
end it, and that nothing it started outlives it.

Each run is in a child process (tests/supervisor_child.py): the Supervisor makes its process a
child subreaper and sweeps every process below it, which in the pytest process would reach
other tests' processes. The payload signals the Supervisor itself (``kill -USR1 $PPID``: its
parent is that child), so the tests need no sleeps to time a signal."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import time
from pathlib import Path

import psutil
import pytest

from siteagent.pilot.leftovers import LEFTOVER_GRACE
from siteagent.pilot.outcome import SETUP_ERROR_EXIT
from siteagent.pilot.plan import PilotOptions, build_plan
from siteagent.pilot.run import report_plan_error

from .pilotsite import clean_env, make_site
from .supervisor_child import supervise


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = make_site(tmp_path / "site")
    env = clean_env(site.env)
    for name in list(os.environ):
        if name not in env:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return site


def running(site) -> str:
    """Shell that waits until the report says running: a signal sent earlier could reach the
    Supervisor while it is still starting the payload."""
    return (
        f'until grep -q \'"state": "running"\' {site.root / "report.json"}; do sleep 0.02; done; '
    )


def plan_for(site, script: str, **options):
    """The plan of ``sh -c script`` without CVMFS or container (its layers still set up)."""
    opts = PilotOptions(
        site=str(site.profile),
        report=str(site.root / "report.json"),
        payload=("sh", "-c", script),
        **({"cvmfs": "none", "container": "none"} | options),
    )
    return build_plan(opts, dict(os.environ))


def on_disk(plan) -> dict:
    return json.loads(Path(plan.report_path).read_text())


def run_plan(plan, **kwargs):
    """The final report of ``plan`` run by the Supervisor (in a child process)."""
    run = supervise(plan, **kwargs)
    assert run.raised is None, run.raised
    return run.report


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ---------------------------------------------------------------- the report
def test_report_names_the_rank_its_gpus_command_and_layers(site):
    plan = plan_for(site, "exit 0")
    t = time.monotonic()
    run = supervise(plan, via="Supervisor", plan_seconds=0.25)
    took = time.monotonic() - t
    data = on_disk(plan)
    assert data == run.report.to_dict()
    assert (data["pilot_id"], data["site"], data["host"]) == (plan.pilot_id, "gputest", plan.host)
    assert (data["pid"], data["local_rank"], data["rank"]) == (run.pid, 0, 0)
    assert data["argv"] == ["sh", "-c", "exit 0"]
    # the test site binds 4 NVIDIA GPUs in reverse order: rank 0 gets the last one
    assert data["gpus"] == {
        "vendor": "nvidia",
        "count": 4,
        "slots": [3],
        "set": {"CUDA_VISIBLE_DEVICES": "3"},
    }
    names = [layer["name"] for layer in data["layers"]]
    assert names == ["plan", *(layer.name for layer in plan.layers)]
    assert data["layers"][0] == {
        "name": "plan",
        "summary": "profile, GPU discovery, layer plan",
        "seconds": 0.25,
        "actions": [],
    }
    assert all(0 <= layer["seconds"] < took for layer in data["layers"][1:])
    assert (data["state"], data["reason"], data["exit_code"], data["signal"]) == (
        "done", "finished", 0, None,
    )  # fmt: skip
    assert data["error"] is None and data["received_signals"] == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["finished"])
    assert 0 < data["payload_seconds"] <= data["seconds"] <= took + 0.01


def test_report_says_running_with_the_payload_pid_while_it_runs(site, tmp_path):
    seen = tmp_path / "seen"
    # the payload may run before the Supervisor has written "running": it waits for it
    script = running(site) + f"cat {site.root / 'report.json'} > {seen}; echo $$ >> {seen}"
    plan = plan_for(site, script)
    report = run_plan(plan)
    during, pid = seen.read_text().rsplit("}", 1)
    during = json.loads(during + "}")
    assert (during["state"], during["payload_pid"]) == ("running", int(pid))
    assert report.payload_pid == int(pid) and report.state == "done"


def test_payload_runs_in_the_workdir_with_the_planned_environment_in_its_own_group(site, tmp_path):
    out = tmp_path / "out"
    script = f'echo "$PWD" > {out}; echo "$CUDA_VISIBLE_DEVICES" >> {out}; ps -o pgid= -p $$ >> {out}; echo $$ >> {out}'
    plan = plan_for(site, script + "; mkdir -p job/sub; touch job/sub/out job/log")
    run_plan(plan)
    cwd, cuda, pgid, pid = out.read_text().split()
    assert cwd == plan.workdir and cuda == "3"
    assert int(pgid) == int(pid) != os.getpgrp()
    assert not Path(plan.workdir).exists()  # removed at the end, with what the payload left


def test_exit_code_of_the_payload_is_the_report_s(site):
    report = run_plan(plan_for(site, "exit 5"))
    assert (report.reason, report.exit_code) == ("failed", 5)
    assert report.layers[0].seconds == 0  # no planning time given
    assert supervise(plan_for(site, "exit 0"), via="Supervisor").report.layers[0].seconds == 0


def test_a_payload_killed_by_a_signal_is_128_plus_n_named(site):
    report = run_plan(plan_for(site, "kill -SEGV $$"))
    assert (report.reason, report.exit_code, report.signal) == ("failed", 139, "SIGSEGV")


def test_a_container_left_behind_is_removed_after_the_run_and_reported(site, tmp_path):
    """podman-hpc's ``rm --force NAME`` runs once the payload ended (however it ended: a
    SIGKILL leaves the container behind), and the report's container layer names it."""
    removed = tmp_path / "removed"
    plan = plan_for(site, "exit 4", container="docker://example.org/atlas:1")
    layer = plan.layer("container")
    teardown = ("sh", "-c", f"echo rm >> {removed}")
    container = dataclasses.replace(layer.detail.container, teardown=teardown)
    layer = dataclasses.replace(
        layer, detail=dataclasses.replace(layer.detail, container=container)
    )
    plan = dataclasses.replace(
        plan, layers=tuple(layer if x.name == "container" else x for x in plan.layers)
    )
    report = run_plan(plan)
    assert (report.reason, report.exit_code) == ("failed", 4)
    assert removed.read_text() == "rm\n"
    actions = {entry.name: entry.actions for entry in report.layers}
    assert actions["container"][-1] == " ".join(teardown)
    assert [name for name, done in actions.items() if " ".join(teardown) in done] == ["container"]


def test_the_report_names_the_pilot3_that_runs(site, pilot3_dir, tmp_path):
    from siteagent.pilot.source import PilotSource

    seen = tmp_path / "seen"
    plan = plan_for(site, running(site) + f"cat {site.root / 'report.json'} > {seen}")
    payload = plan.layer("payload")
    source = PilotSource("dir", str(pilot3_dir), pilot3_dir)
    payload = dataclasses.replace(
        payload, detail=dataclasses.replace(payload.detail, source=source, pilot_user="generic")
    )
    plan = dataclasses.replace(plan, layers=(*plan.layers[:-1], payload))
    report = run_plan(plan)
    pilot = {"source": "dir", "origin": str(pilot3_dir), "version": "3.7.0.36"}
    assert report.reason == "finished" and report.pilot == pilot
    assert json.loads(seen.read_text())["pilot"] == pilot  # while it runs already


def test_a_run_that_did_not_finish_keeps_its_logs(site, tmp_path):
    log = "mkdir -p PanDA_Pilot3_1; printf 'start\\nboom\\n' > PanDA_Pilot3_1/pilotlog.txt; "
    finished = run_plan(plan_for(site, log + "exit 0"))
    plan = plan_for(site, log + "exit 3")
    kept = Path(plan.logs_dir)
    assert (finished.logs, finished.log_tail, kept.exists()) == (None, [], False)
    report = run_plan(plan)
    assert (report.reason, report.logs, report.log_tail) == ("failed", str(kept), ["start", "boom"])
    assert (kept / "pilotlog.txt").read_text() == "start\nboom\n"
    assert "ended: failed, exit code 3" in (kept / "wrapper.log").read_text()
    # failed_logs_kept: 0 keeps none, 1 keeps this one
    none_kept = run_plan(dataclasses.replace(plan_for(site, log + "exit 3"), logs_kept=0))
    assert (none_kept.reason, none_kept.logs) == ("failed", None)
    one_kept = run_plan(dataclasses.replace(plan_for(site, log + "exit 3"), logs_kept=1))
    assert (one_kept.logs, one_kept.log_tail) == (str(kept), ["start", "boom"])
    # a place the logs cannot go: said in the report, which still says how the pilot ended
    blocker = tmp_path / "file"
    blocker.write_text("")
    full = run_plan(dataclasses.replace(plan_for(site, "exit 3"), logs_dir=str(blocker / "l")))
    assert (full.reason, full.exit_code) == ("failed", 3)
    assert full.logs.startswith("not kept: ") and "Not a directory" in full.logs


# ---------------------------------------------------------------- setup errors
def test_a_payload_that_cannot_start_is_a_setup_error(site):
    plan = plan_for(site, "true")
    payload = plan.layer("payload")
    missing = dataclasses.replace(payload, command=("/nonexistent/pilot",))
    plan = dataclasses.replace(plan, layers=(*plan.layers[:-1], missing))
    report = run_plan(plan)
    assert (report.reason, report.exit_code) == ("setup-error", SETUP_ERROR_EXIT)
    assert report.error == "payload: cannot start /nonexistent/pilot: No such file or directory"
    assert report.payload_pid is None and on_disk(plan)["state"] == "done"


def test_a_workdir_that_cannot_be_made_is_a_setup_error(site, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    ran = tmp_path / "ran"
    plan = dataclasses.replace(plan_for(site, f"touch {ran}"), workdir=str(blocker / "w"))
    report = run_plan(plan)
    assert (report.reason, report.exit_code) == ("setup-error", SETUP_ERROR_EXIT)
    # the error names the directory that could not be made, and why
    assert report.error == f"workdir: cannot create {blocker / 'w'}: Not a directory"
    assert not ran.exists()


def test_a_layer_that_fails_to_set_up_is_a_setup_error_and_nothing_starts(site, tmp_path):
    (site.cvmfsexec / "makedist").write_text("#!/bin/sh\necho 'no network' >&2\nexit 1\n")
    ran = tmp_path / "ran"
    plan = plan_for(site, f"touch {ran}", cvmfs=None)
    report = run_plan(plan)
    assert (report.reason, report.exit_code) == ("setup-error", SETUP_ERROR_EXIT)
    assert report.error == "cvmfs: makedist exited 1: no network"
    assert report.payload_pid is None and not ran.exists()
    assert not Path(plan.workdir).exists()


def test_each_layer_s_setup_time_is_reported(site):
    makedist = site.cvmfsexec / "makedist"
    lines = makedist.read_text().split("\n", 1)  # a slow download: 0.3 s
    makedist.write_text(f"{lines[0]}\nimport time; time.sleep(0.3)\n{lines[1]}")
    report = run_plan(plan_for(site, "exit 0", cvmfs=None))
    assert report.reason == "finished", report.error
    seconds = {layer.name: layer.seconds for layer in report.layers}
    assert 0.3 <= seconds["cvmfs"] < report.seconds


def test_an_unforeseen_error_is_reported_then_raised_and_cleans_up(site, tmp_path):
    pid_file = tmp_path / "pid"
    plan = plan_for(site, f"echo $$ > {pid_file}; exec sleep 60")
    # wait() raises RuntimeError("boom") once the payload wrote its pid
    run = supervise(plan, scenario="broken-wait", arg=str(pid_file))
    assert run.raised == "RuntimeError: boom" and run.report is None
    data = on_disk(plan)
    assert (data["state"], data["reason"], data["exit_code"]) == (
        "done", "setup-error", SETUP_ERROR_EXIT,
    )  # fmt: skip
    assert data["error"] == "RuntimeError: boom"
    assert not alive(int(pid_file.read_text()))
    assert not Path(plan.workdir).exists()


def test_a_plan_that_cannot_be_built_still_leaves_a_report(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    monkeypatch.setenv("SITE_AGENT_RANK", "3")
    monkeypatch.delenv("SITE_AGENT_WORKER_ID", raising=False)
    shown, report = report_plan_error(
        PilotOptions(site="nosuch", report=str(path)), ValueError("site: 'nosuch' not found")
    )
    assert shown == str(path)
    data = json.loads(path.read_text())
    assert data == report.to_dict()
    assert (data["state"], data["reason"], data["exit_code"]) == (
        "done", "setup-error", SETUP_ERROR_EXIT,
    )  # fmt: skip
    assert data["error"] == "site: 'nosuch' not found"
    assert (data["site"], data["pid"]) == ("nosuch", os.getpid())
    assert data["pilot_id"].endswith(f"-r3-{os.getpid()}")
    assert data["finished"] == data["started"]
    monkeypatch.setenv("SITE_AGENT_RANK", "x")  # not a number: rank 0
    _, report = report_plan_error(PilotOptions(site="s", report=str(path)), ValueError("e"))
    assert report.pilot_id.endswith(f"-r0-{os.getpid()}")


def test_the_starting_report_is_dropped_only_while_it_is_this_rank_s(tmp_path):
    """The CLI's first report, written before the plan names the rank's real report path, is
    removed once that path differs; never another rank's report written there since."""
    from siteagent.pilot.report import PilotReport, write_report
    from siteagent.pilot.run import drop_own_report, report_starting

    path = report_starting(PilotOptions(site="s", report=str(tmp_path / "r.json")))
    assert path == str(tmp_path / "r.json")
    drop_own_report(path)
    assert not os.path.exists(path)
    drop_own_report(path)  # gone already: nothing to do
    me = os.getpid()
    for pid, state in ((me + 1, "starting"), (me, "running")):  # another rank's; ours, later
        write_report(path, PilotReport(pilot_id="p", site="s", host="h", pid=pid, state=state))
        drop_own_report(path)
        assert json.loads(Path(path).read_text())["state"] == state
    Path(path).write_text("{")  # half written by another rank: left alone
    drop_own_report(path)
    assert Path(path).read_text() == "{"


def test_a_payload_whose_wrapper_died_before_it_started_does_not_start(tmp_path):
    """The payload's side of Popen arms PR_SET_PDEATHSIG before exec; a wrapper that died
    before that (no death signal will come) stops it from starting (exit 64)."""
    import subprocess
    import sys

    started = tmp_path / "started"
    code = (
        "import os, sys, time; from siteagent.pilot.run import _die_with_parent\n"
        "wrapper = os.getpid()\n"
        "if os.fork() == 0:\n"
        "    print(os.getpid(), flush=True)\n"
        "    while os.getppid() == wrapper: time.sleep(0.01)\n"  # the wrapper is gone
        "    _die_with_parent(wrapper)\n"
        "    open(sys.argv[1], 'w').close()\n"
        "os._exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(started)], capture_output=True, text=True, timeout=30
    )
    payload = int(out.stdout)
    deadline = time.monotonic() + 10
    while alive(payload):
        assert time.monotonic() < deadline, "the payload's side never ended"
        time.sleep(0.02)
    assert not started.exists()


# ---------------------------------------------------------------- signals
TRAP_USR1 = "trap 'echo USR1 >> {got}' USR1; "


def test_usr1_is_passed_on_and_does_not_stop_the_payload(site, tmp_path):
    got = tmp_path / "got"
    # grace 0.1 s: were USR1 a stop, the payload would be killed long before it ends
    script = (
        TRAP_USR1.format(got=got)
        + running(site)
        + "kill -USR1 $PPID; for i in 1 2 3 4; do sleep 0.1; done; exit 0"
    )
    report = run_plan(plan_for(site, script, grace=0.1))
    assert got.read_text().split() == ["USR1"]
    assert (report.reason, report.exit_code, report.signal) == ("finished", 0, None)
    assert report.received_signals == ["SIGUSR1"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_is_forwarded_to_the_payload_group(site, tmp_path, sig):
    got, child = tmp_path / "got", tmp_path / "child"
    name = sig.name[3:]
    # a child in the payload's group gets the signal too
    script = (
        f"sleep 60 & echo $! > {child}; trap 'echo {name} >> {got}; exit 3' {name}; "
        + running(site)
        + f"kill -{name} $PPID; while :; do sleep 0.05; done"
    )
    report = run_plan(plan_for(site, script))
    assert got.read_text().split() == [name]
    assert (report.reason, report.exit_code) == ("signalled", 3)
    assert report.received_signals == [sig.name]
    assert not alive(int(child.read_text()))


def test_a_stopped_payload_that_ignores_it_is_killed_after_the_grace_period(site):
    script = "trap '' TERM; " + running(site) + "kill -TERM $PPID; while :; do sleep 0.05; done"
    report = run_plan(plan_for(site, script, grace=0.5))
    assert (report.reason, report.exit_code, report.signal) == ("signalled", 137, "SIGKILL")
    assert 0.4 < report.payload_seconds < 3


def test_signal_handlers_are_restored_after_the_run(site):
    run = supervise(plan_for(site, "true"))
    assert run.report.reason == "finished" and run.handlers_restored


def test_a_stop_before_the_supervisor_took_over_ends_without_starting(site, tmp_path):
    ran = tmp_path / "ran"
    plan = plan_for(site, f"touch {ran}")
    report = run_plan(plan, scenario="early-stop")  # a TERM the start-up caught
    assert (report.reason, report.exit_code, report.payload_pid) == ("signalled", 143, None)
    assert report.received_signals == ["SIGTERM"] and not ran.exists()
    assert not Path(plan.workdir).exists()


def test_a_usr1_before_the_payload_started_is_not_passed_on(site, tmp_path):
    got = tmp_path / "got"
    # what came before the start is the wrapper's business: the payload does not get it later
    script = TRAP_USR1.format(got=got) + "sleep 0.3; exit 0"
    report = run_plan(plan_for(site, script), scenario="early-usr1")
    assert (report.reason, report.exit_code) == ("finished", 0)
    assert report.received_signals == ["SIGUSR1"] and not got.exists()


def test_a_stop_while_the_payload_is_being_started_reaches_it(site):
    # the TERM lands in Popen, before the Supervisor knows the payload's pid; were it not
    # passed on, the payload would run on to the walltime margin (TERM after 3 s)
    plan = plan_for(site, "while :; do sleep 0.05; done", walltime="00:00:05", margin=2.0)
    report = run_plan(plan, scenario="term-during-popen")
    assert (report.reason, report.exit_code, report.signal) == ("signalled", 143, "SIGTERM")
    assert report.received_signals == ["SIGTERM"] and report.payload_seconds < 2


# ---------------------------------------------------------------- walltime
def test_walltime_margin_sends_term_to_the_payload(site, tmp_path):
    got = tmp_path / "got"
    script = f"trap 'echo TERM >> {got}; exit 9' TERM; while :; do sleep 0.05; done"
    # 3 s of walltime less a 2.6 s margin: TERM after 0.4 s
    report = run_plan(plan_for(site, script, walltime="00:00:03", margin=2.6, grace=5))
    assert got.read_text().split() == ["TERM"]
    assert (report.reason, report.exit_code) == ("walltime", 9)
    assert 0.3 < report.payload_seconds < 1.5


def test_walltime_kill_follows_the_grace_period(site):
    script = "trap '' TERM; while :; do sleep 0.05; done"
    report = run_plan(plan_for(site, script, walltime="00:00:03", margin=2.6, grace=0.4))
    assert (report.reason, report.exit_code, report.signal) == ("walltime", 137, "SIGKILL")
    assert 0.7 < report.payload_seconds < 2.5  # TERM at 0.4 s, KILL 0.4 s later


def test_no_walltime_no_limit(site):
    report = run_plan(plan_for(site, "sleep 0.2", margin=0, grace=0))
    assert (report.reason, report.exit_code, report.walltime_s) == ("finished", 0, None)


# ---------------------------------------------------------------- leftovers
def test_a_report_never_finishes_before_it_started(site):
    """Both stamps come from time.time(): gmtime() alone reads time(2), a coarser clock that
    can be a tick behind, so a run of a few ms could finish a second before it started."""
    r = supervise(plan_for(site, "true"), scenario="coarse-clock")
    assert r.report.finished >= r.report.started, (r.report.started, r.report.finished)


def test_nothing_the_payload_started_survives_it(site, tmp_path):
    pids = tmp_path / "pids"
    # one child in the payload's group ignoring TERM, one escaped with setsid, one daemonised
    # (its parent exited, so it re-parents to the Supervisor, a child subreaper), and one
    # escaped, ignoring TERM, with a child of its own that ignores it too
    script = (
        f"sh -c \"trap '' TERM; sleep 300\" & echo $! > {pids}; "
        f"setsid sleep 301 & echo $! >> {pids}; "
        f"(setsid sleep 302 & echo $! >> {pids}); "
        f"setsid sh -c \"trap '' TERM; sleep 306 & echo \\$! >> {pids}; wait\" & "
        f"echo $! >> {pids}; "
        f"while [ $(wc -l < {pids}) -lt 5 ]; do :; done; exit 0"
    )
    report = run_plan(plan_for(site, script))
    assert report.reason == "finished"
    left = [int(p) for p in pids.read_text().split()]
    assert len(left) == 5 and [p for p in left if alive(p)] == []


def test_without_a_subreaper_the_payload_group_is_still_ended(site, tmp_path):
    pids, got = tmp_path / "pids", tmp_path / "got"
    # three orphans that stay in the payload's group: one deaf to TERM, one that takes a
    # moment to clean up on TERM (so it gets TERM first, and the grace)
    on_term = f"trap 'sleep 0.2; echo TERM > {got}; exit 0' TERM; while :; do sleep 0.05; done"
    script = (
        f"(sleep 303 & echo $! > {pids}); "
        f"(sh -c \"trap '' TERM; sleep 304\" & echo $! >> {pids}); "
        f'(sh -c "{on_term}" & echo $! >> {pids}); '
        f"while [ $(wc -l < {pids}) -lt 3 ]; do :; done; exit 0"
    )
    left: list[int] = []
    try:
        # as where the kernel has none: orphans go to init (or another subreaper above)
        report = run_plan(plan_for(site, script), scenario="no-subreaper")
        left = [int(p) for p in pids.read_text().split()]
        assert report.reason == "finished"
        assert len(left) == 3 and [p for p in left if alive(p)] == []
        assert got.read_text() == "TERM\n"
    finally:
        for pid in left:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_leftovers_get_term_first_so_they_can_clean_up(site, tmp_path):
    pid_file, got = tmp_path / "pid", tmp_path / "got"
    # escaped from the payload's group, so only the sweep of the Supervisor's children reaches it
    leftover = (  # its clean-up takes a moment
        f"trap 'sleep 0.2; echo TERM > {got}; exit 0' TERM; echo $$ > {pid_file}; "
        "while :; do sleep 0.05; done"
    )
    script = f'setsid sh -c "{leftover}" & until [ -s {pid_file} ]; do sleep 0.02; done; exit 0'
    report = run_plan(plan_for(site, script))
    assert report.reason == "finished"
    assert got.read_text() == "TERM\n" and not alive(int(pid_file.read_text()))
    assert report.seconds < LEFTOVER_GRACE  # it ended on TERM: the grace is not waited out


def test_a_leftover_that_starts_another_on_term_is_ended_too(site, tmp_path):
    pid_file, spawned = tmp_path / "pid", tmp_path / "spawned"
    # escaped from the group; on TERM it starts one more process (escaped too) and exits
    on_term = f"setsid sleep 305 & echo \\$! > {spawned}; exit 0"
    leftover = f"trap '{on_term}' TERM; echo $$ > {pid_file}; while :; do sleep 0.05; done"
    script = f'setsid sh -c "{leftover}" & until [ -s {pid_file} ]; do sleep 0.02; done; exit 0'
    report = run_plan(plan_for(site, script))
    assert report.reason == "finished"
    late = int(spawned.read_text())
    try:
        assert not alive(late) and not alive(int(pid_file.read_text()))
    finally:
        if alive(late):
            os.kill(late, signal.SIGKILL)


def test_the_report_exists_while_the_layers_are_set_up(site):
    plan = plan_for(site, "exit 0")
    # a monitor looking while CVMFS or the container are being set up
    seen = supervise(plan, scenario="watch-setup").seen
    assert [(s["state"], s["pilot_id"]) for s in seen] == [("starting", plan.pilot_id)]


# ---------------------------------------------------------------- the isolation itself
def test_the_guard_sees_a_subreaper_and_the_pytest_process_is_none(tmp_path):
    """tests/conftest.py's guard reads the flag the Supervisor sets; a reader that always said
    no would let an in-process run slip through."""
    import subprocess
    import sys

    from .supervisor_child import is_subreaper

    code = (
        "from tests.supervisor_child import is_subreaper, set_subreaper; "
        "a = is_subreaper(); set_subreaper(True); print(a, is_subreaper())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
        cwd=Path(__file__).parents[1], check=True,
    ).stdout  # fmt: skip
    assert out.split() == ["False", "True"]
    assert not is_subreaper()
