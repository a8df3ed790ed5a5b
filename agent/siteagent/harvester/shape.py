"""What a WorkSpec becomes on the site: a canonical user_endpoint_config and one shell command.

Equal worker shapes give equal configs (``userconfig.canonicalize``), so the template endpoint
reuses one user endpoint for them. The command is plain bash run by ``ShellFunction``; every
value in it is either checked by the user config schema or quoted with ``shlex``.
"""

from __future__ import annotations

import math
import re
import shlex
from functools import cache
from typing import Any

from siteagent.errors import ConfigError
from siteagent.harvester.config import QueueConfig
from siteagent.names import WORKER_ID_RE
from siteagent.profiles import Profile
from siteagent.schedulers import job_id_expr
from siteagent.userconfig import canonicalize, format_walltime, user_config_schema

WORKER_ID = WORKER_ID_RE
# Seconds the ShellFunction waits past the worker's walltime: the pilot wrapper's own walltime
# kill comes first; this only stops a worker whose wrapper failed to end it.
SHELL_WALLTIME_MARGIN = 300
# Below these, a WorkSpec value is Harvester's placeholder (simple_worker_maker sets nCore=1,
# maxWalltime=1, minRamCount=1 when CRIC has no value), not a request: the defaults apply.
# A 1-core worker is a whole-node pilot's placeholder here; a pilot needs minutes, not seconds.
CORES_FLOOR = 2
WALLTIME_FLOOR = 600
RAM_FLOOR_MB = 1024


def worker_id(qc: QueueConfig, profile: Profile, workspec: Any) -> str:
    """A name for the worker that is safe in a file name and unique per Harvester instance:
    ``<PanDA queue or profile name>-<workerID>``."""
    wid = f"{qc.panda_queue or profile.name}-{workspec.workerID}"
    wid = re.sub(r"[^A-Za-z0-9_.-]", "_", wid)[:128]
    if not WORKER_ID.match(wid):
        raise ConfigError(f"workerID: cannot make a worker name from {workspec.workerID!r}")
    return wid


# the WorkSpec fields worker_config reads: workers equal in these get equal configs
SHAPE_FIELDS = ("nCore", "maxWalltime", "minRamCount")


def shape_key(workspec: Any) -> tuple:
    return tuple(getattr(workspec, name, None) for name in SHAPE_FIELDS)


def worker_config(qc: QueueConfig, profile: Profile, workspec: Any) -> dict[str, Any]:
    """The canonical user_endpoint_config of one worker (see ``worker_shape``)."""
    return worker_shape(qc, profile, workspec)[0]


def worker_shape(qc: QueueConfig, profile: Profile, workspec: Any) -> tuple[dict[str, Any], str]:
    """The canonical user_endpoint_config of one worker, and what was changed of the shape
    Harvester asked for ("" when nothing was).

    The queue's static options come first, then the WorkSpec's nCore, maxWalltime and
    minRamCount. Harvester's placeholders (simple_worker_maker without CRIC: nCore=1,
    maxWalltime=1, minRamCount=1) and other values below a floor are taken as unspecified,
    so the queue's or the profile's defaults apply; values above what the node or the site
    offers are clamped to it.
    """
    ranks = qc.nodes * qc.ranks_per_node
    config: dict[str, Any] = dict(qc.user_endpoint_config)
    config["nodes"] = qc.nodes
    config["ranks_per_node"] = qc.ranks_per_node
    if qc.gpus_per_worker % ranks:
        raise ConfigError(
            f"queue config: gpusPerWorker: {qc.gpus_per_worker} GPUs do not divide among "
            f"{qc.nodes} node(s) x {qc.ranks_per_node} rank(s)"
        )
    config["gpus_per_rank"] = qc.gpus_per_worker // ranks
    notes = [
        note
        for note in (
            _cores(qc, profile, config, _number(workspec, "nCore")),
            _walltime(profile, config, _number(workspec, "maxWalltime")),
            _memory(qc, profile, config, _number(workspec, "minRamCount")),
        )
        if note
    ]
    if qc.container:
        config["container"] = qc.container
    if qc.cvmfs_repos is not None:
        config["cvmfs_repos"] = list(qc.cvmfs_repos)
    if qc.conda_env:
        config["conda_env"] = qc.conda_env
    config = canonicalize(profile, config)
    unset = "not set (the scheduler's default)"
    said = [f"{text}: {key} {config.get(key, unset)}" for text, key in notes]
    return config, "; ".join(said)


def _number(workspec: Any, name: str) -> int:
    value = getattr(workspec, name, None)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {value!r} is not a whole number") from None


