"""Launchers by the profile's ``launcher:`` name: how the execution wrapper starts ranks."""

from __future__ import annotations

from siteagent.errors import ConfigError
from siteagent.launchers.base import Launcher, first_set
from siteagent.launchers.local import LocalFork
from siteagent.launchers.mpiexec import Mpiexec
from siteagent.launchers.srun import Srun

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from siteagent.profiles import Profile

# one line per launcher; the order is the one profiles and errors list them in
LAUNCHERS: dict[str, type[Launcher]] = {cls.name: cls for cls in (Srun, Mpiexec, LocalFork)}

__all__ = ["LAUNCHERS", "Launcher", "first_set", "get_launcher", "launcher_for", "launcher_names"]


def launcher_names() -> tuple[str, ...]:
    """Every known ``launcher:`` value."""
    return tuple(LAUNCHERS)


def get_launcher(name: str) -> Launcher:
    """The launcher called ``name``; a one-line ConfigError naming the field otherwise."""
    try:
        return LAUNCHERS[name]()
    except KeyError:
        known = ", ".join(LAUNCHERS)
        raise ConfigError(f"launcher: '{name}' is not a known launcher (one of: {known})") from None


def launcher_for(profile: Profile) -> Launcher:
    """The launcher that starts the ranks of ``profile``'s tasks (its scheduler decides:
    the local scheduler always forks)."""
    from siteagent.schedulers import scheduler_for

    return get_launcher(scheduler_for(profile).launcher_of(profile))
