"""Where PanDA pilot3 comes from, which version it is, and which ``--pilot-user`` values it has.

The profile's ``pilot.source`` chooses: ``auto`` (``--pilot-dir``/``$SITE_AGENT_PILOT_DIR``,
else the CVMFS tarball production sites run when ``/cvmfs`` has it, else the installed
``panda-pilot`` package), ``cvmfs`` (the tarball, required), an http(s) URL of a tarball, or a
directory or tarball path. Tarballs and URLs are unpacked once per content into
``~/.cache/site-agent/pilot3/<key>`` (planning only computes the path; the payload layer's
setup unpacks, so the download happens on the compute node, once per node and version).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from siteagent.errors import ConfigError, SiteAgentError
from siteagent.fileio import sha256_text
from siteagent.names import Var
from siteagent.records import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from siteagent.sections import PilotSection


@record(frozen=True)
class PilotSource:
    kind: str  # dir, package, tarball, url
    origin: str  # the directory, tarball path or URL it came from
    dir: Path  # where pilot.py is (after setup, for tarballs and URLs)

    @property
    def script(self) -> Path:
        return self.dir / "pilot.py"


def _cache_root(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "site-agent" / "pilot3"


def _unpacked(kind: str, origin: str, environ: Mapping[str, str]) -> PilotSource:
    """A tarball or URL source, keyed by its content's identity (a new CVMFS release, same
    path, gets a new directory)."""
    ident = origin
    if kind == "tarball":
        try:
            st = os.stat(origin)
        except OSError as err:
            raise ConfigError(f"pilot.source: {origin}: {err.strerror}") from None
        ident = f"{origin}\0{st.st_size}\0{st.st_mtime_ns}"
    key = sha256_text(ident)[:16]
    return PilotSource(kind, origin, _cache_root(environ) / key)


def _cvmfs_path(path: str, environ: Mapping[str, str]) -> str:
    """``path`` under ``$SITE_AGENT_CVMFS_ROOT`` when that replaces /cvmfs (tests, cvmfsexec)."""
    root = environ.get(Var.CVMFS_ROOT)
    if root and path.startswith("/cvmfs/"):
        return str(Path(root) / path[len("/cvmfs/") :])
    return path


def _package() -> PilotSource:
    """pilot.py next to an importable ``pilot`` package (an unpacked release on PYTHONPATH)."""
    import importlib.util

    spec = importlib.util.find_spec("pilot")
    if spec and spec.origin:
        path = Path(spec.origin).parent.parent
        if (path / "pilot.py").is_file():
            return PilotSource("package", str(path), path)
    raise ConfigError(
        "--pilot-dir: PanDA pilot3 not found; unpack a release with "
        f"`scripts/get-panda-pilot.sh DIR` and give DIR with --pilot-dir or {Var.PILOT_DIR}, "
        "or set pilot.source"
    )


def _directory(path: str, what: str) -> PilotSource:
    d = Path(path).expanduser()
    if not (d / "pilot.py").is_file():
        raise ConfigError(f"{what}: no pilot.py in {path}")
    return PilotSource("dir", str(d), d.absolute())


def choose_source(
    pilot: PilotSection, pilot_dir: str | None, environ: Mapping[str, str]
) -> PilotSource:
    """The pilot3 to run (see the module docstring); ConfigError when it is not there."""
    source = pilot.source
    if source == "auto" and pilot_dir:
        return _directory(pilot_dir, "--pilot-dir")
    if source in ("auto", "cvmfs"):
        return _cvmfs_source(pilot, environ)
    return _named_source(source, environ)


def _cvmfs_source(pilot: PilotSection, environ: Mapping[str, str]) -> PilotSource:
    """The CVMFS tarball; for ``auto`` without it, the installed package."""
    tarball = _cvmfs_path(pilot.cvmfs_tarball, environ)
    if os.path.isfile(tarball):
        return _unpacked("tarball", tarball, environ)
    if pilot.source == "cvmfs":
        raise ConfigError(f"pilot.source: cvmfs, but {tarball} is not there")
    return _package()


def _named_source(source: str, environ: Mapping[str, str]) -> PilotSource:
    """``pilot.source`` as a URL, a tarball path or a directory."""
    if re.match(r"^https?://", source):
        return _unpacked("url", source, environ)
    if source.endswith((".tar.gz", ".tgz", ".tar")):
        return _unpacked("tarball", str(Path(source).expanduser()), environ)
    return _directory(source, "pilot.source")


def _proxy_variable(env: Mapping[str, str], name: str) -> str:
    """``name`` (``http_proxy``, ``no_proxy``...) from ``env``, else its upper-case form."""
    return env.get(name) or env.get(name.upper()) or ""


def _proxies(env: Mapping[str, str], url: str) -> dict[str, str]:
    """urllib's proxies for ``url``: the proxy the pilot gets, none where ``no_proxy`` says."""
    import urllib.parse
    import urllib.request

    host = urllib.parse.urlsplit(url).hostname or ""
    no_proxy = {"no": _proxy_variable(env, "no_proxy")}
    if urllib.request.proxy_bypass_environment(host, no_proxy):  # type: ignore[attr-defined]
        return {}
    return {
        scheme: proxy
        for scheme in ("http", "https")
        if (proxy := _proxy_variable(env, f"{scheme}_proxy"))
    }


