"""Software environment layer: a conda (or venv) environment, created once per spec and
reused by every later pilot.

An environment is keyed by the hash of its manager and spec (a package list, or the content
of an environment.yml / requirements.txt), so a second pilot with the same spec finds the
finished prefix and solves nothing. Creation is serialised by a lock file (many ranks start at
once) and a prefix counts as finished only when its marker file exists (written last), so a
creation killed halfway is redone, never used. Managers, in the order ``auto`` tries them:
micromamba, mamba, conda, then a plain venv + pip for sites with no conda at all.

Activation is a set of variables (PATH, CONDA_PREFIX or VIRTUAL_ENV), not ``conda run``: no
extra process sits between the wrapper and the payload, so signals reach it directly, and the
same variables work inside a container (PATH through APPTAINERENV_PREPEND_PATH).
"""

from __future__ import annotations

import json
import os
import subprocess

from siteagent import pathstr
from siteagent.errors import ConfigError, SiteAgentError
from siteagent.fileio import read_text
from siteagent.names import Pattern, Var
from siteagent.pilot.layers.base import Layer, PilotLayer, PlanContext
from siteagent.records import record

MANAGERS = ("micromamba", "mamba", "conda")
PACKAGE = Pattern(
    r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*(::[A-Za-z0-9_.+-]+)?([<>=!~]{1,2}[A-Za-z0-9_.*+-]+)*$"
)
FILE_SUFFIXES = (".yml", ".yaml", ".txt")
MARKER = ".site-agent-env.json"
CREATE_TIMEOUT = 3600


@record(frozen=True)
class EnvSpec:
    """A software environment: packages, or a file that lists them."""

    packages: tuple[str, ...] = ()
    file: str | None = None  # an absolute path

    def canonical(self) -> str:
        if self.file is not None:
            return f"file:{pathstr.suffix(self.file)}\n{read_text(self.file)}"
        return "packages:" + ",".join(self.packages)

    def describe(self) -> str:
        return self.file if self.file else (",".join(self.packages) or "(no packages)")


def parse_spec(value: str) -> EnvSpec:
    """``numpy,scipy=1.13`` (a package list, order free) or a path to an environment.yml /
    requirements.txt."""
    value = value.strip()
    if value.endswith(FILE_SUFFIXES) or "/" in value:
        path = pathstr.absolute(os.path.expanduser(value))
        if not os.path.isfile(path):
            raise ConfigError(f"--conda-env: no such environment file: {value}")
        return EnvSpec(file=path)
    return EnvSpec(packages=_packages(value))


def _packages(value: str) -> tuple[str, ...]:
    """A comma-separated package list, sorted (order free), each checked."""
    packages = sorted({p.strip() for p in value.split(",") if p.strip()})
    for p in packages:
        if not PACKAGE.fullmatch(p) or len(p) > 200:
            raise ConfigError(f"--conda-env: '{p}' is not a package specification")
    return tuple(packages)


@record(frozen=True)
class EnvPlan:
    """How the environment is made: by which manager, from which spec."""

    manager: str  # micromamba, mamba, conda or venv
    executable: str
    spec: EnvSpec
    key: str
    prefix: str  # an absolute path
    create: tuple[tuple[str, ...], ...]

    @property
    def ready(self) -> bool:
        return os.path.isfile(os.path.join(self.prefix, MARKER))

    @property
    def bin_dir(self) -> str:
        return os.path.join(self.prefix, "bin")

    def activation(self) -> dict[str, str]:
        """Variables that activate the environment (PATH is prepended by the caller)."""
        if self.manager == "venv":
            return {"VIRTUAL_ENV": self.prefix}
        return {"CONDA_PREFIX": self.prefix, "CONDA_DEFAULT_ENV": self.prefix}

    def describe(self) -> str:
        state = "ready" if self.ready else "to create"
        return f"{self.manager} env {self.prefix} ({state}) for {self.spec.describe()}"


def env_root(configured: str | None = None) -> str:
    """Where environments live (an absolute path): the profile's ``environment.conda.root``,
    ``$SITE_AGENT_ENV_ROOT`` or ``~/.site-agent/envs`` (a shared file system, so every node
    reuses one environment)."""
    root = configured or os.environ.get(Var.ENV_ROOT) or "~/.site-agent/envs"
    return pathstr.absolute(os.path.expanduser(root))


def _manager_exe(name: str) -> str | None:
    """``name`` on PATH, else its shell hook's ``$MAMBA_EXE``/``$CONDA_EXE`` when that is it."""
    import shutil

    hook = os.environ.get("MAMBA_EXE" if name == "micromamba" else "CONDA_EXE")
    hooked = hook and pathstr.name(hook) == name and os.access(hook, os.X_OK)
    return shutil.which(name) or (hook if hooked else None)


