"""What ``site-agent profiles list`` warns about: profiles that look fine one by one but
confuse together (a ``name:`` that is not the file's, two sites sharing one endpoint
directory, a file hidden by another of the same name earlier on the search path)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from siteagent.profiles import PROFILE_SUFFIXES, search_path


def hidden_profiles(shown: dict[str, Path]) -> list[str]:
    """Profile files that ``shown`` (name -> the file used) hides."""
    dirs = [Path(d) for d in search_path()]
    return [line for d in dirs if d.is_dir() for line in _hidden_in(d, shown)]


def _hidden_in(directory: Path, shown: dict[str, Path]) -> list[str]:
    """The profile files in ``directory`` that ``shown`` hides."""
    return [
        f"{p} is hidden by {shown[p.stem]} (earlier on the search path)"
        for p in sorted(directory.iterdir())
        if p.suffix in PROFILE_SUFFIXES and p.stem in shown and p != shown[p.stem]
    ]


def problems(rows: list[dict[str, Any]]) -> list[str]:
    """One line per problem among the listed profiles (rows of ``profiles list --json``)."""
    valid = [r for r in rows if not r.get("error")]
    out = [_name_differs(r) for r in valid if r["profile_name"] != r["name"]]
    out += _shared_endpoints(valid)
    shown = {r["name"]: Path(r["path"]) for r in rows}
    return out + hidden_profiles(shown)


def _name_differs(row: dict[str, Any]) -> str:
    """The problem of a profile whose ``name:`` is not its file's."""
    return (
        f"{row['path']}: name: '{row['profile_name']}' differs from the file name "
        f"'{row['name']}' (--site {row['name']} loads it; messages call it "
        f"'{row['profile_name']}')"
    )


def _shared_endpoints(rows: list[dict[str, Any]]) -> list[str]:
    """One line per endpoint name more than one profile uses."""
    by_endpoint: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_endpoint[r["endpoint"]].append(r["name"])
    return [
        f"profiles {', '.join(names)} share the endpoint name '{endpoint}' (one "
        "endpoint directory): give each its own endpoint.name"
        for endpoint, names in sorted(by_endpoint.items())
        if len(names) > 1
    ]