def _cores(qc: QueueConfig, profile: Profile, config: dict, n_core: int) -> tuple | None:
    if not n_core:
        return None
    if n_core < CORES_FLOOR:
        return f"nCore {n_core} taken as unspecified", "cores_per_rank"
    ranks = qc.nodes * qc.ranks_per_node
    per_rank = math.ceil(n_core / ranks)
    most = max(profile.node.usable_cores * profile.node.threads_per_core // qc.ranks_per_node, 1)
    config["cores_per_rank"] = min(per_rank, most)
    if per_rank > most:
        return f"nCore {n_core} is more than a {profile.name} node offers", "cores_per_rank"
    return None


def _walltime(profile: Profile, config: dict, seconds: int) -> tuple | None:
    from siteagent.userconfig import walltime_seconds

    if not seconds:
        return None
    if seconds < WALLTIME_FLOOR:
        return (
            f"maxWalltime {seconds} s taken as unspecified (below {WALLTIME_FLOOR} s)",
            "walltime",
        )
    # whole minutes: workers asking 3599 s and 3600 s share a user endpoint
    minutes = math.ceil(seconds / 60) * 60
    limit = walltime_seconds(profile.limits.max_walltime)
    config["walltime"] = format_walltime(min(minutes, limit))
    if minutes > limit:
        return f"maxWalltime {seconds} s is beyond the site limit", "walltime"
    return None


def _memory(qc: QueueConfig, profile: Profile, config: dict, ram_mb: int) -> tuple | None:
    if not ram_mb or "mem_per_node_gb" not in user_config_schema(profile)["properties"]:
        return None
    if ram_mb < RAM_FLOOR_MB:
        return f"minRamCount {ram_mb} MB taken as unspecified", "mem_per_node_gb"
    per_node = max(math.ceil(ram_mb / qc.nodes / 1024), 1)
    node_gb = int(profile.node.memory_gb or 0)
    config["mem_per_node_gb"] = min(per_node, node_gb) if node_gb else per_node
    if node_gb and per_node > node_gb:
        return f"minRamCount {ram_mb} MB is more than a {profile.name} node has", "mem_per_node_gb"
    return None


def harvester_id() -> str | None:
    """This Harvester instance's id (its ``master.harvester_id``), else ``$HARVESTER_ID``."""
    import os

    try:
        from pandaharvester.harvesterconfig import harvester_config

        return str(harvester_config.master.harvester_id)
    except (ImportError, AttributeError):
        return os.environ.get("HARVESTER_ID") or None


def _plain(value: Any) -> str | None:
    """``value`` as a word safe on a command line, else None (left to the profile)."""
    if value is None or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", str(value)):
        return None
    return str(value)


def _pilot_type(value: Any) -> str | None:
    return value if value in ("PR", "RC", "ALRB", "PT") else None


def payload_argv(qc: QueueConfig, workspec: Any, hid: str | None = None) -> list[str]:
    """What each rank runs: the pilot wrapper (GPU binding, CVMFS, container, environment,
    report) around the PanDA pilot, or around the queue's own payload. The job label, job
    type and pilot type come from the WorkSpec, then the queue config (else the profile's);
    the Harvester and worker ids become the pilot's HARVESTER_ID/HARVESTER_WORKER_ID."""
    argv = ["site-agent", "pilot", "--site", qc.site]
    for flag, value in _named_options(qc, workspec, hid):
        if value:
            argv += [flag, value]
    argv += [f"--pilot-arg={arg}" for arg in qc.pilot_args]
    if qc.mode == "push":
        argv.append("--push")
    if qc.payload:
        argv += ["--", *qc.payload]
    return argv


def _named_options(
    qc: QueueConfig, workspec: Any, hid: str | None
) -> tuple[tuple[str, str | None], ...]:
    """The wrapper's ``--flag value`` options in order, None where not given: the WorkSpec's
    values (when plain words) before the queue config's."""
    return (
        ("--queue", qc.panda_queue),
        ("--resource-type", _resource_type(getattr(workspec, "resourceType", None))),
        ("--job-label", qc.prod_source_label),
        ("--job-type", _plain(getattr(workspec, "jobType", None)) or qc.job_type),
        ("--pilot-type", _pilot_type(getattr(workspec, "pilotType", None)) or qc.pilot_type),
        ("--harvester-id", _plain(hid or harvester_id())),
        ("--harvester-worker-id", _plain(getattr(workspec, "workerID", None))),
    )


def _resource_type(value: Any) -> str | None:
    """A WorkSpec's resource type when it is a plain word, else None (left to the profile)."""
    if value and re.fullmatch(r"[A-Za-z0-9_]{1,64}", str(value)):
        return str(value)
    return None


def worker_command(wid: str, argv: list[str], push: str | None = None) -> str:
    """The ShellFunction command of a worker (``templates/worker.sh.in``).

    In push mode, ``push`` is the worker's job bundle (JSON, ``siteagent.push``): it goes in
    the command base64-encoded, in a quoted here-document, so the shell never reads a byte
    of the job as code; the worker decodes it into its push directory.

    It leaves a record (host, pid, batch job id) in ``$SITE_AGENT_STATE/workers`` while the
    worker runs, which is how the sweeper's control task finds what to stop, and it refuses
    to start a worker the sweeper already stopped. Braces are doubled because ShellFunction
    passes the command through ``str.format``.
    """
    if not WORKER_ID.match(wid):
        raise ConfigError(f"worker id: {wid!r} is not a plain name")
    encoded = None
    if push is not None:
        import base64

        encoded = base64.encodebytes(push.encode()).decode().rstrip("\n")
    script = _worker_template().render(
        worker_id=wid, argv=shlex.join(argv), job_id=job_id_expr(), push=encoded
    )
    return script.replace("{", "{{").replace("}", "}}")


@cache
def _worker_template() -> Any:
    # loaded once per process: Harvester builds thousands of these commands
    from siteagent.templating import shell_environment

    return shell_environment("siteagent.harvester").get_template("worker.sh.in")


def shell_walltime(config: dict[str, Any]) -> float | None:
    """ShellFunction's own limit for a worker of this config (None for control configs)."""
    from siteagent.userconfig import walltime_seconds

    if "walltime" not in config:
        return None
    return float(walltime_seconds(config["walltime"]) + SHELL_WALLTIME_MARGIN)
