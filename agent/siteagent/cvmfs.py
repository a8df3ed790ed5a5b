"""CVMFS for the pilot: native ``/cvmfs`` where mounted, otherwise cvmfsexec.

cvmfsexec (github.com/cvmfs/cvmfsexec) mounts repositories in an unprivileged user namespace
and runs one command inside it: ``cvmfsexec REPO... -- CMD``. Its ``makedist`` step builds
``dist/`` next to it once (it downloads the CVMFS rpms, so it runs at install time or on the
first pilot of a site with outbound access); site-agent then writes ``dist/etc/cvmfs/
default.local`` with the site proxy and a node-local cache. The mounts live in the namespace,
so they vanish with it: killing the process group of cvmfsexec is the cleanup.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from siteagent.errors import ConfigError, SiteAgentError
from siteagent.profiles import Profile

REPO = re.compile(r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9-]+)+$")
LIST_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
CVMFS_VALUE = re.compile(r"^[A-Za-z0-9_.~%:@/,;|+=-]{1,1024}$")
MAKEDIST_TIMEOUT = 1800


def data_dir() -> Path:
    """The shipped ``cvmfs/`` files: inside the wheel, or the source checkout's ``cvmfs/``."""
    packaged = Path(__file__).with_name("cvmfs_data")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "cvmfs"


def repository_list(name: str) -> list[str]:
    """Repositories of a shipped list (``atlas``, ``epic``)."""
    path = data_dir() / f"{name}.repos"
    if not LIST_NAME.match(name) or not path.is_file():
        known = sorted(p.stem for p in data_dir().glob("*.repos"))
        raise ConfigError(
            f"cvmfs: '{name}' is neither a repository name nor a list (lists: {', '.join(known)})"
        )
    return [
        line.split("#", 1)[0].strip()
        for line in path.read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]


def parse_repositories(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"atlas,sft.cern.ch"`` -> repositories, lists expanded, order kept, duplicates dropped."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        names = [item] if "." in item else repository_list(item)
        for repo in names:
            if not REPO.match(repo) or len(repo) > 127:
                raise ConfigError(f"cvmfs: '{repo}' is not a valid repository name")
            if repo not in out:
                out.append(repo)
    return tuple(out)


@dataclass(frozen=True)
class CvmfsPlan:
    """How the payload gets its repositories."""

    mode: str  # none, native or cvmfsexec
    repositories: tuple[str, ...]
    prefix: tuple[str, ...] = ()  # cvmfsexec REPO... --
    cvmfsexec_dir: str | None = None
    makedist: tuple[str, ...] = ()  # run when dist/ is missing
    default_local: str | None = None  # text for dist/etc/cvmfs/default.local
    cache_base: str | None = None
    native: tuple[str, ...] = field(default_factory=tuple)  # repositories found mounted

    @property
    def default_local_path(self) -> Path | None:
        if self.cvmfsexec_dir is None:
            return None
        return Path(self.cvmfsexec_dir) / "dist" / "etc" / "cvmfs" / "default.local"

    def describe(self) -> str:
        if self.mode == "none":
            return "no CVMFS"
        if self.mode == "native":
            return "native /cvmfs: " + ", ".join(self.repositories)
        return f"cvmfsexec from {self.cvmfsexec_dir}: " + ", ".join(self.repositories)


def cvmfsexec_dir(profile: Profile) -> Path:
    """Where cvmfsexec (and makedist) lives: the profile's ``cvmfs.dist_dir``,
    ``$SITE_AGENT_CVMFSEXEC_DIR``, the directory of a ``cvmfsexec`` on PATH, or
    ``~/.site-agent/cvmfsexec``."""
    import shutil

    configured = profile.section("cvmfs").get("dist_dir") or os.environ.get(
        "SITE_AGENT_CVMFSEXEC_DIR"
    )
    if configured:
        return Path(configured).expanduser()
    found = shutil.which("cvmfsexec")
    if found:
        return Path(found).resolve().parent
    return Path.home() / ".site-agent" / "cvmfsexec"


def site_http_proxy(profile: Profile) -> str:
    """The proxy CVMFS fetches through on compute nodes, or DIRECT."""
    proxy = profile.section("proxy")
    return proxy.get("http") or proxy.get("https") or "DIRECT"


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
        "@QUOTA_MB@": _value("CVMFS_QUOTA_LIMIT", str(profile.section("cvmfs")["quota_mb"])),
        "@CACHE_BASE@": _value("CVMFS_CACHE_BASE", cache_base) if cache_base else None,
    }
    lines = []
    for line in (data_dir() / "default.local.in").read_text().splitlines():
        for key, value in values.items():
            if key in line:
                line = line.replace(key, value) if value is not None else ""
        if line:
            lines.append(line)
    return "\n".join(lines) + "\n"


