"""The user_endpoint_config: its JSON schema (the endpoint's security boundary), defaults
from the profile, and the canonical form that makes equal worker shapes share one user endpoint.
"""

from __future__ import annotations

import json
from typing import Any

from siteagent.errors import ConfigError

# Every string that reaches a #SBATCH/#PBS line or worker_init is a whitelist of characters:
# no whitespace, newline, ';', '$', backtick, quote, brace or backslash can pass.
from siteagent.names import (
    CONDA_ENV,
    ENV_DENIED,
    ENV_NAME,
    ENV_VALUE,
    IMAGE,
    REPO,
    WALLTIME,
    string_schema,
)
from siteagent.profiles import Profile
from siteagent.schedulers import scheduler_for
from siteagent.sections import QueueLimits

# The config of site-agent's control tasks: a local provider on the login node.
CONTROL_CONFIG: dict[str, Any] = {"control": True}


def user_config_schema(profile: Profile) -> dict[str, Any]:
    """The JSON schema of user_endpoint_config for this profile (written as
    ``user_config_schema.json``, enforced by the endpoint before rendering).

    It states the site's limits itself (walltime at most ``limits.max_walltime`` and not
    zero, GPUs and cores that fit one node), because a Globus Compute SDK user can send a
    config straight to the endpoint without site-agent's own ``validate``."""
    limits = profile.limits
    props = _shape_properties(profile)
    # a control config runs site-agent's own housekeeping (stopping a worker) on the login node
    props["control"] = {"const": True}
    # the scheduler's own options (account, queue, ...): each scheduler's file says which
    props |= scheduler_for(profile).schema_properties(profile)
    if "queue" in props and limits.queues:
        props["queue"] = {"enum": list(limits.queue_names)}
    required = required_fields(profile)
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"user_endpoint_config for site profile {profile.name}",
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        # a control config stands alone; every other config names what the site requires
        "if": {"required": ["control"]},
        "then": {"maxProperties": 1},
        "else": {"required": required},
    }
    # GPUs and cores of all ranks fit one node: JSON Schema cannot multiply, so one rule per
    # range of ranks_per_node with the same per-rank maximums (allOf may not be empty)
    rules = fit_rules(profile)
    if "queue" in props:
        rules += _queue_node_rules(profile)
    if rules:
        schema["allOf"] = rules
    return schema


def _shape_properties(profile: Profile) -> dict[str, Any]:
    """Schema properties of the worker's shape and software, within the site's limits."""
    node, limits = profile.node, profile.limits
    threads = node.usable_cores * node.threads_per_core  # >= 1: a profile leaves a core
    return {
        "nodes": {"type": "integer", "minimum": 1, "maximum": limits.max_nodes},
        "ranks_per_node": {"type": "integer", "minimum": 1, "maximum": threads},
        "cores_per_rank": {"type": "integer", "minimum": 1, "maximum": threads},
        "gpus_per_rank": {"type": "integer", "minimum": 0, "maximum": node.gpu_slots},
        "walltime": walltime_schema(limits.max_walltime),
        "max_blocks": {
            "type": "integer",
            "minimum": 1,
            "maximum": profile.endpoint.max_blocks,
        },
        "container": string_schema(IMAGE),
        "cvmfs_repos": {
            "type": "array",
            "maxItems": 32,
            "uniqueItems": True,
            "items": string_schema(REPO),
        },
        "conda_env": string_schema(CONDA_ENV),
        "env": {
            "type": "object",
            "maxProperties": 32,
            "propertyNames": {
                "allOf": [
                    string_schema(ENV_NAME),
                    # the loader, shells, interpreters and site-agent's own variables
                    {"not": {"pattern": ENV_DENIED}},
                ]
            },
            "additionalProperties": string_schema(ENV_VALUE),
        },
    }


def _queue_node_rules(profile: Profile) -> list[dict[str, Any]]:
    """JSON-schema rules for the node limits of each queue that has its own: with that
    queue, ``nodes`` is within them (and must be given when one node is too few).
    Walltime limits per queue are checked by ``validate`` (a schema cannot compare times)."""
    rules = []
    for q in profile.limits.queue_limits:
        top = _top_nodes(q)
        if q.min_nodes == 1 and top is None:
            continue
        # an integer already (the site-wide nodes property)
        nodes: dict[str, Any] = {"minimum": q.min_nodes}
        if top is not None:
            nodes["maximum"] = top
        then: dict[str, Any] = {"properties": {"nodes": nodes}}
        if q.min_nodes > 1:
            then["required"] = ["nodes"]
        cond = {"required": ["queue"], "properties": {"queue": {"const": q.name}}}
        rules.append({"if": cond, "then": then})
    return rules


