"""What a production PanDA queue needs of the pilot (issue 20): the job label, job type and
pilot type as pilot3's own parser reads them, credentials, Harvester identity, kept logs,
the pilot's source and version, the PanDA instance, the shutdown time and the exit codes."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from siteagent.errors import ConfigError, SiteAgentError
from siteagent.pilot.layers.credentials import Credentials, check, find_credentials
from siteagent.pilot.outcome import SETUP_ERROR_EXIT, STOPPING, Happened, decide
from siteagent.pilot.plan import PilotOptions, build_plan
from siteagent.profiles import find_profile, parse_profile

from .conftest import REPO
from .gridproxy import GridCA, token
from .pilotsite import clean_env, make_site

CLI = [sys.executable, "-m", "siteagent", "pilot"]
SITES = ("aurora", "frontier", "local", "perlmutter", "polaris")


# ---------------------------------------------------------------- 1, 6: the pilot command
@pytest.fixture(scope="module")
def pilot3_args(pilot3_dir):
    """pilot3's own ``get_args`` (pilot.py), parsing a command line as the pilot would."""
    sys.path.insert(0, str(pilot3_dir))
    try:
        spec = importlib.util.spec_from_file_location("pilot3_main", pilot3_dir / "pilot.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(pilot3_dir))

    def parse(argv: tuple[str, ...]):
        saved = sys.argv
        sys.argv = ["pilot.py", *argv[2:]]  # after "python3 pilot.py"
        try:
            return module.get_args()
        finally:
            sys.argv = saved

    return parse


def site_with(tmp_path: Path, site: str, pilot: dict) -> str:
    """A copy of the site profile ``site`` with ``pilot`` merged into its pilot section."""
    data = yaml.safe_load(Path(find_profile(site)).read_text())
    data["pilot"] = {**data.get("pilot", {}), **pilot}
    path = tmp_path / f"{site}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


# queue type -> (profile pilot section, options from the WorkSpec/queue config, expected
# (job_label, jobtype, version_tag) as pilot3 parses them)
QUEUE_TYPES = {
    "managed": ({}, {}, ("managed", "", "PR")),
    "unified": ({}, {"job_label": "unified", "job_type": "unified"}, ("unified", "unified", "PR")),
    "analysis": ({"job_label": "user"}, {"job_type": "user"}, ("user", "user", "PR")),
    "ptest": ({}, {"pilot_type": "PT"}, ("ptest", "", "PR")),
    "rc": ({"pilot_type": "RC", "debug": True}, {}, ("rc_test2", "", "RC")),
    "alrb": ({}, {"pilot_type": "ALRB"}, ("rc_alrb", "", "ALRB")),
    "epic": ({"instance": "bnl", "pilot_user": "generic"}, {}, ("managed", "", "PR")),
}


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("queue_type", sorted(QUEUE_TYPES))
def test_pilot_command_parses_with_pilot3s_own_argparse(
    site,
    queue_type,
    tmp_path,
    pilot3_dir,
    pilot3_args,
):
    section, options, (label, job_type, tag) = QUEUE_TYPES[queue_type]
    opts = PilotOptions(
        site=site_with(tmp_path, site, section), queue="SITE_Q", pilot_dir=str(pilot3_dir),
        cvmfs="none", container="none", walltime="02:00:00", **options,
    )  # fmt: skip
    plan = build_plan(opts, {"SITE_AGENT_GPU_ROOT": str(tmp_path), "HOME": str(tmp_path)})
    args = pilot3_args(plan.argv)
    assert (args.job_label, args.jobtype, args.version_tag) == (label, job_type, tag)
    assert args.pilot_user == section.get("pilot_user", "ATLAS")
    assert args.queue == "SITE_Q" and args.harvester_submitmode == "PULL"
    assert args.cleanup is False  # pilotlog.txt outlives pilot3 (the wrapper cleans up)
    assert args.debug is bool(section.get("debug"))
    assert int(args.lifetime) == 7200 - 60 - 180  # margin + the 180 s default grace
    if queue_type == "epic":  # PanDAWMS/pilot-wrapper eic branch: BNL's server and cache
        assert (args.url, args.port) == ("https://pandaserver01.sdcc.bnl.gov", "25443")
        assert args.queuedata_url == (
            "http://pandaserver01.sdcc.bnl.gov:25080/cache/schedconfig/SITE_Q.all.json"
        )
        assert args.storagedata_url == "https://datalake-cric.cern.ch/cache/ddmendpoints.json"
    else:
        assert (args.url, args.port, args.queuedata_url, args.storagedata_url) == (
            "https://pandaserver.cern.ch", "25443", "", "",
        )  # fmt: skip


def test_pilot_user_the_pilot_lacks_is_refused_in_one_line(tmp_path, pilot3_dir):
    site = make_site(tmp_path / "site", pilot_extra="  pilot_user: eic\n")
    r = subprocess.run(
        [*CLI, "--site", str(site.profile), "--pilot-dir", str(pilot3_dir), "--dry-run"],
        env=clean_env(site.env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"site-agent: error: --pilot-user: 'eic' is not a user of PanDA pilot 3.7.0.36 in {pilot3_dir} "
        "(it has atlas, generic, rubin, sphenix)"
    ]
    # a --pilot-arg naming a user the pilot has wins, as in pilot3's argparse (the last one)
    r = subprocess.run(
        [*CLI, "--site", str(site.profile), "--pilot-dir", str(pilot3_dir), "--dry-run",
         "--pilot-arg=--pilot-user=sphenix"],
        env=clean_env(site.env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--job-label", "man aged", "--job-label: 'man aged' has characters that are not allowed"),
        ("--pilot-type", "XX", "--pilot-type: 'XX' is not one of PR, RC, ALRB, PT"),
        ("--harvester-id", "a;b", "--harvester-id: 'a;b' has characters that are not allowed"),
    ],
)
def test_bad_labels_and_ids_are_one_line(tmp_path, flag, value, message):
    site = make_site(tmp_path / "site")
    r = subprocess.run(
        [*CLI, "--site", str(site.profile), flag, value, "--dry-run"],
        env=clean_env(site.env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip() == f"site-agent: error: {message}"


def test_harvester_forwards_labels_types_and_identity():
    """harvester/shape.py: the WorkSpec first, then the queue config; the profile otherwise."""
    from siteagent.harvester.config import QueueConfig
    from siteagent.harvester.shape import payload_argv

    qc = QueueConfig(
        site="local", panda_queue="PQ", prod_source_label="unified", job_type="unified",
        pilot_args=("--queuedata-url=https://h.example/cache/PQ.json?x=1",),
    )  # fmt: skip
    ws = SimpleNamespace(workerID=777, jobType="managed", pilotType="RC", resourceType="MCORE")
    argv = payload_argv(qc, ws, hid="harv-1")
    pairs = dict(zip(argv[4::2], argv[5::2], strict=False))
    assert pairs["--job-label"] == "unified" and pairs["--job-type"] == "managed"
    assert pairs["--pilot-type"] == "RC" and pairs["--harvester-id"] == "harv-1"
    assert pairs["--harvester-worker-id"] == "777"
    assert argv[-1] == "--pilot-arg=--queuedata-url=https://h.example/cache/PQ.json?x=1"
    argv = payload_argv(QueueConfig(site="local"), SimpleNamespace(workerID=1, pilotType="??"))
    assert "--job-label" not in argv and "--pilot-type" not in argv  # the profile decides


def test_check_probes_the_queues_panda_instance():
    from siteagent.pilot.instances import check_targets

    base = "name: t\nscheduler: local\nlauncher: none\nendpoint: {name: t}\nnode: {cores: 1, gpus: 0}\n"
    bnl = parse_profile(base + "pilot: {instance: bnl}\n", "t.yaml")
    assert "https://pandaserver01.sdcc.bnl.gov:25443" in check_targets(bnl.pilot)
    cern = parse_profile(base, "t.yaml")
    assert check_targets(cern.pilot) == (
        "https://pandaserver.cern.ch:25443", "http://pandaserver.cern.ch:25080",
    )  # fmt: skip
    own = parse_profile(base + "pilot: {server_url: 'https://p.example', server_port: 8443}\n", "t")
    assert check_targets(own.pilot) == ("https://p.example:8443",)


# ---------------------------------------------------------------- 2: credentials
@pytest.fixture(scope="module")
def grid_ca():
    return GridCA()


def creds(tmp_path, require="any", proxy=None, tok=None, origin="atlas.pilot", min_life=3600):
    return Credentials(
        require, str(proxy or tmp_path / "none"), str(tok) if tok else None, origin, min_life
    )


def test_valid_proxy_and_token_pass(tmp_path, grid_ca):
    proxy = grid_ca.proxy(tmp_path / "x509up", 12 * 3600)
    tok = token(tmp_path / "panda_token", 6 * 3600)
    said = check(creds(tmp_path, "both", proxy, tok))
    assert said[0].startswith(f"X509 proxy {proxy}: valid for 12.0 h")
    assert said[1].startswith(f"PanDA token {tok}: valid for 6.0 h")
    assert check(creds(tmp_path, "token", None, token(tmp_path / "opaque", None)))[0].endswith(
        "lifetime unknown"
    )


@pytest.mark.parametrize(
    ("require", "make", "message"),
    [
        ("proxy", lambda d, ca: None, "X509 proxy {d}/none is missing"),
        ("any", lambda d, ca: None, "X509 proxy {d}/none is missing; no PanDA token"),
        ("proxy", lambda d, ca: ca.proxy(d / "p", 600), "X509 proxy {d}/p expires in 10 min"),
        ("proxy", lambda d, ca: ca.proxy(d / "p", -60), "X509 proxy {d}/p expired 20"),
        ("proxy", lambda d, ca: ca.proxy(d / "p", 9e4, 0o644), "{d}/p has mode 0644; it must"),
        ("both", lambda d, ca: ca.proxy(d / "p", 9e4), "no PanDA token (credentials.panda_token"),
    ],
)
def test_missing_expiring_or_open_credentials_are_named(tmp_path, grid_ca, require, make, message):
    proxy = make(tmp_path, grid_ca)
    with pytest.raises(SiteAgentError, match=r"^credentials \(" + require) as err:
        check(creds(tmp_path, require, proxy))
    assert message.format(d=tmp_path) in str(err.value)


def test_token_needs_origin_and_lifetime(tmp_path):
    tok = token(tmp_path / "t", 300)
    with pytest.raises(SiteAgentError, match=r"PanDA token .* expires in 5 min"):
        check(creds(tmp_path, "token", tok=tok))
    with pytest.raises(SiteAgentError, match="has no origin"):
        check(creds(tmp_path, "token", tok=token(tmp_path / "u", 9e4), origin=None))


def test_credentials_come_from_the_profile_or_harvesters_variables(tmp_path):
    from siteagent.pilot.layers.credentials import credential_env
    from siteagent.sections import CredentialsSection

    environ = {
        "X509_USER_PROXY": "/p/x509", "PANDA_AUTH_DIR": "/t", "PANDA_AUTH_TOKEN": "tok",
        "PANDA_AUTH_ORIGIN": "atlas.pilot",
    }  # fmt: skip
    c = find_credentials(CredentialsSection(), environ)
    assert (c.proxy, c.token, c.origin) == ("/p/x509", "/t/tok", "atlas.pilot")
    # pilot3's locate_token takes dirname($PANDA_AUTH_DIR): the trailing / keeps /t
    assert credential_env(c) == {
        "X509_USER_PROXY": "/p/x509", "PANDA_AUTH_DIR": "/t/", "PANDA_AUTH_TOKEN": "tok",
        "PANDA_AUTH_ORIGIN": "atlas.pilot",
    }  # fmt: skip
    c = find_credentials(CredentialsSection(x509_proxy="/q"), {})
    assert (c.proxy, c.token) == ("/q", None)
    c = find_credentials(CredentialsSection(panda_token_key="/k/key"), environ)
    assert credential_env(c)["PANDA_AUTH_TOKEN_KEY"] == "/k/key"


def test_token_key_must_be_private(tmp_path):
    tok = token(tmp_path / "t", 9e4)
    key = tmp_path / "key"
    key.write_text("k")
    key.chmod(0o644)
    c = creds(tmp_path, "token", tok=tok)
    from dataclasses import replace

    with pytest.raises(SiteAgentError, match=r"PanDA token key .*/key has mode 0644"):
        check(replace(c, token_key=str(key)))
    key.chmod(0o400)
    assert check(replace(c, token_key=str(key)))


def run_wrapper(site, *args, env=None, timeout=120):
    return subprocess.run(
        [*CLI, "--site", str(site.profile), *args],
        env=clean_env(site.env | (env or {})), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_wrapper_refuses_to_start_the_pilot_without_credentials(tmp_path, pilot3_dir):
    site = make_site(tmp_path / "site")
    report = tmp_path / "r.json"
    missing = tmp_path / "x509up_missing"
    r = run_wrapper(
        site, "--pilot-dir", str(pilot3_dir), "--cvmfs", "none", "--report", str(report),
        env={"X509_USER_PROXY": str(missing)},
    )  # fmt: skip
    assert r.returncode == SETUP_ERROR_EXIT == 64, r.stderr
    data = json.loads(report.read_text())
    assert data["reason"] == "setup-error" and data["payload_pid"] is None
    assert f"X509 proxy {missing} is missing" in data["error"]
    assert "site-agent pilot: setup-error, exit code 64" in r.stderr


def test_check_reports_credentials(tmp_path, grid_ca):
    from siteagent.checks.local import check_credentials

    proxy = grid_ca.proxy(tmp_path / "x509", 600)
    base = "name: t\nscheduler: local\nlauncher: none\nendpoint: {name: t}\nnode: {cores: 1, gpus: 0}\n"
    profile = parse_profile(base + f"credentials: {{x509_proxy: {proxy}}}\n", "t.yaml")
    r = check_credentials(profile)
    assert (r.status, r.name) == ("fail", "credentials")
    assert f"X509 proxy {proxy} expires in 10 min" in r.reason and "Credentials" in r.hint
    grid_ca.proxy(proxy, 86400)
    assert check_credentials(profile).status == "pass"
    none = parse_profile(base + "credentials: {require: none}\n", "t.yaml")
    assert check_credentials(none).status == "skip"


# ---------------------------------------------------------------- 4: logs of failed pilots
FAILING = "mkdir -p PanDA_Pilot3_1 && seq 1 30 > PanDA_Pilot3_1/pilotlog.txt && exit 3"


def test_failed_pilot_keeps_its_logs_with_a_retention_limit(tmp_path):
    site = make_site(tmp_path / "site", pilot_extra="  failed_logs_kept: 2\n")
    state = tmp_path / "state"
    ids = []
    for i in range(3):
        env = {"SITE_AGENT_STATE": str(state), "SITE_AGENT_WORKER_ID": f"w-{i}"}
        r = run_wrapper(site, "--cvmfs", "none", "--", "sh", "-c", FAILING, env=env)
        assert r.returncode == 3, r.stderr
        data = json.loads((state / "pilots" / f"w-{i}-r0.json").read_text())
        assert data["logs"] == str(state / "pilot-logs" / f"w-{i}-r0")
        assert data["log_tail"] == [str(n) for n in range(11, 31)]
        ids.append(f"w-{i}-r0")
        time.sleep(0.05)  # distinct mtimes
    kept = sorted(p.name for p in (state / "pilot-logs").iterdir())
    assert kept == ids[1:]  # only the newest 2
    logs = state / "pilot-logs" / ids[2]
    assert (logs / "pilotlog.txt").read_text().splitlines()[-1] == "30"
    wrapper = (logs / "wrapper.log").read_text()
    assert "ended: failed, exit code 3" in wrapper and "layer credentials:" in wrapper
    assert list(site.scratch.iterdir()) == []  # the workdir itself is still removed
    # a pilot that finished keeps nothing
    env = {"SITE_AGENT_STATE": str(state), "SITE_AGENT_WORKER_ID": "ok"}
    assert run_wrapper(site, "--cvmfs", "none", "--", "true", env=env).returncode == 0
    assert not (state / "pilot-logs" / "ok-r0").exists()
    assert json.loads((state / "pilots" / "ok-r0.json").read_text())["logs"] is None


# ---------------------------------------------------------------- 5: pilot source, version
def test_pilot_from_the_cvmfs_tarball_is_unpacked_once_and_its_version_reported(
    tmp_path,
    pilot3_dir,
    grid_ca,
):
    cvmfs = tmp_path / "cvmfsroot"
    tar_dir = cvmfs / "atlas.cern.ch/repo/sw/PandaPilot/tar"
    tar_dir.mkdir(parents=True)
    with tarfile.open(tar_dir / "pilot3.tar.gz", "w:gz") as tar:  # one top directory
        tar.add(pilot3_dir, "pilot3", filter=lambda t: None if "egg-info" in t.name else t)
    site = make_site(tmp_path / "site")
    home = tmp_path / "home"
    env = {
        "SITE_AGENT_CVMFS_ROOT": str(cvmfs), "HOME": str(home), "XDG_CACHE_HOME": "",
        "X509_USER_PROXY": str(grid_ca.proxy(tmp_path / "x509up", 86400)),
        "SITE_AGENT_STATE": str(tmp_path / "state"), "SITE_AGENT_WORKER_ID": "w-1",
    }  # fmt: skip
    # auto: the CVMFS tarball is there, so it is chosen; planning only decides the directory
    r = run_wrapper(site, "--cvmfs", "none", "--dry-run", "--json", env=env)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert f"(tarball {tar_dir}/pilot3.tar.gz)" in plan["layers"][-1]["summary"]
    script = Path(plan["argv"][1])
    assert script.parent.parent == home / ".cache" / "site-agent" / "pilot3"
    assert not script.exists()
    # the real pilot3 from the tarball, stopped by its own argparse (exit 2) before it does
    # anything: enough to see the unpacking, the version and the kept logs
    for run in (1, 2):
        r = run_wrapper(site, "--cvmfs", "none", "--pilot-arg=--no-such-option", env=env)
        assert r.returncode == 2 and "unrecognized arguments: --no-such-option" in r.stderr
        data = json.loads((tmp_path / "state" / "pilots" / "w-1-r0.json").read_text())
        assert data["pilot"] == {
            "source": "tarball", "origin": f"{tar_dir}/pilot3.tar.gz", "version": "3.7.0.36",
        }  # fmt: skip
        actions = next(lay["actions"] for lay in data["layers"] if lay["name"] == "payload")
        unpacked = [a for a in actions if a.startswith("unpacked")]
        assert len(unpacked) == (1 if run == 1 else 0) and "PanDA pilot 3.7.0.36" in actions
        assert (
            data["logs"]
            and "ended: failed, exit code 2" in (Path(data["logs"]) / "wrapper.log").read_text()
        )


def test_pilot_source_choices(tmp_path, pilot3_dir):
    from siteagent.pilot.source import choose_source, pilot_users, pilot_version
    from siteagent.sections import PilotSection

    assert pilot_version(pilot3_dir) == "3.7.0.36"
    assert pilot_users(pilot3_dir) == ["atlas", "generic", "rubin", "sphenix"]
    env = {"HOME": str(tmp_path), "SITE_AGENT_CVMFS_ROOT": str(tmp_path / "nocvmfs")}
    src = choose_source(PilotSection(source=str(pilot3_dir)), None, env)
    assert (src.kind, src.dir) == ("dir", pilot3_dir)
    src = choose_source(PilotSection(source="https://example.org/pilot3.tar.gz"), None, env)
    assert src.kind == "url" and src.dir.parent == tmp_path / ".cache/site-agent/pilot3"
    with pytest.raises(ConfigError, match=r"pilot\.source: cvmfs, but .* is not there"):
        choose_source(PilotSection(source="cvmfs"), None, env)
    with pytest.raises(ConfigError, match=r"--pilot-dir: no pilot\.py in /nonexistent"):
        choose_source(PilotSection(), "/nonexistent", env)


def test_pilot_from_a_url_is_downloaded_once(tmp_path, pilot3_dir):
    """A tarball URL (here a loopback server) is fetched and unpacked by setup, once."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from siteagent.pilot.source import choose_source, ensure_unpacked, pilot_version
    from siteagent.sections import PilotSection

    served = tmp_path / "www"
    served.mkdir()
    with tarfile.open(served / "pilot3.tar.gz", "w:gz") as tar:  # pilot.py at the top
        for name in ("pilot.py", "pilot"):
            tar.add(pilot3_dir / name, name)
    hits = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            hits.append(self.path)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/pilot3.tar.gz"
        src = choose_source(PilotSection(source=url), None, {"HOME": str(tmp_path)})
        # a proxy that does not exist, bypassed for this host by no_proxy
        env = {"http_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1"}
        assert ensure_unpacked(src, env) == f"unpacked {url} into {src.dir}"
        assert ensure_unpacked(src) is None and len(hits) == 1
        assert pilot_version(src.dir) == "3.7.0.36"
        missing = choose_source(PilotSection(source=url + ".nope"), None, {"HOME": str(tmp_path)})
        with pytest.raises(SiteAgentError, match=r"pilot\.source: cannot download .*404"):
            ensure_unpacked(missing, {})
        with pytest.raises(SiteAgentError, match=r"cannot download .*(refused|Errno)"):
            ensure_unpacked(missing, {"http_proxy": "http://127.0.0.1:9"})  # the proxy is used
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---------------------------------------------------------------- 7: walltime, signals, codes
def test_shutdowntime_is_the_batch_jobs_end_and_keeps_the_sites_machine_features(tmp_path):
    site = make_site(tmp_path / "site")
    site_mf = tmp_path / "mf"
    site_mf.mkdir()
    (site_mf / "hs06").write_text("42\n")
    show = 'cat "$MACHINEFEATURES/shutdowntime" "$MACHINEFEATURES/hs06"'
    t0 = time.time()
    r = run_wrapper(
        site, "--cvmfs", "none", "--walltime", "00:10:00", "--", "sh", "-c", show,
        env={"MACHINEFEATURES": str(site_mf)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    end, hs06 = r.stdout.split()
    assert t0 + 600 - 5 <= int(end) <= time.time() + 600 and hs06 == "42"
    # the site's own, earlier shutdown time wins
    (site_mf / "shutdowntime").write_text(f"{int(t0) + 300}\n")
    r = run_wrapper(
        site, "--cvmfs", "none", "--walltime", "00:10:00", "--", "sh", "-c", show,
        env={"MACHINEFEATURES": str(site_mf)},
    )  # fmt: skip
    assert r.stdout.split()[0] == str(int(t0) + 300)
    # a site's shutdowntime that is empty or not a time is ignored, not a setup error
    for unreadable in ("", "\n", "soon\n"):
        (site_mf / "shutdowntime").write_text(unreadable)
        r = run_wrapper(
            site, "--cvmfs", "none", "--walltime", "00:10:00", "--", "sh", "-c", show,
            env={"MACHINEFEATURES": str(site_mf)},
        )  # fmt: skip
        assert r.returncode == 0, (unreadable, r.stderr)
        assert t0 + 600 - 5 <= int(r.stdout.split()[0]) <= time.time() + 600
    # no walltime known: no shutdown time, and the site's variable is left alone
    r = run_wrapper(site, "--cvmfs", "none", "--", "sh", "-c", 'echo "mf=$MACHINEFEATURES"')
    assert r.stdout.strip() == "mf="


def test_stopping_signals_and_exit_codes():
    assert {signal.SIGQUIT, signal.SIGXCPU, signal.SIGUSR2} <= set(STOPPING)
    assert decide(Happened(setup_error="x")).exit_code == 64
    assert decide(Happened(received=(signal.SIGXCPU,))).exit_code == 128 + 24
    q = decide(Happened(received=(signal.SIGQUIT,), returncode=131))
    assert (q.reason, q.exit_code) == ("signalled", 131)  # pilot3's own SIGQUIT code
    # pilot3 has no SIGUSR2 handler: forwarded, it ends the pilot, so it is a stop
    u = decide(Happened(received=(signal.SIGUSR2,), returncode=-12))
    assert (u.reason, u.exit_code, u.signal) == ("signalled", 140, "SIGUSR2")
    assert decide(Happened(received=(signal.SIGUSR1,), returncode=0)).reason == "finished"


@pytest.mark.parametrize("sig", [signal.SIGXCPU, signal.SIGQUIT, signal.SIGUSR2])
def test_more_signals_are_forwarded(tmp_path, sig):
    site = make_site(tmp_path / "site")
    report = tmp_path / "r.json"
    seen = tmp_path / "seen"
    name = signal.Signals(sig).name[3:]
    script = (
        "import pathlib, signal, sys, time\n"
        f"seen = pathlib.Path({str(seen)!r})\n"
        f"signal.signal({int(sig)}, lambda *_: (seen.write_text({name!r}), sys.exit(5)))\n"
        "pathlib.Path(str(seen) + '.up').write_text('up')\n"
        "while True:\n    time.sleep(0.1)\n"
    )
    p = subprocess.Popen(
        [*CLI, "--site", str(site.profile), "--cvmfs", "none", "--report", str(report),
         "--", sys.executable, "-c", script],
        env=clean_env(site.env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not Path(f"{seen}.up").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert seen.read_text().strip() == name, err
    data = json.loads(report.read_text())
    assert data["received_signals"] == [signal.Signals(sig).name]
    assert (data["reason"], data["exit_code"]) == ("signalled", 5)


RACE = """
import os, signal, subprocess, sys
from siteagent.pilot.plan import PilotOptions, build_plan
from siteagent.pilot.run import run_plan

real = subprocess.Popen

def popen(*args, **kwargs):  # SIGTERM lands while the payload is being started
    os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kwargs)

subprocess.Popen = popen
script = 'trap "exit 7" TERM; while :; do sleep 0.1; done'
plan = build_plan(PilotOptions(site=sys.argv[1], cvmfs="none", walltime="00:01:15",
                               payload=("sh", "-c", script), report=sys.argv[2]))
report = run_plan(plan)
print(report.reason, report.exit_code)
"""


def test_a_signal_during_the_payloads_start_reaches_it(tmp_path):
    """Before, a signal that came while Popen ran was recorded but never passed on: the
    payload ran on until the walltime margin (here 15 s)."""
    site = make_site(tmp_path / "site")
    r = subprocess.run(
        [sys.executable, "-c", RACE, str(site.profile), str(tmp_path / "r.json")],
        env=clean_env(site.env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    reason, code = r.stdout.split()
    # the TERM reaches sh before or after its trap is set: either way it ends it at once
    assert (reason, code in ("7", "143")) == ("signalled", True), r.stderr


def test_readme_documents_exit_codes_credentials_and_logs():
    readme = (REPO / "README.md").read_text()
    for text in ("| 64 |", "X509_USER_PROXY", "PANDA_AUTH_TOKEN", "pilot-logs/", "shutdowntime"):
        assert text in readme, text
