"""``site-agent smoke-test`` on a local-scheduler profile: render the endpoint, render a user
endpoint, start the real Globus Compute engine with the provider it rendered, and run work
through it."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from siteagent.errors import SiteAgentError
from siteagent.names import Var
from siteagent.smoke.steps import SmokeReport, SmokeTest, Step
from siteagent.smoke.tasks import python_task


class LocalSmokeTest(SmokeTest):
    """The steps against an engine in this process; files under ``base``."""

    def __init__(
        self,
        site: str,
        user_config: dict[str, Any],
        base: Path,
        timeout: float,
        on_step: Callable[[Step], None] | None,
    ):
        super().__init__(SmokeReport(site=site, workdir=str(base)), on_step)
        self.site, self.user_config, self.base, self.timeout = site, user_config, base, timeout
        self.profile: Any = None
        self.config: Any = None  # the loaded user endpoint config (holds the engine)
        self.executor: Any = None
        self.round: Any = None  # the Harvester round, started early with --harvester
        self.canonical: dict[str, Any] = {}  # the user endpoint config, canonical

    def run(self, harvester: bool) -> SmokeReport:
        try:
            if self._prepare(harvester) and self.step("start engine", self.start):
                self._run_tasks(harvester)
        finally:
            self._close()
        return self.report

    def _prepare(self, harvester: bool) -> bool:
        """Render the endpoint and the user endpoint; whether both steps passed."""
        if not self.step("render endpoint", self.render):
            return False
        if harvester:  # its engines start while this one does and runs its tasks
            self.start_harvester_round()
        return self.step("render user endpoint", self.user_endpoint)

    def _run_tasks(self, harvester: bool) -> None:
        """The engine's tasks, then (if asked for and they passed) the Harvester workers."""
        if self.round is not None:  # its workers' config is this one: same engine
            self.round.share(self.canonical, self.executor)
        ok = self.step("python function", self.python_function) and self.step(
            "shell command", self.shell_command
        )
        if ok and harvester:
            self.step("harvester workers", self.harvester_workers)

    def _close(self) -> None:
        """Close what a failure left open: the Harvester round, the engine."""
        if self.round is not None:  # the harvester step did not run (an earlier failure)
            self.round.close()
        if self.executor is not None:
            self.step("stop engine", self.stop)
        elif self.config is not None:
            self.config.engine.shutdown()

    def render(self) -> str:
        from siteagent.endpoint.render import render_endpoint, write_endpoint
        from siteagent.profiles import load_profile

        self.profile = profile = load_profile(self.site)
        if profile.scheduler != "local":
            raise SiteAgentError(
                f"smoke-test runs the engine in-process only for local-scheduler profiles; "
                f"'{profile.name}' uses {profile.scheduler} (use `site-agent endpoint validate`)"
            )
        ep_dir = self.base / "endpoint"
        written = write_endpoint(render_endpoint(profile, ep_dir), ep_dir, force=True)
        return f"{len(written.written) + len(written.unchanged)} files in {ep_dir}"

    def user_endpoint(self) -> str:
        from siteagent.endpoint.validate import validate_endpoint
        from siteagent.userconfig import canonicalize

        config = self.canonical = canonicalize(self.profile, self.user_config)
        result = validate_endpoint(self.base / "endpoint", config)
        self.config = result.config
        return f"{result.engine_type} with {result.provider_type}, config {json.dumps(config)}"

    def start(self) -> str:
        from siteagent.endpoint.engine import EngineExecutor

        self.executor = EngineExecutor(self.config.engine, self.base / "run")
        return f"engine started, run dir {self.base / 'run'}"

    def python_function(self) -> str:
        return python_task(self.executor, self.profile.name, self.timeout)

    def shell_command(self) -> str:
        from globus_compute_sdk import ShellFunction

        # the launch path of every pilot: execution wrapper (2 ranks on this node), then the
        # pilot wrapper per rank around a small payload, each rank leaving its JSON report
        reports = self.base / "state"
        cmd = (
            f"{Var.STATE}={reports} {Var.WORKER_ID}=smoke "
            f'"${Var.EXEC}" --ranks-per-node 2 -- site-agent pilot --site "${Var.SITE}" '
            f"-- bash -c 'echo rank=${Var.RANK}/2 site=${Var.SITE}; exit 3'"
        )
        fn = ShellFunction(cmd, walltime=self.timeout)
        res = self.executor.submit(fn).result(timeout=self.timeout)
        site = self.profile.name
        want = {f"rank={r}/2 site={site}" for r in range(2)}
        got = set(res.stdout.split("\n"))
        if res.returncode != 3 or not want <= got:
            raise SiteAgentError(f"shell task: returncode {res.returncode}, stdout {res.stdout!r}")
        _check_reports(reports / "pilots", ranks=2)
        return (
            "site-agent-exec ran 2 ranks through the pilot wrapper, and each passed on its "
            f"payload's exit code {res.returncode} as it should; reports in {reports / 'pilots'}"
        )

    def start_harvester_round(self) -> None:
        from siteagent.smoke.harvester import HarvesterRound
        from siteagent.userconfig import canonicalize, walltime_seconds

        # workers of this test's own shape: their user endpoint config is this test's, so
        # they run on its engine, as equal configs share a user endpoint
        config = canonicalize(self.profile, self.user_config)
        shape = (config["cores_per_rank"], walltime_seconds(config["walltime"]))
        self.round = HarvesterRound(self.site, self.base, self.timeout, shape)
        self.round.start(running=config)

    def harvester_workers(self) -> str:
        round_, self.round = self.round, None
        return round_.run()

    def stop(self) -> str:
        executor, self.executor = self.executor, None
        executor.shutdown()
        leftover = _wait_no_workers(self.base, 10.0)
        if leftover:
            raise SiteAgentError(f"worker processes left behind: {leftover}")
        return "engine stopped, no worker processes left"


def _check_reports(pilots: Path, ranks: int) -> None:
    """Each rank's pilot wrapper reported the payload's failure (exit 3)."""
    from siteagent.pilot.report import read_report

    for rank in range(ranks):
        path = pilots / f"smoke-r{rank}.json"
        found = read_report(path) if path.exists() else {}
        if (found.get("reason"), found.get("exit_code")) != ("failed", 3):
            raise SiteAgentError(f"pilot wrapper report of rank {rank}: {found}")


def run_smoke_test(
    site: str = "local",
    user_config: dict[str, Any] | None = None,
    workdir: Path | None = None,
    keep: bool = False,
    timeout: float = 60.0,
    on_step: Callable[[Step], None] | None = None,
    harvester: bool = False,
) -> SmokeReport:
    """Run the local end-to-end path and return what happened, step by step."""
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="site-agent-smoke-"))
    test = LocalSmokeTest(site, user_config or {}, base, timeout, on_step)
    try:
        return test.run(harvester)
    finally:
        if not keep and workdir is None and test.report.ok:
            shutil.rmtree(base, ignore_errors=True)


def _wait_no_workers(run_root: Path, seconds: float) -> list[int]:
    """PIDs of worker pools started for ``run_root`` that are still alive after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        alive = _worker_pools(str(run_root))
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _worker_pools(marker: str) -> list[int]:
    """PIDs of the worker pools whose command line names ``marker``."""
    import psutil

    alive = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "process_worker_pool" in cmd and marker in cmd:
            alive.append(p.info["pid"])
    return alive
