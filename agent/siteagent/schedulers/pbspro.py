"""PBS Professional (Polaris, Aurora): ``#PBS`` directives, ``PBSProProvider``."""

from __future__ import annotations

from siteagent.schedulers.base import Scheduler

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from typing import Any

    from siteagent.profiles import Profile


class PbsPro(Scheduler):
    name = "pbspro"
    fields = ("account", "queue", "filesystems")
    field_patterns = {"filesystems": "^[a-z0-9_]+(:[a-z0-9_]+)*$"}  # home:eagle:grand
    launchers = frozenset({"mpiexec", "none"})
    directive_prefix = "#PBS"
    # stdout and stderr written (d)irectly to their final files while the job runs, not at its end
    closing_directives = ("-k doe",)
    job_id_var = "PBS_JOBID"
    cancel_command = "qdel"
    probe_command = ("qstat", "-B")
    provider_template = "pbspro_provider.j2.in"

    def template_context(self, profile: Profile) -> dict[str, Any]:
        select = profile.directives.select
        return {"select_options": f":{select}" if select else ""}

    def directives(self, profile: Profile, request: dict[str, Any], job_name: str) -> list[str]:
        r, directives = request, profile.directives
        select = f"select={r['nodes']}"
        if directives.select:
            select += f":{directives.select}"
        lines = [f"-N {job_name}", f"-l {select}", f"-l walltime={r['walltime']}"]
        if directives.place:
            lines.append(f"-l place={directives.place}")
        if r.get("filesystems"):
            lines.append(f"-l filesystems={r['filesystems']}")
        if r.get("account"):
            lines.append(f"-A {r['account']}")
        if r.get("queue"):
            lines.append(f"-q {r['queue']}")
        return [*lines, *directives.extra]
