"""CVMFS repositories and cvmfsexec's ``default.local``: what ``site-agent install`` and the
pilot's CVMFS layer (``siteagent.pilot.layers.cvmfs``) share.

Repositories are named one by one (``atlas.cern.ch``) or by a shipped list (``atlas``, the
``*.repos`` files of ``cvmfs/``). ``default.local`` carries the site proxy, the quota and the
node-local cache; it is rendered here and nowhere else.
"""

from __future__ import annotations

import os

from siteagent.errors import ConfigError
from siteagent.fileio import read_text
from siteagent.names import Pattern
from siteagent.profiles import Profile

REPO = Pattern(r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9-]+)+$")
LIST_NAME = Pattern(r"^[a-z][a-z0-9_-]{0,31}$")
CVMFS_VALUE = Pattern(r"^[A-Za-z0-9_.~%:@/,;|+=-]{1,1024}$")


def data_dir() -> str:
    """The directory of the shipped ``cvmfs/`` files: inside the wheel, or the source
    checkout's ``cvmfs/``."""
    packaged = os.path.join(os.path.dirname(__file__), "cvmfs_data")
    if os.path.isdir(packaged):
        return packaged
    package = os.path.dirname(os.path.realpath(__file__))  # CHECKOUT/agent/siteagent
    return os.path.join(os.path.dirname(os.path.dirname(package)), "cvmfs")


def repository_list(name: str) -> list[str]:
    """Repositories of a shipped list (``atlas``, ``epic``)."""
    path = os.path.join(data_dir(), f"{name}.repos")
    if not LIST_NAME.fullmatch(name) or not os.path.isfile(path):
        raise ConfigError(
            f"cvmfs: '{name}' is neither a repository name nor a list "
            f"(lists: {', '.join(_shipped_lists())})"
        )
    return _entries(read_text(path))


def _shipped_lists() -> list[str]:
    # what the glob "*.repos" matched, named by stem
    return sorted(os.path.splitext(n)[0] for n in os.listdir(data_dir()) if n.endswith(".repos"))


def _entries(text: str) -> list[str]:
    """The entries of a list file: its lines without comments and blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def _expand(item: str) -> list[str]:
    """One repository, or the repositories of a shipped list; each checked."""
    names = [item] if "." in item else repository_list(item)
    for repo in names:
        _check_repository(repo)
    return names


def _check_repository(repo: str) -> None:
    if not REPO.fullmatch(repo) or len(repo) > 127:
        raise ConfigError(f"cvmfs: '{repo}' is not a valid repository name")


def parse_repositories(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"atlas,sft.cern.ch"`` -> repositories, lists expanded, order kept, duplicates dropped."""
    items = value.split(",") if isinstance(value, str) else list(value)
    repos = (repo for item in items if item.strip() for repo in _expand(item.strip()))
    return tuple(dict.fromkeys(repos))


def site_http_proxy(profile: Profile) -> str:
    """The proxy CVMFS fetches through on compute nodes, or DIRECT."""
    return profile.proxy.http or profile.proxy.https or "DIRECT"


def _value(name: str, value: str) -> str:
    # default.local is read by cvmfs's shell-like parser: no quote, space or $
    if not CVMFS_VALUE.fullmatch(value):
        raise ConfigError(f"cvmfs: {name}: {value!r} has characters default.local cannot hold")
    return value


def render_default_local(
    profile: Profile, repositories: tuple[str, ...], cache_base: str | None = None
) -> str:
    """``default.local`` for cvmfsexec from ``cvmfs/default.local.in``: the repositories, the
    site proxy, the quota and, when given, the cache base (a line whose value is not given is
    left out). The one renderer of this file: ``site-agent install`` and the pilot use it."""
    from siteagent import __version__

    values = {
        "@VERSION@": __version__,
        "@SITE@": profile.name,
        "@REPOSITORIES@": _value("CVMFS_REPOSITORIES", ",".join(repositories)),
        "@HTTP_PROXY@": _value("CVMFS_HTTP_PROXY", site_http_proxy(profile)),
        "@QUOTA_MB@": _value("CVMFS_QUOTA_LIMIT", str(profile.cvmfs.quota_mb)),
        "@CACHE_BASE@": _value("CVMFS_CACHE_BASE", cache_base) if cache_base else None,
    }
    return _render(read_text(os.path.join(data_dir(), "default.local.in")), values)


def _render(template: str, values: dict[str, str | None]) -> str:
    """``template`` with its placeholders filled, lines with a value not given left out."""
    lines = (_fill(line, values) for line in template.splitlines())
    return "\n".join(line for line in lines if line) + "\n"


def _fill(line: str, values: dict[str, str | None]) -> str:
    """``line`` with its placeholders filled; empty when one of them has no value."""
    for key, value in values.items():
        if key in line:
            line = line.replace(key, value) if value is not None else ""
    return line
