"""The container layer of the pilot: ``apptainer exec`` (or ``singularity exec``).

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

from siteagent.errors import ConfigError, SiteAgentError
from siteagent.names import IMAGE_RE
from siteagent.profiles import Profile

IMAGE = IMAGE_RE
BIND = re.compile(r"^[A-Za-z0-9_./~+@-]{1,512}(:[A-Za-z0-9_./~+@-]{1,512}(:(ro|rw))?)?$")
SUPPORTED = ("apptainer", "singularity")
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


def env_prefix(runtime: str) -> str:
    return "SINGULARITYENV_" if runtime == "singularity" else "APPTAINERENV_"


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
    cfg = profile.section("container")
    runtime = cfg["runtime"]
    if runtime == "none":
        raise ConfigError(
            f"--container: site '{profile.name}' has container.runtime none "
            "(set container.runtime in the profile)"
        )
    if runtime not in SUPPORTED:
        raise ConfigError(
            f"container.runtime: '{runtime}' is not supported by the pilot wrapper yet "
            f"(supported: {', '.join(SUPPORTED)})"
        )
    if not IMAGE.match(image):
        raise ConfigError(f"--container: '{image}' is not an image path or URI")
    args: list[str] = [runtime, "exec"]
    gpu_flag = cfg["gpu_flag"]
    if gpu_flag != "none":
        args.append(gpu_flag)
    binds = list(cfg["binds"])
    if gpu_vendor == "intel" and INTEL_DEVICES not in binds:
        binds.append(INTEL_DEVICES)
    seen: set[str] = set()
    for bind in (*binds, *extra_binds):
        if not BIND.match(bind):
            raise ConfigError(f"container.binds: '{bind}' is not a bind specification")
        if bind not in seen:
            seen.add(bind)
            args += ["--bind", bind]
    args += cfg["options"]
    args.append(image)
    prefix = env_prefix(runtime)
    env = {f"{prefix}{k}": v for k, v in cfg["env"].items()}
    if prepend_path:
        env[f"{prefix}PREPEND_PATH"] = ":".join(prepend_path)
    return ContainerPlan(runtime=runtime, image=image, prefix=tuple(args), env=env)


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