def _opener(env: Mapping[str, str], url: str) -> Any:
    """urllib with the proxy the pilot gets (the proxy layer's variables, ``no_proxy`` too)."""
    import urllib.request

    return urllib.request.build_opener(urllib.request.ProxyHandler(_proxies(env, url)))


def _fetch(source: PilotSource, into: Path, env: Mapping[str, str]) -> Path:
    """The tarball of ``source`` as a local file (downloaded into ``into`` for URLs)."""
    if source.kind == "tarball":
        return Path(source.origin)
    target = into / "pilot3.tar.gz"
    try:
        opener = _opener(env, source.origin)
        with opener.open(source.origin, timeout=60) as r, open(target, "wb") as f:
            f.write(r.read())
    except OSError as err:
        raise SiteAgentError(f"pilot.source: cannot download {source.origin}: {err}") from None
    return target


def ensure_unpacked(source: PilotSource, env: Mapping[str, str] | None = None) -> str | None:
    """Unpack a tarball or URL source once (ranks racing: the first rename wins), downloading
    through the proxy in ``env``; what it did, None when nothing was needed."""
    import shutil
    import tempfile

    if source.kind in ("dir", "package") or source.script.is_file():
        return None
    source.dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=source.dir.parent))
    try:
        tarball = _fetch(source, tmp, env if env is not None else os.environ)
        _move_into_place(_unpack(tarball, tmp / "x", source.origin), source)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return f"unpacked {source.origin} into {source.dir}"


def _unpack(tarball: Path, into: Path, origin: str) -> Path:
    """Unpack ``tarball`` into ``into``; the directory in it that holds pilot.py."""
    import tarfile

    try:
        with tarfile.open(tarball) as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as err:
        raise SiteAgentError(f"pilot.source: cannot unpack {origin}: {err}") from None
    return _pilot_dir(into, origin)


def _pilot_dir(tree: Path, origin: str) -> Path:
    """The directory of an unpacked tarball that holds pilot.py: its top, else one level down."""
    found = sorted(p.parent for p in tree.glob("*pilot.py"))
    found += sorted(p.parent for p in tree.glob("*/pilot.py"))
    if not found:
        raise SiteAgentError(f"pilot.source: no pilot.py in {origin}")
    return found[0]


def _move_into_place(unpacked: Path, source: PilotSource) -> None:
    """Rename ``unpacked`` to the source's directory, unless another rank's copy got there."""
    try:
        os.rename(unpacked, source.dir)
    except OSError:
        if not source.script.is_file():  # not another rank's copy: a real failure
            raise


def pilot_version(pilot_dir: Path) -> str:
    """pilot3's version from its own ``pilot/util/constants.py`` (RELEASE.VERSION.REVISION.BUILD,
    what it logs as "PanDA Pilot version")."""
    try:
        text = (pilot_dir / "pilot" / "util" / "constants.py").read_text()
    except OSError:
        return "unknown"
    parts = [
        re.search(rf"^{name}\s*=\s*['\"]([^'\"]*)['\"]", text, re.M)
        for name in ("RELEASE", "VERSION", "REVISION", "BUILD")
    ]
    return ".".join(m.group(1) for m in parts) if all(parts) else "unknown"  # type: ignore[union-attr]


def pilot_users(pilot_dir: Path) -> list[str]:
    """The ``--pilot-user`` values this pilot3 has: it imports ``pilot.user.<name
    lowercased>.common`` (pilot.py ``set_environment_variables`` sets PILOT_USER, and every
    module imports its user's code that way)."""
    users = pilot_dir / "pilot" / "user"
    return sorted(p.parent.name for p in users.glob("*/common.py"))


def check_pilot_user(pilot_dir: Path, user: str) -> None:
    """Refuse a ``--pilot-user`` this pilot3 does not have, in one line (a directory without
    pilot3's ``pilot/user`` package cannot say, and is let through)."""
    users = pilot_users(pilot_dir)
    if users and user.lower() not in users:
        raise ConfigError(
            f"--pilot-user: '{user}' is not a user of PanDA pilot {pilot_version(pilot_dir)} in "
            f"{pilot_dir} (it has {', '.join(users)})"
        )
