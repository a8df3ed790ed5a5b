"""The wrapper's own fork: ranks as subshells on this node (the local profile, or a batch
site whose profile says ``launcher: none``)."""

from __future__ import annotations

from siteagent.launchers.base import Launcher
from siteagent.names import Var

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from siteagent.profiles import Profile

_START = """\
export SITE_AGENT_WORLD_SIZE=$total
for ((r = 0; r < ranks; r++)); do
  # a forked subshell, not a new bash: this launcher is the hot path of local tasks
  (SITE_AGENT_LOCAL_RANK=$r SITE_AGENT_RANK=$r; run_rank "$@") &
  child_pids+=($!)
done
status=0
for pid in "${child_pids[@]}"; do
  wait "$pid"; rc=$?
  [ "$status" -ne 0 ] || status=$rc
done
exit "$status"
"""


class LocalFork(Launcher):
    name = "none"
    local_rank_vars = (Var.LOCAL_RANK,)
    global_rank_vars = (Var.RANK,)

    def launch_lines(self, profile: Profile) -> str:
        return '[ "$nodes" -eq 1 ] || die "nodes: the local launcher runs on one node only"'

    def start_lines(self) -> str:
        return _START.rstrip("\n")
