"""The plugins' queue-config keys, validated once, with one clear error naming the key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from siteagent.errors import ConfigError

UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
TOKEN = re.compile(r"^[A-Za-z0-9_.,:/@+=-]{1,256}$")
TOKEN_WHAT = "words of letters, digits and _.,:/@+=-"
# the payload is the admin's own command line: any printable words, each shell-quoted
PAYLOAD_WORD = re.compile(r"^[^\x00-\x1f\x7f]{1,4096}$")

# where tasks go: the Globus Compute service (production) or the engine in this process
BACKENDS = ("globus", "local-engine")

# queue-config key -> (attribute, default)
KEYS: dict[str, tuple[str, Any]] = {
    "endpointId": ("endpoint_id", None),
    "site": ("site", "local"),
    "pandaQueue": ("panda_queue", None),
    "gpusPerWorker": ("gpus_per_worker", 0),
    "ranksPerNode": ("ranks_per_node", 1),
    "nodesPerWorker": ("nodes", 1),
    "container": ("container", None),
    "cvmfsRepos": ("cvmfs_repos", None),
    "condaEnv": ("conda_env", None),
    "userEndpointConfig": ("user_endpoint_config", None),
    "pilotArgs": ("pilot_args", None),
    "payload": ("payload", None),
    "lostAfterSeconds": ("lost_after_seconds", 7200),
    "resultTimeout": ("result_timeout", 30.0),
    "batchSize": ("batch_size", 128),
    "backend": ("backend", "globus"),
    "workdir": ("workdir", None),
}


@dataclass(frozen=True)
class QueueConfig:
    endpoint_id: str | None
    site: str
    panda_queue: str | None
    gpus_per_worker: int
    ranks_per_node: int
    nodes: int
    container: str | None
    cvmfs_repos: tuple[str, ...] | None
    conda_env: str | None
    user_endpoint_config: dict[str, Any] = field(default_factory=dict)
    pilot_args: tuple[str, ...] = ()
    payload: tuple[str, ...] = ()
    lost_after_seconds: float = 7200
    result_timeout: float = 30.0
    batch_size: int = 128
    backend: str = "globus"
    workdir: str | None = None


def _int(name: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"queue config: {name}: must be a whole number from {low} to {high}")
    return value


def _words(name: str, value: Any, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(v, str) and pattern.match(v) for v in value
    ):
        raise ConfigError(f"queue config: {name}: must be a list of {what}")
    return tuple(value)


def queue_config(plugin: Any) -> QueueConfig:
    """Read and check the queue-config attributes Harvester set on ``plugin``."""
    raw = {attr: getattr(plugin, key, default) for key, (attr, default) in KEYS.items()}
    if raw["endpoint_id"] is not None and not (
        isinstance(raw["endpoint_id"], str) and UUID.match(raw["endpoint_id"])
    ):
        raise ConfigError("queue config: endpointId: must be a UUID")
    if not isinstance(raw["site"], str) or not re.match(r"^[A-Za-z0-9_./-]{1,256}$", raw["site"]):
        raise ConfigError("queue config: site: must be a profile name or path")
    if raw["panda_queue"] is not None and not (
        isinstance(raw["panda_queue"], str) and TOKEN.match(raw["panda_queue"])
    ):
        raise ConfigError("queue config: pandaQueue: must be a PanDA queue name")
    if raw["backend"] not in BACKENDS:
        raise ConfigError("queue config: backend: must be 'globus' or 'local-engine'")
    if raw["workdir"] is not None and not isinstance(raw["workdir"], str):
        raise ConfigError("queue config: workdir: must be a directory path")
    for key in ("lostAfterSeconds", "resultTimeout"):
        value = raw[KEYS[key][0]]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"queue config: {key}: must be a positive number of seconds")
    uec = raw["user_endpoint_config"] or {}
    if not isinstance(uec, dict):
        raise ConfigError("queue config: userEndpointConfig: must be a JSON object")
    return QueueConfig(
        endpoint_id=raw["endpoint_id"],
        site=raw["site"],
        panda_queue=raw["panda_queue"],
        gpus_per_worker=_int("gpusPerWorker", raw["gpus_per_worker"], 0, 4096),
        ranks_per_node=_int("ranksPerNode", raw["ranks_per_node"], 1, 4096),
        nodes=_int("nodesPerWorker", raw["nodes"], 1, 100000),
        container=raw["container"],
        cvmfs_repos=_words("cvmfsRepos", raw["cvmfs_repos"], TOKEN, TOKEN_WHAT)
        if raw["cvmfs_repos"] is not None
        else None,
        conda_env=raw["conda_env"],
        user_endpoint_config=dict(uec),
        pilot_args=_words("pilotArgs", raw["pilot_args"], TOKEN, TOKEN_WHAT),
        payload=_words("payload", raw["payload"], PAYLOAD_WORD, "printable words (no newline)"),
        lost_after_seconds=float(raw["lost_after_seconds"]),
        result_timeout=float(raw["result_timeout"]),
        batch_size=_int("batchSize", raw["batch_size"], 1, 10000),
        backend=raw["backend"],
        workdir=raw["workdir"],
    )
