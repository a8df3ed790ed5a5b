"""What every launcher is: the shell that starts the ranks of one task, and the variables in
which it tells each rank who it is (in the manner of Parsl's ``parsl/launchers``)."""

from __future__ import annotations

from abc import ABC, abstractmethod

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from typing import ClassVar

    from siteagent.profiles import Profile


def first_set(names: tuple[str, ...], fallback: str = "0") -> str:
    """A shell expression for the first of ``names`` that is set and not empty, else
    ``fallback``: ``("A", "B")`` gives ``${A:-${B:-0}}``."""
    expr = fallback
    for name in reversed(names):
        expr = f"${{{name}:-{expr}}}"
    return expr


class Launcher(ABC):
    """One way of starting ranks, as the execution wrapper ``site-agent-exec`` writes it.

    The wrapper has validated ``$nodes``, ``$ranks``, ``$cores``, ``$total`` and ``$self`` (its
    own path) when the launcher's lines run; each rank re-enters the wrapper as
    ``"$self" --rank -- "$@"``.
    """

    name: ClassVar[str]  # the profile's ``launcher:`` value
    local_rank_vars: ClassVar[tuple[str, ...]]  # first one set wins
    global_rank_vars: ClassVar[tuple[str, ...]]

    @abstractmethod
    def launch_lines(self, profile: Profile) -> str:
        """Shell that prepares the launch (``launch=(...)``, or checks), without a final newline."""

    def start_lines(self) -> str:
        """Shell that starts the ranks, records their pids in ``child_pids`` (for the signal
        handler) and exits with the ranks' status (no final newline); by default runs ``launch`` in the background."""
        return '"${launch[@]}" &\nchild_pids=($!)\nwait "${child_pids[0]}"\nexit $?'

    def local_rank_expr(self) -> str:
        """Shell expression of this rank's index on its node."""
        return first_set(self.local_rank_vars)

    def global_rank_expr(self) -> str:
        """Shell expression of this rank's index in the whole task."""
        return first_set(self.global_rank_vars)
