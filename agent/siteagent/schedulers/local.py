"""No batch scheduler: workers run on this node (the ``local`` profile, and the control
endpoint everywhere). ``LocalProvider``, no walltime, no directives, ranks by the wrapper's fork."""

from __future__ import annotations

from siteagent.schedulers.base import Scheduler

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from typing import Any

    from siteagent.profiles import Profile


class Local(Scheduler):
    name = "local"
    launchers = frozenset({"none", "mpiexec"})
    provider_template = "local_provider.j2.in"
    parsl_launcher = "SingleNodeLauncher"
    has_walltime = False

    def canonicalize(self, config: dict[str, Any]) -> dict[str, Any]:
        # there is no batch system to charge or queue on
        return {k: v for k, v in config.items() if k not in ("account", "queue")}

    def launcher_of(self, profile: Profile) -> str:
        # one node and no job step: the wrapper forks its ranks, whatever the profile names
        return "none"

    def directives(self, profile: Profile, request: dict[str, Any], job_name: str) -> list[str]:
        return []

    def batch_header(self, profile: Profile, request: dict[str, Any], job_name: str) -> str:
        return "#!/bin/bash\n# local: no batch scheduler, no directives\n"
