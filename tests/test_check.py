"""`site-agent check` against real servers on loopback: TLS with a test CA, a refusing port, a
port that never answers, and a real tinyproxy."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess

import pytest
import trustme

from siteagent.checks.local import check_container, check_disk, check_scheduler
from siteagent.checks.network import parse_target, probe
from siteagent.checks.proxy import ProxySettings, bypasses_proxy, parse_proxy_url, proxy_settings
from siteagent.checks.runner import run_checks
from siteagent.errors import ConfigError
from siteagent.profiles import load_profile, parse_profile

from .netservers import blackhole, refusing_port, tinyproxy, tls_server
from .test_wrappers import PBS_STANDINS

DIRECT = ProxySettings(None, None, (), "none")


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def ca_file(ca, tmp_path):
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def proxy_factory(tmp_path):
    """Start tinyproxy; skip where it is missing, but not in CI (CI=true installs it)."""

    def start(connect_ports, basic_auth=None):
        if shutil.which("tinyproxy") is None and not os.path.exists("/usr/bin/tinyproxy"):
            if os.environ.get("CI") == "true":
                pytest.fail("tinyproxy must be installed in CI")
            pytest.skip("tinyproxy not installed")
        return tinyproxy(tmp_path, connect_ports, basic_auth)

    return start


# ------------------------------------------------------------------ no_proxy, like curl
# Names under .invalid never resolve and addresses are loopback ones, so real curl can say
# for each case whether it goes through the proxy (test_curl_agrees_on_every_no_proxy_case).
NO_PROXY_CASES = [
    ("example.invalid", ["example.invalid"], True),
    ("www.example.invalid", ["example.invalid"], True),
    ("www.example.invalid", [".example.invalid"], True),
    ("example.invalid", [".example.invalid"], True),
    ("notexample.invalid", ["example.invalid"], False),
    ("EXAMPLE.invalid", ["example.INVALID"], True),
    ("anything.invalid", ["*"], True),
    ("anything.invalid", ["localhost", "*"], False),  # only a no_proxy of * alone is all
    ("127.1.2.3", ["127.0.0.0/8"], True),
    ("127.1.2.3", ["10.0.0.0/8"], False),
    ("127.0.0.2", ["127.0.0.2"], True),
    ("127.0.0.2", ["127.0.0.0/0"], False),  # an IPv4 /0 is the address itself
    ("127.0.0.2", ["127.0.0.3"], False),
    ("127.0.0.2", ["127.0.0.2/33"], False),  # more bits than an address has: nothing
    ("127.0.0.2", ["127.0.0.2/32"], True),
    ("::1", ["::1"], True),
    ("::1", ["[::1]"], False),  # compared whole: brackets make it no address
    ("::1", ["::/0"], False),  # an IPv6 /0 is /128
    ("host.alcf.invalid", ["localhost", ".invalid"], True),
    ("pandaserver.invalid", ["localhost", "127.0.0.1", ".alcf.invalid"], False),
    ("example.invalid", ["example.invalid:8080"], False),  # a port makes it another name
    ("a.example.invalid", ["..example.invalid"], False),  # one leading dot is ignored
    ("example.invalid.", ["example.invalid"], True),
    ("example.invalid", ["example.invalid."], True),
    ("example.invalid", [], False),
]


@pytest.mark.parametrize(("host", "no_proxy", "bypass"), NO_PROXY_CASES)
def test_no_proxy_matches_like_curl(host, no_proxy, bypass):
    assert bypasses_proxy(host, no_proxy) is bypass


def test_curl_agrees_on_every_no_proxy_case():
    """The cases above, asked of the real curl: with a proxy on a closed loopback port, does
    it try the proxy or the host?"""
    curl = shutil.which("curl")
    if curl is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl must be installed in CI")
        pytest.skip("curl not installed")
    proxy = "127.0.0.1:9"
    for host, no_proxy, bypass in NO_PROXY_CASES:
        url_host = f"[{host}]" if ":" in host else host
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env |= {"http_proxy": f"http://{proxy}", "no_proxy": ",".join(no_proxy)}
        r = subprocess.run(
            [curl, "-sv", "--connect-timeout", "2", "-m", "5", f"http://{url_host}:1/"],
            env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        used_proxy = f"Trying {proxy}" in r.stderr
        assert used_proxy is not bypass, (host, no_proxy, r.stderr[-500:])


def test_proxy_from_environment_like_curl(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://p:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://ignored:1")  # curl ignores upper-case HTTP_PROXY
    monkeypatch.setenv("NO_PROXY", "a.org, b.org")
    s = proxy_settings(None)
    assert (s.https, s.http, s.no_proxy, s.source) == (
        "http://p:3128",
        None,
        ("a.org", "b.org"),
        "environment",
    )
    profile = proxy_settings({"http": "http://site:3128", "no_proxy": ["x"]})
    assert (profile.https, profile.source) == ("http://site:3128", "profile")


def test_proxy_url_parsing():
    p = parse_proxy_url("http://alice:pw@proxy.alcf.anl.gov:3128")
    assert (p.host, p.port, p.username, p.password) == ("proxy.alcf.anl.gov", 3128, "alice", "pw")
    assert parse_proxy_url("proxy.example").port == 1080
    with pytest.raises(ConfigError, match=r"proxy: socks5://u:\*\*\*@h:1 is not"):
        parse_proxy_url("socks5://u:secret@h:1")


@pytest.mark.parametrize("url", ["ftp://x:1", "https://", "tcp://host", "https://h:99999"])
def test_bad_targets(url):
    with pytest.raises(ConfigError, match=r"^--target: "):
        parse_target(url)


# ------------------------------------------------------------------ direct probes
def test_tls_with_trusted_ca_passes(ca, ca_file):
    with tls_server(ca.issue_cert("localhost", "127.0.0.1")) as port:
        r = probe(parse_target(f"https://localhost:{port}"), DIRECT, 10, ca_file)
    assert r.status == "pass", r
    assert r.reason.startswith("TLSv1") and r.via == "direct"


def test_unknown_ca_fails_tls(ca, tmp_path):
    other = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with tls_server(ca.issue_cert("localhost")) as port:
        r = probe(parse_target(f"https://localhost:{port}"), DIRECT, 10, str(other))
    assert (r.status, r.step) == ("fail", "tls")
    assert "certificate not accepted" in r.reason and "SSL_CERT_FILE" in r.hint


def test_wrong_hostname_fails_tls(ca, ca_file):
    with tls_server(ca.issue_cert("wrong.example")) as port:
        r = probe(parse_target(f"https://localhost:{port}"), DIRECT, 10, ca_file)
    assert (r.status, r.step) == ("fail", "tls")
    assert "Hostname mismatch" in r.reason or "hostname" in r.reason.lower()


def test_refused_port_fails_at_tcp_without_waiting_for_the_timeout():
    port = refusing_port()
    r = probe(parse_target(f"tcp://127.0.0.1:{port}"), DIRECT, 30)
    assert (r.status, r.step) == ("fail", "tcp")
    assert "refused" in r.reason.lower()
    assert r.seconds < 15  # refused at once, far from the 30 s deadline
    assert "proxy" in r.hint


def test_silent_port_fails_tls_at_the_deadline():
    with blackhole() as port:
        r = probe(parse_target(f"https://127.0.0.1:{port}"), DIRECT, 0.5)
    assert (r.status, r.step) == ("fail", "tls")
    assert "never speaks" in r.reason


def test_unresolvable_name_fails_at_dns():
    r = probe(parse_target("https://no-such-host.invalid:443"), DIRECT, 5)
    assert (r.status, r.step) == ("fail", "dns"), r


# ------------------------------------------------------------------ through a real proxy
def test_connect_through_tinyproxy(ca, ca_file, proxy_factory):
    with (
        tls_server(ca.issue_cert("localhost", "127.0.0.1")) as port,
        proxy_factory([port]) as pport,
    ):
        settings = ProxySettings(None, f"http://127.0.0.1:{pport}", (), "profile")
        r = probe(parse_target(f"https://localhost:{port}"), settings, 10, ca_file)
    assert r.status == "pass", r
    assert r.via == f"http://127.0.0.1:{pport}"


def test_proxy_refusing_connect_is_reported(ca, ca_file, proxy_factory):
    with tls_server(ca.issue_cert("localhost")) as port, proxy_factory([port + 1]) as pport:
        settings = ProxySettings(None, f"http://127.0.0.1:{pport}", (), "profile")
        r = probe(parse_target(f"https://localhost:{port}"), settings, 10, ca_file)
    assert (r.status, r.step) == ("fail", "proxy")
    assert "403" in r.reason and "ask the site" in r.hint


def test_no_proxy_bypasses_the_proxy(ca, ca_file, proxy_factory):
    with tls_server(ca.issue_cert("localhost")) as port, proxy_factory([]) as pport:
        settings = ProxySettings(None, f"http://127.0.0.1:{pport}", ("localhost",), "profile")
        r = probe(parse_target(f"https://localhost:{port}"), settings, 10, ca_file)
    assert r.status == "pass" and r.via == "direct"


def test_unreachable_proxy_is_the_proxy_step():
    settings = ProxySettings(None, f"http://127.0.0.1:{refusing_port()}", (), "profile")
    r = probe(parse_target("https://example.org:443"), settings, 5)
    assert (r.status, r.step) == ("fail", "proxy")
    assert "cannot reach proxy" in r.reason


def _profile_file(tmp_path, proxy_url, targets):
    text = (
        "name: t\nscheduler: local\nlauncher: none\nendpoint: {name: t}\n"
        "node: {cores: 1, gpus: 0}\n"
        f"proxy: {{http: '{proxy_url}', https: '{proxy_url}'}}\n"
        f"check: {{targets: {json.dumps(targets)}}}\n"
    )
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return path


def test_cli_masks_proxy_password_and_sets_exit_codes(
    ca, ca_file, proxy_factory, tmp_path, run_cli
):
    with (
        tls_server(ca.issue_cert("localhost")) as port,
        proxy_factory([port], ("alice", "hunter2")) as pport,
    ):
        good = _profile_file(
            tmp_path, f"http://alice:hunter2@127.0.0.1:{pport}", [f"https://localhost:{port}"]
        )
        r = run_cli(
            "check", "--site", str(good), "--only", "network", "--ca-file", ca_file, "--json"
        )
        assert r.returncode == 0, r.stdout + r.stderr
        report = json.loads(r.stdout)
        assert report["ok"] and report["results"][0]["via"] == f"http://alice:***@127.0.0.1:{pport}"
        bad = _profile_file(
            tmp_path, f"http://alice:wrong@127.0.0.1:{pport}", [f"https://localhost:{port}"]
        )
        for fmt in ([], ["--json"]):
            r = run_cli(
                "check",
                "--site",
                str(bad),
                "--only",
                "network",
                "--ca-file",
                ca_file,
                *fmt,
                env={"COLUMNS": "250"},
            )
            assert r.returncode == 1
            assert "hunter2" not in r.stdout + r.stderr and "wrong" not in r.stdout + r.stderr
            # tinyproxy answers a bad password with 401 (most proxies say 407)
            assert "401 Unauthorized" in r.stdout
    log = (tmp_path / "tinyproxy.log").read_text()
    assert "CONNECT" in log  # the real proxy saw the tunnels


def test_cli_bad_target_is_usage_error(run_cli):
    r = run_cli("check", "--target", "ftp://x:1")
    assert r.returncode == 2 and r.stderr.startswith("site-agent: error: --target: ftp://x:1")


def test_probes_run_concurrently():
    """Five silent targets with a 1 s timeout: each reports its own timeout."""
    with blackhole() as port:
        profile = parse_profile(
            "name: t\nscheduler: local\nlauncher: none\nendpoint: {name: t}\nnode: {cores: 1, gpus: 0}\n"
            f"check: {{targets: {json.dumps([f'https://127.0.0.{i}:{port}' for i in (1,)])}}}\n",
            "t.yaml",
        )
        extra = [
            f"tcp://127.0.0.1:{port}",
            f"https://127.0.0.1:{port}/a",
            f"https://localhost:{port}",
        ]
        report = run_checks(profile, extra, timeout=1.0, local=False)
    assert len(report.results) == 4
    assert sum(r.step == "tls" for r in report.results) == 3


# ------------------------------------------------------------------ local checks
def test_scheduler_check_on_real_slurm(slurm, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    r = check_scheduler(load_profile("frontier"), 10)
    assert r.status == "pass", r
    assert "sinfo answered" in r.reason


def test_scheduler_check_on_pbs_standin(monkeypatch):
    monkeypatch.setenv("PATH", f"{PBS_STANDINS}:{os.environ['PATH']}")
    assert check_scheduler(load_profile("polaris"), 10).status == "pass"


def test_scheduler_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    r = check_scheduler(load_profile("polaris"), 10)
    assert r.status == "fail" and "qstat not found" in r.reason


def test_container_check_finds_apptainer(monkeypatch, tmp_path):
    fake = tmp_path / "apptainer"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] || exit 2\necho 'apptainer version 1.3.4'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    r = check_container(load_profile("polaris"), 5)
    assert r.status == "pass" and "1.3.4" in r.reason
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    r = check_container(load_profile("polaris"), 5)
    assert r.status == "fail" and "module load apptainer" in r.hint


def test_disk_check(tmp_path):
    assert check_disk(tmp_path / "not" / "yet", 0.001, "x").status == "pass"
    r = check_disk(tmp_path, 10**9, "x")
    assert r.status == "fail" and "need 1e+09" in r.reason


def test_cvmfs_check_fails_without_cvmfsexec_and_says_what_to_run(monkeypatch, tmp_path):
    """Polaris mounts CVMFS with cvmfsexec: /dev/fuse and namespaces are not enough."""
    from siteagent.checks.local import check_cvmfs

    monkeypatch.setenv("SITE_AGENT_CVMFSEXEC_DIR", str(tmp_path / "cvmfsexec"))
    r = check_cvmfs(load_profile("polaris"), 5)
    assert r.status == "fail"
    assert r.reason.startswith(f"cvmfsexec cannot run: no cvmfsexec in {tmp_path}/cvmfsexec")
    assert r.hint == (
        "site-agent install --site polaris --cvmfsexec, or run: git clone --depth 1 "
        f"https://github.com/cvmfs/cvmfsexec.git {tmp_path}/cvmfsexec && "
        f"{tmp_path}/cvmfsexec/makedist default"
    )
    (tmp_path / "cvmfsexec").mkdir()
    exe = tmp_path / "cvmfsexec" / "cvmfsexec"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    r = check_cvmfs(load_profile("polaris"), 5)
    assert "no cvmfsexec" not in r.reason


def test_aurora_login_node_is_checked_without_the_compute_proxy(monkeypatch):
    """Aurora's proxy works only on compute nodes: `check` probes as the login node goes
    (direct, or the environment's proxy), `--scope compute` as a compute node would."""
    from siteagent.checks.runner import proxies_for

    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    aurora = load_profile("aurora")
    login = proxies_for(aurora, "login")
    assert (login.https, login.source) == (None, "none; the profile's proxy is for compute nodes")
    compute = proxies_for(aurora, "compute")
    assert (compute.https, compute.source) == ("http://proxy.alcf.anl.gov:3128", "profile")
    # a site whose login nodes use the proxy too: the same either way
    assert proxies_for(load_profile("polaris"), "login").source == "profile"


def test_check_scope_on_the_cli(run_cli):
    r = run_cli("check", "--site", "aurora", "--only", "network", "--timeout", "0.2", "--json")
    assert json.loads(r.stdout)["proxy_source"].endswith("the profile's proxy is for compute nodes")
    r = run_cli(
        "check", "--site", "aurora", "--only", "network", "--timeout", "0.2", "--json",
        "--scope", "compute",
    )  # fmt: skip
    report = json.loads(r.stdout)
    assert report["proxy_source"] == "profile"
    proxied = {x["via"] for x in report["results"] if x["target"].startswith("http")}
    assert proxied == {"http://proxy.alcf.anl.gov:3128"}  # amqps goes direct, as it does
