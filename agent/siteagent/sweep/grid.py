"""The sweep's grid: ``--grid field=v1,v2`` words and a YAML file, expanded into points, each
checked against the site's user_endpoint_config schema.

A grid file::

    grid:                      # field: list of values (a cartesian product)
      ranks_per_node: [1, 2]
      container: [none, docker://ghcr.io/org/img:1]
    config:                    # fields every point shares
      walltime: "00:20:00"
    constraints:               # expressions over the point's (canonical) fields
      - ranks_per_node * cores_per_rank <= 64

A point that fails the site's schema or a constraint is *skipped* with the reason; a field the
site does not know, a value of the wrong type or an empty grid is bad input (``ConfigError``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from siteagent.errors import ConfigError, SiteAgentError
from siteagent.profiles import Profile
from siteagent.sweep.constraints import evaluate, names

# `--grid cvmfs_repos=atlas.cern.ch+sft.cern.ch,none`: '+' joins the items of one list value
LIST_SEP = "+"


@dataclass(frozen=True)
class Point:
    """One shape to measure: the grid's own values and the canonical config they give."""

    values: dict[str, Any]
    config: dict[str, Any]

    @property
    def key(self) -> str:
        from siteagent.userconfig import config_key

        return config_key(self.config)

    def label(self) -> str:
        return " ".join(f"{k}={_show(v)}" for k, v in self.values.items()) or "(defaults)"


@dataclass(frozen=True)
class Skipped:
    values: dict[str, Any]
    reason: str


@dataclass
class Grid:
    """Fields and their values, shared config, and constraints, before expansion."""

    axes: dict[str, list[Any]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    constraints: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        n = 1
        for values in self.axes.values():
            n *= len(values)
        return n


def _show(value: Any) -> str:
    if isinstance(value, list):
        return LIST_SEP.join(map(str, value)) or "none"
    return str(value)


def fields(profile: Profile) -> dict[str, dict[str, Any]]:
    """The user_endpoint_config fields a grid may vary on this site, with their schemas."""
    from siteagent.userconfig import user_config_schema

    props = dict(user_config_schema(profile)["properties"])
    props.pop("control", None)
    return props


def _field_schema(profile: Profile, name: str, where: str) -> dict[str, Any]:
    known = fields(profile)
    if name not in known:
        raise ConfigError(
            f"{where}: {name}: not a user_endpoint_config field of site {profile.name} "
            f"(known: {', '.join(sorted(known))})"
        )
    return known[name]


def parse_word(profile: Profile, schema: dict[str, Any], name: str, text: str, where: str) -> Any:
    """One value of a ``--grid`` word, typed as the field's schema says."""
    parse = _WORD_PARSERS.get(schema.get("type", ""), _string_word)
    return parse(text, f"{where}: {name}")


def _integer_word(text: str, where: str) -> int:
    if not text.strip().isdigit():
        raise ConfigError(f"{where}: '{text}' is not a whole number")
    return int(text)


def _array_word(text: str, where: str) -> list[str]:
    return [] if text == "none" else [v for v in text.split(LIST_SEP) if v]


def _object_word(text: str, where: str) -> Any:
    raise ConfigError(f"{where}: a mapping; give it in a grid file (--grid-file)")


def _string_word(text: str, where: str) -> str:
    if not text:
        raise ConfigError(f"{where}: empty value")
    return text


# schema type -> parser of one --grid value (other types: a non-empty string)
_WORD_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "integer": _integer_word,
    "array": _array_word,
    "object": _object_word,
}


def parse_grid_words(profile: Profile, words: list[str]) -> dict[str, list[Any]]:
    """``["nodes=1,2", "container=none,IMG"]`` -> ``{"nodes": [1, 2], "container": [...]}``."""
    axes: dict[str, list[Any]] = {}
    for word in words:
        name, values = _grid_word(profile, word, axes)
        axes[name] = values
    return axes


def _grid_word(profile: Profile, word: str, axes: dict[str, list[Any]]) -> tuple[str, list[Any]]:
    """One ``FIELD=V1,V2`` word: the field and its values (a field in ``axes`` is given twice)."""
    name, values = _split_word(word)
    schema = _field_schema(profile, name, "--grid")
    if name in axes:
        raise ConfigError(f"--grid: {name}: given twice")
    if not values.strip():
        raise ConfigError(f"--grid: {name}: no values")
    parsed = [parse_word(profile, schema, name, v.strip(), "--grid") for v in values.split(",")]
    return name, _unique(parsed)


def _split_word(word: str) -> tuple[str, str]:
    """``FIELD`` and ``V1,V2`` of a ``--grid`` word."""
    name, eq, values = word.partition("=")
    if not eq or not name.strip():
        raise ConfigError(f"--grid: '{word}' is not FIELD=V1,V2,...")
    return name.strip(), values


def _unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def load_grid_file(profile: Profile, path: Path) -> Grid:
    """Read a grid file (see the module docstring); errors name the file and the key."""
    where = str(path)
    data = _read_mapping(path)
    grid = Grid()
    grid.axes = _axes(profile, data.get("grid") or {}, where)
    grid.config = _file_config(profile, data.get("config") or {}, where)
    grid.constraints = _file_constraints(data.get("constraints") or [], where)
    return grid


