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
# where the batch systems put the job id, first set wins (the worker record's job_id)


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
    """The canonical user_endpoint_config of one worker: the queue's static options, then
    the shape Harvester asked for (nCore, maxWalltime, minRamCount)."""
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
    n_core = getattr(workspec, "nCore", None)
    if n_core:
        config["cores_per_rank"] = max(math.ceil(int(n_core) / ranks), 1)
    walltime = getattr(workspec, "maxWalltime", None)
    if walltime:
        # whole minutes: workers asking 3599 s and 3600 s share a user endpoint
        config["walltime"] = format_walltime(math.ceil(int(walltime) / 60) * 60)
    ram_mb = getattr(workspec, "minRamCount", None)
    if ram_mb and "mem_per_node_gb" in user_config_schema(profile)["properties"]:
        config["mem_per_node_gb"] = max(math.ceil(int(ram_mb) / qc.nodes / 1024), 1)
    if qc.container:
        config["container"] = qc.container
    if qc.cvmfs_repos is not None:
        config["cvmfs_repos"] = list(qc.cvmfs_repos)
    if qc.conda_env:
        config["conda_env"] = qc.conda_env
    return canonicalize(profile, config)


def payload_argv(qc: QueueConfig, workspec: Any) -> list[str]:
    """What each rank runs: the pilot wrapper (GPU binding, CVMFS, container, environment,
    report) around the PanDA pilot, or around the queue's own payload."""
    argv = ["site-agent", "pilot", "--site", qc.site]
    if qc.panda_queue:
        argv += ["--queue", qc.panda_queue]
    resource_type = getattr(workspec, "resourceType", None)
    if resource_type and re.fullmatch(r"[A-Za-z0-9_]{1,64}", str(resource_type)):
        argv += ["--resource-type", str(resource_type)]
    argv += [f"--pilot-arg={arg}" for arg in qc.pilot_args]
    if qc.payload:
        argv += ["--", *qc.payload]
    return argv


def worker_command(wid: str, argv: list[str]) -> str:
    """The ShellFunction command of a worker (``templates/worker.sh.in``).

    It leaves a record (host, pid, batch job id) in ``$SITE_AGENT_STATE/workers`` while the
    worker runs, which is how the sweeper's control task finds what to stop, and it refuses
    to start a worker the sweeper already stopped. Braces are doubled because ShellFunction
    passes the command through ``str.format``.
    """
    if not WORKER_ID.match(wid):
        raise ConfigError(f"worker id: {wid!r} is not a plain name")
    script = _worker_template().render(worker_id=wid, argv=shlex.join(argv), job_id=job_id_expr())
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
