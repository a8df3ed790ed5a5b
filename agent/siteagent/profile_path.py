"""Where site profiles are found: the search path and name resolution, without loading one
(so cache lookups on the per-rank and per-task paths need neither YAML nor the schema)."""

from __future__ import annotations

import os
from pathlib import Path

from siteagent.errors import ConfigError

PROFILE_SUFFIXES = (".yaml", ".yml")
MAX_PROFILE_BYTES = 1 << 20  # 1 MiB: real profiles are a few kB


def builtin_profile_dir() -> Path:
    """The shipped profiles: inside the wheel, or ``site-profiles/`` of a source checkout."""
    packaged = Path(__file__).with_name("site_profiles")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "site-profiles"


def search_path() -> list[Path]:
    """Directories searched for ``NAME.yaml``, first match wins."""
    dirs = [Path(p) for p in os.environ.get("SITE_AGENT_PROFILE_PATH", "").split(":") if p]
    config_home = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    dirs += [config_home / "site-agent" / "profiles", Path("/etc/site-agent/profiles")]
    dirs.append(builtin_profile_dir())
    return dirs


def list_profiles() -> list[tuple[str, Path]]:
    """All profile names visible on the search path, with the file each resolves to."""
    found: dict[str, Path] = {}
    for d in search_path():
        for p in _profile_files(d):
            found.setdefault(p.stem, p)  # the first directory's wins
    return sorted(found.items())


def _profile_files(d: Path) -> list[Path]:
    """The profile files in directory ``d`` by name (none when it is not a directory)."""
    if not d.is_dir():
        return []
    return [p for p in sorted(d.iterdir()) if p.suffix in PROFILE_SUFFIXES]


def find_profile(name_or_path: str) -> Path:
    """Resolve a profile name (``polaris``) or a path to a YAML file."""
    if Path(name_or_path).suffix in PROFILE_SUFFIXES or os.sep in name_or_path:
        return _profile_file(name_or_path)
    found = _find_on_search_path(name_or_path)
    if found is None:
        raise _unknown_profile(name_or_path)
    return found


def _unknown_profile(name: str) -> ConfigError:
    known = ", ".join(n for n, _ in list_profiles()) or "none"
    return ConfigError(f"unknown site profile '{name}' (known: {known})")


def _profile_file(path: str) -> Path:
    if not Path(path).is_file():
        raise ConfigError(f"site profile file not found: {path}")
    return Path(path)


def _find_on_search_path(name: str) -> Path | None:
    """``NAME.yaml`` (or ``.yml``) of the first directory on the search path that has it."""
    for d in search_path():
        for suffix in PROFILE_SUFFIXES:
            if (d / f"{name}{suffix}").is_file():
                return d / f"{name}{suffix}"
    return None


def read_profile_text(path: Path) -> str:
    """The text of a profile file: at most MAX_PROFILE_BYTES of UTF-8, else one line."""
    try:
        size = path.stat().st_size
        if size > MAX_PROFILE_BYTES:
            raise ConfigError(f"{path.name}: {size} bytes; a profile may have at most 1 MiB")
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path.name}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
