"""Render the execution wrapper of a profile and batch-script headers for a request."""

from __future__ import annotations

import shlex
import sys
from typing import Any

from siteagent import __version__
from siteagent.binding import RankBinding, bind_rank
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
            rows.append((f"{gpus}:{rank}", _binding_shell(bind_rank(node, rank, gpus))))
    return rows


def _binding_shell(b: RankBinding) -> str:
    """One rank's binding as shell: ``unset`` what it clears, ``export`` what it sets."""
    exports = "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in b.set.items())
    return f"unset {' '.join(b.unset)}; {exports}" if b.unset else exports


def pilot_start() -> tuple[str, str]:
    """``(python, python -c code)`` with which a rank starts ``site-agent pilot`` of this
    environment without ``site``: the import path is what ``site`` gives this Python (the
    standard library, then site-packages, then an editable install's source), so a rank
    imports the modules the console script would. ``("", "")`` where a path has characters a shell word or a
    Python string should not (the rank then runs the console script)."""
    import json
    import sysconfig
    from pathlib import Path

    import siteagent

    paths = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    paths.append(str(Path(siteagent.__file__).resolve().parent.parent))
    paths = list(dict.fromkeys(paths))
    if any(c in sys.executable + "".join(paths) for c in "\n'\"\\$`"):
        return "", ""
    code = (
        f"import sys; sys.path += {json.dumps(paths)}\n"  # after the standard library, as site
        "try:\n    from siteagent.entry import main\n"
        # the environment changed since the wrapper was written: the console script decides
        'except ImportError:\n    import os; os.execvp("site-agent", ["site-agent", *sys.argv[1:]])\n'
        "main()"
    )
    return sys.executable, code


def render_wrapper(profile: Profile) -> str:
    """The execution wrapper script of ``profile`` (bash, no Python per task)."""
    from siteagent.templating import shell_environment

    env = shell_environment("siteagent.wrappers")
    node = profile.node
    launcher = launcher_for(profile)
    python, start = pilot_start()
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
        pilot_python=shlex.quote(python),
        pilot_start=shlex.quote(start),
    )


def render_batch_header(profile: Profile, request: dict[str, Any], job_name: str) -> str:
    """``#!/bin/bash`` plus ``#SBATCH``/``#PBS`` lines for a request (validated and
    completed like a user_endpoint_config)."""
    import re

    if not re.fullmatch(JOB_NAME, job_name):
        raise ConfigError(f"job_name: {job_name!r} has characters or a form that is not allowed")
    return scheduler_for(profile).batch_header(profile, canonicalize(profile, request), job_name)