def walltime_schema(max_walltime: str) -> dict[str, Any]:
    """``HH:MM:SS``, not zero (Slurm reads ``--time=0`` as no limit) and at most the site's
    limit, as patterns the endpoint's own validator enforces."""
    return string_schema(
        WALLTIME,
        allOf=[
            # "type": a number is refused as one, not as a zero walltime
            {
                "not": {"type": "string", "pattern": "^0+:00:00$"},
                "x-problem": "must be longer than 00:00:00",
            },
            {
                "pattern": at_most_pattern(walltime_seconds(max_walltime)),
                "x-problem": "{value} exceeds the site limit " + max_walltime,
            },
        ],
    )


def at_most_pattern(limit: int) -> str:
    """A pattern of the ``H:MM:SS`` walltimes of at most ``limit`` seconds."""
    h, rest = divmod(limit, 3600)
    m, s = divmod(rest, 60)

    def below(n: int, width: int) -> str:  # the numbers 0 .. n-1, zero-padded
        return "(" + "|".join(f"{i:0{width}d}" for i in range(n)) + ")"

    mm_ss = "[0-5][0-9]:[0-5][0-9]"
    alts = [f"0*{below(h, 1)}:{mm_ss}"] if h else []  # 0* takes any zero padding
    if m:
        alts.append(f"0*{h}:{below(m, 2)}:[0-5][0-9]")
    alts.append(f"0*{h}:{m:02d}:{below(s + 1, 2)}")
    return "^(" + "|".join(alts) + ")$"


