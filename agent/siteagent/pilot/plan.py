"""The layered command of one pilot rank, built as data (nothing runs here).

Layers, outermost first: GPU binding (variables), proxy (variables), CVMFS (``cvmfsexec REPO...
--`` or native), container (``apptainer exec ... IMAGE``), software environment (variables),
payload (the PanDA pilot by default). ``site-agent pilot --dry-run`` prints exactly this.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siteagent.errors import ConfigError
from siteagent.names import WORD_RE, WORKER_ID_RE

if TYPE_CHECKING:
    from siteagent.binding import RankBinding
    from siteagent.conda import EnvPlan
    from siteagent.container import ContainerPlan
    from siteagent.cvmfs import CvmfsPlan
    from siteagent.gpus import GpuInventory
    from siteagent.profiles import Profile

QUEUE = WORD_RE
JOB_ID_VARS = ("SLURM_JOB_ID", "PBS_JOBID")
WORKER_ID = WORKER_ID_RE
RESOURCE_TYPES = ("SCORE", "MCORE", "SCORE_HIMEM", "MCORE_HIMEM")
LAYER_ORDER = ("gpu-binding", "proxy", "cvmfs", "container", "env", "payload")


@dataclass(frozen=True)
class PilotOptions:
    """What the caller asks for; ``None`` means: from the environment, then the profile."""

    site: str
    queue: str | None = None
    container: str | None = None  # "" or "none": no container
    cvmfs: str | None = None  # "" or "none": no CVMFS
    conda_env: str | None = None
    walltime: str | None = None
    report: str | None = None
    payload: tuple[str, ...] = ()
    pilot_args: tuple[str, ...] = ()
    pilot_dir: str | None = None
    resource_type: str | None = None
    gpus_per_rank: int | None = None
    margin: float = 60.0
    grace: float = 30.0


@dataclass(frozen=True)
class Layer:
    name: str
    summary: str
    command: tuple[str, ...] = ()  # what this layer puts in front of the payload (or is)
    setup: tuple[tuple[str, ...], ...] = ()  # run once before the payload starts
    env: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()


@dataclass(frozen=True)
class PilotPlan:
    pilot_id: str
    site: str
    host: str
    local_rank: int
    rank: int
    gpus: GpuInventory
    binding: RankBinding
    layers: tuple[Layer, ...]
    argv: tuple[str, ...]
    path_prepend: tuple[str, ...]
    workdir: str
    report_path: str
    walltime_s: int | None
    margin_s: float
    grace_s: float
    cvmfs: CvmfsPlan
    container: ContainerPlan | None
    env_plan: EnvPlan | None

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` with every layer's variables applied, in layer order."""
        env = dict(base)
        for layer in self.layers:
            for name in layer.unset:
                env.pop(name, None)
            env.update(layer.env)
        if self.path_prepend:
            env["PATH"] = ":".join([*self.path_prepend, env.get("PATH", os.defpath)])
        if self.env_plan:
            env.pop("PYTHONHOME", None)
        return env

    def to_dict(self) -> dict[str, Any]:
        from siteagent.secrets import mask_data

        return mask_data(
            {
                "pilot_id": self.pilot_id,
                "site": self.site,
                "host": self.host,
                "local_rank": self.local_rank,
                "rank": self.rank,
                "gpus": {
                    "vendor": self.gpus.vendor,
                    "count": self.gpus.count,
                    "slots": list(self.binding.slots),
                    "set": self.binding.set,
                    "unset": list(self.binding.unset),
                },
                "layers": [asdict(layer) for layer in self.layers],
                "argv": list(self.argv),
                "path_prepend": list(self.path_prepend),
                "workdir": self.workdir,
                "report": self.report_path,
                "walltime_s": self.walltime_s,
                "margin_s": self.margin_s,
                "grace_s": self.grace_s,
            }
        )


def parse_walltime(value: str) -> int:
    from siteagent.userconfig import WALLTIME, walltime_seconds

    if not re.match(WALLTIME, value):
        raise ConfigError(f"--walltime: '{value}' is not HH:MM:SS")
    seconds = walltime_seconds(value)
    if seconds == 0:
        raise ConfigError("--walltime: must be more than 00:00:00")
    return seconds


