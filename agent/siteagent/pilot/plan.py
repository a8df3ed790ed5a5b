"""The layered command of one pilot rank, built as data (nothing runs here).

The layers (``siteagent.pilot.layers``), outermost first: GPU binding (variables), proxy
(variables), CVMFS (``cvmfsexec REPO... --`` or native), container (``apptainer exec ...
IMAGE``), software environment (variables), payload (the PanDA pilot by default).
``site-agent pilot --dry-run`` prints exactly this.
"""

from __future__ import annotations

import os
import re

from siteagent.errors import ConfigError
from siteagent.names import WORKER_ID_RE, Var
from siteagent.pathstr import absolute, clean
from siteagent.pilot.layers import STACK, Layer, PlanContext, planning_order
from siteagent.pilot.layers.payload import QUEUE
from siteagent.pilot.missing import plan_layer
from siteagent.profilecache import load_profile_cached
from siteagent.records import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from siteagent.binding import RankBinding
    from siteagent.gpus import GpuInventory
    from siteagent.pilot.layers.container import ContainerPlan
    from siteagent.pilot.layers.cvmfs import CvmfsPlan
    from siteagent.pilot.layers.env import EnvPlan
    from siteagent.profiles import Profile

WORKER_ID = WORKER_ID_RE
GRACE = 180.0  # default seconds from SIGTERM to SIGKILL (see PilotOptions.grace)
RESOURCE_TYPES = ("SCORE", "MCORE", "SCORE_HIMEM", "MCORE_HIMEM")


@record(frozen=True)
class PilotOptions:
    """What the caller asks for; ``None`` means: from the environment, then the profile."""

    site: str
    queue: str | None = None
    container: str | None = None  # "" or "none": no container
    cvmfs: str | None = None  # "" or "none": no CVMFS
    conda_env: str | None = None
    walltime: str | None = None
    report: str | None = None
    payload: tuple[str, ...] = ()
    pilot_args: tuple[str, ...] = ()
    pilot_dir: str | None = None
    resource_type: str | None = None
    job_label: str | None = None  # prodSourceLabel (default: the profile's pilot.job_label)
    job_type: str | None = None
    pilot_type: str | None = None
    debug: bool | None = None
    harvester_id: str | None = None  # default: $HARVESTER_ID
    harvester_worker_id: str | None = None  # default: $HARVESTER_WORKER_ID
    gpus_per_rank: int | None = None
    push: bool = False  # push mode: the PanDA job from the worker's push directory
    margin: float = 60.0
    # pilot3 waits up to MAX_KILL_WAIT_TIME (120 s) + 60 s after a signal for its threads,
    # last job update and log stage-out (pilot/workflow/generic.py interrupt)
    grace: float = GRACE
    # only shown: where no GPU is found, a compute node's are assumed; a payload that cannot
    # be planned yet (no pilot3, no queue) is shown as missing
    dry_run: bool = False


