"""Run every check of a profile concurrently and collect the results in a stable order."""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from siteagent.checks.model import FAIL, CheckResult
from siteagent.profiles import Profile
from siteagent.sections import CheckSection

if TYPE_CHECKING:
    from siteagent.checks.proxy import ProxySettings


@dataclass
class CheckReport:
    site: str
    proxy_source: str
    results: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(r.failed for r in self.results)

    def to_dict(self) -> dict:
        return {
            "site": self.site,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "proxy_source": self.proxy_source,
            "results": [r.to_dict() for r in self.results],
        }


def endpoint_dir(profile: Profile) -> Path:
    base = os.environ.get("GLOBUS_COMPUTE_USER_DIR") or str(Path.home() / ".globus_compute")
    return Path(profile.endpoint.dir or Path(base) / profile.endpoint.name)


Job = tuple[str, Callable[[], CheckResult]]  # (target label, or "" for a local check)


DEFAULT_TARGETS = CheckSection().targets


def run_checks(
    profile: Profile,
    extra_targets: list[str] | tuple[str, ...] = (),
    timeout: float = 5.0,
    ca_file: str | None = None,
    network: bool = True,
    local: bool = True,
    scope: str = "login",
) -> CheckReport:
    """All checks at once in threads; the whole run takes about the slowest one. ``scope``
    says whose connections are probed: this login node's (a proxy the profile scopes to
    compute nodes is not used, as site-agent does not use it here) or a compute node's."""
    proxies = proxies_for(profile, scope)
    jobs: list[Job] = []
    if network:
        jobs += _network_jobs(profile, proxies, extra_targets, timeout, ca_file)
    if local:
        jobs += _local_jobs(profile, timeout)
    report = CheckReport(site=profile.name, proxy_source=proxies.source)
    t0 = time.monotonic()
    report.results = _run_all(jobs, grace=timeout + 1.0)
    report.seconds = time.monotonic() - t0
    return report


def _network_jobs(
    profile: Profile,
    proxies: ProxySettings,
    extra_targets: list[str] | tuple[str, ...],
    timeout: float,
    ca_file: str | None,
) -> list[Job]:
    """A probe of each target (the profile's and ``extra_targets``), and of the PanDA
    server when the profile names a queue."""
    from siteagent.checks.network import parse_target, probe

    urls = list(dict.fromkeys([*_targets(profile), *extra_targets]))
    targets = [parse_target(u) for u in urls]  # bad --target: ConfigError before any probe
    jobs: list[Job] = [(t.label, partial(probe, t, proxies, timeout, ca_file)) for t in targets]
    if profile.pilot.panda_queue:  # the pilot's own questions to its PanDA server
        from siteagent.checks.panda import probe_panda

        jobs.append(("panda", partial(probe_panda, profile.pilot, timeout, ca_file)))
    return jobs


def _targets(profile: Profile) -> list[str]:
    """The profile's check targets; left at the default, with the PanDA servers of the
    profile's own instance (CERN, BNL) in place of CERN's."""
    from siteagent.pilot.instances import INSTANCES, check_targets

    if profile.check.targets != DEFAULT_TARGETS:
        return list(profile.check.targets)
    cern = INSTANCES["cern"].check_targets
    return [u for u in DEFAULT_TARGETS if u not in cern] + list(check_targets(profile.pilot))


def proxies_for(profile: Profile, scope: str):
    """The proxy a process of ``scope`` (login | compute) uses at this site: the profile's,
    unless it is for compute nodes only and this is the login node (then the environment's,
    if any: Aurora's login nodes have none and need none)."""
    from dataclasses import replace

    from siteagent.checks.proxy import proxy_settings

    if scope not in ("login", "compute"):
        raise ValueError(f"scope: {scope!r}")
    if scope == "login" and profile.proxy.scope == "compute":
        found = proxy_settings(None)
        return replace(found, source=f"{found.source}; the profile's proxy is for compute nodes")
    return proxy_settings(profile.proxy)


def _local_jobs(profile: Profile, timeout: float) -> list[Job]:
    from siteagent.checks import local as lc

    min_gb = profile.check.min_free_gb
    jobs: list[Job] = [
        ("", lambda: lc.check_scheduler(profile, timeout)),
        ("", lambda: lc.check_gpus(profile)),
        ("", lambda: lc.check_container(profile, timeout)),
        ("", lambda: lc.check_cvmfs(profile, timeout)),
        ("", lambda: lc.check_credentials(profile)),
        ("", lc.check_python),
        ("", lambda: lc.check_disk(endpoint_dir(profile), min_gb, "endpoint")),
    ]
    jobs += [
        ("", partial(lc.check_disk, Path(d), min_gb, f"scratch {d}", must_exist=True))
        for d in profile.check.scratch_dirs
    ]
    return jobs


def _run_all(jobs: list[Job], grace: float) -> list[CheckResult]:
    """Each job's result in order; a job still running after ``grace`` seconds is reported
    as timed out, not waited for (a probe stuck in a resolver past its deadline)."""
    t0 = time.monotonic()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(len(jobs), 1))
    futures = [(label, pool.submit(job)) for label, job in jobs]
    results = []
    for label, job_future in futures:
        left = max(grace - (time.monotonic() - t0), 0.01)
        try:
            results.append(job_future.result(timeout=left))
        except concurrent.futures.TimeoutError:
            results.append(_timed_out(label, grace))
    pool.shutdown(wait=False, cancel_futures=True)
    return results


def _timed_out(label: str, grace: float) -> CheckResult:
    """The result of a job (a probe of ``label``, or a local check) still running at ``grace``."""
    return CheckResult(
        name="connectivity" if label else "local",
        status=FAIL,
        seconds=grace,
        reason="timed out (the name resolver or a command did not return)",
        hint="check the DNS resolver",
        target=label,
        step="dns" if label else "",
    )
