"""Site profiles: find, load, validate (with file:line errors), fill defaults, merge overrides.

A profile is data: adding a site is a new YAML file, never new code.
"""

from __future__ import annotations

import json
import os
from functools import cache, cached_property

from siteagent.errors import ConfigError
from siteagent.profile_path import (  # noqa: F401 (re-exported: where profiles are found)
    MAX_PROFILE_BYTES,
    PROFILE_SUFFIXES,
    builtin_profile_dir,
    find_profile,
    list_profiles,
    read_profile_text,
    search_path,
)
from siteagent.records import record
from siteagent.sections import (
    CheckSection,
    ContainerSection,
    CredentialsSection,
    CvmfsSection,
    Directives,
    EndpointSection,
    EnvironmentSection,
    Limits,
    NodeShape,
    PilotSection,
    ProxySection,
    build_section,
    profile_defaults,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from typing import Any

    import yaml

MAX_YAML_NODES = 100_000  # after alias expansion (a "billion laughs" expands past any cap)
MAX_STRING = 4096  # every string of a profile: free text included


@record(frozen=True)
class Profile:
    """A validated site profile with every default filled in."""

    name: str
    source: str
    data: dict[str, Any]

    @property
    def scheduler(self) -> str:
        return self.data["scheduler"]

    @property
    def launcher(self) -> str:
        return self.data["launcher"]

    @cached_property
    def node(self) -> NodeShape:
        return build_section(NodeShape, self.data["node"])

    @cached_property
    def endpoint(self) -> EndpointSection:
        return build_section(EndpointSection, self.data["endpoint"])

    @cached_property
    def directives(self) -> Directives:
        return build_section(Directives, self.data["directives"])

    @cached_property
    def limits(self) -> Limits:
        return build_section(Limits, self.data["limits"])

    @cached_property
    def proxy(self) -> ProxySection:
        return build_section(ProxySection, self.data["proxy"])

    @cached_property
    def container(self) -> ContainerSection:
        return build_section(ContainerSection, self.data["container"])

    @cached_property
    def cvmfs(self) -> CvmfsSection:
        return build_section(CvmfsSection, self.data["cvmfs"])

    @cached_property
    def environment(self) -> EnvironmentSection:
        return build_section(EnvironmentSection, self.data["environment"])

    @cached_property
    def pilot(self) -> PilotSection:
        return build_section(PilotSection, self.data["pilot"])

    @cached_property
    def credentials(self) -> CredentialsSection:
        return build_section(CredentialsSection, self.data["credentials"])

    @cached_property
    def check(self) -> CheckSection:
        return build_section(CheckSection, self.data["check"])

    @property
    def description(self) -> str:
        return self.data["description"]


@cache
def profile_schema() -> dict[str, Any]:
    """The profile JSON schema, with the scheduler and launcher names of the registries."""
    from importlib import resources

    from siteagent.launchers import launcher_names
    from siteagent.schedulers import scheduler_names

    text = resources.files("siteagent.schemas").joinpath("profile.schema.json").read_text()
    schema = json.loads(text)
    schema["properties"]["scheduler"]["enum"] = list(scheduler_names())
    schema["properties"]["launcher"]["enum"] = list(launcher_names())
    _guard_strings(schema)
    return schema


def _guard_strings(schema: Any) -> None:
    """Every pattern gets the newline guard (``$`` passes ``"...\\n"``) and every string a
    length cap, in place."""
    from siteagent.names import NEWLINE_GUARD

    if isinstance(schema, list):
        for item in schema:
            _guard_strings(item)
        return
    if not isinstance(schema, dict):
        return
    for value in list(schema.values()):
        _guard_strings(value)
    if "pattern" in schema and isinstance(schema["pattern"], str):
        schema.setdefault("allOf", []).append(dict(NEWLINE_GUARD))
    if schema.get("type") == "string":
        schema.setdefault("maxLength", MAX_STRING)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``over`` recursively; lists and scalars are replaced."""
    import copy  # not on a rank's path: its profile comes merged from the cache

    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_profile(name_or_path: str, overrides: dict[str, Any] | None = None) -> Profile:
    """Load, validate and complete a profile; raise ConfigError naming file, line and field."""
    path = find_profile(name_or_path)
    source = os.path.basename(path)
    return parse_profile(read_profile_text(path), source=source, overrides=overrides)


def parse_profile(text: str, source: str, overrides: dict[str, Any] | None = None) -> Profile:
    """A profile from its YAML text: parsed, validated, defaults filled, ``auto`` resolved."""
    return complete_profile(validated_data(text, source, overrides), source)


def validated_data(
    text: str, source: str, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The profile's data, parsed, validated and with every default filled in, but with its
    ``auto`` values still unresolved: the same on every host, so ``profilecache`` can keep it
    for every node (``complete_profile`` makes it this host's)."""
    raw = load_yaml(text, source)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}:1: a site profile must be a YAML mapping")
    if overrides:
        raw = deep_merge(raw, overrides)
    _validate(raw, text, source)
    return deep_merge(profile_defaults(), raw)


