"""The per-rank and per-task paths (issue #16): `site-agent pilot` parsed without click and
run without yaml/jsonschema/jinja2/psutil, the leftover sweep from /proc, `exec` from its
cache, reports fsync'd only when final, one TLS context per CA bundle."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from siteagent.errors import ConfigError
from siteagent.pilot import cli as pilot_cli
from siteagent.pilot import leftovers

HEAVY = ("click", "yaml", "jsonschema", "jinja2", "psutil", "rich", "tempfile")


# ---------------------------------------------------------------- pilot's own parser
@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["--site", "s", "--", "true", "x"], {"payload": ("true", "x")}),
        (["--site=s", "true", "--queue", "q"], {"payload": ("true", "--queue", "q")}),
        (["--site", "s", "--queue", "q", "--", "--pilot-opt"], {"queue": "q"}),
        (["--site", "s", "--unknown", "v"], {"payload": ("--unknown", "v")}),
        (["--site", "s", "--pilot-arg", "a", "--pilot-arg=b"], {"pilot_args": ("a", "b")}),
        (["--site", "s", "--gpus-per-rank", "2", "--margin", "5"], {"gpus_per_rank": 2}),
        (["--site", "s", "--dry-run", "--json"], {"dry_run": True, "as_json": True}),
        (["--site", "s"], {"margin": 60.0, "grace": 180.0, "payload": ()}),
    ],
)
def test_pilot_options_parse_as_click_passes_them_through(argv, want):
    values = pilot_cli.parse(argv)
    assert values["site"] == "s"
    assert {k: values[k] for k in want} == want


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        ([], "Missing option '--site'."),
        (["--site"], "Option '--site' requires an argument."),
        (["--site", "s", "--gpus-per-rank", "x"], "'x' is not a valid integer range."),
        (["--site", "s", "--gpus-per-rank", "65"], "65 is not in the range 0<=x<=64."),
        (["--site", "s", "--grace", "-1"], "-1.0 is not in the range 0<=x<=3600."),
        (["--site", "s", "--dry-run=yes"], "Option '--dry-run' does not take a value."),
    ],
)
def test_pilot_usage_errors_in_clicks_words(argv, error):
    with pytest.raises(pilot_cli.UsageError, match=re.escape(error) + "$"):
        pilot_cli.parse(argv)


def test_pilot_usage_error_is_exit_2_in_one_line(run_cli):
    r = run_cli("pilot", "--site", "local", "--margin", "x")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (  # the form of click's usage errors in every other command (#15)
        "site-agent: error: pilot: Invalid value for '--margin': 'x' is not a valid float "
        "range. (see `site-agent pilot --help`)\n"
    )
    r = run_cli("pilot", "--json", "--site", "local", "--margin", "x")
    assert r.returncode == 2 and json.loads(r.stdout)["error"].startswith("pilot: Invalid")


def test_pilot_help_names_every_option_and_the_top_level_help_lists_pilot(run_cli):
    r = run_cli("pilot", "--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage: site-agent pilot [OPTIONS]")
    for opt in pilot_cli.OPTIONS:
        assert f"  {opt.column()}" in r.stdout
    assert "[default: 60.0;" in r.stdout and "[required]" in r.stdout
    assert run_cli("pilot", "-h").stdout == r.stdout
    top = run_cli("--help").stdout
    assert "pilot       GPU pilot wrapper for one rank" in top


def test_click_command_forwards_pilot_arguments_untouched(tmp_path):
    """`cli` invoked directly (CliRunner, an old console script) still reaches the same
    parser, `--` included."""
    report = tmp_path / "r.json"
    code = (
        "import sys; from siteagent.cli import cli; "
        f"sys.argv = ['site-agent']; cli(['pilot', '--site', 'local', '--report', {str(report)!r},"
        " '--', 'sh', '-c', 'exit 4'], prog_name='site-agent')"
    )
    env = os.environ | {"SITE_AGENT_CVMFS_REPOS": "", "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 4, r.stderr
    assert json.loads(report.read_text())["argv"] == ["sh", "-c", "exit 4"]


def test_pilot_run_imports_nothing_heavy(tmp_path):
    """A whole rank, warm profile cache: none of the heavy modules is imported."""
    env = os.environ | {
        "SITE_AGENT_CVMFS_REPOS": "",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
    }
    cmd = [sys.executable, "-X", "importtime", "-m", "siteagent", "pilot", "--site", "local"]
    subprocess.run([*cmd, "--", "true"], env=env, capture_output=True, check=True)  # cache
    r = subprocess.run([*cmd, "--", "true"], env=env, capture_output=True, text=True, check=True)
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "siteagent.pilot.run" in imported  # the probe sees the run
    assert not {m for m in imported if m.split(".")[0] in HEAVY}


# what `site` and these cost a rank, and it never needs them (records.py, TYPE_CHECKING)
RANK_NEVER = (
    "dataclasses", "inspect", "typing", "socket", "shutil", "hashlib", "copy", "site",
    "pathlib", "urllib", "ipaddress", "fnmatch", "glob", "string",
)  # fmt: skip


# what `site-agent exec` found in its cache does without: json would bring re and enum, with
# functools and collections, a quarter of its CPU (`-m`'s runpy imports those last two itself)
EXEC_NEVER = ("click", "json", "re", "enum", "pathlib")


def test_a_rank_as_the_execution_wrapper_starts_it_imports_only_what_it_runs(tmp_path):
    """`python -I -S -c START pilot ...` (the wrapper's per-rank start), warm profile cache:
    no heavy module, and none of the standard modules a rank does without."""
    from siteagent.wrappers.render import pilot_start

    python, start = pilot_start()
    assert python == sys.executable
    env = os.environ | {
        "SITE_AGENT_CVMFS_REPOS": "",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    cmd = [python, "-X", "importtime", "-I", "-S", "-c", start, "pilot", "--site", "local"]
    subprocess.run([*cmd, "--", "true"], env=env, capture_output=True, check=True)  # cache
    r = subprocess.run([*cmd, "--", "true"], env=env, capture_output=True, text=True, check=True)
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert {"siteagent.pilot.run", "siteagent.pilot.report", "json"} <= imported
    assert not {m for m in imported if m.split(".")[0] in HEAVY + RANK_NEVER}


# ---------------------------------------------------------------- leftovers from /proc
def _spawn_daemon(tmp_path: Path, trap: str = "") -> int:
    """A grandchild that outlives its parent (re-parented to us: we are its subreaper);
    ``trap``: shell run first (``trap '' TERM``: it ignores TERM)."""
    import ctypes

    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    pidfile = tmp_path / "pid"
    # not on our stdout: a daemon the sweep missed would hold the test's pipe open
    subprocess.run(
        ["sh", "-c", f"{trap}sleep 300 & echo $! > {pidfile}"],
        check=True, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return int(pidfile.read_text())


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def subreaper_child(tmp_path):
    # in a child process: being a subreaper must not leak into the test process
    code = (
        "import json, os, sys, time; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "from test_fast_paths import _spawn_daemon; from siteagent.pilot import leftovers; "
        "pid = _spawn_daemon(Path(sys.argv[2])); found = leftovers.descendants(os.getpid()); "
        "t = time.monotonic(); ended = leftovers.end_leftovers(None, grace=2.0); "
        "print(json.dumps([pid, found, ended, time.monotonic() - t, "
        "leftovers.descendants(os.getpid())]))"
    )
    argv = [sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_orphaned_grandchild_is_found_and_ended(subreaper_child):
    pid, found, ended, seconds, after = subreaper_child
    assert pid in found and pid in ended
    assert not _alive(pid) and after == []  # ended and reaped: not even a zombie is left
    # sleep dies of TERM at once: neither the 2 s grace is waited out nor a long pause taken
    assert seconds < 0.9


def test_the_sweep_waits_out_the_grace_without_spinning_and_reaps_all(tmp_path):
    """A leftover that shrugs off TERM (here it starts one more process instead) is KILLed
    after the grace, and so is what it started meanwhile; the wait polls, it does not spin a
    core of the node the payload ran on; nothing is left, not even a zombie."""
    pid, late = tmp_path / "pid", tmp_path / "late"
    script = (
        f"trap 'sleep 300 & echo $! > {late}' TERM; echo $$ > {pid}; while :; do sleep 0.05; done"
    )
    code = (
        "import ctypes, json, os, subprocess, sys, time; from siteagent.pilot import leftovers\n"
        "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)\n"  # PR_SET_CHILD_SUBREAPER, as the wrapper
        "subprocess.Popen(['sh', '-c', sys.argv[1]], stdout=subprocess.DEVNULL)\n"
        "while not (os.path.exists(sys.argv[2]) and os.path.getsize(sys.argv[2])):\n"
        "    time.sleep(0.01)\n"
        "t, cpu = time.monotonic(), time.process_time()\n"
        "leftovers.end_leftovers(None, grace=1.0)\n"
        "print(json.dumps([time.monotonic() - t, time.process_time() - cpu, "
        "leftovers.descendants(os.getpid())]))\n"
    )
    argv = [sys.executable, "-c", code, script, str(pid)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout
    seconds, cpu, after = json.loads(out)
    assert not _alive(int(pid.read_text())) and not _alive(int(late.read_text()))
    assert seconds >= 1.0 and after == []
    assert cpu < 0.1  # polling takes ~0.02 s of it; a busy wait takes what the machine gives


def test_descendants_without_children_files_reads_parents(monkeypatch):
    """Kernels without CONFIG_PROC_CHILDREN: the parent of every process from /proc/*/stat."""
    if not leftovers.CHILDREN_FILES:
        pytest.skip("this kernel has no /proc/<pid>/task/<tid>/children to compare with")
    proc = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 5
        while len(leftovers.descendants(os.getpid())) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        with_files = leftovers.descendants(os.getpid())
        # such a kernel: no children files (so none are found by them), and the check says so
        monkeypatch.setattr(leftovers, "CHILDREN_FILES", False)
        monkeypatch.setattr(leftovers, "_children", lambda pid: [])
        assert sorted(leftovers.descendants(os.getpid())) == sorted(with_files)
        assert proc.pid in with_files and len(with_files) == 2
        assert leftovers.descendants(proc.pid) == [with_files[1]]  # the sleep, its child
    finally:
        proc.kill()
        proc.wait()


def test_a_zombie_left_to_a_parent_that_does_not_reap_it_is_not_waited_for():
    """A leftover's child that died is a zombie until its parent reaps it; when that parent is
    not us (a subreaper above that never reaps), it has ended all the same."""
    sweep = (
        "import json, os, subprocess, sys, time; from siteagent.pilot import leftovers\n"
        # a leftover that never reaps its child; both die of TERM
        "subprocess.Popen(['sh', '-c', 'sleep 300 & exec sleep 301'])\n"
        "while len(leftovers.descendants(os.getpid())) < 2: time.sleep(0.01)\n"
        "t = time.monotonic(); leftovers.end_leftovers(None, grace=2.0)\n"
        "print(json.dumps(time.monotonic() - t))\n"
    )
    above = (  # a subreaper that never reaps: the zombie re-parents to it and stays
        "import ctypes, subprocess, sys; ctypes.CDLL(None).prctl(36, 1, 0, 0, 0); "
        "print(subprocess.run([sys.executable, '-c', sys.argv[1]], capture_output=True, "
        "text=True, check=True, timeout=30).stdout)"
    )
    out = subprocess.run(
        [sys.executable, "-c", above, sweep], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) < 0.9  # not the 2 s grace, twice, for a zombie


@pytest.mark.parametrize("children_files", [True, False])
def test_a_process_that_ended_has_no_descendants(monkeypatch, children_files):
    proc = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    monkeypatch.setattr(leftovers, "CHILDREN_FILES", children_files and leftovers.CHILDREN_FILES)
    assert leftovers.descendants(int(proc.stdout)) == []


# ---------------------------------------------------------------- durability of reports
def test_only_the_final_report_is_fsynced(tmp_path, monkeypatch):
    from siteagent.pilot.report import PilotReport, read_report, write_report

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    path = tmp_path / "pilots" / "r.json"
    report = PilotReport(pilot_id="p", site="s", host="h", pid=1)
    for state in ("starting", "running"):
        report.state = state
        write_report(path, report)
        assert read_report(path)["state"] == state
    assert synced == []
    report.state = "done"
    write_report(path, report)
    assert len(synced) == 1 and read_report(path)["state"] == "done"
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temp file left
    assert oct(path.stat().st_mode & 0o777) == "0o644"


# ---------------------------------------------------------------- exec from its cache
def test_exec_second_call_comes_from_the_cache_and_follows_profile_edits(run_cli, tmp_path):
    profile = tmp_path / "tiny.yaml"
    profile.write_text(
        "name: tiny\nscheduler: local\nlauncher: none\nendpoint: {name: t}\n"
        "node: {cores: 2, gpus: 0}\n"
    )
    env = {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = ("exec", "--site", str(profile), "--ranks-per-node", "2", "--", "sh", "-c")
    show = "echo rank $SITE_AGENT_LOCAL_RANK"
    first = run_cli(*args, show, env=env)
    assert first.returncode == 0, first.stderr
    (entry,) = (tmp_path / "cache" / "site-agent" / "exec").iterdir()
    # the cached path: no click (its import would show in -X importtime's report)
    env_it = env | {"PYTHONPROFILEIMPORTTIME": "1"}
    again = run_cli(*args, show, env=env_it)
    assert sorted(again.stdout.split("\n")) == sorted(first.stdout.split("\n"))
    imported = {line.split("|")[-1].strip() for line in again.stderr.splitlines() if "|" in line}
    assert "siteagent.wrappers.exec_cache" in imported
    # no click, and no json (nor what it would bring)
    assert not {m for m in imported if m.split(".")[0] in (*HEAVY, *EXEC_NEVER)}
    # an edited profile is a new key: validated again, and refused now
    profile.write_text(profile.read_text().replace("cores: 2", "cores: 1"))
    r = run_cli(*args, show, env=env)
    assert r.returncode == 2 and "--ranks-per-node" in r.stderr
    assert entry.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--site", "local"],  # no command
        ["--site", "local", "--nodes", "x", "--", "true"],
        ["--site", "local", "--bogus", "--", "true"],
        ["--nodes", "1", "--", "true"],  # no site
        ["--help"],
    ],
)
def test_exec_lines_the_cache_does_not_know_go_to_click(argv):
    from siteagent.wrappers.exec_cache import parse

    assert parse(argv) is None


def test_exec_cache_entries_are_per_request_and_only_whole_ones_count(tmp_path, monkeypatch):
    from siteagent.wrappers.exec_cache import entry_path, recorded_wrapper, remember

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    wrapper = tmp_path / "site-agent-exec"
    wrapper.write_text("#!/bin/sh\n")
    wrapper.chmod(0o755)
    one = {"nodes": 1, "ranks_per_node": 2, "gpus_per_rank": 0}
    two = one | {"ranks_per_node": 3}
    remember("local", one, wrapper)  # forks its ranks itself: no launcher
    assert recorded_wrapper("local", one) == str(wrapper)
    assert recorded_wrapper("local", two) is None and entry_path("local", two) != entry_path(
        "local", one
    )
    assert entry_path("local", one | {"cores_per_rank": 1}) != entry_path("local", one)
    remember("local", two, wrapper, "no-such-launcher")  # not on PATH here: click decides
    assert recorded_wrapper("local", two) is None
    path = entry_path("local", one)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    old_json = json.dumps({"wrapper": str(wrapper), "launcher": None})
    for broken in (str(wrapper), f"{wrapper}\0\0", old_json, "\0"):
        with open(path, "w") as fh:
            fh.write(broken)
        assert recorded_wrapper("local", one) is None, broken
    wrapper.chmod(0o644)  # a wrapper that can no longer run: click decides
    remember("local", one, wrapper)
    assert recorded_wrapper("local", one) is None
    # a site whose profile is not found has no entry (click says it is not found)
    assert entry_path("no-such-site", one) is None
    assert recorded_wrapper("no-such-site", one) is None
    remember("no-such-site", one, wrapper)
    assert sorted(os.listdir(tmp_path / "site-agent" / "exec")) == sorted(
        os.path.basename(entry_path("local", r)) for r in (one, two)
    )


def test_exec_cache_finds_the_launcher_on_path_as_shutil_which_does(tmp_path, monkeypatch):
    from siteagent.wrappers.exec_cache import on_path, recorded_wrapper, remember

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    wrapper = tmp_path / "site-agent-exec"
    wrapper.write_text("#!/bin/sh\n")
    wrapper.chmod(0o755)
    bin_ = tmp_path / "bin"
    (bin_ / "srun").mkdir(parents=True)  # a directory of that name is no program
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "srun").write_text("#!/bin/sh\n")
    (tmp_path / "other" / "srun").chmod(0o755)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "srun").write_text("not executable\n")
    request = {"nodes": 1, "ranks_per_node": 1, "gpus_per_rank": 0}
    remember("local", request, wrapper, "srun")
    for path, found in [
        (f"{bin_}:{tmp_path}/plain", False),
        (f"{bin_}:{tmp_path}/plain:{tmp_path}/other", True),
    ]:
        monkeypatch.setenv("PATH", path)
        assert on_path("srun") is found, path
        assert recorded_wrapper("local", request) == (str(wrapper) if found else None)
    # an empty PATH entry is the working directory, as for shutil.which
    monkeypatch.chdir(tmp_path / "other")
    monkeypatch.setenv("PATH", f"{bin_}::")
    assert on_path("srun")
    monkeypatch.chdir(tmp_path)
    assert not on_path("srun")
    # no PATH at all: the default one
    monkeypatch.delenv("PATH")
    monkeypatch.setattr(os, "defpath", f"{tmp_path}/other")
    assert on_path("srun")


def test_exec_cache_parses_every_shape_option_and_fills_the_defaults():
    from siteagent.wrappers.exec_cache import parse

    site, request, command = parse(
        ["--site", "s", "--nodes", "2", "--gpus-per-rank=1", "--", "sh", "-c", "x"]
    )
    assert (site, command) == ("s", ["sh", "-c", "x"])
    assert request == {"nodes": 2, "ranks_per_node": 1, "gpus_per_rank": 1}
    # without "--", the command starts at the first word that is no option
    assert parse(["--site", "s", "true", "--nodes", "3"]) == (
        "s", {"nodes": 1, "ranks_per_node": 1, "gpus_per_rank": 0}, ["true", "--nodes", "3"]
    )  # fmt: skip


def test_exec_lines_without_an_entry_return_to_click(tmp_path, monkeypatch):
    from siteagent.wrappers.exec_cache import exec_cached

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for argv in (["--help"], ["--site", "local", "--", "true"], ["--site", "nowhere", "--", "x"]):
        assert exec_cached(argv) is None  # returned: no exec


def test_exec_cache_builds_the_same_wrapper_line_as_click():
    from siteagent.wrappers.exec_cache import parse, wrapper_args

    _, request, command = parse(
        ["--site=local", "--cores-per-rank", "1", "--ranks-per-node", "2", "--", "a", "--b"]
    )
    assert wrapper_args("/w", request, command) == [
        "/w", "--nodes", "1", "--ranks-per-node", "2", "--gpus-per-rank", "0",
        "--cores-per-rank", "1", "--", "a", "--b",
    ]  # fmt: skip


# ---------------------------------------------------------------- check's TLS context
def test_one_tls_context_per_ca_bundle(tmp_path, monkeypatch):
    from siteagent.checks.network import tls_context

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    assert tls_context(None) is tls_context(None)
    import certifi

    bundle = tmp_path / "ca.pem"
    bundle.write_text(Path(certifi.where()).read_text())
    a = tls_context(str(bundle))
    assert a is tls_context(str(bundle)) and a is not tls_context(None)
    bundle.write_text(bundle.read_text() + "\n")  # edited: loaded again
    assert tls_context(str(bundle)) is not a


def test_profile_cache_holds_one_entry_for_every_host_and_resolves_auto_on_each(
    tmp_path, monkeypatch
):
    from siteagent import profilecache, profiles

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    auto = tmp_path / "auto.yaml"
    auto.write_text(
        "name: auto\nscheduler: local\nlauncher: none\nendpoint: {name: f}\n"
        "node: {cores: auto, gpus: 0}\n"
    )
    monkeypatch.setattr(profiles.os, "cpu_count", lambda: 8)
    assert profilecache.load_profile_cached(str(auto)).node.cores == 8  # the login node
    entries = list((tmp_path / "cache" / "site-agent" / "profiles").iterdir())
    assert len(entries) == 1 and '"cores": "auto"' in entries[0].read_text()

    def no_yaml(*args, **kwargs):
        raise AssertionError("a cached profile was parsed again")

    monkeypatch.setattr(profiles, "validated_data", no_yaml)
    monkeypatch.setattr(profiles.os, "cpu_count", lambda: 2)  # another node: its own cores
    assert profilecache.load_profile_cached(str(auto)).node.cores == 2
    # ... and its own rules: 2 cores cannot reserve core 3
    auto.write_text(auto.read_text().replace("gpus: 0", "gpus: 0, reserved_cores: [3]"))
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(profiles.os, "cpu_count", lambda: 8)
    profilecache.load_profile_cached(str(auto))
    monkeypatch.setattr(profiles, "validated_data", no_yaml)
    monkeypatch.setattr(profiles.os, "cpu_count", lambda: 2)
    with pytest.raises(
        ConfigError, match=r"node\.reserved_cores: every core must be < node\.cores"
    ):
        profilecache.load_profile_cached(str(auto))


def test_profile_cache_never_keeps_a_profile_that_fails_its_rules(tmp_path, monkeypatch):
    from siteagent import profilecache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nscheduler: local\nlauncher: none\nendpoint: {name: f}\n"
        "node: {cores: 2, gpus: 0, reserved_cores: [2]}\n"
    )
    for _ in range(2):  # the second time too: no entry lets it skip the rules
        with pytest.raises(ConfigError, match=r"node\.reserved_cores"):
            profilecache.load_profile_cached(str(bad))
    assert not (tmp_path / "cache" / "site-agent" / "profiles").exists()


# ---------------------------------------------------------------- smoke-test --harvester
def test_backend_creates_configs_concurrently_and_never_stops_a_lent_executor():
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from siteagent.harvester.backends import Backend

    b_started = threading.Event()

    class Slow(Backend):
        def _make_executor(self, config):
            if config == {"a": 1}:  # finishes only once b's creation has begun
                assert b_started.wait(10), "creations were serialised"
            else:
                b_started.set()
            return ThreadPoolExecutor(1)

    backend = Slow()
    made = {}
    threads = [
        threading.Thread(target=lambda c=c: made.update({str(c): backend.executor(c)}))
        for c in ({"a": 1}, {"b": 2})
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(made) == 2 and backend.executor({"a": 1}) is made[str({"a": 1})]
    lent = ThreadPoolExecutor(1)
    backend.adopt({"c": 3}, lent)
    assert backend.executor({"c": 3}) is lent
    backend.shutdown()
    assert lent.submit(lambda: 3).result() == 3  # its owner stops it, not the backend
    with pytest.raises(RuntimeError):
        made[str({"b": 2})].submit(lambda: 3)
    lent.shutdown()


def test_pilot_exits_with_sys_exit_status_without_the_interpreter_teardown(capsys):
    """`site-agent pilot` ends through os._exit; its status is what sys.exit would give."""
    from siteagent.entry import _status

    assert [_status(c) for c in (None, 0, 3, 256 + 7, -1)] == [0, 0, 3, 7, 255]
    assert _status("bye") == 1 and capsys.readouterr().err == "bye\n"


def test_pilot_output_is_complete_through_a_pipe(run_cli, tmp_path):
    """stdout is flushed before os._exit: a long --dry-run --json arrives whole."""
    env = {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "c"), "PYTHONUNBUFFERED": ""}
    r = run_cli("pilot", "--site", "local", "--dry-run", "--json", "--", "true", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["layers"][-1]["name"] == "payload"


def test_a_ranks_import_path_is_the_console_scripts(tmp_path):
    """The wrapper's `python -I -S` start sees the import path `site` gives the console
    script: the standard library first (nothing in site-packages shadows it), then this
    environment's packages and site-agent's source."""
    from siteagent.wrappers.render import pilot_start

    python, start = pilot_start()
    setup = start.split("\ntry:")[0]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    show = "; import json; print(json.dumps(sys.path))"
    rank = subprocess.run(
        [python, "-I", "-S", "-c", setup + show], capture_output=True, text=True, check=True
    )
    script = subprocess.run(
        [python, "-c", "import sys" + show], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(rank.stdout) == json.loads(script.stdout)[1:]  # [0]: the script's dir
