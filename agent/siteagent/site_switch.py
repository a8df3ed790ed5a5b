"""One endpoint directory, one site: installing another site's endpoint over it must be
meant (``--force``), and leaves none of the old site's files behind."""

from __future__ import annotations

import re
from pathlib import Path

from siteagent.errors import ConfigError
from siteagent.managed import forget_managed, read_manifest

# the first line of every config.yaml site-agent writes (endpoint/templates/config.yaml.in)
_HEADER = re.compile(r"^# Written by site-agent \S+ for site profile '([^']+)'\.")


def installed_site(directory: Path) -> str | None:
    """The site profile whose endpoint ``directory`` holds (from its config.yaml), if any."""
    try:
        with open(Path(directory) / "config.yaml") as f:
            m = _HEADER.match(f.readline())
    except OSError:
        return None
    return m[1] if m else None


def check_same_site(site: str, directory: Path, force: bool) -> str | None:
    """The other site whose endpoint is in ``directory`` (None if none); an error unless
    ``force``."""
    other = installed_site(directory)
    if other is None or other == site:
        return None
    if not force:
        raise ConfigError(
            f"--endpoint-dir: {directory} holds the endpoint of site '{other}'; installing "
            f"'{site}' there replaces it: add --force, or choose another --endpoint-dir"
        )
    return other


def remove_stale(directory: Path, written: set[str]) -> tuple[list[str], list[str]]:
    """Drop the files an earlier install wrote that this one does not (another site's, or a
    setting since switched off). Returns (removed, left because edited by hand)."""
    return forget_managed(directory, set(read_manifest(directory)) - written)
