"""CVMFS layer: native ``/cvmfs`` where mounted, otherwise cvmfsexec.

cvmfsexec (github.com/cvmfs/cvmfsexec) mounts repositories in an unprivileged user namespace
and runs one command inside it: ``cvmfsexec REPO... -- CMD``. Its ``makedist`` step builds
``dist/`` next to it once (it downloads the CVMFS rpms, so it runs at install time or on the
first pilot of a site with outbound access); site-agent then writes ``dist/etc/cvmfs/
default.local`` with the site proxy and a node-local cache. The mounts live in the namespace,
so they vanish with it: killing the process group of cvmfsexec is the cleanup.
"""

from __future__ import annotations

import os
import subprocess

from siteagent.cvmfs import parse_repositories, render_default_local
from siteagent.errors import ConfigError, SiteAgentError
from siteagent.fileio import read_text
from siteagent.names import Var
from siteagent.pathstr import clean
from siteagent.pilot.layers.base import Layer, PilotLayer, PlanContext
from siteagent.profiles import Profile
from siteagent.records import field, record

MAKEDIST_TIMEOUT = 1800
CVMFS = "/cvmfs"


@record(frozen=True)
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
    root: str = CVMFS  # where this host mounts CVMFS

    @property
    def default_local_path(self) -> str | None:
        if self.cvmfsexec_dir is None:
            return None
        return os.path.join(clean(self.cvmfsexec_dir), "dist", "etc", "cvmfs", "default.local")

    @property
    def dist_missing(self) -> bool:
        return bool(self.cvmfsexec_dir) and not os.path.isdir(
            os.path.join(self.cvmfsexec_dir or "", "dist")
        )

    def container_bind(self) -> str | None:
        """How a container sees the repositories at ``/cvmfs`` (None: no CVMFS)."""
        if self.mode == "none":
            return None
        return CVMFS if self.root == CVMFS else f"{self.root}:{CVMFS}"

    def describe(self) -> str:
        if self.mode == "none":
            return "no CVMFS"
        if self.mode == "native":
            return "native /cvmfs: " + ", ".join(self.repositories)
        return f"cvmfsexec from {self.cvmfsexec_dir}: " + ", ".join(self.repositories)


def cvmfsexec_dir(profile: Profile) -> str:
    """The directory cvmfsexec (and makedist) lives in: the profile's ``cvmfs.dist_dir``,
    ``$SITE_AGENT_CVMFSEXEC_DIR``, the directory of a ``cvmfsexec`` on PATH, or
    ``~/.site-agent/cvmfsexec``."""
    import shutil

    configured = profile.cvmfs.dist_dir or os.environ.get(Var.CVMFSEXEC_DIR)
    if configured:
        return clean(os.path.expanduser(clean(configured)))
    found = shutil.which("cvmfsexec")
    if found:
        return os.path.dirname(os.path.realpath(found))
    return clean(os.path.join(os.path.expanduser("~"), ".site-agent", "cvmfsexec"))


def plan_cvmfs(
    profile: Profile, repositories: tuple[str, ...], *, cvmfs_root: str = CVMFS
) -> CvmfsPlan:
    """Decide, without side effects, how ``repositories`` reach the payload."""
    if not repositories:
        return CvmfsPlan("none", (), root=cvmfs_root)
    mounted = _mounted(repositories, cvmfs_root)
    if len(mounted) == len(repositories):
        return CvmfsPlan("native", repositories, native=mounted, root=cvmfs_root)
    if profile.cvmfs.mode != "cvmfsexec":
        raise _not_mounted(profile.cvmfs.mode, repositories, mounted, cvmfs_root)
    return _cvmfsexec_plan(profile, repositories, mounted, cvmfs_root)


def _mounted(repositories: tuple[str, ...], cvmfs_root: str) -> tuple[str, ...]:
    """The repositories this host has mounted under ``cvmfs_root``."""
    return tuple(r for r in repositories if os.path.isdir(os.path.join(cvmfs_root, r)))


def _not_mounted(
    mode: str, repositories: tuple[str, ...], mounted: tuple[str, ...], cvmfs_root: str
) -> ConfigError:
    missing = [r for r in repositories if r not in mounted]
    return ConfigError(
        f"cvmfs: {', '.join(missing)} not mounted under {cvmfs_root} and "
        f"cvmfs.mode is '{mode}' (set it to cvmfsexec to mount them unprivileged)"
    )


