"""Container layer: the payload runs inside the profile's container runtime.

The runtimes themselves (apptainer, singularity, podman-hpc, shifter) are ``ContainerRuntime``
subclasses in ``runtimes.py``, registered by the profile's ``container.runtime`` name in
``RUNTIMES``. This layer decides the image, what the container binds and which host
variables it needs, checks that the runtime answers, runs the profile's ``container.setup``
lines before it (modules that put the runtime on PATH) and, at the end, the runtime's teardown.
"""

from __future__ import annotations

import os
import subprocess

from siteagent import pathstr
from siteagent.errors import ConfigError, SiteAgentError
from siteagent.names import IMAGE_RE, Var
from siteagent.pilot.layers.base import Layer, PilotLayer, PlanContext
from siteagent.pilot.layers.runtimes import (
    BIND,
    RUNTIMES,
    ContainerPlan,
    ContainerRuntime,
    RunSpec,
)
from siteagent.profiles import Profile
from siteagent.records import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from siteagent.pilot.layers.credentials import Credentials

IMAGE = IMAGE_RE
__all__ = ["RUNTIMES", "ContainerLayer", "ContainerPlan", "ContainerRuntime", "plan_container"]
# the layers whose variables a container that passes no environment must be told about
ENV_LAYERS = ("gpu-binding", "proxy", "cvmfs", "env", "credentials", "identity", "payload")
SETUP_TIMEOUT = 300  # seconds for the container.setup lines (module loads)


def runtime_for(profile: Profile) -> ContainerRuntime:
    """The runtime the profile's ``container.runtime`` names; ConfigError when none is."""
    cfg = profile.container
    name = cfg.runtime
    if name == "none":
        raise ConfigError(
            f"--container: site '{profile.name}' has container.runtime none "
            "(set container.runtime in the profile)"
        )
    if name not in RUNTIMES:
        raise ConfigError(
            f"container.runtime: '{name}' is not supported by the pilot wrapper yet "
            f"(supported: {', '.join(RUNTIMES)})"
        )
    return RUNTIMES[name](cfg)


def plan_container(
    profile: Profile,
    image: str,
    *,
    gpu_vendor: str,
    extra_binds: tuple[str, ...] = (),
    prepend_path: tuple[str, ...] = (),
    workdir: str | None = None,
    name: str | None = None,
    pass_env: tuple[str, ...] = (),
) -> ContainerPlan:
    """The runtime's command for ``image``: the profile's binds and options, the GPU flag
    (``--nv``/``--rocm`` apptainer, ``--gpu`` podman-hpc, ``/dev/dri`` bound for Intel), plus
    ``extra_binds`` (workdir, /cvmfs, the environment prefix)."""
    runtime = runtime_for(profile)
    if not IMAGE.match(image):
        raise ConfigError(f"--container: '{image}' is not an image path or URI")
    spec = RunSpec(gpu_vendor, extra_binds, prepend_path, workdir, name, pass_env)
    return runtime.plan(image, spec)