def load_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` for files people write: one-line errors with file:line, duplicate
    keys refused, alias expansion and nesting bounded."""
    import yaml  # here, not above: the pilot's cached-profile path never parses YAML

    if len(text) > MAX_PROFILE_BYTES:
        raise ConfigError(f"{source}: longer than 1 MiB")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def _check_nodes(root: yaml.Node, source: str) -> None:
    """Refuse duplicate keys (file:line), recursive aliases and more than MAX_YAML_NODES
    nodes once aliases are expanded (each node counted with its expanded size, once)."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_: set[int] = set()
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        children = _children(node, source)
        if done:
            open_.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            if size[id(node)] > MAX_YAML_NODES:
                line = node.start_mark.line + 1
                raise ConfigError(
                    f"{source}:{line}: invalid YAML: more than {MAX_YAML_NODES} values once "
                    "aliases are expanded"
                )
            continue
        if id(node) in open_:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: invalid YAML: recursive alias")
        open_.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)


def _children(node: yaml.Node, source: str) -> list[yaml.Node]:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if not isinstance(node, yaml.MappingNode):
        return []
    seen: set[str] = set()
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value != "<<":
            if key.value in seen:
                line = key.start_mark.line + 1
                raise ConfigError(f"{source}:{line}: duplicate key '{key.value[:60]}'")
            seen.add(key.value)
    return [n for pair in node.value for n in pair]


def has_auto(data: dict[str, Any]) -> bool:
    """Whether validated profile data has host-dependent ``auto`` values."""
    node = data["node"]
    return "auto" in (node["cores"], node["memory_gb"], node["gpus"], node["gpu_vendor"])


def complete_profile(data: dict[str, Any], source: str, *, checked: bool = False) -> Profile:
    """The Profile of ``validated_data`` (taken over, not copied): ``auto`` values resolved on
    this host, cross-field rules checked. ``checked``: the data passed those rules already and
    holds no ``auto`` value, so they cannot fail now (a cached profile of a site)."""
    auto = has_auto(data)
    if auto:
        _resolve_auto(data)
    if auto or not checked:
        _check_consistency(data, source)
    return Profile(name=data["name"], source=source, data=data)


def _validate(raw: dict[str, Any], text: str, source: str) -> None:
    from jsonschema import Draft202012Validator

    from siteagent.schema_errors import best_error, describe

    error = best_error(Draft202012Validator(profile_schema()).iter_errors(raw))
    if error is None:
        return
    where, problem = describe(error)
    line = _line_of(text, where)
    raise ConfigError(f"{source}:{line}: {where}: {problem}")


def _line_of(text: str, dotted: str) -> int:
    """Line (1-based) of the deepest YAML node along a dotted field path."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return 1
    line = 1
    for part in (p for p in dotted.replace("[", ".").replace("]", "").split(".") if p):
        found = _child(node, part)
        if found is None:
            break
        line, node = found
    return line


def _child(node: Any, part: str) -> tuple[int, Any] | None:
    """``(line, node)`` of a mapping key or a list index below ``node``, None if absent."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        return next(((k.start_mark.line + 1, v) for k, v in node.value if k.value == part), None)
    if isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
        item = node.value[int(part)]
        return item.start_mark.line + 1, item
    return None


def _resolve_auto(data: dict[str, Any]) -> dict[str, Any]:
    """Replace ``auto`` node values with what this machine has (the local profile)."""
    node = data["node"]
    if node["cores"] == "auto":
        node["cores"] = os.cpu_count() or 1
    if node["memory_gb"] == "auto":
        node["memory_gb"] = _memory_gb()
    if "auto" in (node["gpus"], node["gpu_vendor"]):
        _resolve_gpus(node)
    return data


def _memory_gb() -> int:
    """This machine's memory in whole GiB: MemTotal of /proc/meminfo, which is what psutil
    reads on Linux (without importing psutil on a pilot's first start on a host)."""
    try:
        with open("/proc/meminfo") as fh:
            kib = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal:"))
        return kib * 1024 // 2**30
    except (OSError, ValueError, IndexError, StopIteration):
        import psutil

        return int(psutil.virtual_memory().total // 2**30)


def _resolve_gpus(node: dict[str, Any]) -> None:
    """``auto`` GPU count and vendor from what this machine has."""
    from siteagent.gpus import discover_gpus

    found = discover_gpus()
    for key, value in (("gpus", found.count), ("gpu_vendor", found.vendor)):
        if node[key] == "auto":
            node[key] = value


def _check_consistency(data: dict[str, Any], source: str) -> None:
    """Cross-field rules that JSON schema cannot state."""
    from siteagent.schedulers import get_scheduler

    node = data["node"]
    get_scheduler(data["scheduler"]).check_launcher(data["launcher"], source)
    if node["gpus"] > 0 and node["gpu_vendor"] == "none":
        raise ConfigError(f"{source}: node.gpu_vendor: must name the vendor when node.gpus > 0")
    if any(c >= node["cores"] for c in node["reserved_cores"]):
        raise ConfigError(f"{source}: node.reserved_cores: every core must be < node.cores")
    if len(node["reserved_cores"]) >= node["cores"]:  # no core left for a worker's ranks
        raise ConfigError(f"{source}: node.reserved_cores: must leave at least one core")
    _check_queues(data, source)
    _check_container(data, source)
    order = (node.get("gpu_binding") or {}).get("order")
    if isinstance(order, list) and sorted(order) != list(range(_slots(node))):
        raise ConfigError(
            f"{source}: node.gpu_binding.order: must list each of the {_slots(node)} GPU slots once"
        )


def _check_container(data: dict[str, Any], source: str) -> None:
    """The GPU flag is one the chosen runtime has (podman-hpc takes --gpu, not --nv)."""
    from siteagent.pilot.layers.runtimes import RUNTIMES

    runtime, flag = data["container"]["runtime"], data["container"]["gpu_flag"]
    if runtime not in RUNTIMES:  # none: no container, the flag is not used
        return
    allowed = RUNTIMES[runtime].gpu_flags
    if flag not in allowed:
        raise ConfigError(
            f"{source}: container.gpu_flag: '{flag}' is not a {runtime} flag "
            f"(use one of {', '.join(sorted(allowed))})"
        )


def _slots(node: dict[str, Any]) -> int:
    """GPU slots of a node (tiles where the binding is per tile), from profile data."""
    per_tile = (node.get("gpu_binding") or {}).get("format") == "tile"
    return node["gpus"] * (node.get("tiles_per_gpu", 1) if per_tile else 1)


def _check_queues(data: dict[str, Any], source: str) -> None:
    """Queue names once each, the default queue among them, limits within the site's."""
    from siteagent.sections import Limits

    limits = Limits(queues=tuple(data["limits"].get("queues") or ()) or None)
    names = limits.queue_names
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: limits.queues: a queue is listed twice")
    queue = data["directives"].get("queue")
    if names and queue and queue not in names:
        raise ConfigError(f"{source}: directives.queue: '{queue}' is not in limits.queues")
    for q in limits.queue_limits:
        top = q.max_nodes or data["limits"]["max_nodes"]
        if q.min_nodes > top:
            raise ConfigError(f"{source}: limits.queues: {q.name}: min_nodes exceeds max_nodes")