def _cvmfsexec_plan(
    profile: Profile, repositories: tuple[str, ...], mounted: tuple[str, ...], cvmfs_root: str
) -> CvmfsPlan:
    cfg = profile.cvmfs
    base = cvmfsexec_dir(profile)
    cache = cfg.cache_dir or f"/tmp/site-agent-cvmfs-{os.getuid()}"
    makedist = (os.path.join(base, "makedist"), cfg.config) if cfg.config != "none" else ()
    return CvmfsPlan(
        mode="cvmfsexec",
        repositories=repositories,
        prefix=(os.path.join(base, "cvmfsexec"), *repositories, "--"),
        cvmfsexec_dir=base,
        makedist=makedist,
        default_local=render_default_local(profile, repositories, cache),
        cache_base=cache,
        native=mounted,
        root=cvmfs_root,
    )


def _makedist(plan: CvmfsPlan, base: str, env: dict[str, str] | None) -> None:
    if not plan.makedist:
        raise SiteAgentError(f"cvmfs: {base}/dist is missing and cvmfs.config is none")
    r = _run_makedist(plan.makedist, base, env)
    if r.returncode != 0 or not os.path.isdir(os.path.join(base, "dist")):
        raise SiteAgentError(f"cvmfs: makedist exited {r.returncode}: {last_line(r)[:200]}")


def _run_makedist(
    makedist: tuple[str, ...], base: str, env: dict[str, str] | None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(makedist), cwd=base, env=env, capture_output=True, text=True,
            timeout=MAKEDIST_TIMEOUT,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SiteAgentError(f"cvmfs: makedist failed: {err}") from None


def last_line(r: subprocess.CompletedProcess[str], none: str = "no output") -> str:
    """The last line a command wrote (stderr first), or ``none``."""
    tail = (r.stderr or r.stdout).strip().splitlines()[-1:]
    return tail[0] if tail else none


def _write_default_local(plan: CvmfsPlan) -> list[str]:
    """Write default.local unless it already has the planned text."""
    from siteagent.fileio import atomic_write

    path = plan.default_local_path
    assert path is not None and plan.default_local is not None
    if os.path.isfile(path) and read_text(path) == plan.default_local:
        return []
    atomic_write(path, plan.default_local, 0o600)  # may hold proxy credentials
    return [f"wrote {path}"]


def prepare_cvmfs(plan: CvmfsPlan, env: dict[str, str] | None = None) -> list[str]:
    """Make the plan real: build ``dist/`` with makedist when missing, write default.local
    (only when its text changed), create the node-local cache. Returns what it did."""
    if plan.mode != "cvmfsexec":
        return []
    done = []
    base = _cvmfsexec_base(plan)
    if not os.path.isdir(os.path.join(base, "dist")):
        _makedist(plan, base, env)
        done.append(" ".join(plan.makedist))
    done += _write_default_local(plan)
    if plan.cache_base:
        os.makedirs(plan.cache_base, mode=0o700, exist_ok=True)
    return done


def _cvmfsexec_base(plan: CvmfsPlan) -> str:
    """The planned cvmfsexec directory; SiteAgentError when cvmfsexec is not in it."""
    base = clean(plan.cvmfsexec_dir or "")
    if not os.path.isfile(os.path.join(base, "cvmfsexec")):
        raise SiteAgentError(
            f"cvmfs: no cvmfsexec in {base} (clone github.com/cvmfs/cvmfsexec there, "
            "or set cvmfs.dist_dir / SITE_AGENT_CVMFSEXEC_DIR)"
        )
    return base


def requested_repositories(ctx: PlanContext) -> tuple[str, ...]:
    """``--cvmfs``, else ``$SITE_AGENT_CVMFS_REPOS``, else the profile's ``cvmfs.repositories``;
    empty or ``none``: no CVMFS."""
    value = ctx.choice(ctx.opts.cvmfs, Var.CVMFS_REPOS)
    if value is None:
        value = ",".join(ctx.profile.cvmfs.repositories)
    return () if value.strip() in ("", "none") else parse_repositories(value)


class CvmfsLayer(PilotLayer):
    name = "cvmfs"

    def plan(self, ctx: PlanContext) -> Layer:
        root = ctx.environ.get(Var.CVMFS_ROOT, CVMFS)
        cvmfs = plan_cvmfs(ctx.profile, requested_repositories(ctx), cvmfs_root=root)
        setup = (cvmfs.makedist,) if cvmfs.dist_missing and cvmfs.makedist else ()
        return Layer(self.name, cvmfs.describe(), command=cvmfs.prefix, setup=setup, detail=cvmfs)

    def setup(self, layer: Layer, env: dict[str, str]) -> list[str]:
        return prepare_cvmfs(layer.detail, env)