def remaining_walltime(
    given: str | None, environ: dict[str, str], now: float | None = None
) -> int | None:
    """Seconds from now until the batch job ends. ``--walltime`` counts from now; the
    job's ``SITE_AGENT_WALLTIME`` counts from ``SITE_AGENT_JOB_START`` (epoch seconds, exported
    when the job starts) when known; Slurm's ``SLURM_JOB_END_TIME`` caps either."""
    import time

    now = time.time() if now is None else now
    left: float | None = None
    if given is not None:
        left = parse_walltime(given)
    elif environ.get("SITE_AGENT_WALLTIME"):
        left = parse_walltime(environ["SITE_AGENT_WALLTIME"])
        start = environ.get("SITE_AGENT_JOB_START", "")
        if start:
            if not start.isdigit():
                raise ConfigError(f"SITE_AGENT_JOB_START: '{start}' is not epoch seconds")
            left = int(start) + left - now
    end = environ.get("SLURM_JOB_END_TIME", "")
    if end.isdigit() and int(end) > 0:
        left = min(left, int(end) - now) if left is not None else int(end) - now
    return None if left is None else max(int(left), 0)


def local_rank(profile: Profile, environ: dict[str, str]) -> tuple[int, int]:
    """``(local rank, global rank)`` from the launcher's variables, as the execution wrapper
    reads them (it also exports SITE_AGENT_LOCAL_RANK/SITE_AGENT_RANK), 0 when run by hand."""
    from siteagent.wrappers.render import GLOBAL_RANK_VARS, LOCAL_RANK_VARS, launcher_of

    launcher = launcher_of(profile)
    out = []
    for names, own in (
        (LOCAL_RANK_VARS[launcher], "SITE_AGENT_LOCAL_RANK"),
        (GLOBAL_RANK_VARS[launcher], "SITE_AGENT_RANK"),
    ):
        name = next((n for n in (*names, own) if environ.get(n)), None)
        value = environ[name] if name else "0"
        if not value.isdigit():
            raise ConfigError(f"{name}: '{value}' is not a rank number")
        out.append(int(value))
    return out[0], out[1]


def pilot_id(environ: dict[str, str], host: str, rank: int, pid: int) -> str:
    """``<worker>-r<rank>`` under Harvester (``SITE_AGENT_WORKER_ID``, set by the worker's
    command), so the monitor knows the name in advance; else ``<job>-<host>-r<rank>-<pid>``."""
    worker = environ.get("SITE_AGENT_WORKER_ID", "")
    if WORKER_ID.match(worker):
        return f"{worker}-r{rank}"
    job = next((environ[v] for v in JOB_ID_VARS if environ.get(v)), "local")
    raw = f"{job}-{host}-r{rank}-{pid}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)[:200]


def default_report_path(environ: dict[str, str], pid_: str) -> Path:
    """``<root>/pilots/<id>.json`` with root ``$SITE_AGENT_WORKDIR``, else ``$SITE_AGENT_STATE``
    (where the Harvester worker command keeps its records), else ``~/.site-agent``."""
    base = environ.get("SITE_AGENT_WORKDIR") or environ.get("SITE_AGENT_STATE")
    root = Path(base).expanduser() if base else Path.home() / ".site-agent"
    return root / "pilots" / f"{pid_}.json"


def find_pilot(pilot_dir: str | None) -> Path:
    """``pilot.py`` of PanDA pilot3: in ``pilot_dir`` (``--pilot-dir``,
    ``$SITE_AGENT_PILOT_DIR``), else next to an importable ``pilot`` package (an unpacked
    pilot3 tarball or sdist on PYTHONPATH). The panda-pilot wheel ships the package but not
    pilot.py, which is why a directory is needed."""
    if pilot_dir:
        path = Path(pilot_dir).expanduser() / "pilot.py"
        if not path.is_file():
            raise ConfigError(f"--pilot-dir: no pilot.py in {pilot_dir}")
        return path.absolute()
    import importlib.util

    spec = importlib.util.find_spec("pilot")
    if spec and spec.origin:
        path = Path(spec.origin).parent.parent / "pilot.py"
        if path.is_file():
            return path
    raise ConfigError(
        "--pilot-dir: PanDA pilot3 not found; unpack a pilot3 release (it has pilot.py) and "
        "give its directory with --pilot-dir or SITE_AGENT_PILOT_DIR"
    )


def pilot_command(
    profile: Profile, queue: str, lifetime: int | None, workdir: str, script: Path,
    extra: tuple[str, ...], environ: dict[str, str], resource_type: str | None = None,
) -> tuple[str, ...]:  # fmt: skip
    p = profile.section("pilot")
    url = p["server_url"]
    args = [
        "python3", str(script),
        "-q", queue,
        "--pilot-user", p["pilot_user"],
        "-w", p["workflow"],
        "--resource-type", resource_type or p["resource_type"],
        "--url", url,
        "-p", str(p["server_port"]),
        "--harvester-submit-mode", "PULL",
        "-a", workdir,
    ]  # fmt: skip
    if lifetime:
        args += ["-l", str(lifetime)]
    hw = environ.get("SITE_AGENT_HARVESTER_WORKDIR")
    if hw:
        args += ["--harvester-workdir", hw]
    return (*args, *extra)


