"""Slurm's ``srun``: one job step with all ranks of the task."""

from __future__ import annotations

from siteagent.launchers.base import Launcher

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from siteagent.profiles import Profile


class Srun(Launcher):
    name = "srun"
    local_rank_vars = ("SLURM_LOCALID",)
    global_rank_vars = ("SLURM_PROCID",)

    def launch_lines(self, profile: Profile) -> str:
        # the profile's cpu_bind "none" leaves placement to the payload; otherwise a core each
        cpu_bind = "none" if profile.node.cpu_bind == "none" else "cores"
        return (
            'launch=(srun --nodes="$nodes" --ntasks="$total" --ntasks-per-node="$ranks" '
            f'--cpus-per-task="$cores" --cpu-bind={cpu_bind} --kill-on-bad-exit=1 --export=ALL '
            '"$self" --rank -- "$@")'
        )
