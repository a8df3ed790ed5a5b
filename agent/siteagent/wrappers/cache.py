"""A rendered wrapper on disk for `site-agent exec`, reused while the profile is unchanged."""

from __future__ import annotations

import os
from pathlib import Path

from siteagent.fileio import atomic_write, sha256_text
from siteagent.profiles import Profile
from siteagent.wrappers.render import render_wrapper


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "site-agent" / "wrappers"


def cached_wrapper(profile: Profile) -> Path:
    """Path of the profile's wrapper, written (atomically) only when its text changed."""
    text = render_wrapper(profile)
    path = cache_dir() / f"{profile.name}-{sha256_text(text)[:12]}.sh"
    if not path.is_file():
        atomic_write(path, text, 0o755)
    return path
