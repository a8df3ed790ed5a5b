"""Render the execution wrapper of a profile and batch-script headers for a request."""

from __future__ import annotations

import shlex
from typing import Any

from siteagent import __version__
from siteagent.binding import bind_rank
from siteagent.errors import ConfigError
from siteagent.names import JOB_NAME
from siteagent.profiles import Profile
from siteagent.userconfig import canonicalize

WRAPPER_NAME = "site-agent-exec"

# Where each launcher tells a rank who it is (first one set wins).
LOCAL_RANK_VARS = {
    "srun": ("SLURM_LOCALID",),
    "mpiexec": ("PALS_LOCAL_RANKID", "PMI_LOCAL_RANK"),
    "none": ("SITE_AGENT_LOCAL_RANK",),
}
GLOBAL_RANK_VARS = {
    "srun": ("SLURM_PROCID",),
    "mpiexec": ("PALS_RANKID", "PMI_RANK"),
    "none": ("SITE_AGENT_RANK",),
}


def _first_set(names: tuple[str, ...]) -> str:
    expr = "0"
    for name in reversed(names):
        expr = f"${{{name}:-{expr}}}"
    return expr


def binding_table(profile: Profile) -> list[tuple[str, str]]:
    """``("G:R", "shell lines")`` for every GPUs-per-rank G and local rank R that fits a node."""
    node = profile.node
    rows = []
    for gpus in range(1, node.gpu_slots + 1):
        for rank in range(node.gpu_slots // gpus):
            b = bind_rank(node, rank, gpus)
            parts = []
            if b.unset:
                parts.append("unset " + " ".join(b.unset))
            parts.append("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in b.set.items()))
            rows.append((f"{gpus}:{rank}", "; ".join(parts)))
    return rows


def launcher_of(profile: Profile) -> str:
    """The launcher that starts ranks: the profile's, or the wrapper's own fork on local."""
    return profile.launcher if profile.scheduler != "local" else "none"


def render_wrapper(profile: Profile) -> str:
    """The execution wrapper script of ``profile`` (bash, no Python per task)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("siteagent.wrappers", "templates"),
        block_start_string="<%",
        block_end_string="%>",
        variable_start_string="<<",
        variable_end_string=">>",
        comment_start_string="<#",
        comment_end_string="#>",
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    node = profile.node
    launcher = launcher_of(profile)
    cpu_bind = node.cpu_bind or ""
    cpu_list = cpu_bind if cpu_bind.startswith("list:") else ""
    return env.get_template("site-agent-exec.sh.in").render(
        version=__version__,
        profile=profile,
        launcher=launcher,
        max_nodes=profile.section("limits")["max_nodes"],
        hw_threads=node.usable_cores * node.threads_per_core,
        usable_cores=node.usable_cores,
        gpu_slots=node.gpu_slots,
        table=binding_table(profile),
        local_rank_expr=_first_set(LOCAL_RANK_VARS[launcher]),
        global_rank_expr=_first_set(GLOBAL_RANK_VARS[launcher]),
        srun_cpu_bind="none" if cpu_bind == "none" else "cores",
        cpu_bind_list=cpu_list,
        cpu_bind_entries=len(cpu_list[5:].split(":")) if cpu_list else 0,
    )


def render_batch_header(profile: Profile, request: dict[str, Any], job_name: str) -> str:
    """``#!/bin/bash`` plus ``#SBATCH``/``#PBS`` lines for a request (validated and
    completed like a user_endpoint_config)."""
    import re

    if not re.fullmatch(JOB_NAME, job_name):
        raise ConfigError(f"job_name: {job_name!r} has characters or a form that is not allowed")
    r = canonicalize(profile, request)
    directives = profile.section("directives")
    if profile.scheduler == "slurm":
        lines = [
            f"--job-name={job_name}",
            f"--nodes={r['nodes']}",
            f"--ntasks-per-node={r['ranks_per_node']}",
            f"--cpus-per-task={r['cores_per_rank']}",
            f"--time={r['walltime']}",
        ]
        for key, flag in (
            ("account", "account"),
            ("queue", "partition"),
            ("qos", "qos"),
            ("constraint", "constraint"),
            ("reservation", "reservation"),
        ):
            if r.get(key):
                lines.append(f"--{flag}={r[key]}")
        if r.get("mem_per_node_gb"):
            lines.append(f"--mem={r['mem_per_node_gb']}G")
        if r["gpus_per_rank"]:
            lines.append(f"--gpus-per-node={r['ranks_per_node'] * r['gpus_per_rank']}")
        if directives.get("exclusive"):
            lines.append("--exclusive")
        lines += directives["extra"]
        lines.append("--signal=B:TERM@60")
        return "#!/bin/bash\n" + "".join(f"#SBATCH {line}\n" for line in lines)
    if profile.scheduler == "pbspro":
        select = f"select={r['nodes']}"
        if directives.get("select"):
            select += f":{directives['select']}"
        lines = [f"-N {job_name}", f"-l {select}", f"-l walltime={r['walltime']}"]
        if directives.get("place"):
            lines.append(f"-l place={directives['place']}")
        if r.get("filesystems"):
            lines.append(f"-l filesystems={r['filesystems']}")
        if r.get("account"):
            lines.append(f"-A {r['account']}")
        if r.get("queue"):
            lines.append(f"-q {r['queue']}")
        lines += directives["extra"]
        lines.append("-k doe")
        return "#!/bin/bash\n" + "".join(f"#PBS {line}\n" for line in lines)
    return "#!/bin/bash\n# local: no batch scheduler, no directives\n"
