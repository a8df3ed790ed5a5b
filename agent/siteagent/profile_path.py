"""Where site profiles are found: the search path and name resolution, without loading one
(so cache lookups on the per-rank and per-task paths need neither YAML nor the schema).
Paths are plain strings: no pathlib on those paths."""

from __future__ import annotations

import os

from siteagent.errors import ConfigError
from siteagent.pathstr import clean

PROFILE_SUFFIXES = (".yaml", ".yml")
MAX_PROFILE_BYTES = 1 << 20  # 1 MiB: real profiles are a few kB


def builtin_profile_dir() -> str:
    """The shipped profiles: inside the wheel, or ``site-profiles/`` of a source checkout."""
    packaged = os.path.join(os.path.dirname(__file__), "site_profiles")
    if os.path.isdir(packaged):
        return packaged
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    return os.path.join(checkout, "site-profiles")


def search_path() -> list[str]:
    """Directories searched for ``NAME.yaml``, first match wins."""
    dirs = [clean(p) for p in os.environ.get("SITE_AGENT_PROFILE_PATH", "").split(":") if p]
    config_home = os.environ.get(
        "XDG_CONFIG_HOME", os.path.join(os.path.expanduser("~"), ".config")
    )
    dirs += [_join(config_home, "site-agent", "profiles"), "/etc/site-agent/profiles"]
    dirs.append(builtin_profile_dir())
    return dirs


def list_profiles() -> list[tuple[str, str]]:
    """All profile names visible on the search path, with the file each resolves to."""
    found: dict[str, str] = {}
    for d in search_path():
        for p in _profile_files(d):
            found.setdefault(_stem(p), p)  # the first directory's wins
    return sorted(found.items())


def _join(*parts: str) -> str:
    """``str(Path(*parts))``: as Path joined them (``./x`` is ``x``), for the paths shown."""
    return clean(os.path.join(*parts))


def _stem(path: str) -> str:
    """The file name without its suffix (Path.stem)."""
    return os.path.splitext(os.path.basename(path))[0]


def _profile_files(d: str) -> list[str]:
    """The profile files in directory ``d`` by name (none when it is not a directory)."""
    if not os.path.isdir(d):
        return []
    names = sorted(os.listdir(d))
    return [_join(d, n) for n in names if os.path.splitext(n)[1] in PROFILE_SUFFIXES]


def find_profile(name_or_path: str) -> str:
    """Resolve a profile name (``polaris``) or a path to a YAML file; the file's path."""
    if os.path.splitext(name_or_path)[1] in PROFILE_SUFFIXES or os.sep in name_or_path:
        return _profile_file(name_or_path)
    found = _find_on_search_path(name_or_path)
    if found is None:
        raise _unknown_profile(name_or_path)
    return found


def _unknown_profile(name: str) -> ConfigError:
    known = ", ".join(n for n, _ in list_profiles()) or "none"
    return ConfigError(f"unknown site profile '{name}' (known: {known})")


def _profile_file(path: str) -> str:
    found = clean(path)  # "x.yaml/" names x.yaml, as Path("x.yaml/") did
    if not os.path.isfile(found):
        raise ConfigError(f"site profile file not found: {path}")
    return found


def _find_on_search_path(name: str) -> str | None:
    """``NAME.yaml`` (or ``.yml``) of the first directory on the search path that has it."""
    for d in search_path():
        for suffix in PROFILE_SUFFIXES:
            candidate = _join(d, f"{name}{suffix}")
            if os.path.isfile(candidate):
                return candidate
    return None


def read_profile_text(path: str | os.PathLike[str]) -> str:
    """The text of a profile file: at most MAX_PROFILE_BYTES of UTF-8, else one line."""
    path = os.fspath(path)
    name = os.path.basename(path)
    try:
        size = os.stat(path).st_size
        if size > MAX_PROFILE_BYTES:
            raise ConfigError(f"{name}: {size} bytes; a profile may have at most 1 MiB")
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{name}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
