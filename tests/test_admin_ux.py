"""Issue #15: what a site admin sees in the first hour (errors, hints, output forms)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from siteagent.profiles import load_profile
from siteagent.userconfig import canonicalize

from .conftest import REPO


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return {"HOME": str(h), "GLOBUS_COMPUTE_USER_DIR": ""}


# ---- item 4: endpoint validate without --config names the required fields
@pytest.mark.parametrize("site", ["polaris", "perlmutter"])
def test_validate_without_config_names_required_fields(run_cli, tmp_path, site):
    ep = tmp_path / "ep"
    assert run_cli("endpoint", "render", "--site", site, "--out", str(ep)).returncode == 0
    r = run_cli("endpoint", "validate", str(ep))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "account: is required; required: account (e.g. --config " in r.stderr
    example = shlex.split(r.stderr.split("--config ", 1)[1].rstrip(")\n"))[0]
    canonicalize(load_profile(site), json.loads(example))
    r = run_cli("endpoint", "validate", str(ep), "--config", example)
    assert r.returncode == 0, r.stderr
    help_text = run_cli("endpoint", "validate", "--help").stdout
    assert "require at least account" in " ".join(help_text.split())


# ---- item 6: exit 2 for bad input, JSON errors with --json, one-line usage errors
def test_smoke_test_bad_config_is_exit_2(run_cli):
    r = run_cli("smoke-test", "--site", "local", "--config", '{"account": "x"}')
    assert r.returncode == 2, r
    assert r.stderr == "site-agent: error: user_endpoint_config: account: is not a known field\n"


def _json_commands() -> set[str]:
    import click

    from siteagent.cli import cli
    from siteagent.readme_table import forwarded_params

    found = set()

    def walk(cmd, path):
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])
        params = getattr(cmd, "params", []) or forwarded_params(" ".join(path))
        if any("--json" in p.opts for p in params if isinstance(p, click.Option)):
            found.add(" ".join(path))

    walk(cli, [])
    return found


# one bad input per command that has --json
BAD_JSON_CALLS = {
    "profiles list": ["profiles", "list", "--json", "--bogus"],
    "profiles show": ["profiles", "show", "nosuch", "--json"],
    "pilot": ["pilot", "--site", "local", "--dry-run", "--json", "--queue", "a;b"],
    "check": ["check", "--site", "nosuch", "--json"],
    "smoke-test": ["smoke-test", "--json", "--config", '{"nodes": 0}'],
    "sweep": ["sweep", "--json", "--payload", "true"],
}


def test_every_json_command_is_covered():
    assert _json_commands() == set(BAD_JSON_CALLS)


@pytest.mark.parametrize("command", sorted(BAD_JSON_CALLS))
def test_json_errors_are_json_on_stdout(run_cli, command):
    r = run_cli(*BAD_JSON_CALLS[command])
    assert r.returncode == 2, r
    data = json.loads(r.stdout)
    assert data["exit_code"] == 2 and data["error"]
    assert r.stderr == f"site-agent: error: {data['error']}\n"


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["smoke-test", "--bogus"],
            "smoke-test: No such option: --bogus (see `site-agent smoke-test --help`)",
        ),
        (["install"], "install: Missing option '--site'. (see `site-agent install --help`)"),
        (["nosuch"], "No such command 'nosuch'. (see `site-agent --help`)"),
        (
            ["profiles", "show"],
            "profiles show: Missing argument 'NAME'. (see `site-agent profiles show --help`)",
        ),
    ],
)
def test_usage_errors_are_one_line(run_cli, args, expected):
    r = run_cli(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f"site-agent: error: {expected}\n"


def test_payload_json_flag_is_not_ours():
    from siteagent.cli_errors import wants_json

    assert wants_json(["pilot", "--json", "--", "x"])
    assert not wants_json(["pilot", "--site", "local", "--", "tool", "--json"])


# ---- item 7: schema errors say what is wrong in the branch that applies, name enum values
def _readme_example_error() -> str:
    text = (REPO / "README.md").read_text()
    return re.search(r"\(`(polaris\.yaml:\d+: [^`]+)`,", text)[1]


def test_readme_example_error_is_what_users_see(run_cli, tmp_path):
    example = _readme_example_error()
    line = int(example.split(":")[1])
    lines = (REPO / "site-profiles" / "polaris.yaml").read_text().splitlines()
    assert lines[line - 1].strip().startswith("gpus:")
    lines[line - 1] = lines[line - 1].split(":")[0] + ": -1"
    (tmp_path / "polaris.yaml").write_text("\n".join(lines) + "\n")
    r = run_cli("profiles", "show", "./polaris.yaml")
    assert r.returncode == 2 and r.stderr == f"site-agent: error: {example}\n"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("  cores: 32", "  cores: lots"),
            "p.yaml:{line}: node.cores: 'lots' is not allowed: must be an integer from 1 to "
            "100000 or 'auto'",
        ),
        (("  cores: 32", "  cores: 100001"), "p.yaml:{line}: node.cores: must be <= 100000"),
        (("scheduler: pbspro", "scheduler: slurmm"), "scheduler: must be one of: slurm, pbspro"),
    ],
)
def test_any_of_errors_are_specific(edit, expected, tmp_path):
    from siteagent.errors import ConfigError
    from siteagent.profiles import parse_profile

    text = (REPO / "site-profiles" / "polaris.yaml").read_text().replace(*edit)
    line = text.splitlines().index(edit[1]) + 1  # the edited line, wherever the profile has it
    with pytest.raises(ConfigError) as err:
        parse_profile(text, source="p.yaml")
    assert expected.format(line=line) in str(err.value)


def test_typo_beats_missing_key():
    from siteagent.errors import ConfigError
    from siteagent.profiles import parse_profile

    text = "name: t\nscheduler: slurmm\nlauncher: srun\nnode:\n  cores: 4\n  gpus: 0\n"
    with pytest.raises(ConfigError, match=r"^t\.yaml:2: scheduler: must be one of: slurm, "):
        parse_profile(text, source="t.yaml")


# ---- item 13: render speaks install's words; uninstall twice; another site's directory
def test_render_says_created_then_unchanged_and_lists_its_files(run_cli, tmp_path):
    ep = tmp_path / "ep"
    r = run_cli("endpoint", "render", "--site", "polaris", "--out", str(ep))
    assert r.returncode == 0, r.stderr
    created = sorted(ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("created "))
    on_disk = sorted(str(p) for p in ep.rglob("*") if p.is_file() and p.name[0] != ".")
    assert created == on_disk and len(created) == 5
    manifest = json.loads((ep / ".site-agent-manifest.json").read_text())["files"]
    assert sorted(str(ep / n) for n in manifest) == on_disk
    help_text = " ".join(run_cli("endpoint", "render", "--help").stdout.split())
    assert all(Path(p).name in help_text for p in on_disk)
    r = run_cli("endpoint", "render", "--site", "polaris", "--out", str(ep))
    assert r.stdout.count("unchanged ") == 5 and "wrote" not in r.stdout


def test_uninstall_twice_is_success(run_cli, tmp_path):
    ep = tmp_path / "ep"
    assert run_cli("install", "--site", "local", "--endpoint-dir", str(ep)).returncode == 0
    assert run_cli("uninstall", "--endpoint-dir", str(ep)).returncode == 0
    r = run_cli("uninstall", "--endpoint-dir", str(ep))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"nothing to uninstall: no site-agent endpoint in {ep}\n"


def test_install_over_another_site_needs_force_and_leaves_no_stale_files(run_cli, tmp_path):
    ep = tmp_path / "ep"
    assert run_cli("install", "--site", "polaris", "--endpoint-dir", str(ep)).returncode == 0
    assert (ep / "cvmfs" / "default.local").is_file()
    r = run_cli("install", "--site", "local", "--endpoint-dir", str(ep))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "holds the endpoint of site 'polaris'" in r.stderr and "--force" in r.stderr
    assert "polaris" in (ep / "config.yaml").read_text()  # nothing written
    r = run_cli("install", "--site", "local", "--endpoint-dir", str(ep), "--force")
    assert r.returncode == 0, r.stderr
    assert f"removed     {ep / 'cvmfs' / 'default.local'}" in r.stdout
    assert "note: replaced the endpoint of site 'polaris'" in r.stdout
    manifest = json.loads((ep / ".site-agent-manifest.json").read_text())["files"]
    assert "cvmfs/default.local" not in manifest and not (ep / "cvmfs").exists()
    assert all((ep / n).is_file() for n in manifest)
    r = run_cli("install", "--site", "local", "--endpoint-dir", str(ep))
    assert r.returncode == 0 and "unchanged" in r.stdout.split("\n")[0]


# ---- item 14: profiles show puts what the site is first; profiles list says where and what clashes
def test_profiles_show_starts_with_name_scheduler_launcher(run_cli):
    r = run_cli("profiles", "show", "polaris")
    assert r.stdout.splitlines()[:3] == ["name: polaris", "scheduler: pbspro", "launcher: mpiexec"]
    r = run_cli("profiles", "show", "polaris", "--json")
    assert list(json.loads(r.stdout))[:3] == ["name", "scheduler", "launcher"]


def test_profiles_list_says_where_and_reports_clashes(run_cli, tmp_path):
    extra = tmp_path / "profiles"
    extra.mkdir()
    text = (REPO / "site-profiles" / "polaris.yaml").read_text()
    (extra / "mysite.yaml").write_text(text)  # name: polaris, endpoint polaris-panda
    (extra / "frontier.yaml").write_text((REPO / "site-profiles" / "frontier.yaml").read_text())
    env = {"SITE_AGENT_PROFILE_PATH": str(extra)}
    r = run_cli("profiles", "list", env=env)
    assert r.returncode == 0, r.stderr
    rows = {
        cells[1]: cells
        for ln in r.stdout.splitlines()
        if ln.startswith("│") and (cells := [c.strip() for c in ln.split("│")])
    }
    assert rows["mysite"][-2] == str(extra)
    assert rows["polaris"][-2] == str(REPO / "site-profiles")
    warnings = [ln for ln in r.stdout.splitlines() if ln.startswith("warning: ")]
    assert warnings == [
        f"warning: {extra / 'mysite.yaml'}: name: 'polaris' differs from the file name 'mysite' "
        "(--site mysite loads it; messages call it 'polaris')",
        "warning: profiles mysite, polaris share the endpoint name 'polaris-panda' (one endpoint "
        "directory): give each its own endpoint.name",
        f"warning: {REPO / 'site-profiles' / 'frontier.yaml'} is hidden by "
        f"{extra / 'frontier.yaml'} (earlier on the search path)",
    ]
    r = run_cli("profiles", "list", "--json", env=env)
    assert json.loads(r.stdout) and r.stderr.count("warning: ") == 3


# ---- item 11: tables in a pipe or file are not wrapped
def test_tables_do_not_wrap_in_a_pipe(run_cli):
    target = "https://a-rather-long-host-name-of-the-panda-server.example.org:25443"
    r = run_cli(
        "check", "--site", "local", "--only", "network", "--timeout", "0.2", "--target", target
    )
    lines = r.stdout.splitlines()
    assert any(target in ln for ln in lines), r.stdout
    hint = "hint: check /etc/resolv.conf, or that this node may resolve outside names at all"
    assert sum(hint in ln for ln in lines) >= 1, r.stdout
    r = run_cli("profiles", "list")
    descriptions = [ln for ln in r.stdout.splitlines() if ln.startswith("│ aurora ")]
    assert len(descriptions) == 1 and "12 tiles per node)" in descriptions[0]


# ---- item 5: check hints follow the cause; a missing scratch directory is not a pass
def test_unresolvable_proxy_hint_is_about_the_proxy_url():
    from siteagent.checks.network import parse_target, probe
    from siteagent.checks.proxy import ProxySettings

    settings = ProxySettings(None, "http://no-such-proxy.invalid:3128", (), "profile")
    r = probe(parse_target("https://example.org:443"), settings, 5)
    assert (r.status, r.step) == ("fail", "proxy")
    assert "does not resolve" in r.hint and "proxy URL" in r.hint
    assert "credentials" not in r.hint


def test_refusing_proxy_hint_is_about_the_proxy_port():
    from siteagent.checks.network import parse_target, probe
    from siteagent.checks.proxy import ProxySettings

    from .netservers import refusing_port

    settings = ProxySettings(None, f"http://127.0.0.1:{refusing_port()}", (), "profile")
    r = probe(parse_target("https://example.org:443"), settings, 5)
    assert "nothing accepts connections" in r.hint and "credentials" not in r.hint


def test_plain_http_on_an_https_target_says_so():
    import http.server
    import threading

    from siteagent.checks.network import parse_target, probe
    from siteagent.checks.proxy import ProxySettings

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        direct = ProxySettings(None, None, (), "none")
        r = probe(parse_target(f"https://127.0.0.1:{server.server_port}"), direct, 5)
    finally:
        server.shutdown()
    assert (r.status, r.step) == ("fail", "tls"), r
    assert "without TLS (plain HTTP?)" in r.hint and "intercepting" not in r.hint


def test_missing_scratch_directory_is_a_warning(tmp_path):
    from siteagent.checks.local import check_disk

    missing = tmp_path / "no" / "such" / "scratch"
    r = check_disk(missing, 0.0, f"scratch {missing}", must_exist=True)
    assert r.status == "warn" and f"{missing} does not exist" in r.reason, r
    assert "check.scratch_dirs" in r.hint
    assert check_disk(tmp_path, 0.0, "scratch").status == "pass"
    assert check_disk(missing, 0.0, "endpoint").status == "pass"  # endpoint: made by install


def test_check_warns_about_the_profiles_missing_scratch(run_cli):
    r = run_cli("check", "--site", "polaris", "--only", "local", "--json")
    results = {x["name"]: x for x in json.loads(r.stdout)["results"]}
    scratch = results["disk scratch /lus/eagle/projects"]
    assert scratch["status"] == "warn" and "does not exist" in scratch["reason"], scratch


# ---- item 8: a dry run shows the plan with what is missing marked
def test_pilot_dry_run_marks_a_missing_queue(run_cli, tmp_path):
    """Not there yet is shown; a wrong value (a bad --queue) is still refused."""
    pilot3 = tmp_path / "pilot3"  # a pilot3 is there; the queue is not (polaris sets none)
    pilot3.mkdir()
    (pilot3 / "pilot.py").write_text("# pilot3\n")
    args = ("pilot", "--site", "polaris", "--pilot-dir", str(pilot3), "--dry-run")
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    missing = "--queue: no PanDA queue (give --queue or set pilot.panda_queue in the profile)"
    assert re.search(rf"^  \d+\. payload +MISSING: {re.escape(missing)}$", r.stdout, re.M)
    assert "1. gpu-binding" in r.stdout and "full command:" in r.stdout  # the rest is shown
    assert r.stderr == f"missing: {missing}\n"
    r = run_cli(*args, "--json")
    assert (
        r.returncode == 0 and json.loads(r.stdout)["layers"][-1]["summary"] == f"MISSING: {missing}"
    )
    bad = run_cli(*args, "--queue", "a;b")
    assert bad.returncode == 2 and "--queue: 'a;b'" in bad.stderr
    # a real run still refuses, in one line
    r = run_cli(*args[:-1], "--report", str(tmp_path / "r.json"))
    assert r.returncode == 2 and r.stderr.startswith("site-agent: error: --queue: no PanDA queue")


def test_pilot_dry_run_in_a_container_marks_a_missing_queue(run_cli, tmp_path):
    """The container layer binds pilot3's directory; with the payload missing it has none to
    bind, and the plan is still shown (it was a traceback)."""
    pilot3 = tmp_path / "pilot3"
    pilot3.mkdir()
    (pilot3 / "pilot.py").write_text("# pilot3\n")
    image = "docker://docker.io/library/almalinux:9"
    args = ("pilot", "--site", "polaris", "--pilot-dir", str(pilot3), "--container", image)
    r = run_cli(*args, "--dry-run", env={"SITE_AGENT_CVMFS_REPOS": ""})
    assert r.returncode == 0, r.stderr
    assert re.search(r"^  \d+\. container +apptainer ", r.stdout, re.M), r.stdout
    assert re.search(r"^  \d+\. payload +MISSING: --queue: no PanDA queue", r.stdout, re.M)
    assert r.stderr.startswith("missing: --queue")
    r = run_cli(*args, "--queue", "Q", "--dry-run", env={"SITE_AGENT_CVMFS_REPOS": ""})
    assert r.returncode == 0 and f"--bind {pilot3}" in r.stdout, r.stdout  # bound when known


def test_pilot_dry_run_marks_a_missing_pilot3(run_cli, tmp_path):
    env = {"SITE_AGENT_PILOT_DIR": "", "PYTHONPATH": ""}
    r = run_cli("pilot", "--site", "polaris", "--queue", "Q", "--dry-run", env=env)
    if re.search(r"^  \d+\. payload +PanDA pilot", r.stdout, re.M):
        pytest.skip("a pilot3 is found here without --pilot-dir")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^  \d+\. payload +MISSING: ", r.stdout, re.M)
    assert r.stderr.startswith("missing: ") and "`scripts/get-panda-pilot.sh DIR`" in r.stderr
    # a real run refuses, naming the script that fetches pilot3
    report = str(tmp_path / "r.json")
    r = run_cli("pilot", "--site", "polaris", "--queue", "Q", "--report", report, env=env)
    assert r.returncode == 2 and r.stderr.startswith("site-agent: error: --pilot-dir: PanDA")
    assert "`scripts/get-panda-pilot.sh DIR`" in r.stderr


# ---- item 9: exec in the wrong place says so
def test_exec_without_the_sites_launcher_says_so(run_cli, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    home = {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    error = (
        "site-agent: error: --site: polaris's launcher mpiexec is not on this host; run "
        "`site-agent exec` inside a polaris batch job, or use --site local here\n"
    )
    r = run_cli("exec", "--site", "polaris", "--", "hostname", env=home | {"PATH": str(empty)})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == error
    # with the launcher on PATH (a stand-in), exec goes on to the wrapper
    (empty / "mpiexec").write_text("#!/bin/sh\necho mpiexec-ran\n")
    (empty / "mpiexec").chmod(0o755)
    on_path = home | {"PATH": f"{empty}:/usr/bin:/bin"}
    r = run_cli("exec", "--site", "polaris", "--", "hostname", env=on_path)
    assert "is not on this host" not in r.stderr and "mpiexec-ran" in r.stdout
    assert list((tmp_path / "cache" / "site-agent" / "exec").iterdir())  # recorded
    # the recorded wrapper is not exec'd where the launcher is gone: the same one line
    (empty / "mpiexec").unlink()
    r = run_cli("exec", "--site", "polaris", "--", "hostname", env=home | {"PATH": str(empty)})
    assert r.returncode == 2 and r.stderr == error


def test_exec_gpus_on_a_gpu_less_node(run_cli):
    if load_profile("local").node.gpu_slots:
        pytest.skip("this node has GPUs")
    r = run_cli("exec", "--site", "local", "--gpus-per-rank", "1", "--", "true")
    assert r.returncode == 2
    assert r.stderr.startswith("site-agent: error: --gpus-per-rank: this node has no GPU")


# ---- item 12: smoke-test --harvester output reads as what it is
@pytest.mark.slow
def test_smoke_test_harvester_output_is_plain(run_cli, tmp_path):
    r = run_cli("smoke-test", "--harvester", "--workdir", str(tmp_path / "w"), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "unexpected state" not in r.stdout + r.stderr
    lines = {ln.split()[1] + " " + ln.split()[2]: ln for ln in r.stdout.splitlines()[:-1]}
    config = lines["render user"].split(", config ", 1)[1]
    assert json.loads(config)["nodes"] == 1  # JSON, not a Python dict
    assert "exit 3 as" not in lines["shell command"]
    assert "passed on its payload's exit code 3 as it should" in lines["shell command"]
    assert re.search(
        r"reports worker \d+ finished, worker \d+ signalled in", lines["harvester workers"]
    )


def test_cancelled_future_is_not_asked_again(caplog):
    """The engine's answer to a task the caller cancelled logs nothing (it used to log
    CRITICAL "Future ... in unexpected state: CANCELLED_AND_NOTIFIED")."""
    import concurrent.futures
    import threading
    import uuid

    from siteagent.endpoint.engine import EngineExecutor

    ex = EngineExecutor.__new__(EngineExecutor)  # only _finish's own state: no engine needed
    ex._lock, ex._futures = threading.Lock(), {}
    out: concurrent.futures.Future = concurrent.futures.Future()
    out.cancel()
    concurrent.futures.wait([out], timeout=0)
    assert not out.set_running_or_notify_cancel()  # now CANCELLED_AND_NOTIFIED

    class Answered:
        gc_task_id = uuid.uuid4()

    with caplog.at_level("DEBUG", logger="concurrent.futures"):
        ex._finish(Answered(), out)
    assert not [r for r in caplog.records if r.levelname == "CRITICAL"], caplog.text


# ---- item 3: the Harvester submitter never starts a login flow
def test_submitter_without_login_is_a_permanent_one_line_error(tmp_path, monkeypatch):
    from siteagent.harvester.backends import shutdown_backends
    from siteagent.harvester.login import NO_LOGIN
    from siteagent.harvester.submitter import GlobusComputeSubmitter

    from .test_harvester import WorkSpec

    monkeypatch.setenv("HOME", str(tmp_path))
    for var in (
        "GLOBUS_COMPUTE_USER_DIR",
        "GLOBUS_COMPUTE_CLIENT_ID",
        "GLOBUS_COMPUTE_CLIENT_SECRET",
    ):
        monkeypatch.delenv(var, raising=False)
    plugin = GlobusComputeSubmitter(
        site="local", endpointId="2f9b7c4e-0000-4000-8000-000000000001", pandaQueue="Q"
    )
    workers = [WorkSpec(workerID=i, nCore=1, maxWalltime=600) for i in (1, 2)]
    try:
        results = plugin.submit_workers(workers)
    finally:
        shutdown_backends()
    assert results == [(False, NO_LOGIN)] * 2  # False: Harvester does not retry
    assert "\n" not in NO_LOGIN and "globus-compute-endpoint login" in NO_LOGIN
    assert not (tmp_path / ".globus_compute" / "storage.db").exists()  # no token store made