def fit_rules(profile: Profile) -> list[dict[str, Any]]:
    """``if ranks_per_node in [lo, hi] then gpus_per_rank <= G and cores_per_rank <= C``, one
    rule per range of ranks with the same G and C (a few dozen for 256 threads)."""
    node = profile.node
    threads = node.usable_cores * node.threads_per_core
    slots = node.gpu_slots
    rules = []
    lo = 2
    while lo <= threads:
        per_rank = (slots // lo, threads // lo)
        hi = lo
        while hi < threads and (slots // (hi + 1), threads // (hi + 1)) == per_rank:
            hi += 1
        ranks = f"{lo}" if lo == hi else f"{lo}-{hi}"
        where = f"with {ranks} ranks per node a {profile.name} node"
        rules.append(
            {
                "if": {
                    "properties": {"ranks_per_node": {"minimum": lo, "maximum": hi}},
                    "required": ["ranks_per_node"],
                },
                "then": {
                    "properties": {
                        "gpus_per_rank": {
                            "maximum": per_rank[0],
                            "x-problem": f"{where} ({slots} GPUs) has at most "
                            f"{per_rank[0]} per rank",
                        },
                        "cores_per_rank": {
                            "maximum": per_rank[1],
                            "x-problem": f"{where} ({threads} hardware threads) has at "
                            f"most {per_rank[1]} per rank",
                        },
                    }
                },
            }
        )
        lo = hi + 1
    return rules


def integer_fields(profile: Profile) -> list[str]:
    """The options that must be whole numbers (JSON Schema's ``integer`` admits ``1.0``)."""
    props = user_config_schema(profile)["properties"]
    return [name for name, p in props.items() if p.get("type") == "integer"]


def required_fields(profile: Profile) -> list[str]:
    """Options a worker config must name because the profile has no default for them."""
    return scheduler_for(profile).required_fields(profile)


def defaults(profile: Profile) -> dict[str, Any]:
    """Values used for options the submitter leaves out."""
    directives = profile.directives
    out: dict[str, Any] = {
        "nodes": 1,
        "ranks_per_node": 1,
        "gpus_per_rank": 0,
        "walltime": "01:00:00",
        "max_blocks": profile.endpoint.max_blocks,
        "cvmfs_repos": list(profile.cvmfs.repositories),
        "env": {},
    }
    for name in scheduler_for(profile).fields:
        if directives.get(name):
            out[name] = directives.get(name)
    return out


def default_cores_per_rank(profile: Profile, ranks_per_node: int) -> int:
    """The node's usable cores shared evenly among its ranks."""
    return max(profile.node.usable_cores // ranks_per_node, 1)


def walltime_seconds(value: str) -> int:
    """``H:MM:SS`` (hours may exceed 24) in seconds."""
    h, m, s = (int(x) for x in value.split(":"))
    return h * 3600 + m * 60 + s


def format_walltime(seconds: int) -> str:
    """Seconds as ``HH:MM:SS``, the canonical walltime."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def validate(profile: Profile, config: dict[str, Any]) -> None:
    """Raise ConfigError with one line naming the first bad field of ``config``."""
    from jsonschema import Draft202012Validator

    from siteagent.schema_errors import best_error, describe

    if not isinstance(config, dict):
        raise ConfigError("user_endpoint_config: must be a JSON object")
    if "control" in config and len(config) > 1:
        raise ConfigError("user_endpoint_config: control: takes no other option")
    for name in integer_fields(profile):
        value = config.get(name)
        if isinstance(value, float):  # 1.0 is an "integer" to JSON Schema, not to a directive
            raise ConfigError(
                f"user_endpoint_config: {name}: must be a whole number, not {value!r}"
            )
    schema = user_config_schema(profile)
    # the node-fit and per-queue rules are the endpoint's; here _check_shape says the same
    # with the numbers (the defaults merged in) and which queue's limit
    schema.pop("allOf", None)
    error = best_error(Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        where, problem = describe(error)
        raise ConfigError(f"user_endpoint_config: {where}: {problem}")
    if "control" in config:
        return
    _check_shape(profile, config)


def _check_shape(profile: Profile, config: dict[str, Any]) -> None:
    """Rules across fields, which a JSON schema cannot state."""
    node, limits = profile.node, profile.limits
    merged = defaults(profile) | config
    ranks, gpus = merged["ranks_per_node"], merged["gpus_per_rank"]
    if ranks * gpus > node.gpu_slots:
        raise ConfigError(
            f"user_endpoint_config: gpus_per_rank: {ranks} ranks x {gpus} GPUs needs "
            f"{ranks * gpus} per node, but a {profile.name} node has {node.gpu_slots}"
        )
    threads = node.usable_cores * node.threads_per_core
    cores = merged.get("cores_per_rank", default_cores_per_rank(profile, ranks))
    if ranks * cores > threads:
        raise ConfigError(
            f"user_endpoint_config: cores_per_rank: {ranks} ranks x {cores} "
            f"cores exceeds the {threads} hardware threads of a {profile.name} node"
        )
    # the schema checked a given walltime (not zero, within the limit), not the default
    if walltime_seconds(merged["walltime"]) > walltime_seconds(limits.max_walltime):
        raise ConfigError(
            f"user_endpoint_config: walltime: {merged['walltime']} exceeds the site limit "
            f"{limits.max_walltime}"
        )
    _check_queue_limits(profile, merged)
    scheduler_for(profile).check_request(profile, merged)


def _check_queue_limits(profile: Profile, merged: dict[str, Any]) -> None:
    """The node and walltime limits of the chosen queue, where ``limits.queues`` has them."""
    q = profile.limits.queue(merged.get("queue"))
    if q is None:
        return
    nodes, walltime = merged["nodes"], merged["walltime"]
    _check_queue_nodes(q, nodes)
    limit = _walltime_limit(q, nodes)
    if limit and walltime_seconds(walltime) > walltime_seconds(limit):
        raise ConfigError(
            f"user_endpoint_config: walltime: {walltime} exceeds queue {q.name}'s limit "
            f"{limit} for {nodes} node{'s' if nodes != 1 else ''}"
        )


def _check_queue_nodes(q: QueueLimits, nodes: int) -> None:
    """The chosen queue takes between its least and most nodes."""
    top = _top_nodes(q)
    if nodes < q.min_nodes or (top is not None and nodes > top):
        span = f"{q.min_nodes}-{top}" if top is not None else f"at least {q.min_nodes}"
        raise ConfigError(
            f"user_endpoint_config: nodes: {nodes} is outside queue {q.name}'s {span} nodes"
        )


def _top_nodes(q: QueueLimits) -> int | None:
    """The most nodes a queue takes: its own maximum, else its largest walltime bin's."""
    return q.max_nodes or (q.walltime_bins[-1][0] if q.walltime_bins else None)


def _walltime_limit(q: QueueLimits, nodes: int) -> str | None:
    """A queue's walltime limit for ``nodes``: the first bin that holds them, else its own."""
    return next((wt for bin_nodes, wt in q.walltime_bins if nodes <= bin_nodes), q.max_walltime)


def canonicalize(profile: Profile, config: dict[str, Any]) -> dict[str, Any]:
    """Validate, fill defaults and normalise, so equal worker shapes give equal configs.

    The result is what the submitter sends: the endpoint renders one user endpoint per
    distinct config, so ``{"walltime": "1:00:00"}`` and ``{"walltime": "01:00:00"}``
    must not start two.
    """
    validate(profile, config)
    if "control" in config:
        return dict(CONTROL_CONFIG)
    out = scheduler_for(profile).canonicalize(defaults(profile) | config)
    out["walltime"] = format_walltime(walltime_seconds(out["walltime"]))
    out["cvmfs_repos"] = sorted(set(out["cvmfs_repos"]))
    if "cores_per_rank" not in out:
        out["cores_per_rank"] = default_cores_per_rank(profile, out["ranks_per_node"])
    # sort keys (env's too): the JSON text, and so its hash, is the same for equal shapes
    return json.loads(json.dumps(out, sort_keys=True))


def config_key(config: dict[str, Any]) -> str:
    """Stable text key of a canonical config (for grouping and caching)."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))
