"""The plugins' queue-config keys, validated once, with one clear error naming the key.

Each key is declared once, as a field of ``QueueConfig``: its queue-config name, default,
check and description live in the field; parsing, the unknown-key warning and the README
table (``keys_table``) are derived from those fields.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from siteagent.errors import ConfigError

log = logging.getLogger(__name__)

UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
TOKEN = re.compile(r"^[A-Za-z0-9_.,:/@+=-]{1,256}$")
TOKEN_WHAT = "words of letters, digits and _.,:/@+=-"
SITE = re.compile(r"^[A-Za-z0-9_./-]{1,256}$")
# a pilot argument may be a URL (--queuedata-url=https://.../x.json?y=1): any printable word
PILOT_ARG = re.compile(r"^[^\x00-\x20\x7f]{1,1024}$")
# the payload is the admin's own command line: any printable words, each shell-quoted
PAYLOAD_WORD = re.compile(r"^[^\x00-\x1f\x7f]{1,4096}$")

# where tasks go: the Globus Compute service (production) or the engine in this process
BACKENDS = ("globus", "local-engine")
# pull: the pilot asks the PanDA server for a job; push: Harvester's job goes in the task
MODES = ("pull", "push")

# attributes Harvester itself sets on a plugin besides the queue-config keys
HARVESTER_ATTRIBUTES = frozenset(
    {
        "module",
        "name",
        "dbInterface",
        "queueName",
        "siteName",
        "middleware",
        "original_config",
        "bareFunctions",
        "bare_impl",
    }
)

Check = Callable[[str, Any], Any]


def _fail(key: str, problem: str) -> ConfigError:
    return ConfigError(f"queue config: {key}: {problem}")


def _any(key: str, value: Any) -> Any:
    return value  # checked later, with the rest of the user endpoint config


def _matching(pattern: re.Pattern[str], what: str, optional: bool = True) -> Check:
    def check(key: str, value: Any) -> Any:
        if (value is None and optional) or (isinstance(value, str) and pattern.fullmatch(value)):
            return value
        raise _fail(key, f"must be {what}")

    return check


def _int(low: int, high: int) -> Check:
    def check(key: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise _fail(key, f"must be a whole number from {low} to {high}")
        return value

    return check


def _seconds(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise _fail(key, "must be a positive number of seconds")  # nan fails too
    return float(value)


def _words(pattern: re.Pattern[str], what: str, none: Any = ()) -> Check:
    def check(key: str, value: Any) -> Any:
        if value is None or value == ():  # absent (the field's default is ())
            return none
        if not isinstance(value, list) or not all(
            isinstance(v, str) and pattern.fullmatch(v) for v in value
        ):
            raise _fail(key, f"must be a list of {what}")
        return tuple(value)

    return check


def _mode(key: str, value: Any) -> str:
    if value not in MODES:
        raise _fail(key, "must be 'pull' or 'push'")
    return value


def _backend(key: str, value: Any) -> str:
    if value not in BACKENDS:
        raise _fail(key, "must be 'globus' or 'local-engine'")
    return value


def _directory(key: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _fail(key, "must be a directory path")
    return value


def _object(key: str, value: Any) -> dict[str, Any]:
    value = value or {}
    if not isinstance(value, dict):
        raise _fail(key, "must be a JSON object")
    return dict(value)


def _key(name: str, default: Any, check: Check, doc: str) -> Any:
    """A QueueConfig field read from the queue-config key ``name``."""
    meta = {"key": name, "check": check, "doc": doc}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=dict, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class QueueConfig:
    """The checked queue config. Fields are in the order their keys are checked."""

    endpoint_id: str | None = _key(
        "endpointId",
        None,
        _matching(UUID, "a UUID"),
        "Template endpoint id (required with backend `globus`).",
    )
    site: str = _key(
        "site",
        "local",
        _matching(SITE, "a profile name or path", optional=False),
        "Site profile name or path.",
    )
    panda_queue: str | None = _key(
        "pandaQueue",
        None,
        _matching(TOKEN, "a PanDA queue name"),
        "PanDA queue the pilots serve; also names the workers (default: Harvester's own "
        "`siteName`, its `queueName` without a `/resourceType`).",
    )
    backend: str = _key(
        "backend",
        "globus",
        _backend,
        "`globus` (the web service) or `local-engine` (the engine in this process).",
    )
    workdir: str | None = _key(
        "workdir", None, _directory, "Directory of the `local-engine` backend."
    )
    result_timeout: float = _key(
        "resultTimeout",
        30.0,
        _seconds,
        "Seconds to wait for a task id, or for a control task's (stop, clean-up) answer.",
    )
    user_endpoint_config: dict[str, Any] = _key(  # noqa: RUF009 (a default_factory)
        "userEndpointConfig",
        {},
        _object,
        "Static user endpoint config of every worker (account, queue, ...).",
    )
    gpus_per_worker: int = _key(
        "gpusPerWorker", 0, _int(0, 4096), "GPUs per worker, divided among its ranks."
    )
    ranks_per_node: int = _key("ranksPerNode", 1, _int(1, 4096), "Pilots per node.")
    nodes: int = _key("nodesPerWorker", 1, _int(1, 100000), "Nodes per worker (batch job).")
    container: str | None = _key("container", None, _any, "Image the pilots run in.")
    cvmfs_repos: tuple[str, ...] | None = _key(
        "cvmfsRepos",
        None,
        _words(TOKEN, TOKEN_WHAT, none=None),
        "CVMFS repositories to mount (default: the profile's).",
    )
    conda_env: str | None = _key("condaEnv", None, _any, "Conda packages or environment file.")
    pilot_args: tuple[str, ...] = _key(
        "pilotArgs",
        (),
        _words(PILOT_ARG, "printable words without spaces"),
        "Extra PanDA pilot arguments (URLs allowed).",
    )
    prod_source_label: str | None = _key(
        "prodSourceLabel",
        None,
        _matching(TOKEN, "a prodSourceLabel (managed, user, unified, ...)"),
        "Jobs the pilots ask for, pilot3 `-j` (default: the profile's `pilot.job_label`).",
    )
    job_type: str | None = _key(
        "jobType",
        None,
        _matching(TOKEN, "a job type"),
        "pilot3 `--job-type` when the WorkSpec has none (default: the profile's).",
    )
    pilot_type: str | None = _key(
        "pilotType",
        None,
        _matching(re.compile(r"^(PR|RC|ALRB|PT)$"), "PR, RC, ALRB or PT"),
        "Pilot type when the WorkSpec has none (default: the profile's).",
    )
    payload: tuple[str, ...] = _key(
        "payload",
        (),
        _words(PAYLOAD_WORD, "printable words (no newline)"),
        "Command each rank runs instead of the PanDA pilot.",
    )
    batch_size: int = _key(
        "batchSize", 128, _int(1, 10000), "Tasks per submission request of the SDK."
    )
    mode: str = _key(
        "mode",
        "pull",
        _mode,
        "`pull` (pilots ask PanDA for jobs) or `push` (Harvester's job travels in the task, "
        "for compute nodes without outbound network).",
    )
    lost_timeout: float = _key(
        "lostTimeout",
        3600.0,
        _seconds,
        "Push mode: seconds without any change in a running worker's files before it is lost.",
    )


FIELDS = dataclasses.fields(QueueConfig)
KEYS = {f.metadata["key"]: f for f in FIELDS}


def _default(f: dataclasses.Field) -> Any:
    if f.default is dataclasses.MISSING:
        return {}  # the one field with a default_factory: userEndpointConfig
    return f.default


def queue_config(plugin: Any) -> QueueConfig:
    """Read and check the queue-config attributes Harvester set on ``plugin``."""
    values = {}
    for f in FIELDS:
        raw = getattr(plugin, f.metadata["key"], _default(f))
        values[f.name] = f.metadata["check"](f.metadata["key"], raw)
    if values["panda_queue"] is None:
        values["panda_queue"] = harvester_queue(plugin)
    if values["mode"] == "push" and (
        values["payload"] or values["nodes"] * values["ranks_per_node"] != 1
    ):
        raise _fail(
            "mode",
            "push runs one PanDA job per worker: one node, one rank, no payload",
        )
    _warn_unknown_keys(plugin)
    return QueueConfig(**values)


def _warn_unknown_keys(plugin: Any) -> None:
    """Log the attributes that are no key of ours: a misspelt key silently takes its default."""
    unknown = sorted(name for name in vars(plugin) if not _known_attribute(name))
    if unknown:
        log.warning("queue config: unknown keys ignored: %s", ", ".join(unknown))


def _known_attribute(name: str) -> bool:
    """A queue-config key, an attribute Harvester sets itself, or a ``gc_`` one of ours."""
    return name in KEYS or name in HARVESTER_ATTRIBUTES or name.startswith("gc_")


def harvester_queue(plugin: Any) -> str | None:
    """The PanDA queue Harvester set on the plugin (queue_config_mapper fills in ``siteName``
    and ``queueName`` = ``siteName[/resourceType]``); None outside Harvester."""
    name = _site_or_queue_name(plugin).split("/")[0]
    if not name:
        return None
    if not TOKEN.fullmatch(name):
        raise _fail("queueName", f"{name!r} is not a PanDA queue name ({TOKEN_WHAT})")
    return name


def _site_or_queue_name(plugin: Any) -> str:
    return getattr(plugin, "siteName", None) or str(getattr(plugin, "queueName", "") or "")


def keys_table() -> str:
    """The queue-config keys as a Markdown table (README's "Harvester plugins" section)."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for f in FIELDS:
        default = _default(f)
        shown = "none" if default in (None, ()) else f"`{default}`"
        rows.append(f"| `{f.metadata['key']}` | {shown} | {f.metadata['doc']} |")
    return "\n".join(rows) + "\n"
