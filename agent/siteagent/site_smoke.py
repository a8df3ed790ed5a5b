"""``site-agent smoke-test`` on a batch site: check this login node, then run a Python function
and a shell command through the installed endpoint with the Globus Compute SDK's Executor.

The preconditions (endpoint installed, user logged in to Globus, endpoint registered) are
checked first without starting any login flow, and each fails with one line saying what to run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from siteagent.errors import SiteAgentError
from siteagent.profiles import Profile
from siteagent.smoke import SmokeReport, Step, _Steps, probe

ENDPOINT_INFO = "endpoint.json"  # written by globus-compute-endpoint when it registers


class NotReadyError(SiteAgentError):
    """A precondition of the site smoke test is missing; the message says how to fix it."""


def logged_in() -> bool:
    """True when the SDK holds usable tokens, or a client identity is configured.

    Asks the same GlobusApp `globus-compute-endpoint login` uses, but never starts a login flow,
    and does not create the token database where there is none.
    """
    from globus_compute_sdk.sdk.auth.client_login import get_client_creds
    from globus_compute_sdk.sdk.compute_dir import get_compute_dir

    client_id, client_secret = get_client_creds()
    if client_id and client_secret:
        return True  # a client identity logs in by itself, without a browser
    if not (get_compute_dir() / "storage.db").is_file():
        return False
    from globus_compute_endpoint.auth import get_globus_app_with_scopes

    try:
        return not get_globus_app_with_scopes().login_required()
    except Exception as err:  # ClickException / ValueError on half-set client credentials
        raise NotReadyError(f"Globus login state unreadable: {err}") from None


def endpoint_id(directory: Path) -> str | None:
    try:
        value = json.loads((directory / ENDPOINT_INFO).read_text()).get("endpoint_id")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def preflight(profile: Profile, directory: Path) -> str:
    """The endpoint id to submit to, or NotReadyError naming the one command to run."""
    name = profile.section("endpoint")["name"]
    if not (directory / "config.yaml").is_file():
        raise NotReadyError(
            f"endpoint '{name}' is not installed in {directory}: run "
            f"`site-agent install --site {profile.name}` first"
        )
    if not logged_in():
        raise NotReadyError(
            "not logged in to Globus: run `globus-compute-endpoint login` on this login node "
            "(or set GLOBUS_COMPUTE_CLIENT_ID and GLOBUS_COMPUTE_CLIENT_SECRET), then retry"
        )
    ep_id = endpoint_id(directory)
    if not ep_id:
        raise NotReadyError(
            f"endpoint '{name}' has no id yet ({directory / ENDPOINT_INFO} missing): run "
            f"`globus-compute-endpoint start {directory.name}` once to register it"
        )
    return ep_id


def run_site_smoke_test(
    profile: Profile,
    directory: Path,
    user_config: dict[str, Any] | None = None,
    timeout: float = 1800.0,
    on_step: Callable[[Step], None] | None = None,
    backend_factory: Callable[[str], Any] | None = None,
) -> SmokeReport:
    """Check, then submit a Python function and a shell command to the installed endpoint.

    Tasks go the way Harvester's plugins send them: through a ``GlobusBackend`` (the SDK's
    Executor against the Globus service), or what ``backend_factory(endpoint_id)`` returns
    (tests: a GlobusBackend over stand-ins for the SDK's Executor and Client).
    """
    from siteagent.userconfig import canonicalize

    config = canonicalize(profile, user_config or {})  # bad input: ConfigError before anything
    ep_id = preflight(profile, directory)
    report = SmokeReport(site=profile.name, workdir=str(directory))
    steps = _Steps(report, on_step)
    state: dict[str, Any] = {}

    def check() -> str:
        from siteagent.checks.runner import run_checks

        result = run_checks(profile)
        failed = [r for r in result.results if r.failed]
        if failed:
            names = ", ".join(f"{r.name} {r.target}".strip() for r in failed)
            raise SiteAgentError(f"site-agent check failed: {names} (run `site-agent check`)")
        warned = sum(r.status == "warn" for r in result.results)
        return f"{len(result.results)} checks, {warned} warnings"

    def connect() -> str:
        from siteagent.harvester.backends import GlobusBackend

        make = backend_factory or (lambda ep: GlobusBackend(ep, batch_size=8))
        state["backend"] = make(ep_id)
        state["executor"] = state["backend"].executor(config)
        return f"endpoint {ep_id}, user_endpoint_config {json.dumps(config, sort_keys=True)}"

    def python_task() -> str:
        n = 1000
        got = state["executor"].submit(probe, n).result(timeout=timeout)
        if got["sum_of_squares"] != sum(i * i for i in range(n)) or got["site"] != profile.name:
            raise SiteAgentError(f"wrong result from worker: {got}")
        return f"probe({n}) on {got['host']} pid {got['pid']} python {got['python']}"

    def shell_task() -> str:
        from globus_compute_sdk import ShellFunction

        ranks = config["ranks_per_node"] * config["nodes"]
        cmd = (
            f'"$SITE_AGENT_EXEC" --nodes {config["nodes"]} '
            f"--ranks-per-node {config['ranks_per_node']} -- bash -c "
            "'echo rank=$SITE_AGENT_RANK site=$SITE_AGENT_SITE host=$(hostname)'"
        )
        res = state["executor"].submit(ShellFunction(cmd, walltime=timeout)).result(timeout=timeout)
        seen = {line.split()[0] for line in res.stdout.splitlines() if line.startswith("rank=")}
        want = {f"rank={r}" for r in range(ranks)}
        if res.returncode != 0 or seen != want or f"site={profile.name}" not in res.stdout:
            raise SiteAgentError(f"shell task: returncode {res.returncode}, stdout {res.stdout!r}")
        return f"site-agent-exec ran {ranks} ranks on the compute node(s)"

    try:
        if steps.run("check", check) and steps.run("connect", connect):
            steps.run("python function", python_task) and steps.run("shell command", shell_task)
    finally:
        if "backend" in state:
            state.pop("backend").shutdown()
    return report
