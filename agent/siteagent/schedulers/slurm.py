"""Slurm (Perlmutter, Frontier): ``#SBATCH`` directives, ``SlurmProvider``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from siteagent.errors import ConfigError
from siteagent.schedulers.base import Scheduler

if TYPE_CHECKING:
    from siteagent.profiles import Profile

# user_endpoint_config options written as the sbatch flag of their name, after the queue
# (``queue`` is --partition or --qos: queue_kind)
_FLAGS = ("qos", "constraint", "reservation")


def queue_kind(profile: Profile, queue: str | None) -> str:
    """``qos`` or ``partition``: what ``queue`` names at this site (its ``limits.queues``
    entry, else ``directives.queue_kind``). NERSC's queues are QOSs; Frontier's are
    partitions except the debug QOS."""
    q = profile.limits.queue(queue)
    return q.kind if q is not None and q.kind else profile.directives.queue_kind


def qos_queues(profile: Profile) -> list[str] | None:
    """The queue names that are QOSs; None when every queue is (queue_kind: qos)."""
    if _all_qos(profile):
        return None
    return [q.name for q in profile.limits.queue_limits if queue_kind(profile, q.name) == "qos"]


def _all_qos(profile: Profile) -> bool:
    """Every queue is a QOS: queue_kind says so and no queue's limits say otherwise."""
    return profile.directives.queue_kind == "qos" and all(
        q.kind in (None, "qos") for q in profile.limits.queue_limits
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
        lines += [f"--{flag}={value}" for flag, value in _named_options(profile, r) if value]
        lines += _node_options(profile, r)
        return [*lines, *profile.directives.extra]


def _named_options(profile: Profile, r: dict[str, Any]) -> list[tuple[str, Any]]:
    """(sbatch flag, value or None) of the request's account, queue and _FLAGS; the queue's
    flag is its queue_kind."""
    queue = r.get("queue")
    queue_flag = queue_kind(profile, queue) if queue else "partition"
    return [("account", r.get("account")), (queue_flag, queue), *((f, r.get(f)) for f in _FLAGS)]


def _node_options(profile: Profile, r: dict[str, Any]) -> list[str]:
    """Memory and GPUs of a node, as requested, and exclusive nodes, as the profile says."""
    lines = []
    if r.get("mem_per_node_gb"):
        lines.append(f"--mem={r['mem_per_node_gb']}G")
    if r["gpus_per_rank"]:
        lines.append(f"--gpus-per-node={r['ranks_per_node'] * r['gpus_per_rank']}")
    if profile.directives.exclusive:
        lines.append("--exclusive")
    return lines