def check_runtime(plan: ContainerPlan, env: dict[str, str]) -> None:
    """Fail early, with one line, when the runtime does not answer (``--version``)."""
    args = (plan.runtime, *RUNTIMES[plan.runtime].version_args)
    try:
        ok = subprocess.run(args, env=env, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        raise SiteAgentError(
            f"container: '{' '.join(args)}' failed (load it first: container.setup)"
        )


# `module` is a shell function: inherited where the job's shell exported it (Lmod does),
# else defined from the usual init scripts
MODULE_INIT = (
    "command -v module >/dev/null 2>&1 || for f in /etc/profile.d/lmod.sh "
    "/etc/profile.d/modules.sh /usr/share/lmod/lmod/init/bash; do "
    '[ -r "$f" ] && . "$f" && break; done'
)


def setup_lines(profile: Profile) -> list[tuple[str, ...]]:
    """The profile's ``container.setup`` as one ``bash -c`` that ends by printing the
    environment (the module loads' PATH and friends are read back into the pilot's)."""
    lines = profile.container.setup
    if not lines:
        return []
    script = "\n".join(("set -e", MODULE_INIT, *lines, "env -0"))
    return [("bash", "-c", script)]


def apply_setup(cmd: tuple[str, ...], env: dict[str, str]) -> None:
    """Run the setup lines and take the environment they leave (PATH of the runtime)."""
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, timeout=SETUP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SiteAgentError(f"container.setup: could not run: {err}") from err
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise SiteAgentError(f"container.setup: exit {done.returncode}: {tail[0]}".rstrip(": "))
    for item in done.stdout.split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep and key and key not in ("_", "SHLVL", "PWD", "OLDPWD"):
            env[key] = value


def credential_dirs(creds: Credentials) -> list[str]:
    """The directories of the credential files there are (X509 proxy, PanDA token and its
    key): pilot3 in the container reads them by the host's paths. Apptainer binds $HOME,
    /tmp and $PWD by default and nothing else of the user's (apptainer.org/docs/user/main/
    bind_paths_and_mounts.html, "System-defined bind paths"); podman binds nothing unasked.
    Directories, not the files: a proxy renewed by a rename must be seen anew, and a file
    bind keeps the old inode."""
    dirs = []
    for path in (creds.proxy, creds.token, creds.token_key):
        folder = os.path.dirname(path) if path and os.path.isfile(path) else ""
        if folder in ("", "/"):
            continue
        if not BIND.fullmatch(folder):
            raise ConfigError(f"credentials: {folder!r} cannot be bound into the container")
        dirs.append(folder)
    return dirs


@record(frozen=True)
class Placement:
    """The container (None: the payload runs on the host) and what the host PATH gets."""

    container: ContainerPlan | None
    path_prepend: tuple[str, ...] = ()


def requested_image(ctx: PlanContext) -> str | None:
    """``--container``, else ``$SITE_AGENT_CONTAINER``, else the profile's
    ``container.default_image``; None for no container (empty or ``none``)."""
    image = ctx.choice(ctx.opts.container, Var.CONTAINER)
    if image is None:
        image = ctx.profile.container.default_image
    return None if not image or image == "none" else image


class ContainerLayer(PilotLayer):
    name = "container"
    # the container binds the workdir, pilot3, /cvmfs, the environment's prefix and the
    # credentials' directories, and puts the environment on its PATH; GPU devices follow the
    # vendor found; a runtime that passes no environment is told the names the others set
    after = ENV_LAYERS

    def plan(self, ctx: PlanContext) -> Layer:
        env_plan = ctx.detail("env")
        image = requested_image(ctx)
        if image is None:
            host_path = (str(env_plan.bin_dir),) if env_plan else ()
            return Layer(self.name, "no container", detail=Placement(None, host_path))
        share = ctx.detail("gpu-binding")
        container = plan_container(
            ctx.profile,
            image,
            gpu_vendor=share.gpus.vendor if share.gpus.count else ctx.profile.node.gpu_vendor,
            extra_binds=self._binds(ctx),
            prepend_path=(str(env_plan.bin_dir),) if env_plan else (),
            workdir=ctx.workdir,
            name=f"site-agent-{ctx.pilot_id}",
            pass_env=tuple(k for n in ENV_LAYERS for k in ctx.earlier[n].env),
        )
        # a runtime that passes the host's PATH in (shifter) gets the environment's bin/ there
        host_path = (
            (str(env_plan.bin_dir),) if env_plan and RUNTIMES[container.runtime].host_path else ()
        )
        return Layer(
            self.name, container.describe(), command=container.prefix,
            setup=tuple(setup_lines(ctx.profile)), env=container.env,
            detail=Placement(container, host_path),
        )  # fmt: skip

    @staticmethod
    def _binds(ctx: PlanContext) -> tuple[str, ...]:
        # a dry run's payload may be missing (no queue yet): then there is no script to bind
        script = getattr(ctx.detail("payload"), "script", None)
        env_plan = ctx.detail("env")
        binds = [
            ctx.workdir,
            pathstr.parent(script) if script is not None else None,
            ctx.detail("cvmfs").container_bind(),
            str(env_plan.prefix) if env_plan else None,
            *credential_dirs(ctx.detail("credentials")),
        ]
        return tuple(b for b in binds if b)

    def setup(self, layer: Layer, env: dict[str, str]) -> list[str]:
        container = layer.detail.container
        if container is None:
            return []
        done = []
        for cmd in layer.setup:
            apply_setup(cmd, env)
            done.append("container.setup ran")
        check_runtime(container, env)
        return [*done, f"{container.runtime} answers"]

    def teardown(self, layer: Layer, env: dict[str, str]) -> list[str]:
        container = layer.detail.container
        if container is None or not container.teardown:
            return []
        try:
            subprocess.run(container.teardown, env=env, capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            return [f"teardown failed: {err}"]
        return [" ".join(container.teardown)]
