"""``site-agent smoke-test`` on a batch site: check this login node, then run a Python function
and a shell command through the installed endpoint with the Globus Compute SDK's Executor.

The preconditions (endpoint installed, user logged in to Globus, endpoint registered) are
checked first without starting any login flow, and each fails with one line saying what to run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siteagent.errors import SiteAgentError
from siteagent.names import Var
from siteagent.profiles import Profile
from siteagent.smoke.steps import SmokeReport, SmokeTest, Step
from siteagent.smoke.tasks import python_task

if TYPE_CHECKING:
    from siteagent.checks.model import CheckResult

ENDPOINT_INFO = "endpoint.json"  # written by globus-compute-endpoint when it registers


class NotReadyError(SiteAgentError):
    """A precondition of the site smoke test is missing; the message says how to fix it."""


def logged_in() -> bool:
    """True when the SDK holds usable tokens, or a client identity is configured.

    Asks the same GlobusApp `globus-compute-endpoint login` uses, but never starts a login flow,
    and does not create the token database where there is none.
    """
    from globus_compute_sdk.sdk.auth.client_login import get_client_creds

    client_id, client_secret = get_client_creds()
    if client_id and client_secret:
        return True  # a client identity logs in by itself, without a browser
    return _tokens_usable()


def _tokens_usable() -> bool:
    """The SDK's token database exists and holds tokens that need no new login."""
    from globus_compute_sdk.sdk.compute_dir import get_compute_dir

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
    name = profile.endpoint.name
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


class SiteSmokeTest(SmokeTest):
    """The steps against the installed endpoint ``ep_id`` (in ``directory``) for one user
    endpoint config."""

    def __init__(
        self,
        profile: Profile,
        directory: Path,
        ep_id: str,
        config: dict[str, Any],
        timeout: float,
        on_step: Callable[[Step], None] | None,
        backend_factory: Callable[[str], Any] | None,
    ):
        super().__init__(SmokeReport(site=profile.name, workdir=str(directory)), on_step)
        self.profile, self.ep_id, self.config, self.timeout = profile, ep_id, config, timeout
        self.backend_factory = backend_factory
        self.backend: Any = None
        self.executor: Any = None

    def run(self) -> SmokeReport:
        try:
            self.steps(
                [
                    ("check", self.check),
                    ("connect", self.connect),
                    ("python function", self.python_function),
                    ("shell command", self.shell_command),
                ]
            )
        finally:
            if self.backend is not None:
                backend, self.backend = self.backend, None
                backend.shutdown()
        return self.report

    def check(self) -> str:
        from siteagent.checks.runner import run_checks

        result = run_checks(self.profile)
        _refuse_failed(result.results)
        warned = sum(r.status == "warn" for r in result.results)
        return f"{len(result.results)} checks, {warned} warnings"

    def connect(self) -> str:
        from siteagent.harvester.backends import GlobusBackend

        make = self.backend_factory or (lambda ep: GlobusBackend(ep, batch_size=8))
        self.backend = make(self.ep_id)
        self.executor = self.backend.executor(self.config)
        config = json.dumps(self.config, sort_keys=True)
        return f"endpoint {self.ep_id}, user_endpoint_config {config}"

    def python_function(self) -> str:
        return python_task(self.executor, self.profile.name, self.timeout)

    def shell_command(self) -> str:
        from globus_compute_sdk import ShellFunction

        nodes, per_node = self.config["nodes"], self.config["ranks_per_node"]
        cmd = (
            f'"${Var.EXEC}" --nodes {nodes} --ranks-per-node {per_node} -- bash -c '
            f"'echo rank=${Var.RANK} site=${Var.SITE} host=$(hostname)'"
        )
        fn = ShellFunction(cmd, walltime=self.timeout)
        res = self.executor.submit(fn).result(timeout=self.timeout)
        if res.returncode != 0 or not _every_rank(res.stdout, nodes * per_node, self.profile.name):
            raise SiteAgentError(f"shell task: returncode {res.returncode}, stdout {res.stdout!r}")
        return f"site-agent-exec ran {nodes * per_node} ranks on the compute node(s)"


def _refuse_failed(results: list[CheckResult]) -> None:
    """SiteAgentError naming the checks that failed: the smoke test stops there."""
    failed = [r for r in results if r.failed]
    if failed:
        names = ", ".join(f"{r.name} {r.target}".strip() for r in failed)
        raise SiteAgentError(f"site-agent check failed: {names} (run `site-agent check`)")


def _every_rank(stdout: str, ranks: int, site: str) -> bool:
    """Each of ``ranks`` ranks printed its line, with the site's name."""
    want = {f"rank={r}" for r in range(ranks)}
    return _ranks_seen(stdout) == want and f"site={site}" in stdout


def _ranks_seen(stdout: str) -> set[str]:
    """The ``rank=N`` words that start lines of ``stdout``."""
    return {line.split()[0] for line in stdout.splitlines() if line.startswith("rank=")}


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
    return SiteSmokeTest(profile, directory, ep_id, config, timeout, on_step, backend_factory).run()
