"""Slurm (Perlmutter, Frontier): ``#SBATCH`` directives, ``SlurmProvider``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from siteagent.schedulers.base import Scheduler

if TYPE_CHECKING:
    from siteagent.profiles import Profile

# user_endpoint_config option -> sbatch flag
_FLAGS = (
    ("account", "account"),
    ("queue", "partition"),
    ("qos", "qos"),
    ("constraint", "constraint"),
    ("reservation", "reservation"),
)


class Slurm(Scheduler):
    name = "slurm"
    fields = ("account", "queue", "qos", "constraint", "reservation")
    # features combine with & | , (Perlmutter: gpu&hbm80g)
    field_patterns = {"constraint": "^[A-Za-z0-9_.,:&|-]{1,128}$"}
    launchers = frozenset({"srun", "none"})
    directive_prefix = "#SBATCH"
    # the batch shell gets SIGTERM 60 s before the walltime, so the pilot wrapper can report
    closing_directives = ("--signal=B:TERM@60",)
    job_id_var = "SLURM_JOB_ID"
    cancel_command = "scancel"
    probe_command = ("sinfo", "-h", "-o", "%P")
    provider_template = "slurm_provider.j2.in"

    def schema_properties(self, profile: Profile) -> dict[str, Any]:
        props: dict[str, Any] = {}
        if profile.node.memory_gb:
            props["mem_per_node_gb"] = {
                "type": "integer",
                "minimum": 1,
                "maximum": profile.node.memory_gb,
            }
        return props | super().schema_properties(profile)

    def directives(self, profile: Profile, request: dict[str, Any], job_name: str) -> list[str]:
        r = request
        lines = [
            f"--job-name={job_name}",
            f"--nodes={r['nodes']}",
            f"--ntasks-per-node={r['ranks_per_node']}",
            f"--cpus-per-task={r['cores_per_rank']}",
            f"--time={r['walltime']}",
        ]
        lines += [f"--{flag}={r[key]}" for key, flag in _FLAGS if r.get(key)]
        if r.get("mem_per_node_gb"):
            lines.append(f"--mem={r['mem_per_node_gb']}G")
        if r["gpus_per_rank"]:
            lines.append(f"--gpus-per-node={r['ranks_per_node'] * r['gpus_per_rank']}")
        if profile.directives.exclusive:
            lines.append("--exclusive")
        return [*lines, *profile.directives.extra]
