"""``site-agent exec`` without click, jsonschema or Jinja when it has run before.

``exec`` runs once per task, and all it decides is which rendered wrapper to exec with which
flags. The first call (click, the profile, the request's validation, the wrapper's render)
records that decision under the profile's cache key and the request; later calls with the
same command line find it here and exec the wrapper at once. Anything this parser does not
recognise (help, a bad value, an unknown option before ``--``) goes to click, so its
messages stay the only ones.
"""

from __future__ import annotations

import json
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing per task
if TYPE_CHECKING:
    from pathlib import Path

INT_FLAGS = ("--nodes", "--ranks-per-node", "--cores-per-rank", "--gpus-per-rank")
DEFAULTS = {"nodes": 1, "ranks_per_node": 1, "gpus_per_rank": 0}


def parse(argv: list[str]) -> tuple[str, dict[str, int], list[str]] | None:
    """``(site, request, command)`` of a plain ``exec`` command line, None for anything
    else (click then parses it and says what is wrong)."""
    values: dict[str, str] = {}
    rest = list(argv)
    while rest and rest[0].startswith("-") and rest[0] != "--":
        flag, eq, value = rest.pop(0).partition("=")
        if flag not in ("--site", *INT_FLAGS) or flag in values:
            return None
        if not eq:
            if not rest:
                return None
            value = rest.pop(0)
        values[flag] = value
    if rest[:1] == ["--"]:
        rest.pop(0)
    site = values.pop("--site", None)
    if not site or not rest or not all(v.isdigit() for v in values.values()):
        return None
    request = dict(DEFAULTS)
    request.update({f[2:].replace("-", "_"): int(v) for f, v in values.items()})
    return site, request, rest


def entry_path(site: str, request: dict[str, int]) -> Path | None:
    """Where the decision for ``site`` and ``request`` is kept; None if the profile is not
    found (click says so)."""
    from siteagent.errors import SiteAgentError
    from siteagent.fileio import sha256_text
    from siteagent.profilecache import cache_dir, profile_key

    try:
        _, key = profile_key(site)
    except SiteAgentError:
        return None
    return cache_dir("exec") / f"{sha256_text(key + json.dumps(request, sort_keys=True))[:32]}.json"


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
        entry = {"wrapper": str(wrapper), "launcher": launcher}
        with contextlib.suppress(OSError):  # a read-only home only costs time
            atomic_write(path, json.dumps(entry), 0o600, durable=False)


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
    path = entry_path(site, request)
    try:
        entry = json.loads(path.read_text()) if path else {}
        wrapper, launcher = entry["wrapper"], entry["launcher"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no entry, or one without its launcher (older): click decides
    if not wrapper or not os.access(wrapper, os.X_OK):
        return
    if launcher and not on_path(launcher):
        return  # on another host (a login node): click says so in one line
    sys.stdout.flush()
    os.execv(wrapper, wrapper_args(wrapper, request, command))