def load_profile_cached(site: str) -> Profile:
    """``load_profile``, with the validated result cached per profile text, schema, version
    and host (``auto`` values are the host's), so every rank after the first skips YAML
    parsing, jsonschema and its import: the start-up of each rank stays light."""
    import json

    from siteagent import __version__
    from siteagent.fileio import atomic_write, sha256_text
    from siteagent.profiles import Profile, find_profile, load_profile

    path = find_profile(site)
    schema = Path(__file__).resolve().parents[1] / "schemas" / "profile.schema.json"
    key = sha256_text(
        "\0".join(
            (__version__, socket.gethostname(), str(path.absolute()), path.read_text(),
             schema.read_text() if schema.is_file() else "")
        )
    )  # fmt: skip
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cached = Path(base) / "site-agent" / "profiles" / f"{key[:32]}.json"
    try:
        entry = json.loads(cached.read_text())
        return Profile(name=entry["data"]["name"], source=entry["source"], data=entry["data"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    profile = load_profile(str(path))
    with contextlib.suppress(OSError):  # a read-only home only costs time
        atomic_write(cached, json.dumps({"source": profile.source, "data": profile.data}), 0o600)
    return profile


def _choice(value: str | None, environ: dict[str, str], var: str) -> str | None:
    return value if value is not None else environ.get(var)


def build_plan(
    opts: PilotOptions, environ: dict[str, str] | None = None, *, pid: int | None = None
) -> PilotPlan:
    """Everything the run will do, decided up front; raises ConfigError on bad input."""
    from siteagent.binding import bind_rank
    from siteagent.cvmfs import parse_repositories, plan_cvmfs
    from siteagent.endpoint.render import proxy_environment
    from siteagent.gpus import discover_gpus

    environ = dict(os.environ if environ is None else environ)
    if opts.queue is not None and not QUEUE.match(opts.queue):
        raise ConfigError(f"--queue: '{opts.queue}' has characters that are not allowed")
    if opts.resource_type is not None and opts.resource_type not in RESOURCE_TYPES:
        raise ConfigError(
            f"--resource-type: '{opts.resource_type}' is not one of {', '.join(RESOURCE_TYPES)}"
        )
    profile = load_profile_cached(opts.site)
    host = socket.gethostname().split(".")[0]
    lrank, grank = local_rank(profile, environ)
    pid_ = pilot_id(environ, host, grank, pid if pid is not None else os.getpid())
    layers: list[Layer] = []

    # 1. GPU binding: what this node has, and this rank's share of it
    gpus = discover_gpus(environ.get("SITE_AGENT_GPU_ROOT", "/"))
    gpr = opts.gpus_per_rank
    if gpr is None:
        env_gpr = environ.get("SITE_AGENT_GPUS_PER_RANK", "")
        if env_gpr and not env_gpr.isdigit():
            raise ConfigError(f"SITE_AGENT_GPUS_PER_RANK: '{env_gpr}' is not a whole number")
        gpr = int(env_gpr) if env_gpr else (1 if gpus.count else 0)
    binding = bind_rank(profile.node, lrank, gpr)
    if gpr and gpus.vendor not in ("none", profile.node.gpu_vendor):
        raise ConfigError(
            f"node.gpu_vendor: the profile says {profile.node.gpu_vendor}, this node has {gpus.vendor} GPUs"
        )
    summary = (
        f"{gpus.count} {gpus.vendor} GPU(s) found; local rank {lrank} gets slot(s) "
        f"{','.join(map(str, binding.slots)) or 'none'}"
    )
    layers.append(Layer("gpu-binding", summary, env=dict(binding.set), unset=binding.unset))

    # 2. proxy for the pilot, CVMFS and downloads (compute-node scope)
    proxy = proxy_environment(profile, compute=True)
    layers.append(Layer("proxy", "site proxy" if proxy else "no proxy", env=proxy))

    # 3. CVMFS
    repos_value = _choice(opts.cvmfs, environ, "SITE_AGENT_CVMFS_REPOS")
    if repos_value is None:
        repos_value = ",".join(profile.section("cvmfs")["repositories"])
    repos = () if repos_value.strip() in ("", "none") else parse_repositories(repos_value)
    cvmfs = plan_cvmfs(profile, repos, cvmfs_root=environ.get("SITE_AGENT_CVMFS_ROOT", "/cvmfs"))
    dist_missing = cvmfs.cvmfsexec_dir and not (Path(cvmfs.cvmfsexec_dir) / "dist").is_dir()
    setup: tuple[tuple[str, ...], ...] = (
        (cvmfs.makedist,) if dist_missing and cvmfs.makedist else ()
    )
    layers.append(Layer("cvmfs", cvmfs.describe(), command=cvmfs.prefix, setup=setup))

    # 5 before 4: the container needs the environment's prefix bound and on its PATH
    env_plan = None
    env_value = _choice(opts.conda_env, environ, "SITE_AGENT_CONDA_ENV")
    if env_value and env_value.strip() not in ("", "none"):
        from siteagent.conda import plan_env

        conda_cfg = profile.section("environment")["conda"]
        env_plan = plan_env(env_value, manager=conda_cfg["manager"], root=conda_cfg.get("root"))

    workdir_root = environ.get("TMPDIR") or "/tmp"
    workdir = str(Path(workdir_root) / f"site-agent-pilot-{pid_}")

    script = None
    if not opts.payload:
        script = find_pilot(opts.pilot_dir or environ.get("SITE_AGENT_PILOT_DIR"))

    # 4. container
    image = _choice(opts.container, environ, "SITE_AGENT_CONTAINER")
    if image is None:
        image = profile.section("container").get("default_image")
    container = None
    if image and image != "none":
        from siteagent.container import plan_container

        binds = [workdir]
        if script is not None:
            binds.append(str(script.parent))
        if cvmfs.mode != "none":
            root = environ.get("SITE_AGENT_CVMFS_ROOT", "/cvmfs")
            binds.append("/cvmfs" if root == "/cvmfs" else f"{root}:/cvmfs")
        if env_plan:
            binds.append(str(env_plan.prefix))
        container = plan_container(
            profile,
            image,
            gpu_vendor=gpus.vendor if gpus.count else profile.node.gpu_vendor,
            extra_binds=tuple(binds),
            prepend_path=(str(env_plan.bin_dir),) if env_plan else (),
        )
        layers.append(
            Layer("container", container.describe(), command=container.prefix, env=container.env)
        )
    else:
        layers.append(Layer("container", "no container"))

    # 5. software environment
    path_prepend: tuple[str, ...] = ()
    if env_plan:
        if container is None:
            path_prepend = (str(env_plan.bin_dir),)
        layers.append(
            Layer(
                "env",
                env_plan.describe(),
                setup=() if env_plan.ready else env_plan.create,
                env=env_plan.activation(),
            )
        )
    else:
        layers.append(Layer("env", "no extra environment"))

    # 6. payload
    walltime_s = remaining_walltime(opts.walltime, environ)
    if walltime_s is not None and walltime_s <= opts.margin:
        raise ConfigError(
            f"--walltime: only {walltime_s}s of the batch job are left, not more than the "
            f"{opts.margin:g}s --margin"
        )
    if opts.margin < 0 or opts.grace < 0:
        raise ConfigError("--margin/--grace: must be >= 0 seconds")
    # pilot3's kill_orphans() SIGTERMs every process of the user whose parent is init: on a
    # shared or non-exclusive node that hits other pilots and the endpoint's workers. The
    # wrapper is the subreaper of the payload and ends its leftovers itself, so it is not needed.
    payload_env = {"PILOT_NOKILL": "1"}
    if opts.payload:
        argv = tuple(opts.payload)
        layers.append(Layer("payload", "command given after --", command=argv, env=payload_env))
    else:
        queue = opts.queue or profile.section("pilot").get("panda_queue")
        if not queue:
            raise ConfigError(
                "--queue: no PanDA queue (give --queue or set pilot.panda_queue in the profile)"
            )
        if not QUEUE.match(queue):
            raise ConfigError(f"--queue: '{queue}' has characters that are not allowed")
        lifetime = profile.section("pilot").get("lifetime")
        if walltime_s:
            # the pilot stops by itself before the wrapper has to kill it
            own = int(walltime_s - opts.margin - opts.grace)
            lifetime = max(min(own, lifetime or own), 60)
        assert script is not None
        argv = pilot_command(
            profile, queue, lifetime, workdir, script, tuple(opts.pilot_args), environ,
            opts.resource_type,
        )  # fmt: skip
        summary = f"PanDA pilot {script} for queue {queue}"
        layers.append(Layer("payload", summary, command=argv, env=payload_env))

    full = (*cvmfs.prefix, *(container.prefix if container else ()), *argv)
    report = Path(opts.report).expanduser() if opts.report else default_report_path(environ, pid_)
    return PilotPlan(
        pilot_id=pid_,
        site=profile.name,
        host=host,
        local_rank=lrank,
        rank=grank,
        gpus=gpus,
        binding=binding,
        layers=tuple(layers),
        argv=full,
        path_prepend=path_prepend,
        workdir=workdir,
        report_path=str(report.absolute()),
        walltime_s=walltime_s,
        margin_s=opts.margin,
        grace_s=opts.grace,
        cvmfs=cvmfs,
        container=container,
        env_plan=env_plan,
    )