def plan_cvmfs(
    profile: Profile, repositories: tuple[str, ...], *, cvmfs_root: str = "/cvmfs"
) -> CvmfsPlan:
    """Decide, without side effects, how ``repositories`` reach the payload."""
    cfg = profile.section("cvmfs")
    if not repositories:
        return CvmfsPlan("none", ())
    mounted = tuple(r for r in repositories if os.path.isdir(os.path.join(cvmfs_root, r)))
    if len(mounted) == len(repositories):
        return CvmfsPlan("native", repositories, native=mounted)
    missing = [r for r in repositories if r not in mounted]
    if cfg["mode"] != "cvmfsexec":
        raise ConfigError(
            f"cvmfs: {', '.join(missing)} not mounted under {cvmfs_root} and "
            f"cvmfs.mode is '{cfg['mode']}' (set it to cvmfsexec to mount them unprivileged)"
        )
    base = cvmfsexec_dir(profile)
    cache = cfg.get("cache_dir") or f"/tmp/site-agent-cvmfs-{os.getuid()}"
    makedist: tuple[str, ...] = ()
    if cfg["config"] != "none":
        makedist = (str(base / "makedist"), cfg["config"])
    return CvmfsPlan(
        mode="cvmfsexec",
        repositories=repositories,
        prefix=(str(base / "cvmfsexec"), *repositories, "--"),
        cvmfsexec_dir=str(base),
        makedist=makedist,
        default_local=render_default_local(profile, repositories, cache),
        cache_base=cache,
        native=mounted,
    )


def prepare_cvmfs(plan: CvmfsPlan, env: dict[str, str] | None = None) -> list[str]:
    """Make the plan real: build ``dist/`` with makedist when missing, write default.local
    (only when its text changed), create the node-local cache. Returns what it did."""
    if plan.mode != "cvmfsexec":
        return []
    from siteagent.fileio import atomic_write

    done = []
    base = Path(plan.cvmfsexec_dir or "")
    if not (base / "cvmfsexec").is_file():
        raise SiteAgentError(
            f"cvmfs: no cvmfsexec in {base} (clone github.com/cvmfs/cvmfsexec there, "
            "or set cvmfs.dist_dir / SITE_AGENT_CVMFSEXEC_DIR)"
        )
    if not (base / "dist").is_dir():
        if not plan.makedist:
            raise SiteAgentError(f"cvmfs: {base}/dist is missing and cvmfs.config is none")
        try:
            r = subprocess.run(
                list(plan.makedist),
                cwd=base,
                env=env,
                capture_output=True,
                text=True,
                timeout=MAKEDIST_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise SiteAgentError(f"cvmfs: makedist failed: {err}") from None
        if r.returncode != 0 or not (base / "dist").is_dir():
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SiteAgentError(f"cvmfs: makedist exited {r.returncode}: {tail[0][:200]}")
        done.append(" ".join(plan.makedist))
    path = plan.default_local_path
    assert path is not None and plan.default_local is not None
    if not path.is_file() or path.read_text() != plan.default_local:
        atomic_write(path, plan.default_local, 0o600)  # may hold proxy credentials
        done.append(f"wrote {path}")
    if plan.cache_base:
        Path(plan.cache_base).mkdir(parents=True, exist_ok=True, mode=0o700)
    return done
