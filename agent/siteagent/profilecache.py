"""Validated profiles cached on disk, so the per-rank pilot and per-task ``exec`` paths skip
YAML, jsonschema and their imports.

An entry is keyed by everything its content follows from: site-agent's version, the
profile's path and text, and the profile schema. It holds the validated data with every
default filled in but ``auto`` values unresolved, so one entry serves every node: each load
resolves ``auto`` on its own host (``/proc``, ``/sys``: no YAML, no schema). ``site-agent
install`` writes the entry on the login node, so with a shared home no rank on any compute
node parses YAML or loads jsonschema; a rank that finds none (the profile was edited since)
builds it.
"""

from __future__ import annotations

import os

from siteagent.fileio import read_text

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from siteagent.profiles import Profile

SCHEMA = os.path.join(os.path.dirname(os.path.realpath(__file__)), "schemas", "profile.schema.json")


def cache_dir(kind: str) -> str:
    """``$XDG_CACHE_HOME/site-agent/KIND`` (default ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "site-agent", kind)


def profile_key(site: str) -> tuple[str, str]:
    """The profile file ``site`` names and the key of what it validates to."""
    path, key, _ = _locate(site)
    return path, key


def _locate(site: str) -> tuple[str, str, str]:
    """``(path, key, text)`` of the profile ``site`` names."""
    from siteagent import __version__
    from siteagent.fileio import sha256_text
    from siteagent.pathstr import absolute
    from siteagent.profile_path import find_profile, read_profile_text

    path = find_profile(site)
    text = read_profile_text(path)
    key = sha256_text(
        "\0".join(
            (__version__, absolute(path), text,
             read_text(SCHEMA) if os.path.isfile(SCHEMA) else "")
        )
    )  # fmt: skip
    return path, key, text


def load_profile_cached(site: str) -> Profile:
    """``load_profile``, with the validated data cached (see the module's docstring), so a
    rank that finds the entry skips YAML parsing, jsonschema and its import."""
    # here, not above: ``exec``'s cached path only reads keys (json imports re, enum, ...)
    import contextlib
    import json

    from siteagent.profiles import complete_profile

    path, key, text = _locate(site)
    cached = os.path.join(cache_dir("profiles"), f"{key[:32]}.json")
    try:
        entry = json.loads(read_text(cached))
        data, source = entry["data"], entry["source"]
        if isinstance(data, dict) and isinstance(source, str):
            return complete_profile(data, source, checked=True)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from siteagent.fileio import atomic_write
    from siteagent.profiles import validated_data

    name = os.path.basename(path)
    data = validated_data(text, name)
    entry_text = json.dumps({"source": name, "data": data})  # before auto is resolved
    profile = complete_profile(data, name)  # an entry only for a profile that passes
    with contextlib.suppress(OSError):  # a read-only home only costs time
        # a cache: a crash may lose it (the next rank rebuilds it), so no fsync
        atomic_write(cached, entry_text, 0o600, durable=False)
    return profile
