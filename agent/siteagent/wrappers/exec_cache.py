"""``site-agent exec`` without click, jsonschema or Jinja when it has run before.

``exec`` runs once per task, and all it decides is which rendered wrapper to exec with which
flags. The first call (click, the profile, the request's validation, the wrapper's render)
records that decision under the profile's cache key and the request; later calls with the
same command line find it here and exec the wrapper at once. Anything this parser does not
recognise (help, a bad value, an unknown option before ``--``) goes to click, so its
messages stay the only ones.

An entry is the wrapper's path and the launcher's name joined by a NUL (which no path
holds), not JSON: ``json`` imports ``re`` and with it ``enum``, ``functools`` and
``collections``, a quarter of a cached call's CPU.
"""

from __future__ import annotations

import os

from siteagent.fileio import read_text

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing per task
if TYPE_CHECKING:
    from pathlib import Path

INT_FLAGS = ("--nodes", "--ranks-per-node", "--cores-per-rank", "--gpus-per-rank")
DEFAULTS = {"nodes": 1, "ranks_per_node": 1, "gpus_per_rank": 0}


def parse(argv: list[str]) -> tuple[str, dict[str, int], list[str]] | None:
    """``(site, request, command)`` of a plain ``exec`` command line, None for anything
    else (click then parses it and says what is wrong)."""
    rest = list(argv)
    values = _take_options(rest)
    if values is None:
        return None
    if rest[:1] == ["--"]:
        rest.pop(0)
    site = values.pop("--site", None)
    request = _request(values)
    if not site or not rest or request is None:
        return None
    return site, request, rest


def _request(values: dict[str, str]) -> dict[str, int] | None:
    """The request the integer options make, defaults filled; None if one is not a count."""
    if not all(v.isdigit() for v in values.values()):
        return None
    return {**DEFAULTS, **{f[2:].replace("-", "_"): int(v) for f, v in values.items()}}


def _take_options(rest: list[str]) -> dict[str, str] | None:
    """The leading options of ``rest`` (taken from it) by flag; None for an unknown or
    repeated option, or one without its value."""
    values: dict[str, str] = {}
    while rest and rest[0].startswith("-") and rest[0] != "--":
        flag, eq, value = rest.pop(0).partition("=")
        if flag not in ("--site", *INT_FLAGS) or flag in values or not (eq or rest):
            return None
        values[flag] = value if eq else rest.pop(0)
    return values


def entry_path(site: str, request: dict[str, int]) -> str | None:
    """Where the decision for ``site`` and ``request`` is kept; None if the profile is not
    found (click says so)."""
    from siteagent.errors import SiteAgentError
    from siteagent.fileio import sha256_text
    from siteagent.profilecache import cache_dir, profile_key

    try:
        _, key = profile_key(site)
    except SiteAgentError:
        return None
    fields = "".join(f"\0{field}={request[field]}" for field in sorted(request))
    return os.path.join(cache_dir("exec"), f"{sha256_text(key + fields)[:32]}")


def wrapper_args(wrapper: str, request: dict[str, int], command: list[str]) -> list[str]:
    """The wrapper's command line for ``request`` (``cores_per_rank`` only when given)."""
    args = [wrapper]
    for field in ("nodes", "ranks_per_node", "gpus_per_rank", "cores_per_rank"):
        if field in request:
            args += [f"--{field.replace('_', '-')}", str(request[field])]
    return [*args, "--", *command]


def remember(
    site: str, request: dict[str, int], wrapper: Path, launcher: str | None = None
) -> None:
    """Record that ``request`` on ``site`` is valid and runs through ``wrapper``, which
    starts its ranks with the program ``launcher`` (None: it forks them itself)."""
    import contextlib

    from siteagent.fileio import atomic_write

    path = entry_path(site, request)
    if path is not None:
        with contextlib.suppress(OSError):  # a read-only home only costs time
            atomic_write(path, f"{wrapper}\0{launcher or ''}", 0o600, durable=False)


def on_path(program: str) -> bool:
    """``program`` is an executable on $PATH (shutil.which's test, without importing it)."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(d or ".", program)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return True
    return False


def exec_cached(argv: list[str]) -> None:
    """Exec the wrapper a previous ``exec`` recorded for this command line; return (so click
    takes over) when there is none."""
    parsed = parse(argv)
    if parsed is None:
        return
    site, request, command = parsed
    wrapper = recorded_wrapper(site, request)
    if wrapper is None:
        return
    os.execv(wrapper, wrapper_args(wrapper, request, command))  # nothing was printed before


def recorded_wrapper(site: str, request: dict[str, int]) -> str | None:
    """The wrapper recorded for ``request`` on ``site``, if it can run on this host."""
    path = entry_path(site, request)
    try:
        wrapper, launcher = read_text(path).split("\0") if path else ("", "")
    except (OSError, ValueError):
        return None  # no entry, or not one of two fields: click decides
    return wrapper if _runs_here(wrapper, launcher or None) else None


def _runs_here(wrapper: str, launcher: str | None) -> bool:
    """The wrapper is executable and the program it starts ranks with is on $PATH (on
    another host, a login node, it is not: click then says so in one line)."""
    if not wrapper or not os.access(wrapper, os.X_OK):
        return False
    return not launcher or on_path(launcher)