def _file_config(profile: Profile, config: Any, where: str) -> dict[str, Any]:
    """The file's ``config:``: fixed fields of the site's schema."""
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: config: must be a mapping of user_endpoint_config fields")
    _check_fields(profile, config, f"{where}: config")
    return dict(config)


def _check_fields(profile: Profile, config: dict[str, Any], where: str) -> None:
    """Each key of ``config`` is a field of the site's schema."""
    for name in config:
        _field_schema(profile, str(name), where)


def _file_constraints(constraints: Any, where: str) -> list[str]:
    """The file's ``constraints:``: a list of expressions."""
    if not isinstance(constraints, list) or not all(isinstance(c, str) for c in constraints):
        raise ConfigError(f"{where}: constraints: must be a list of expressions")
    return list(constraints)


def _read_mapping(path: Path) -> dict[str, Any]:
    """The grid file's top-level mapping, with only the keys a grid file has."""
    data = _load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping with 'grid' (and 'config', 'constraints')")
    unknown = set(data) - {"grid", "config", "constraints"}
    if unknown:
        raise ConfigError(f"{path}: {sorted(unknown)[0]}: unknown key (grid, config, constraints)")
    return data


def _load_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"--grid-file: cannot read {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None


def _axes(profile: Profile, axes: Any, where: str) -> dict[str, list[Any]]:
    """The file's ``grid:``: each field of the site's schema and its values, typed."""
    if not isinstance(axes, dict):
        raise ConfigError(f"{where}: grid: must map fields to lists of values")
    return {str(name): _axis(profile, str(name), values, where) for name, values in axes.items()}


def _axis(profile: Profile, name: str, values: Any, where: str) -> list[Any]:
    """One field's values in the file: a non-empty list, each of the field's type."""
    schema = _field_schema(profile, name, f"{where}: grid")
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: grid.{name}: must be a non-empty list of values")
    for value in values:
        _check_type(schema, value, f"{where}: grid.{name}")
    return _unique(values)


_TYPES = {"integer": int, "string": str, "array": list, "object": dict}


def _check_type(schema: dict[str, Any], value: Any, where: str) -> None:
    """A value of the wrong kind is bad input; a value out of the site's range is a skipped
    point (the schema check of each point says why)."""
    want = _TYPES.get(schema.get("type", ""))
    if want is not None and (not isinstance(value, want) or isinstance(value, bool)):
        raise ConfigError(f"{where}: {value!r} is not {_kind(schema)}")


def _kind(schema: dict[str, Any]) -> str:
    """The schema's type in words: ``a whole number``, ``a string``..."""
    return "a whole number" if schema["type"] == "integer" else f"a {schema['type']}"


def build_grid(
    profile: Profile,
    words: list[str],
    grid_file: Path | None = None,
    config: dict[str, Any] | None = None,
) -> Grid:
    """The grid from a file (if any), with ``--grid`` words and ``--config`` on top."""
    grid = load_grid_file(profile, grid_file) if grid_file else Grid()
    grid.axes.update(parse_grid_words(profile, words))
    config = config or {}
    _check_fields(profile, config, "--config")
    grid.config.update(config)
    if not grid.axes:
        raise ConfigError("--grid: empty grid: give at least one FIELD=V1,V2 (or a --grid-file)")
    _check_constraint_fields(profile, grid.constraints)
    return grid


def _check_constraint_fields(profile: Profile, constraints: list[str]) -> None:
    """Every name a constraint uses is a field of the site's schema."""
    known = set(fields(profile))
    for c in constraints:
        unknown = _unknown_name(c, known)
        if unknown is not None:
            raise ConfigError(
                f"constraints: {c!r}: {unknown}: not a user_endpoint_config field of site "
                f"{profile.name} (known: {', '.join(sorted(known))})"
            )


def _unknown_name(constraint: str, known: set[str]) -> str | None:
    """A name ``constraint`` uses that is not in ``known``."""
    return next((name for name in names(constraint) if name not in known), None)


def _false_constraint(constraints: list[str], config: dict[str, Any]) -> str | None:
    """The first constraint that is false for ``config``."""
    return next((c for c in constraints if not evaluate(c, config)), None)


def _point(profile: Profile, grid: Grid, values: dict[str, Any]) -> Point | Skipped:
    """One combination: a point if the site's schema and every constraint allow it."""
    from siteagent.userconfig import canonicalize

    try:
        config = canonicalize(profile, grid.config | values)
    except SiteAgentError as err:
        return Skipped(values, str(err).removeprefix("user_endpoint_config: "))
    failed = _false_constraint(grid.constraints, config)
    if failed is not None:
        return Skipped(values, f"constraint {failed!r} is false")
    return Point(values, config)


def expand(profile: Profile, grid: Grid) -> tuple[list[Point], list[Skipped]]:
    """Every combination, validated: the points to run (equal canonical configs once) and the
    skipped ones with the reason."""
    names = list(grid.axes)
    points: list[Point] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for combo in itertools.product(*(grid.axes[n] for n in names)):
        point = _point(profile, grid, dict(zip(names, combo, strict=True)))
        if isinstance(point, Skipped):
            skipped.append(point)
            continue
        if point.key in seen:
            continue  # two spellings of one shape (e.g. walltime 1:00:00 and 01:00:00)
        seen.add(point.key)
        points.append(point)
    return points, skipped
