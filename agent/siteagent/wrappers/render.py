"""Render the execution wrapper of a profile and batch-script headers for a request."""

from __future__ import annotations

import shlex
from typing import Any

from siteagent import __version__
from siteagent.binding import bind_rank
from siteagent.errors import ConfigError
from siteagent.launchers import launcher_for
from siteagent.names import JOB_NAME
from siteagent.profiles import Profile
from siteagent.schedulers import scheduler_for
from siteagent.userconfig import canonicalize


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


def render_wrapper(profile: Profile) -> str:
    """The execution wrapper script of ``profile`` (bash, no Python per task)."""
    from siteagent.templating import shell_environment

    env = shell_environment("siteagent.wrappers")
    node = profile.node
    launcher = launcher_for(profile)
    return env.get_template("site-agent-exec.sh.in").render(
        version=__version__,
        profile=profile,
        launcher=launcher.name,
        max_nodes=profile.limits.max_nodes,
        hw_threads=node.usable_cores * node.threads_per_core,
        usable_cores=node.usable_cores,
        gpu_slots=node.gpu_slots,
        table=binding_table(profile),
        local_rank_expr=launcher.local_rank_expr(),
        global_rank_expr=launcher.global_rank_expr(),
        launch_lines=launcher.launch_lines(profile),
        start_lines=launcher.start_lines(),
    )


def render_batch_header(profile: Profile, request: dict[str, Any], job_name: str) -> str:
    """``#!/bin/bash`` plus ``#SBATCH``/``#PBS`` lines for a request (validated and
    completed like a user_endpoint_config)."""
    import re

    if not re.fullmatch(JOB_NAME, job_name):
        raise ConfigError(f"job_name: {job_name!r} has characters or a form that is not allowed")
    return scheduler_for(profile).batch_header(profile, canonicalize(profile, request), job_name)
