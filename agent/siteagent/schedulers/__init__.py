"""Schedulers by the profile's ``scheduler:`` name, and what holds over all of them.

Adding a batch system is one module beside ``slurm.py`` with a ``Scheduler`` subclass, its
provider fragment in ``templates/``, and its line in ``SCHEDULERS`` below.
"""

from __future__ import annotations

from siteagent.errors import ConfigError
from siteagent.schedulers.base import Scheduler
from siteagent.schedulers.local import Local
from siteagent.schedulers.pbspro import PbsPro
from siteagent.schedulers.slurm import Slurm

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from siteagent.profiles import Profile

# one line per scheduler; the order is the one profiles, errors and the template list them in
SCHEDULERS: dict[str, type[Scheduler]] = {cls.name: cls for cls in (Slurm, PbsPro, Local)}

__all__ = [
    "SCHEDULERS",
    "Scheduler",
    "all_fields",
    "cancel_command",
    "get_scheduler",
    "job_id_expr",
    "job_id_vars",
    "scheduler_for",
    "scheduler_names",
]


def scheduler_names() -> tuple[str, ...]:
    """Every known ``scheduler:`` value."""
    return tuple(SCHEDULERS)


def get_scheduler(name: str) -> Scheduler:
    """The scheduler called ``name``; a one-line ConfigError naming the field otherwise."""
    try:
        return SCHEDULERS[name]()
    except KeyError:
        known = ", ".join(SCHEDULERS)
        raise ConfigError(
            f"scheduler: '{name}' is not a known scheduler (one of: {known})"
        ) from None


def scheduler_for(profile: Profile) -> Scheduler:
    """The scheduler of a loaded profile."""
    return get_scheduler(profile.scheduler)


def all_fields() -> tuple[str, ...]:
    """The scheduler options of user_endpoint_config over all schedulers, each once."""
    return tuple(dict.fromkeys(f for cls in SCHEDULERS.values() for f in cls.fields))


def job_id_vars() -> tuple[str, ...]:
    """The variables in which a batch job finds its own job id, over all schedulers."""
    return tuple(cls.job_id_var for cls in SCHEDULERS.values() if cls.job_id_var)


def job_id_expr() -> str:
    """A shell expression of this batch job's id, empty outside one:
    ``${SLURM_JOB_ID:-${PBS_JOBID:-}}``."""
    from siteagent.launchers.base import first_set

    return first_set(job_id_vars(), fallback="")


def cancel_command(name: str) -> str | None:
    """The command that cancels a batch job of scheduler ``name`` (None: none, or unknown)."""
    cls = SCHEDULERS.get(name)
    return cls.cancel_command if cls else None
