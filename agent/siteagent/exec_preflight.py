"""What ``site-agent exec`` checks before it hands over to the execution wrapper, so that
running it in the wrong place says so in one line instead of a shell error from a cache path."""

from __future__ import annotations

import shutil
from typing import Any

from siteagent.errors import ConfigError

# the program each profile launcher starts ranks with (none: forked by the wrapper itself)
LAUNCHER_PROGRAMS = {"srun": "srun", "mpiexec": "mpiexec"}


def launcher_program(profile: Any) -> str | None:
    """The program the site's launcher starts ranks with; None when the wrapper forks them."""
    return LAUNCHER_PROGRAMS.get(profile.launcher)


def check_launcher(profile: Any) -> None:
    """The site's launcher must be on this host (it is on the site's compute nodes)."""
    program = launcher_program(profile)
    if program and shutil.which(program) is None:
        raise ConfigError(
            f"--site: {profile.name}'s launcher {program} is not on this host; run "
            f"`site-agent exec` inside a {profile.name} batch job, or use --site local here"
        )


def check_gpus(profile: Any, gpus_per_rank: int) -> None:
    """GPUs asked for on a profile whose nodes have none."""
    if gpus_per_rank > 0 and profile.node.gpu_slots == 0:
        raise ConfigError(
            f"--gpus-per-rank: this node has no GPU (profile {profile.name}: node.gpus "
            f"{profile.node.gpus}); use --gpus-per-rank 0"
        )
