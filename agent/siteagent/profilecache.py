"""Validated profiles cached on disk, so the per-rank pilot and per-task ``exec`` paths skip
YAML, jsonschema and their imports after the first call on a host.

An entry is keyed by everything its content follows from: site-agent's version, the
profile's path and text, the profile schema, and the host when the profile says ``auto``
anywhere (``auto`` values are the host's). Without ``auto`` (every real site's profile) the
entry holds for every node: with a shared home, only the first rank of a site's first node
pays for YAML and jsonschema, not the first rank of every node.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from siteagent.profiles import Profile

SCHEMA = Path(__file__).resolve().parent / "schemas" / "profile.schema.json"


def cache_dir(kind: str) -> Path:
    """``$XDG_CACHE_HOME/site-agent/KIND`` (default ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "site-agent" / kind


def profile_key(site: str) -> tuple[Path, str]:
    """The profile file ``site`` names and the key of what it validates to here."""
    from siteagent import __version__
    from siteagent.fileio import sha256_text
    from siteagent.profile_path import find_profile, read_profile_text

    path = find_profile(site)
    text = read_profile_text(path)
    host = os.uname().nodename if "auto" in text else ""
    key = sha256_text(
        "\0".join(
            (__version__, host, str(path.absolute()), text,
             SCHEMA.read_text() if SCHEMA.is_file() else "")
        )
    )  # fmt: skip
    return path, key


def load_profile_cached(site: str) -> Profile:
    """``load_profile``, with the validated result cached (see the module's docstring), so
    every rank after the first skips YAML parsing, jsonschema and its import."""
    from siteagent.fileio import atomic_write
    from siteagent.profiles import Profile, load_profile

    path, key = profile_key(site)
    cached = cache_dir("profiles") / f"{key[:32]}.json"
    try:
        entry = json.loads(cached.read_text())
        return Profile(name=entry["data"]["name"], source=entry["source"], data=entry["data"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    profile = load_profile(str(path))
    with contextlib.suppress(OSError):  # a read-only home only costs time
        # a cache: a crash may lose it (the next rank rebuilds it), so no fsync
        text = json.dumps({"source": profile.source, "data": profile.data})
        atomic_write(cached, text, 0o600, durable=False)
    return profile
