"""`site-agent check`'s PanDA probe against the real PanDA server of the dev stack: each way a
pilot can fail to get work is named by its step (tcp, tls, certificate, queue, jobs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from siteagent.checks.panda import probe_panda

pytestmark = pytest.mark.panda


PILOT_KEYS = ("panda_queue", "server_url", "server_port", "resource_type")


def pilot_section(stack, **over):
    port = int(re.search(r":(\d+)/", stack.env["PANDA_URL_SSL"]).group(1))
    from siteagent.sections import PilotSection

    fields = {
        "panda_queue": stack.queue,
        "server_url": "https://127.0.0.1",
        "server_port": port,
        "resource_type": "SCORE_HIMEM",  # no test submits jobs of this type
    }
    return PilotSection(**(fields | over))


def pilot_env(stack, **over):
    """What pilot3 has under Harvester: its certificate, CA directory and configuration."""
    env = {k: stack.env[k] for k in ("X509_USER_PROXY", "X509_CERT_DIR", "HARVESTER_PILOT_CONFIG")}
    return {k: v for k, v in (env | over).items() if v is not None}


def test_jobs_waiting_for_the_resource_type_pass_through_the_cli(panda_stack, tmp_path):
    panda_id = panda_stack.submit("world", resource_type="MCORE")
    try:
        panda_stack.refresh_job_stats()
        profile = tmp_path / "site.yaml"
        p = pilot_section(panda_stack, resource_type="MCORE")
        profile.write_text(
            "name: pandacheck\nscheduler: local\nlauncher: none\nendpoint: {name: pandacheck}\n"
            "node: {cores: 2, gpus: 0}\nlimits: {max_nodes: 1}\ncheck: {targets: []}\n"
            f"pilot: {json.dumps({k: getattr(p, k) for k in PILOT_KEYS})}\n"
        )
        r = subprocess.run(
            [
                *(sys.executable, "-m", "siteagent", "check", "--site", str(profile)),
                *("--only", "network", "--json", "--timeout", "20"),
            ],
            env=os.environ | pilot_env(panda_stack),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        panda_stack.drop_job(panda_id)
    assert r.returncode == 0, r.stdout + r.stderr
    [result] = json.loads(r.stdout)["results"]
    assert (result["name"], result["status"], result["step"]) == ("panda", "pass", "jobs")
    dn = panda_stack.env["PANDA_DEVSTACK_USER_DN"]
    assert f"queue {panda_stack.queue} ACTIVE, DN {dn} accepted" in result["reason"]
    assert re.search(r"; [1-9]\d* job\(s\) waiting for MCORE$", result["reason"]), result
    assert result["target"].endswith(f" {panda_stack.queue}/MCORE")


def test_no_job_for_the_resource_type_is_a_warning(panda_stack):
    r = probe_panda(pilot_section(panda_stack), 20, environ=pilot_env(panda_stack))
    assert (r.status, r.step) == ("warn", "jobs"), r
    assert r.reason.endswith("no job waiting for SCORE_HIMEM")
    assert "without work" in r.hint


def test_unreachable_server(panda_stack):
    r = probe_panda(pilot_section(panda_stack, server_port=1), 5, environ=pilot_env(panda_stack))
    assert (r.status, r.step) == ("fail", "tcp"), r
    assert r.reason == "127.0.0.1:1: unreachable: Connection refused"


def test_server_certificate_not_trusted_without_the_ca_directory(panda_stack):
    env = pilot_env(panda_stack, X509_CERT_DIR=None) | {"SSL_CERT_FILE": os.devnull}
    r = probe_panda(pilot_section(panda_stack), 5, environ=env)
    assert (r.status, r.step) == ("fail", "tls"), r
    assert "server certificate not trusted" in r.reason
    assert "X509_CERT_DIR" in r.hint


def test_no_client_certificate(panda_stack):
    env = pilot_env(panda_stack, X509_USER_PROXY=None)
    r = probe_panda(pilot_section(panda_stack), 5, environ=env)
    assert (r.status, r.step) == ("fail", "certificate"), r
    assert r.reason == "X509_USER_PROXY is not set: pilot3 authenticates with it"


def test_certificate_of_a_dn_the_server_does_not_know(panda_stack, tmp_path):
    """A certificate from the stack's CA whose DN is not among the server's production DNs."""
    pki = panda_stack.state / "pki"
    key, csr, cert = tmp_path / "k.pem", tmp_path / "r.csr", tmp_path / "c.pem"
    dn = "/C=XX/O=site-agent/OU=devstack/CN=somebody else"
    for cmd in (
        [
            *("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", dn),
            *("-keyout", str(key), "-out", str(csr)),
        ],
        [
            *("openssl", "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.pem")),
            *("-CAkey", str(pki / "ca.key"), "-CAserial", str(tmp_path / "srl")),
            *("-CAcreateserial", "-days", "1", "-out", str(cert)),
        ],
    ):
        subprocess.run(cmd, check=True, capture_output=True)
    proxy = tmp_path / "proxy.pem"
    proxy.write_text(cert.read_text() + key.read_text())
    env = pilot_env(panda_stack, X509_USER_PROXY=str(proxy))
    r = probe_panda(pilot_section(panda_stack), 20, environ=env)
    assert (r.status, r.step) == ("fail", "certificate"), r
    assert r.reason == f"DN {dn} may not fetch production jobs on this server"


def test_offline_queue(panda_stack):
    p = pilot_section(panda_stack, panda_queue=panda_stack.offline_queue)
    r = probe_panda(p, 20, environ=pilot_env(panda_stack))
    assert (r.status, r.step) == ("fail", "queue"), r
    assert r.reason == (
        f"queue {panda_stack.offline_queue} is OFFLINE, not ACTIVE: pilots exit at start"
    )


def test_unknown_queue(panda_stack):
    p = pilot_section(panda_stack, panda_queue="NO_SUCH_QUEUE")
    r = probe_panda(p, 20, environ=pilot_env(panda_stack))
    assert (r.status, r.step) == ("fail", "queue"), r
    assert r.reason.startswith("queue NO_SUCH_QUEUE is unknown to the server (")
