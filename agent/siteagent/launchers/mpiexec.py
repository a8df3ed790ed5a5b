"""PALS ``mpiexec`` (Cray/HPE PBS sites: Polaris, Aurora)."""

from __future__ import annotations

from siteagent.launchers.base import Launcher

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from siteagent.profiles import Profile


class Mpiexec(Launcher):
    name = "mpiexec"
    local_rank_vars = ("PALS_LOCAL_RANKID", "PMI_LOCAL_RANK")
    global_rank_vars = ("PALS_RANKID", "PMI_RANK")

    def launch_lines(self, profile: Profile) -> str:
        lines = ['cpu_bind="depth"']
        cpu_bind = profile.node.cpu_bind or ""
        if cpu_bind.startswith("list:"):
            entries = cpu_bind.count(":")  # list:a:b:c has three
            lines += [
                "# the site's per-rank core list applies when there is one rank per list entry",
                f'[ "$ranks" -eq {entries} ] && cpu_bind="{cpu_bind}"',
            ]
        lines.append(
            'launch=(mpiexec -n "$total" --ppn "$ranks" --depth "$cores" --cpu-bind "$cpu_bind" '
            '"$self" --rank -- "$@")'
        )
        return "\n".join(lines)
