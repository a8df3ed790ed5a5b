"""`site-agent pilot`: the layered command, every layer run through strict stand-ins at the
subprocess boundary, signal forwarding, walltime kills, cleanup and the JSON report."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from siteagent.pilot.run import SETUP_ERROR_EXIT

from .pilotsite import STANDINS, clean_env, make_site

CLI = [sys.executable, "-m", "siteagent", "pilot"]


def run(site, *args, env=None, timeout=60, cwd=None):
    return subprocess.run(
        [*CLI, "--site", str(site.profile), *args],
        env=clean_env(site.env | (env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or site.root,
    )


def start(site, *args, env=None):
    return subprocess.Popen(
        [*CLI, "--site", str(site.profile), *args],
        env=clean_env(site.env | (env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=site.root,
    )


def wait_for(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def report_state(path: Path) -> str | None:
    try:
        return json.loads(path.read_text())["state"]
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def site(tmp_path):
    return make_site(tmp_path / "site")


# ---------------------------------------------------------------- the plan (dry run)
def test_dry_run_shows_layers_in_order_with_every_command(site):
    r = run(
        site,
        "--container",
        "docker://ghcr.io/x/y:1",
        "--conda-env",
        "numpy,scipy=1.13",
        "--walltime",
        "01:00:00",
        "--dry-run",
        "--",
        "my-payload",
        "--flag",
        env={"PALS_LOCAL_RANKID": "1", "PALS_RANKID": "5", "PBS_JOBID": "123.pbs"},
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    layer_lines = re.findall(r"(?m)^  [1-8]\. (\S+)", out)
    assert layer_lines == [
        "gpu-binding", "proxy", "cvmfs", "container", "env", "credentials", "identity", "payload",
    ]  # fmt: skip
    assert "set     CUDA_VISIBLE_DEVICES=2" in out  # reverse order: local rank 1 -> GPU 2
    assert "set     http_proxy=http://proxy.example.org:3128" in out  # compute scope applies
    exe = site.cvmfsexec / "cvmfsexec"
    assert f"setup   {site.cvmfsexec}/makedist default" in out
    assert f"command {exe} atlas.cern.ch sft.cern.ch --" in out
    assert "command apptainer exec --nv --bind " + str(site.root / "opt") in out
    assert "docker://ghcr.io/x/y:1" in out
    env_line = next(line for line in out.splitlines() if "micromamba create" in line)
    assert env_line.split()[-2:] == ["numpy", "scipy=1.13"]
    assert "command my-payload --flag" in out
    assert "SIGTERM to the payload's process group at 3540s, SIGKILL 180s later" in out
    full = out.splitlines()[out.splitlines().index("full command:") + 1].strip()
    assert full.startswith(f"{exe} atlas.cern.ch sft.cern.ch -- apptainer exec --nv")
    assert full.endswith("docker://ghcr.io/x/y:1 my-payload --flag")
    assert "pilot 123.pbs-" in out and "-r5-" in out
    # a dry run touches nothing
    assert not (site.cvmfsexec / "dist").exists() and not site.log.exists()
    assert not (site.root / "home" / ".site-agent").exists()  # no report, no env (a cache only)


def test_dry_run_json_and_default_pilot_command(site, tmp_path):
    pilot_dir = tmp_path / "pilot3"
    pilot_dir.mkdir()
    (pilot_dir / "pilot.py").write_text("")
    r = run(
        site,
        "--pilot-dir",
        str(pilot_dir),
        "--walltime",
        "00:30:00",
        "--cvmfs",
        "none",
        "--pilot-arg=--noproxyverification",
        "--dry-run",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    argv = plan["argv"]
    assert argv[:2] == ["python3", str(pilot_dir / "pilot.py")]
    pairs = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert pairs["-q"] == "SITEAGENT_TEST" and pairs["--pilot-user"] == "generic"
    assert pairs["--resource-type"] == "SCORE" and pairs["-w"] == "generic"
    assert pairs["--harvester-submit-mode"] == "PULL"
    assert pairs["-l"] == str(1800 - 60 - 180)  # the pilot ends itself before the wrapper must
    assert argv[-1] == "--noproxyverification"
    assert [layer["name"] for layer in plan["layers"]][2] == "cvmfs"
    assert plan["layers"][2]["command"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--walltime", "1h"], "--walltime: '1h' is not HH:MM:SS"),
        (["--cvmfs", "bad_repo!"], "cvmfs: 'bad_repo!' is neither a repository name nor a list"),
        (["--container", "img;rm"], "--container: 'img;rm' is not an image path or URI"),
        (["--conda-env", "numpy;rm"], "--conda-env: 'numpy;rm' is not a package specification"),
        (["--queue", "a b"], "--queue: 'a b' has characters that are not allowed"),
        (["--gpus-per-rank", "5"], "gpus_per_rank: 5 is more than the 4 GPU slots of a node"),
    ],
)
def test_bad_input_is_one_line_and_still_reported(site, args, message, tmp_path):
    report = tmp_path / "r.json"
    r = run(site, *args, "--report", str(report), "--", "true")
    assert r.returncode == 2
    assert message in r.stderr
    assert len([line for line in r.stderr.splitlines() if "error" in line]) == 1
    data = json.loads(report.read_text())
    assert (data["state"], data["reason"], data["exit_code"]) == ("done", "setup-error", 64)
    assert message in data["error"]


# ---------------------------------------------------------------- a full run through all layers
PRINT_ENV = (
    "import json, os, sys; "
    "keys = ['CUDA_VISIBLE_DEVICES', 'http_proxy', 'no_proxy', 'CONDA_PREFIX', 'SITE_FLAVOUR', "
    "'SITE_AGENT_LOCAL_RANK', 'PILOT_NOKILL']; "
    "print('PAYLOAD ' + json.dumps({k: os.environ.get(k) for k in keys} | "
    "{'path0': os.environ['PATH'].split(':')[0], 'cwd': os.getcwd()}))"
)


def payload_env(stdout: str) -> dict:
    line = next(line for line in stdout.splitlines() if line.startswith("PAYLOAD "))
    return json.loads(line[len("PAYLOAD ") :])


def test_all_layers_run_in_order_and_second_run_reuses_setup(site, tmp_path):
    report = tmp_path / "r.json"
    args = [
        "--container",
        "docker://ghcr.io/x/y:1",
        "--conda-env",
        "numpy",
        "--report",
        str(report),
        "--",
        sys.executable,
        "-c",
        PRINT_ENV,
    ]
    env = {"PALS_LOCAL_RANKID": "3", "PALS_RANKID": "3"}
    r = run(site, *args, env=env)
    assert r.returncode == 0, r.stderr
    seen = payload_env(r.stdout)
    assert seen["CUDA_VISIBLE_DEVICES"] == "0"  # local rank 3, reverse order
    assert seen["http_proxy"] == "http://proxy.example.org:3128"
    assert seen["no_proxy"] == "localhost,127.0.0.1"
    prefix = seen["CONDA_PREFIX"]
    assert prefix.startswith(str(site.envs / "micromamba-"))
    assert seen["path0"] == f"{prefix}/bin"  # through APPTAINERENV_PREPEND_PATH
    assert seen["SITE_FLAVOUR"] == "test"  # profile container.env through APPTAINERENV_
    assert seen["PILOT_NOKILL"] == "1"  # pilot3 must not kill the node's other orphans
    assert seen["cwd"].startswith(str(site.scratch / "site-agent-pilot-"))

    # the exact command lines each stand-in received
    assert site.log_lines("makedist") == ["makedist default"]
    assert site.log_lines("micromamba") == [f"micromamba create --yes --prefix {prefix} numpy"]
    (cvmfsexec_line,) = site.log_lines("cvmfsexec")
    assert cvmfsexec_line.startswith(
        "cvmfsexec atlas.cern.ch sft.cern.ch -- apptainer exec --nv --bind "
    )
    (apptainer_line,) = site.log_lines("apptainer")
    workdir = seen["cwd"]
    assert apptainer_line == (
        f"apptainer exec --nv --bind {site.root / 'opt'} --bind {workdir} "
        f"--bind {site.root / 'cvmfs'}:/cvmfs --bind {prefix} docker://ghcr.io/x/y:1 "
        f"{sys.executable} -c {PRINT_ENV}"
    )
    default_local = (site.cvmfsexec / "dist/etc/cvmfs/default.local").read_text()
    assert "CVMFS_HTTP_PROXY='http://proxy.example.org:3128'" in default_local
    assert f"CVMFS_CACHE_BASE='{site.root / 'cvmfs-cache'}'" in default_local
    assert "CVMFS_QUOTA_LIMIT='2000'" in default_local
    assert "CVMFS_REPOSITORIES='atlas.cern.ch,sft.cern.ch'" in default_local

    data = json.loads(report.read_text())
    assert (data["state"], data["reason"], data["exit_code"]) == ("done", "finished", 0)
    assert data["gpus"] == {
        "vendor": "nvidia",
        "count": 4,
        "slots": [0],
        "set": {"CUDA_VISIBLE_DEVICES": "0"},
    }
    names = [layer["name"] for layer in data["layers"]]
    assert names == [
        "plan", "gpu-binding", "proxy", "cvmfs", "container", "env", "credentials", "identity",
        "payload",
    ]  # fmt: skip
    actions = {layer["name"]: layer["actions"] for layer in data["layers"]}
    assert actions["cvmfs"][0] == f"{site.cvmfsexec}/makedist default"
    assert actions["env"] == ["created"]
    assert all(layer["seconds"] >= 0 for layer in data["layers"])
    assert not Path(workdir).exists()

    # second pilot: nothing is built or solved again
    r2 = run(site, *args, env=env)
    assert r2.returncode == 0, r2.stderr
    assert payload_env(r2.stdout)["CONDA_PREFIX"] == prefix
    assert site.log_lines("makedist") == ["makedist default"]
    assert len(site.log_lines("micromamba")) == 1
    assert len(site.log_lines("cvmfsexec")) == 2
    data2 = json.loads(report.read_text())
    actions2 = {layer["name"]: layer["actions"] for layer in data2["layers"]}
    assert actions2["env"] == ["reused"] and actions2["cvmfs"] == []


def test_native_cvmfs_needs_no_cvmfsexec(site):
    for repo in ("atlas.cern.ch", "sft.cern.ch"):
        (site.root / "cvmfs" / repo).mkdir()
    r = run(site, "--", "true")
    assert r.returncode == 0, r.stderr
    assert site.log_lines("cvmfsexec") == [] and site.log_lines("makedist") == []


def test_payload_exit_code_is_kept(site, tmp_path):
    report = tmp_path / "r.json"
    r = run(site, "--report", str(report), "--", "sh", "-c", "exit 7")
    assert r.returncode == 7
    data = json.loads(report.read_text())
    assert (data["reason"], data["exit_code"], data["signal"]) == ("failed", 7, None)


def test_setup_error_when_a_layer_fails(site, tmp_path):
    report = tmp_path / "r.json"
    (site.cvmfsexec / "makedist").write_text("#!/bin/sh\necho 'no network' >&2\nexit 1\n")
    r = run(site, "--report", str(report), "--", "true")
    assert r.returncode == 64
    data = json.loads(report.read_text())
    assert data["reason"] == "setup-error"
    assert data["error"] == "cvmfs: makedist exited 1: no network"
    assert data["payload_pid"] is None


# ---------------------------------------------------------------- crash, hang, signal: no leftovers
# The payload leaves a child behind in its own process group and one that escaped it with
# setsid; both must be gone when the wrapper ends.
LEAVE_CHILDREN = (
    "sleep 300 & echo $! > {pids}; setsid sleep 301 & echo $! >> {pids}; "
    "while [ $(wc -l < {pids}) -lt 2 ]; do :; done; "
)


def leftover_pids(pids_file: Path) -> list[int]:
    return [int(p) for p in pids_file.read_text().split()]


def assert_clean(site, pids: list[int]) -> None:
    assert pids and not [p for p in pids if alive(p)], "payload processes survived"
    assert list(site.scratch.iterdir()) == [], "workdir left behind"
    mine = [
        p
        for p in psutil.Process().children(recursive=True)
        if "sleep" in " ".join(p.cmdline() if alive(p.pid) else [])
    ]
    assert mine == []


def test_crashing_payload_leaves_nothing(site, tmp_path):
    pids, report = tmp_path / "pids", tmp_path / "r.json"
    mounts_before = Path("/proc/self/mountinfo").read_text()
    script = LEAVE_CHILDREN.format(pids=pids) + "kill -SEGV $$"
    r = run(
        site, "--container", "docker://x/y:1", "--report", str(report), "--", "sh", "-c", script
    )
    data = json.loads(report.read_text())
    # sh died of SIGSEGV under the stand-ins, which report it as the shell convention 128+11
    assert r.returncode == data["exit_code"] != 0
    assert data["reason"] == "failed"
    assert_clean(site, leftover_pids(pids))
    assert Path("/proc/self/mountinfo").read_text() == mounts_before


def test_hanging_payload_is_stopped_at_the_walltime_margin(site, tmp_path):
    pids, report = tmp_path / "pids", tmp_path / "r.json"
    # ignores SIGTERM, so only the SIGKILL after the grace period ends it
    script = "trap '' TERM; " + LEAVE_CHILDREN.format(pids=pids) + "while :; do sleep 1; done"
    t = time.monotonic()
    r = run(
        site,
        "--walltime",
        "00:00:04",
        "--margin",
        "2",
        "--grace",
        "1",
        "--cvmfs",
        "none",
        "--report",
        str(report),
        "--",
        "sh",
        "-c",
        script,
    )
    took = time.monotonic() - t
    data = json.loads(report.read_text())
    assert (data["reason"], data["exit_code"], data["signal"]) == ("walltime", 137, "SIGKILL")
    assert r.returncode == 137
    assert 2.5 < data["payload_seconds"] < 6 and took < 15
    assert_clean(site, leftover_pids(pids))


def test_term_is_forwarded_and_reported(site, tmp_path):
    pids, report, got = tmp_path / "pids", tmp_path / "r.json", tmp_path / "got"
    script = (
        f"trap 'echo USR1 >> {got}' USR1; trap 'echo TERM >> {got}; exit 143' TERM; "
        + LEAVE_CHILDREN.format(pids=pids)
        + f"echo ready >> {got}; while :; do sleep 0.1; done"
    )
    proc = start(site, "--cvmfs", "none", "--report", str(report), "--", "sh", "-c", script)
    try:
        wait_for(lambda: got.is_file() and "ready" in got.read_text())
        # the report says running once the payload has started (it may print first)
        wait_for(lambda: report_state(report) == "running")
        proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: "USR1" in got.read_text())
        assert proc.poll() is None  # USR1 is passed on, not a stop
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert got.read_text().split() == ["ready", "USR1", "TERM"]
    data = json.loads(report.read_text())
    assert (data["reason"], data["exit_code"]) == ("signalled", 143)
    assert data["received_signals"] == ["SIGUSR1", "SIGTERM"]
    assert proc.returncode == 143
    assert_clean(site, leftover_pids(pids))


def test_term_ignored_by_payload_ends_with_kill_after_grace(site, tmp_path):
    pids, report = tmp_path / "pids", tmp_path / "r.json"
    script = "trap '' TERM INT; " + LEAVE_CHILDREN.format(pids=pids) + "while :; do sleep 1; done"
    proc = start(
        site, "--cvmfs", "none", "--grace", "1", "--report", str(report), "--", "sh", "-c", script
    )
    try:
        wait_for(lambda: pids.is_file() and len(pids.read_text().split()) == 2)
        wait_for(lambda: report_state(report) == "running")
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    data = json.loads(report.read_text())
    assert (data["reason"], data["exit_code"], data["signal"]) == ("signalled", 137, "SIGKILL")
    assert data["received_signals"] == ["SIGINT"]
    assert_clean(site, leftover_pids(pids))


def test_report_path_defaults_under_workdir(site, tmp_path):
    work = tmp_path / "work"
    r = run(site, "--", "true", env={"SITE_AGENT_WORKDIR": str(work), "PBS_JOBID": "9.pbs"})
    assert r.returncode == 0, r.stderr
    (path,) = (work / "pilots").iterdir()
    assert path.name.startswith("9.pbs-") and path.name.endswith(f"-r0-{path.name.split('-')[-1]}")
    assert json.loads(path.read_text())["reason"] == "finished"
    assert str(path) in r.stderr
    assert os.stat(path).st_mode & 0o777 == 0o644


# ---------------------------------------------------------------- walltime sources, groups, HUP
def test_remaining_walltime_sources():
    from siteagent.errors import ConfigError
    from siteagent.pilot.layers.payload import remaining_walltime

    now = 1_000_000.0
    assert remaining_walltime(None, {}, now) is None
    assert remaining_walltime("00:10:00", {"SITE_AGENT_WALLTIME": "01:00:00"}, now) == 600
    # the job's walltime counts from the job's start, not from this rank's start
    env = {"SITE_AGENT_WALLTIME": "01:00:00", "SITE_AGENT_JOB_START": str(int(now) - 900)}
    assert remaining_walltime(None, env, now) == 2700
    # Slurm knows the end and caps everything
    assert remaining_walltime(None, env | {"SLURM_JOB_END_TIME": str(int(now) + 100)}, now) == 100
    assert remaining_walltime(None, {"SLURM_JOB_END_TIME": str(int(now) + 50)}, now) == 50
    with pytest.raises(ConfigError, match="SITE_AGENT_JOB_START: 'x'"):
        remaining_walltime(None, {"SITE_AGENT_WALLTIME": "00:01:00", "SITE_AGENT_JOB_START": "x"})


def test_too_little_walltime_left_does_not_start(site, tmp_path):
    report = tmp_path / "r.json"
    env = {"SITE_AGENT_WALLTIME": "01:00:00", "SITE_AGENT_JOB_START": str(int(time.time()) - 3590)}
    r = run(site, "--report", str(report), "--", "true", env=env)
    assert r.returncode == 2
    assert "s of the batch job are left, not more than the 60s --margin" in r.stderr
    assert json.loads(report.read_text())["reason"] == "setup-error"


def test_payload_may_make_its_own_process_group(site):
    # pilot3 calls os.setpgrp(): refused (EPERM) if the payload were a session leader
    r = run(site, "--cvmfs", "none", "--", sys.executable, "-c", "import os; os.setpgrp()")
    assert r.returncode == 0, r.stderr


def test_hup_is_forwarded_like_term(site, tmp_path):
    report, got = tmp_path / "r.json", tmp_path / "got"
    script = (
        f"trap 'echo HUP >> {got}; exit 129' HUP; echo ready >> {got}; while :; do sleep 0.1; done"
    )
    proc = start(site, "--cvmfs", "none", "--report", str(report), "--", "sh", "-c", script)
    try:
        wait_for(lambda: got.is_file() and "ready" in got.read_text())
        wait_for(lambda: report_state(report) == "running")
        proc.send_signal(signal.SIGHUP)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert got.read_text().split() == ["ready", "HUP"]
    data = json.loads(report.read_text())
    assert (data["reason"], data["exit_code"], data["received_signals"]) == (
        "signalled",
        129,
        ["SIGHUP"],
    )


def test_profile_cache_hits_and_follows_edits(tmp_path, monkeypatch):
    from siteagent.pilot.plan import load_profile_cached

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site = make_site(tmp_path / "site")
    first = load_profile_cached(str(site.profile))
    (entry,) = (tmp_path / "cache" / "site-agent" / "profiles").iterdir()
    assert load_profile_cached(str(site.profile)).data == first.data
    site.profile.write_text(site.profile.read_text().replace("cores: 32", "cores: 16"))
    assert load_profile_cached(str(site.profile)).node.cores == 16  # a new key, not the old entry
    entry.write_text("{broken")  # a damaged entry is rebuilt, never trusted
    site.profile.write_text(site.profile.read_text().replace("cores: 16", "cores: 32"))
    assert load_profile_cached(str(site.profile)).node.cores == 32


# ---------------------------------------------------------------- under the execution wrapper
def test_execution_wrapper_starts_one_pilot_wrapper_per_rank(site, tmp_path):
    """site-agent-exec -> PALS mpiexec (strict stand-in) -> site-agent pilot per rank: every
    rank finds its local rank, binds its own GPUs and writes its own report."""
    from siteagent.profiles import load_profile
    from siteagent.wrappers.render import render_wrapper

    wrapper = tmp_path / "site-agent-exec"
    wrapper.write_text(render_wrapper(load_profile(str(site.profile))))
    wrapper.chmod(0o755)
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("node0\n")
    work = tmp_path / "work"
    env = site.env | {
        "PATH": f"{Path(__file__).parent / 'standins' / 'pbs'}:{site.env['PATH']}",
        "PBS_NODEFILE": str(nodefile),
        "PBS_JOBID": "77.pbs",
        "SITE_AGENT_WORKDIR": str(work),
    }
    payload = 'echo "rank=$SITE_AGENT_RANK cuda=$CUDA_VISIBLE_DEVICES"'
    r = subprocess.run(
        [
            *(str(wrapper), "--ranks-per-node", "2", "--gpus-per-rank", "2", "--"),
            *(*CLI, "--site", str(site.profile), "--cvmfs", "none", "--", "sh", "-c", payload),
        ],
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=site.root,
    )
    assert r.returncode == 0, r.stderr
    seen = dict(line.split() for line in r.stdout.splitlines() if line.startswith("rank="))
    assert seen == {"rank=0": "cuda=3,2", "rank=1": "cuda=1,0"}  # reverse order, 2 each
    assert "mpiexec -n 2 --ppn 2" in site.log.read_text()
    reports = {}
    for path in (work / "pilots").iterdir():
        data = json.loads(path.read_text())
        reports[data["rank"]] = data
        assert path.name.startswith(f"77.pbs-{data['host']}-r{data['rank']}-")
    assert sorted(reports) == [0, 1]
    assert reports[0]["gpus"]["slots"] == [3, 2] and reports[1]["gpus"]["slots"] == [1, 0]
    assert {d["reason"] for d in reports.values()} == {"finished"}


def _rank_commands(tmp_path, wrapper_text, path_first):
    """Run two ranks of `site-agent pilot` through the local execution wrapper; each payload
    prints the command line of its pilot wrapper (its parent). Returns those lines."""
    tmp_path.mkdir()
    wrapper = tmp_path / "site-agent-exec"
    wrapper.write_text(wrapper_text)
    wrapper.chmod(0o755)
    env = clean_env(
        {
            "PATH": f"{path_first}:{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "SITE_AGENT_WORKDIR": str(tmp_path / "work"),
            "SITE_AGENT_CVMFS_REPOS": "",
            "PYTHONPATH": "",
        }
    )
    # one write per rank (printf of the whole line), so the two ranks' lines never mix
    payload = 'printf "%s\\n" "$(tr "\\0\\n" "  " </proc/$PPID/cmdline)"'
    ranks = [str(wrapper), "--ranks-per-node", "2", "--"]
    r = subprocess.run(
        [*ranks, "site-agent", "pilot", "--site", "local", "--", "sh", "-c", payload],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    reports = [json.loads(p.read_text()) for p in (tmp_path / "work" / "pilots").iterdir()]
    assert sorted(d["rank"] for d in reports) == [0, 1]
    assert {d["reason"] for d in reports} == {"finished"}
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 2
    return lines


def test_execution_wrapper_starts_this_environments_pilot_without_site(tmp_path):
    """A rank's `site-agent pilot` of the wrapper's own environment runs as `python -I -S`
    on the recorded import path; any other `site-agent` runs as it is; a recorded path that
    no longer holds site-agent falls back to the console script."""
    from siteagent.profiles import load_profile
    from siteagent.wrappers.render import render_wrapper

    text = render_wrapper(load_profile("local"))
    bin_dir = Path(sys.executable).parent
    for line in _rank_commands(tmp_path / "fast", text, bin_dir):
        assert line.startswith(f"{sys.executable} -I -S -c import sys;"), line
        assert "main() pilot --site local -- sh -c " in line, line
    other = tmp_path / "other-bin"  # another environment's site-agent first on PATH
    other.mkdir()
    (other / "site-agent").symlink_to(bin_dir / "site-agent")
    for line in _rank_commands(tmp_path / "other", text, other):
        assert " -I -S " not in line and f"{other}/site-agent pilot --site local" in line, line
    stale = re.sub(r"sys\.path \+= \[[^]]*\]", 'sys.path += ["/nonexistent"]', text)
    assert stale != text
    for line in _rank_commands(tmp_path / "stale", stale, bin_dir):
        assert " -I -S " not in line and "site-agent pilot --site local" in line, line


def test_proxy_password_never_printed_or_reported(site, tmp_path):
    site.profile.write_text(
        site.profile.read_text().replace(
            "http://proxy.example.org:3128", "http://agent:s3cret@proxy.example.org:3128"
        )
    )
    report = tmp_path / "r.json"
    dry = run(site, "--dry-run", "--", "true")
    dry_json = run(site, "--dry-run", "--json", "--", "true")
    real = run(site, "--report", str(report), "--", "sh", "-c", 'test -n "$http_proxy"')
    assert dry.returncode == dry_json.returncode == real.returncode == 0, real.stderr
    assert "http_proxy=http://agent:***@proxy.example.org:3128" in dry.stdout
    for text in (dry.stdout, dry.stderr, dry_json.stdout, real.stdout, real.stderr):
        assert "s3cret" not in text
    assert "s3cret" not in report.read_text()
    # the payload and cvmfsexec's own config do get it (owner-only file)
    default_local = site.cvmfsexec / "dist/etc/cvmfs/default.local"
    assert "s3cret" in default_local.read_text()
    assert default_local.stat().st_mode & 0o777 == 0o600


def test_harvester_plugin_argv_is_understood(site, tmp_path):
    """The Harvester plugin runs `site-agent pilot --site S --queue Q --resource-type RT --
    PILOT_ARGS...` (harvester/shape.py payload_argv): what follows -- starting with '-' is
    more pilot arguments, and under a worker id the report has a predictable name."""
    from types import SimpleNamespace

    from siteagent.harvester.config import QueueConfig
    from siteagent.harvester.shape import payload_argv

    qc = QueueConfig(
        endpoint_id=None, site=str(site.profile), panda_queue="PQ_GPU", gpus_per_worker=1,
        ranks_per_node=1, nodes=1, container=None, cvmfs_repos=None, conda_env=None,
        pilot_args=("--use-https=False", "-z"),
    )  # fmt: skip
    argv = payload_argv(qc, SimpleNamespace(resourceType="MCORE"))
    assert argv[:2] == ["site-agent", "pilot"]
    pilot_dir = tmp_path / "pilot3"
    pilot_dir.mkdir()
    (pilot_dir / "pilot.py").write_text("")
    state = tmp_path / "state"
    env = {
        "SITE_AGENT_PILOT_DIR": str(pilot_dir),
        "SITE_AGENT_WORKER_ID": "w-123",
        "SITE_AGENT_STATE": str(state),
        "SITE_AGENT_CVMFS_REPOS": "",
    }
    cli_args = argv[2:]
    dry = subprocess.run(
        [*CLI, *cli_args, "--dry-run", "--json"] if "--" not in cli_args else
        [*CLI, *cli_args[: cli_args.index("--")], "--dry-run", "--json",
         *cli_args[cli_args.index("--"):]],
        env=clean_env(site.env | env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    pilot_argv = plan["argv"]
    assert pilot_argv[pilot_argv.index("-q") + 1] == "PQ_GPU"
    assert pilot_argv[pilot_argv.index("--resource-type") + 1] == "MCORE"
    assert pilot_argv[-2:] == ["--use-https=False", "-z"]
    assert plan["pilot_id"] == "w-123-r0"
    assert plan["report"] == str(state / "pilots" / "w-123-r0.json")


def test_bad_resource_type_is_refused(site):
    r = run(site, "--resource-type", "GPU", "--", "true")
    assert r.returncode == 2
    assert "--resource-type: 'GPU' is not one of SCORE, MCORE, SCORE_HIMEM, MCORE_HIMEM" in r.stderr


def test_stop_during_start_up_ends_with_a_report_and_no_payload(site, tmp_path):
    """A SIGTERM that arrives while the wrapper still imports and plans is kept, not fatal:
    the payload never starts and the report says signalled."""
    from siteagent.pilot.plan import PilotOptions, build_plan

    from .supervisor_child import supervise

    marker, report = tmp_path / "payload-ran", tmp_path / "r.json"
    opts = PilotOptions(
        site=str(site.profile),
        cvmfs="none",
        container="none",
        report=str(report),
        payload=("touch", str(marker)),
    )
    # in a child process (the Supervisor there becomes a subreaper): catch_early_signals(),
    # then a TERM to itself, as the execution wrapper's stop would send, then the run
    run = supervise(build_plan(opts, clean_env(site.env)), scenario="early-stop-real")
    assert run.raised is None, run.raised
    assert (run.report.reason, run.report.exit_code) == ("signalled", 143)
    assert not marker.exists()
    data = json.loads(report.read_text())
    assert (data["state"], data["reason"], data["exit_code"]) == ("done", "signalled", 143)


# ---------------------------------------------------------------- Shifter (NERSC), a stand-in
def test_shifter_gets_the_exact_argv_and_the_host_environment(site, tmp_path):
    """Shifter takes --image=docker:REF, --volume=SRC:DST and site modules before `--`, and
    passes the host's environment and PATH in: container.env and the environment's bin/ are
    set on the host. The stand-in refuses any other form."""
    text = site.profile.read_text().replace(
        "  runtime: apptainer\n  gpu_flag: --nv\n",
        '  runtime: shifter\n  options: ["--module=gpu,cvmfs"]\n',
    )
    site.profile.write_text(text)
    report = tmp_path / "r.json"
    env = {
        "PATH": f"{STANDINS / 'shifter'}:{site.env['PATH']}",
        "PALS_LOCAL_RANKID": "0",
        "PALS_RANKID": "0",
    }
    args = ["--container", "docker://ghcr.io/x/y:1", "--conda-env", "numpy"]
    script = PRINT_ENV.replace("os.environ['PATH'].split(':')[0]", "os.environ['PATH']")
    r = run(site, *args, "--report", str(report), "--", sys.executable, "-c", script, env=env)
    assert r.returncode == 0, r.stderr
    seen = payload_env(r.stdout)
    assert seen["CUDA_VISIBLE_DEVICES"] == "3" and seen["SITE_FLAVOUR"] == "test"
    path = seen["path0"].split(":")  # the host's PATH, the environment's bin/ in front
    assert path.index(f"{seen['CONDA_PREFIX']}/bin") < path.index("/usr/bin")
    workdir = seen["cwd"]
    (line,) = site.log_lines("shifter")
    assert line == (
        f"shifter --image=docker:ghcr.io/x/y:1 --volume={site.root / 'opt'}:{site.root / 'opt'} "
        f"--volume={workdir}:{workdir} --volume={site.root / 'cvmfs'}:/cvmfs "
        f"--volume={seen['CONDA_PREFIX']}:{seen['CONDA_PREFIX']} --module=gpu,cvmfs -- "
        f"{sys.executable} -c {script}"
    )
    # a form Shifter cannot take is one line, before anything runs
    bad = run(site, "--container", "oras://ghcr.io/x/y:1", "--dry-run", "--", "true", env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "site-agent: error: --container: 'oras://ghcr.io/x/y:1' is not a registry image; "
        "shifter takes a reference such as docker.io/library/ubuntu:22.04"
    ]


def test_shifter_standin_is_strict(tmp_path):
    exe = str(STANDINS / "shifter" / "shifter")
    assert (
        subprocess.run([exe, "--image=docker:a/b:1", "--module=gpu", "--", "true"]).returncode == 0
    )
    for bad in (
        ["--image=docker://a/b:1", "--", "true"],  # a URI is not Shifter's form
        ["--image=a/b:1", "--", "true"],  # no image type
        ["--image=docker:a/b:1", "true"],  # no --
        ["--image=docker:a/b:1", "--module=gpu,gpu", "--", "true"],
        ["--image=docker:a/b:1", f"--volume={tmp_path / 'missing'}:/x", "--", "true"],
        ["--image=docker:a/b:1", "--nv", "--", "true"],
    ):
        r = subprocess.run([exe, *bad], capture_output=True, text=True)
        assert r.returncode == 1 and r.stderr.startswith("shifter: "), bad


def test_dry_run_on_a_login_node_shows_a_compute_nodes_binding_marked_assumed(tmp_path, run_cli):
    """No GPU here (a login node): the plan shows what local rank 1 of a Perlmutter compute
    node would get (4 A100s, reverse order), and says it is assumed; a real run assumes
    nothing (a rank on a GPU-less node gets no binding)."""
    (tmp_path / "nogpu").mkdir()
    env = {
        "SITE_AGENT_GPU_ROOT": str(tmp_path / "nogpu"),
        "SLURM_LOCALID": "1",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
    }
    args = ("pilot", "--site", "perlmutter", "--cvmfs", "none", "--container", "none")
    r = run_cli(*args, "--dry-run", "--json", "--", "true", env=env)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["gpus"] | {"slots": None} == {
        "vendor": "nvidia", "count": 4, "assumed": True, "slots": None,
        "set": {"CUDA_VISIBLE_DEVICES": "2"}, "unset": [],
    }  # fmt: skip
    text = run_cli(*args, "--dry-run", "--", "true", env=env).stdout
    assert "none found here, assumed: a perlmutter compute node's 4 nvidia GPU(s)" in text
    report = tmp_path / "r.json"
    r = run_cli(*args, "--report", str(report), "--", "true", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(report.read_text())["gpus"]["set"] == {}


def test_container_setup_runs_before_the_runtime_and_its_environment_reaches_the_payload(
    site, tmp_path
):
    """container.setup (module loads at ALCF/OLCF) runs on the node before the runtime is
    probed: here it is what puts apptainer on PATH, and what it exports reaches the payload."""
    text = site.profile.read_text().replace(
        "  runtime: apptainer\n",
        "  runtime: apptainer\n  setup:\n"
        f"    - export PATH={STANDINS / 'apptainer'}:$PATH\n"
        "    - export SITE_FLAVOUR_FROM_SETUP=loaded\n",
    )
    site.profile.write_text(text)
    path = site.env["PATH"].replace(f"{STANDINS / 'apptainer'}:", "")
    script = "import os; print('SETUP', os.environ.get('SITE_FLAVOUR_FROM_SETUP'))"
    report = tmp_path / "r.json"
    args = ["--container", "docker://ghcr.io/x/y:1", "--cvmfs", "none", "--report", str(report)]
    env = {"PATH": path, "PALS_LOCAL_RANKID": "0"}
    r = run(site, *args, "--", sys.executable, "-c", script, env=env)
    assert r.returncode == 0, r.stderr
    assert "SETUP loaded" in r.stdout
    actions = next(e for e in json.loads(report.read_text())["layers"] if e["name"] == "container")
    assert actions["actions"] == ["container.setup ran", "apptainer answers"]
    # a failing setup line stops the pilot before the payload, with its message
    site.profile.write_text(
        text.replace(
            "    - export SITE_FLAVOUR_FROM_SETUP=loaded\n", "    - module load nosuchmodule\n"
        )
    )
    r = run(site, *args, "--", "true", env=env)
    assert r.returncode == SETUP_ERROR_EXIT
    assert "container.setup: exit " in json.loads(report.read_text())["error"]