@record(frozen=True)
class PilotPlan:
    """One rank's plan: its identity, its layers in stacking order, where it reports."""

    pilot_id: str
    site: str
    host: str
    local_rank: int
    rank: int
    layers: tuple[Layer, ...]
    workdir: str
    report_path: str
    margin_s: float
    grace_s: float
    logs_dir: str = ""  # where the logs of a failed run are kept (pilot/logs.py)
    logs_kept: int = 0  # how many failed runs' logs stay there

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)

    @property
    def argv(self) -> tuple[str, ...]:
        """The full command: every layer's command, outermost first, then the payload."""
        return tuple(word for layer in self.layers for word in layer.command)

    @property
    def gpus(self) -> GpuInventory:
        return self.layer("gpu-binding").detail.gpus

    @property
    def binding(self) -> RankBinding:
        return self.layer("gpu-binding").detail.binding

    @property
    def cvmfs(self) -> CvmfsPlan:
        return self.layer("cvmfs").detail

    @property
    def container(self) -> ContainerPlan | None:
        return self.layer("container").detail.container

    @property
    def path_prepend(self) -> tuple[str, ...]:
        """Prepended to the host's PATH (the environment's bin/, unless in a container)."""
        return self.layer("container").detail.path_prepend

    @property
    def env_plan(self) -> EnvPlan | None:
        return self.layer("env").detail

    @property
    def walltime_s(self) -> int | None:
        return self.layer("payload").detail.walltime_s

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` with every layer's variables applied, in layer order."""
        env = dict(base)
        for layer in self.layers:
            for name in layer.unset:
                env.pop(name, None)
            env.update(layer.env)
        if self.path_prepend:
            env["PATH"] = ":".join([*self.path_prepend, env.get("PATH", os.defpath)])
        if self.env_plan:
            env.pop("PYTHONHOME", None)
        return env

    def to_dict(self) -> dict[str, Any]:
        from siteagent.secrets import mask_data

        return mask_data(
            {
                "pilot_id": self.pilot_id,
                "site": self.site,
                "host": self.host,
                "local_rank": self.local_rank,
                "rank": self.rank,
                "gpus": {
                    "vendor": self.gpus.vendor,
                    "count": self.gpus.count,
                    "assumed": self.layer("gpu-binding").detail.assumed,
                    "slots": list(self.binding.slots),
                    "set": self.binding.set,
                    "unset": list(self.binding.unset),
                },
                "layers": [layer.to_dict() for layer in self.layers],
                "argv": list(self.argv),
                "path_prepend": list(self.path_prepend),
                "workdir": self.workdir,
                "report": self.report_path,
                "walltime_s": self.walltime_s,
                "margin_s": self.margin_s,
                "grace_s": self.grace_s,
                "logs_dir": self.logs_dir,
            }
        )


def local_rank(profile: Profile, environ: Mapping[str, str]) -> tuple[int, int]:
    """``(local rank, global rank)`` from the launcher's variables, as the execution wrapper
    reads them (it also exports SITE_AGENT_LOCAL_RANK/SITE_AGENT_RANK), 0 when run by hand."""
    from siteagent.launchers import launcher_for

    launcher = launcher_for(profile)
    local = _rank(environ, (*launcher.local_rank_vars, Var.LOCAL_RANK))
    return local, _rank(environ, (*launcher.global_rank_vars, Var.RANK))


def _rank(environ: Mapping[str, str], names: tuple[str, ...]) -> int:
    """The first of ``names`` that is set, as a rank number (0 when none is)."""
    name = next((n for n in names if environ.get(n)), None)
    value = environ[name] if name else "0"
    if not value.isdigit():
        raise ConfigError(f"{name}: '{value}' is not a rank number")
    return int(value)


def job_id(environ: Mapping[str, str]) -> str:
    """The batch job's id from the scheduler's variables, ``local`` outside a job."""
    from siteagent.schedulers import job_id_vars

    return next((environ[v] for v in job_id_vars() if environ.get(v)), "local")


def pilot_id(environ: Mapping[str, str], host: str, rank: int, pid: int) -> str:
    """``<worker>-r<rank>`` under Harvester (``SITE_AGENT_WORKER_ID``, set by the worker's
    command), so the monitor knows the name in advance; else ``<job>-<host>-r<rank>-<pid>``."""
    worker = environ.get(Var.WORKER_ID, "")
    if WORKER_ID.match(worker):
        return f"{worker}-r{rank}"
    raw = f"{job_id(environ)}-{host}-r{rank}-{pid}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)[:200]


def default_report_path(environ: Mapping[str, str], pid_: str) -> str:
    """``<root>/pilots/<id>.json`` with root ``$SITE_AGENT_WORKDIR``, else ``$SITE_AGENT_STATE``
    (where the Harvester worker command keeps its records), else ``~/.site-agent``."""
    from siteagent.pilot.logs import state_root

    return os.path.join(state_root(environ), "pilots", f"{pid_}.json")


def report_path(opts: PilotOptions, environ: Mapping[str, str], pid_: str) -> str:
    """``--report`` (``~`` expanded), else the default report path of pilot ``pid_``."""
    if opts.report:
        return clean(os.path.expanduser(opts.report))
    return default_report_path(environ, pid_)


def workdir_of(environ: Mapping[str, str], pid_: str) -> str:
    """The per-pilot working directory, under ``$TMPDIR`` (node-local on most sites), with a
    random suffix as ``mkdtemp`` makes one: nobody can plant a path there in advance (the
    Supervisor creates it exclusively, owner-only, and never uses one that exists)."""
    suffix = os.urandom(8).hex()  # what secrets.token_hex does, without its imports
    return clean(os.path.join(environ.get("TMPDIR") or "/tmp", f"site-agent-pilot-{pid_}-{suffix}"))


def hostname() -> str:
    """This node's name, as ``socket.gethostname()`` gives it (both read uname's nodename),
    without importing socket on the per-rank path."""
    return os.uname().nodename


def check_options(opts: PilotOptions) -> None:
    """Refuse bad ``--queue``/``--resource-type``/``--margin``/``--grace``/labels before
    anything is loaded."""
    import math

    from siteagent.pilot.layers.payload import check_labels

    for flag, value in (("--margin", opts.margin), ("--grace", opts.grace)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"{flag}: {value!r} is not a finite number of seconds >= 0")
    check_labels(opts)
    if opts.queue is not None and not QUEUE.match(opts.queue):
        raise ConfigError(f"--queue: '{opts.queue}' has characters that are not allowed")
    if opts.resource_type is not None and opts.resource_type not in RESOURCE_TYPES:
        raise ConfigError(
            f"--resource-type: '{opts.resource_type}' is not one of {', '.join(RESOURCE_TYPES)}"
        )


def build_plan(
    opts: PilotOptions, environ: dict[str, str] | None = None, *, pid: int | None = None
) -> PilotPlan:
    """Everything the run will do, decided up front; raises ConfigError on bad input."""
    from siteagent.pilot.logs import log_dir

    environ = dict(os.environ if environ is None else environ)
    check_options(opts)
    profile = load_profile_cached(opts.site)
    host = hostname().split(".")[0]
    lrank, grank = local_rank(profile, environ)
    pid_ = pilot_id(environ, host, grank, os.getpid() if pid is None else pid)
    ctx = PlanContext(profile, opts, environ, pid_, lrank, workdir_of(environ, pid_))
    done: dict[str, Layer] = {}
    for cls in planning_order(STACK):
        done[cls.name] = plan_layer(cls, ctx.seeing(done, cls.after))
    return PilotPlan(
        pilot_id=pid_,
        site=profile.name,
        host=host,
        local_rank=lrank,
        rank=grank,
        layers=tuple(done[cls.name] for cls in STACK),
        workdir=ctx.workdir,
        report_path=absolute(report_path(opts, environ, pid_)),
        margin_s=opts.margin,
        grace_s=opts.grace,
        logs_dir=log_dir(environ, pid_),
        logs_kept=profile.pilot.failed_logs_kept,
    )