def find_manager(preference: str = "auto") -> tuple[str, str]:
    """``(manager, executable)``; ``auto`` takes the first of micromamba, mamba, conda
    (also ``$MAMBA_EXE``/``$CONDA_EXE``, which their shell hooks set), else venv."""
    import shutil
    import sys

    if preference == "none":
        raise ConfigError("--conda-env: environment.conda.manager is none on this site")
    candidates = MANAGERS if preference == "auto" else (preference,)
    for name in (c for c in candidates if c != "venv"):
        exe = _manager_exe(name)
        if exe:
            return name, exe
    if preference not in ("auto", "venv"):
        raise ConfigError(
            f"environment.conda.manager: '{preference}' not found on PATH (load it in "
            "environment.worker_init, or use auto)"
        )
    return "venv", shutil.which("python3") or sys.executable


def _venv_commands(exe: str, spec: EnvSpec, prefix: str) -> list[tuple[str, ...]]:
    cmds: list[tuple[str, ...]] = [(exe, "-m", "venv", "--system-site-packages", prefix)]
    pip = (os.path.join(prefix, "bin", "python"), "-m", "pip", "install", "--quiet")
    if spec.file is not None:
        if pathstr.suffix(spec.file) != ".txt":
            raise ConfigError(
                f"--conda-env: {pathstr.name(spec.file)} needs conda; a venv takes a package "
                "list or a requirements.txt"
            )
        cmds.append((*pip, "--requirement", spec.file))
    elif spec.packages:
        cmds.append((*pip, *spec.packages))
    return cmds


def _create_commands(manager: str, exe: str, spec: EnvSpec, prefix: str) -> list[tuple[str, ...]]:
    if manager == "venv":
        return _venv_commands(exe, spec, prefix)
    if spec.file is None:
        return [(exe, "create", "--yes", "--prefix", prefix, *spec.packages)]
    if pathstr.suffix(spec.file) in (".yml", ".yaml") and manager != "micromamba":
        return [(exe, "env", "create", "--prefix", prefix, "--file", spec.file)]
    return [(exe, "create", "--yes", "--prefix", prefix, "--file", spec.file)]


def plan_env(value: str, *, manager: str = "auto", root: str | None = None) -> EnvPlan:
    """What environment ``value`` names and how it would be created (no side effects)."""
    from siteagent.fileio import sha256_text

    spec = parse_spec(value)
    name, exe = find_manager(manager)
    key = sha256_text(f"{name}\n{spec.canonical()}")[:16]
    prefix = os.path.join(env_root(root), f"{name}-{key}")
    return EnvPlan(name, exe, spec, key, prefix, tuple(_create_commands(name, exe, spec, prefix)))


def _run_create(plan: EnvPlan, env: dict[str, str] | None) -> None:
    """Run the creation commands, logging to ``<prefix>.log``; no prefix is left on failure."""
    import shutil

    log = f"{plan.prefix}.log"  # beside the prefix
    with open(log, "w") as out:
        for cmd in plan.create:
            try:
                r = subprocess.run(
                    list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env,
                    timeout=CREATE_TIMEOUT,
                )  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as err:
                raise SiteAgentError(f"environment: {cmd[0]} failed: {err}") from None
            if r.returncode != 0:
                shutil.rmtree(plan.prefix, ignore_errors=True)
                raise SiteAgentError(
                    f"environment: '{' '.join(cmd[:3])} ...' exited {r.returncode} (log: {log})"
                )


def ensure_env(plan: EnvPlan, env: dict[str, str] | None = None) -> bool:
    """Create the environment unless it is ready; True when this call created it."""
    import fcntl
    import shutil

    from siteagent.fileio import atomic_write

    if plan.ready:
        return False
    parent = os.path.dirname(plan.prefix)
    os.makedirs(parent, exist_ok=True)
    lock_path = os.path.join(parent, f".{os.path.basename(plan.prefix)}.lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another rank may be creating it right now
        if plan.ready:
            return False
        if os.path.exists(plan.prefix):  # a creation that died halfway
            shutil.rmtree(plan.prefix)
        _run_create(plan, env)
        marker = {"manager": plan.manager, "spec": plan.spec.describe(), "key": plan.key}
        atomic_write(os.path.join(plan.prefix, MARKER), json.dumps(marker) + "\n")
    return True


class EnvLayer(PilotLayer):
    name = "env"

    def plan(self, ctx: PlanContext) -> Layer:
        value = ctx.choice(ctx.opts.conda_env, Var.CONDA_ENV)
        if not value or value.strip() in ("", "none"):
            return Layer(self.name, "no extra environment")
        conda = ctx.profile.environment.conda
        env_plan = plan_env(value, manager=conda.manager, root=conda.root)
        return Layer(
            self.name,
            env_plan.describe(),
            setup=() if env_plan.ready else env_plan.create,
            env=env_plan.activation(),
            detail=env_plan,
        )

    def setup(self, layer: Layer, env: dict[str, str]) -> list[str]:
        if layer.detail is None:
            return []
        return ["created" if ensure_env(layer.detail, env) else "reused"]
