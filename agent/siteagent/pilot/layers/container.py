"""Container layer: the payload runs inside the profile's container runtime.

A runtime is one ``ContainerRuntime`` subclass, registered by the profile's
``container.runtime`` name in ``RUNTIMES``: it turns the profile's binds, options and GPU flag
into the ``exec`` line and says how variables reach the inside. Apptainer and singularity now.

Why the exec line is built here and not by ``spython.main.Client.execute``: execute runs the
container to completion and captures its output (a pilot streams for hours and must own its
process group so signals and walltime kills reach it), it exits the whole Python process
when a bind source is missing on the host (so no plan can be shown on a login node), it always
calls the binary ``singularity`` (no variable points it elsewhere; apptainer-only hosts have no
such binary unless the admin made the compatibility link) and its ``environ`` replaces the
environment instead of adding to it. spython is used for what it does well: probing that the
runtime answers (``spython.utils.check_install``) before a pilot commits to a container.
Bind and option syntax below follows the apptainer CLI, which singularity shares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from siteagent.errors import ConfigError, SiteAgentError
from siteagent.names import IMAGE_RE, Var
from siteagent.pilot.layers.base import Layer, PilotLayer, PlanContext
from siteagent.profiles import Profile
from siteagent.sections import ContainerSection

IMAGE = IMAGE_RE
BIND = re.compile(r"^[A-Za-z0-9_./~+@-]{1,512}(:[A-Za-z0-9_./~+@-]{1,512}(:(ro|rw))?)?$")
# What each GPU vendor needs inside the container when the profile asks for no flag.
INTEL_DEVICES = "/dev/dri"


@dataclass(frozen=True)
class ContainerPlan:
    runtime: str
    image: str
    prefix: tuple[str, ...]  # runtime exec [flags] IMAGE
    env: dict[str, str]  # APPTAINERENV_* / SINGULARITYENV_* for the host process

    def describe(self) -> str:
        return f"{self.runtime} {self.image}"


class ContainerRuntime:
    """One container runtime: its ``exec`` line and how the payload's variables get in."""

    name: ClassVar[str]

    def __init__(self, cfg: ContainerSection) -> None:
        self.cfg = cfg  # the profile's container section

    def binds(self, gpu_vendor: str, extra: tuple[str, ...]) -> list[str]:
        """The profile's binds, the vendor's devices, then ``extra``; checked, each once."""
        devices = [INTEL_DEVICES] if gpu_vendor == "intel" else []
        out: list[str] = []
        for bind in (*self.cfg.binds, *devices, *extra):
            if not BIND.fullmatch(bind):
                raise ConfigError(f"container.binds: '{bind}' is not a bind specification")
            if bind not in out:
                out.append(bind)
        return out

    def exec_line(self, image: str, binds: list[str]) -> tuple[str, ...]:
        raise NotImplementedError

    def environment(self, prepend_path: tuple[str, ...]) -> dict[str, str]:
        """Host variables that become the profile's ``container.env`` (and PATH) inside."""
        raise NotImplementedError

    def plan(
        self, image: str, gpu_vendor: str, extra_binds: tuple[str, ...],
        prepend_path: tuple[str, ...],
    ) -> ContainerPlan:  # fmt: skip
        prefix = self.exec_line(image, self.binds(gpu_vendor, extra_binds))
        return ContainerPlan(self.name, image, prefix, self.environment(prepend_path))


class Apptainer(ContainerRuntime):
    name = "apptainer"
    env_prefix = "APPTAINERENV_"

    def exec_line(self, image: str, binds: list[str]) -> tuple[str, ...]:
        flag = self.cfg.gpu_flag
        args = [self.name, "exec", *([flag] if flag != "none" else [])]
        for bind in binds:
            args += ["--bind", bind]
        return (*args, *self.cfg.options, image)

    def environment(self, prepend_path: tuple[str, ...]) -> dict[str, str]:
        env = {f"{self.env_prefix}{k}": v for k, v in self.cfg.env.items()}
        if prepend_path:
            env[f"{self.env_prefix}PREPEND_PATH"] = ":".join(prepend_path)
        return env


class Singularity(Apptainer):
    name = "singularity"
    env_prefix = "SINGULARITYENV_"


RUNTIMES: dict[str, type[ContainerRuntime]] = {cls.name: cls for cls in (Apptainer, Singularity)}


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
) -> ContainerPlan:
    """The ``exec`` line for ``image``: the profile's binds and options, the GPU flag
    (``--nv`` NVIDIA, ``--rocm`` AMD, ``/dev/dri`` bound for Intel), plus ``extra_binds``
    (workdir, /cvmfs, the environment prefix)."""
    runtime = runtime_for(profile)
    if not IMAGE.match(image):
        raise ConfigError(f"--container: '{image}' is not an image path or URI")
    return runtime.plan(image, gpu_vendor, extra_binds, prepend_path)


def check_runtime(plan: ContainerPlan, path: str | None = None) -> None:
    """Fail early, with one line, when the runtime does not answer ``--version``."""
    import os

    from spython.utils import check_install

    old = os.environ.get("PATH")
    if path is not None:
        os.environ["PATH"] = path
    try:
        ok = check_install(plan.runtime)
    finally:
        if path is not None and old is not None:
            os.environ["PATH"] = old
    if not ok:
        raise SiteAgentError(
            f"container: '{plan.runtime} --version' failed (load it first: container.setup)"
        )


@dataclass(frozen=True)
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
    # the container binds the workdir, pilot3, /cvmfs and the environment's prefix, and puts
    # the environment on its PATH; GPU devices follow the vendor found
    after = ("gpu-binding", "cvmfs", "env", "payload")

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
        )
        return Layer(
            self.name, container.describe(), command=container.prefix, env=container.env,
            detail=Placement(container),
        )  # fmt: skip

    @staticmethod
    def _binds(ctx: PlanContext) -> tuple[str, ...]:
        script = ctx.detail("payload").script
        env_plan = ctx.detail("env")
        binds = [
            ctx.workdir,
            str(script.parent) if script is not None else None,
            ctx.detail("cvmfs").container_bind(),
            str(env_plan.prefix) if env_plan else None,
        ]
        return tuple(b for b in binds if b)

    def setup(self, layer: Layer, env: dict[str, str]) -> list[str]:
        container = layer.detail.container
        if container is None:
            return []
        check_runtime(container, env.get("PATH"))
        return [f"{container.runtime} --version ok"]
