"""Slurm (Perlmutter, Frontier): ``#SBATCH`` directives, ``SlurmProvider``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from siteagent.errors import ConfigError
from siteagent.schedulers.base import Scheduler

if TYPE_CHECKING:
    from siteagent.profiles import Profile

# user_endpoint_config option -> sbatch flag, after --account and the queue (``queue`` is
# --partition or --qos: queue_kind)
_FLAGS = (
    ("qos", "qos"),
    ("constraint", "constraint"),
    ("reservation", "reservation"),
)


def queue_kind(profile: Profile, queue: str | None) -> str:
    """``qos`` or ``partition``: what ``queue`` names at this site (its ``limits.queues``
    entry, else ``directives.queue_kind``). NERSC's queues are QOSs; Frontier's are
    partitions except the debug QOS."""
    q = profile.limits.queue(queue)
    return (q.kind if q is not None and q.kind else None) or profile.directives.queue_kind


def qos_queues(profile: Profile) -> list[str] | None:
    """The queue names that are QOSs; None when every queue is (queue_kind: qos)."""
    if profile.directives.queue_kind == "qos" and all(
        q.kind in (None, "qos") for q in profile.limits.queue_limits
    ):
        return None
    return [q.name for q in profile.limits.queue_limits if queue_kind(profile, q.name) == "qos"]


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

    def template_context(self, profile: Profile) -> dict[str, Any]:
        # the provider block renders a queue as `qos:` when it is one (a Jinja list, or none)
        names = qos_queues(profile)
        return {"qos_queues": "none" if names is None else json.dumps(names)}

    def check_request(self, profile: Profile, request: dict[str, Any]) -> None:
        queue, qos = request.get("queue"), request.get("qos")
        if queue and qos and queue_kind(profile, queue) == "qos":
            raise ConfigError(
                f"user_endpoint_config: qos: queue '{queue}' is already the QOS at "
                f"{profile.name}; give the QOS as queue alone"
            )

    def directives(self, profile: Profile, request: dict[str, Any], job_name: str) -> list[str]:
        r = request
        lines = [
            f"--job-name={job_name}",
            f"--nodes={r['nodes']}",
            f"--ntasks-per-node={r['ranks_per_node']}",
            f"--cpus-per-task={r['cores_per_rank']}",
            f"--time={r['walltime']}",
        ]
        if r.get("account"):
            lines.append(f"--account={r['account']}")
        if r.get("queue"):
            lines.append(f"--{queue_kind(profile, r['queue'])}={r['queue']}")
        lines += [f"--{flag}={r[key]}" for key, flag in _FLAGS if r.get(key)]
        if r.get("mem_per_node_gb"):
            lines.append(f"--mem={r['mem_per_node_gb']}G")
        if r["gpus_per_rank"]:
            lines.append(f"--gpus-per-node={r['ranks_per_node'] * r['gpus_per_rank']}")
        if profile.directives.exclusive:
            lines.append("--exclusive")
        return [*lines, *profile.directives.extra]
