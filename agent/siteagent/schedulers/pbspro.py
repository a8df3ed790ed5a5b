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
        return {"select_options": _select_options(profile.directives.select)}

    def directives(self, profile: Profile, request: dict[str, Any], job_name: str) -> list[str]:
        r, directives = request, profile.directives
        select = f"select={r['nodes']}{_select_options(directives.select)}"
        lines = [f"-N {job_name}", f"-l {select}", f"-l walltime={r['walltime']}"]
        optional = (
            ("-l place=", directives.place),
            ("-l filesystems=", r.get("filesystems")),
            ("-A ", r.get("account")),
            ("-q ", r.get("queue")),
        )
        lines += [f"{flag}{value}" for flag, value in optional if value]
        return [*lines, *directives.extra]


def _select_options(select: str | None) -> str:
    """What follows ``select=N`` in the resource request: ``:`` and directives.select."""
    return f":{select}" if select else ""
