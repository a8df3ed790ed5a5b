"""Container runtimes: one ``ContainerRuntime`` subclass per profile ``container.runtime``.

A runtime turns the profile's binds, options and GPU flag into the command in front of the
payload, says how variables reach the inside, which image references it can take (and how it
spells them), how to ask whether it is installed, and what removes a container a killed
pilot left behind. Apptainer and singularity (ALCF, OLCF), podman-hpc and Shifter (NERSC).

Why the exec line is built here and not by ``spython.main.Client.execute``: execute runs the
container to completion and captures its output (a pilot streams for hours and must own its
process group so signals and walltime kills reach it), it exits the whole Python process
when a bind source is missing on the host (so no plan can be shown on a login node), it always
calls the binary ``singularity`` and its ``environ`` replaces the environment instead of
adding to it.
"""

from __future__ import annotations

from siteagent.errors import ConfigError
from siteagent.names import Pattern
from siteagent.records import record
from siteagent.sections import ContainerSection

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import ClassVar

BIND = Pattern(r"^[A-Za-z0-9_./~+@-]{1,512}(:[A-Za-z0-9_./~+@-]{1,512}(:(ro|rw))?)?$")
# What each GPU vendor needs inside the container when the profile asks for no flag.
INTEL_DEVICES = "/dev/dri"
URI = Pattern(r"^([a-z][a-z0-9-]*)://(.+)$")


def checked_binds(binds: Sequence[str]) -> list[str]:
    """``binds`` each once, in order; ConfigError for one that is not a bind specification."""
    for bind in binds:
        if not BIND.fullmatch(bind):
            raise ConfigError(f"container.binds: '{bind}' is not a bind specification")
    return list(dict.fromkeys(binds))


def flagged(flag: str, values: Iterable[str]) -> list[str]:
    """``flag`` before each value: ``flagged("-v", [a, b])`` is ``-v a -v b``."""
    return [word for value in values for word in (flag, value)]


def source_and_target(bind: str) -> str:
    """A bind as ``SRC:DST[:MODE]`` (a bare path binds to itself)."""
    return bind if ":" in bind else f"{bind}:{bind}"


def gpu_options(cfg: ContainerSection) -> list[str]:
    """The profile's ``container.gpu_flag``, unless it is ``none``."""
    return [cfg.gpu_flag] if cfg.gpu_flag != "none" else []


@record(frozen=True)
class ContainerPlan:
    runtime: str
    image: str
    prefix: tuple[str, ...]  # runtime run|exec [flags] IMAGE [--]
    env: dict[str, str]  # host variables the runtime reads (APPTAINERENV_*, ...)
    # run after the payload, whatever happened: removes a container a SIGKILL left running
    teardown: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.runtime} {self.image}"


@record(frozen=True)
class RunSpec:
    """What the pilot asks of a runtime besides the image: where the payload works, the
    name of its container, extra binds, host PATH entries to put in front inside, and the
    host variables the inside needs (a runtime that passes no environment names them)."""

    gpu_vendor: str
    extra_binds: tuple[str, ...] = ()
    prepend_path: tuple[str, ...] = ()
    workdir: str | None = None
    name: str | None = None
    pass_env: tuple[str, ...] = ()


class ContainerRuntime:
    """One container runtime: its command line, its image references, how variables get in."""

    name: ClassVar[str]
    gpu_flags: ClassVar[frozenset[str]] = frozenset({"none"})  # container.gpu_flag values
    version_args: ClassVar[tuple[str, ...]] = ("--version",)  # answers when installed
    host_path: ClassVar[bool] = False  # the host's PATH reaches the payload inside

    def __init__(self, cfg: ContainerSection) -> None:
        self.cfg = cfg  # the profile's container section

    def check_gpu_flag(self) -> None:
        if self.cfg.gpu_flag not in self.gpu_flags:
            raise ConfigError(
                f"container.gpu_flag: '{self.cfg.gpu_flag}' is not a {self.name} flag "
                f"(use one of {', '.join(sorted(self.gpu_flags))})"
            )

    def image_ref(self, image: str) -> str:
        """``image`` as this runtime spells it; ConfigError for a form it cannot take."""
        return image

    def binds(self, gpu_vendor: str, extra: tuple[str, ...]) -> list[str]:
        """The profile's binds, the vendor's devices, then ``extra``; checked, each once."""
        devices = [INTEL_DEVICES] if gpu_vendor == "intel" else []
        return checked_binds([*self.cfg.binds, *devices, *extra])

    def command(self, image: str, binds: list[str], spec: RunSpec) -> tuple[str, ...]:
        raise NotImplementedError

    def environment(self, prepend_path: tuple[str, ...]) -> dict[str, str]:
        """Host variables that become the profile's ``container.env`` (and PATH) inside."""
        return {}

    def teardown(self, spec: RunSpec) -> tuple[str, ...]:
        """The command that removes what a killed payload left (none by default)."""
        return ()

    def plan(self, image: str, spec: RunSpec) -> ContainerPlan:
        self.check_gpu_flag()
        ref = self.image_ref(image)
        prefix = self.command(ref, self.binds(spec.gpu_vendor, spec.extra_binds), spec)
        env = self.environment(spec.prepend_path)
        return ContainerPlan(self.name, ref, prefix, env, self.teardown(spec))


class Apptainer(ContainerRuntime):
    """``apptainer exec``: the host environment passes in, APPTAINERENV_* adds to it."""

    name = "apptainer"
    gpu_flags = frozenset({"--nv", "--rocm", "none"})
    env_prefix = "APPTAINERENV_"

    def image_ref(self, image: str) -> str:
        # a plain registry reference (ghcr.io/x/y:1) is docker://ghcr.io/x/y:1 to apptainer
        if URI.match(image) or image.startswith(("/", ".", "~")):
            return image
        return f"docker://{image}"

    def command(self, image: str, binds: list[str], spec: RunSpec) -> tuple[str, ...]:
        args = [self.name, "exec", *gpu_options(self.cfg), *flagged("--bind", binds)]
        return (*args, *self.cfg.options, image)

    def environment(self, prepend_path: tuple[str, ...]) -> dict[str, str]:
        env = {f"{self.env_prefix}{k}": v for k, v in self.cfg.env.items()}
        if prepend_path:
            env[f"{self.env_prefix}PREPEND_PATH"] = ":".join(prepend_path)
        return env


class Singularity(Apptainer):
    name = "singularity"
    env_prefix = "SINGULARITYENV_"


def registry_ref(runtime: str, image: str) -> str:
    """A plain registry reference (``docker://`` dropped); ConfigError for files and other
    URI schemes, which podman-hpc and Shifter cannot run."""
    m = URI.match(image)
    if m and m.group(1) == "docker":
        return m.group(2)
    if m or _names_a_file(image):
        raise ConfigError(
            f"--container: '{image}' is not a registry image; {runtime} takes a reference "
            "such as docker.io/library/ubuntu:22.04"
        )
    return image


def _names_a_file(image: str) -> bool:
    """A path or an image file (SIF, squashfs), not a registry reference."""
    return image.startswith(("/", ".", "~")) or image.endswith((".sif", ".img", ".sqsh"))


class PodmanHpc(ContainerRuntime):
    """NERSC's ``podman-hpc run``: modules are flags (``--gpu``, ``--cvmfs``); podman passes
    no host variable unless named, so the pilot's are named (``-e NAME`` or ``-e PREFIX*``).
    ``--init`` gives the payload a PID 1 that passes signals on; ``--rm`` and ``--name`` let
    the teardown remove a container whose ``podman`` was killed (conmon outlives it)."""

    name = "podman-hpc"
    gpu_flags = frozenset({"--gpu", "none"})
    version_args = ("version", "--format", "{{.Client.Version}}")
    # what a pilot and PanDA pilot3 read from the batch job and site-agent
    PASS_PREFIXES = ("SITE_AGENT_", "SLURM_", "PALS_", "PMI_", "PANDA_", "PILOT_", "X509_")
    PASS_NAMES = ("USER", "LANG", "TZ", "HARVESTER_ID", "HARVESTER_WORKER_ID")
    DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    def image_ref(self, image: str) -> str:
        return registry_ref(self.name, image)

    def binds(self, gpu_vendor: str, extra: tuple[str, ...]) -> list[str]:
        # podman reads a bare `-v /path` as an anonymous volume: always SRC:DST; the cvmfs
        # module (--cvmfs) already binds the host's /cvmfs
        skip = {"/cvmfs:/cvmfs"} if "--cvmfs" in self.cfg.options else set()
        return [
            b for b in map(source_and_target, super().binds(gpu_vendor, extra)) if b not in skip
        ]

    def command(self, image: str, binds: list[str], spec: RunSpec) -> tuple[str, ...]:
        args = [self.name, "run", "--rm", "--init", *self._name_and_gpu(spec)]
        args += flagged("-e", self._variables(spec))
        args += ["-w", spec.workdir] if spec.workdir else []
        return (*args, *flagged("-v", binds), *self.cfg.options, image)

    def _name_and_gpu(self, spec: RunSpec) -> list[str]:
        """The container's name (for the teardown) and, on a GPU node, the GPU module."""
        args = ["--name", spec.name] if spec.name else []
        if self.cfg.gpu_flag != "none" and spec.gpu_vendor != "none":
            args.append(self.cfg.gpu_flag)  # the GPU module binds what a GPU node has
        return args

    def _variables(self, spec: RunSpec) -> list[str]:
        """What ``-e`` passes: host variables by name or prefix, container.env, the PATH."""
        names = (*(f"{p}*" for p in self.PASS_PREFIXES), *self.PASS_NAMES, *spec.pass_env)
        env = [*dict.fromkeys(names), *(f"{k}={v}" for k, v in self.cfg.env.items())]
        if spec.prepend_path:
            env.append("PATH=" + ":".join((*spec.prepend_path, self.DEFAULT_PATH)))
        return env

    def teardown(self, spec: RunSpec) -> tuple[str, ...]:
        if not spec.name:
            return ()
        return (self.name, "rm", "--force", "--ignore", "--time", "0", spec.name)


class Shifter(ContainerRuntime):
    """NERSC's ``shifter --image=docker:REF [--volume=SRC:DST] [--module=gpu,cvmfs] -- CMD``
    (https://github.com/NERSC/shifter, doc/command/shifter.rst): the host environment,
    PATH included, and the working directory pass in, so ``container.env`` and the software
    environment's PATH are set on the host; site modules (gpu, cvmfs) are options."""

    name = "shifter"
    version_args = ("--help",)  # shifter has no --version
    host_path = True  # the host's PATH is the container's

    def image_ref(self, image: str) -> str:
        if image.startswith("docker:") and not image.startswith("docker://"):
            image = image[len("docker:") :]
        return "docker:" + registry_ref(self.name, image)

    def command(self, image: str, binds: list[str], spec: RunSpec) -> tuple[str, ...]:
        args = [self.name, f"--image={image}"]
        args += [f"--volume={source_and_target(b)}" for b in binds]
        return (*args, *self.cfg.options, "--")

    def environment(self, prepend_path: tuple[str, ...]) -> dict[str, str]:
        return dict(self.cfg.env)


RUNTIMES: dict[str, type[ContainerRuntime]] = {
    cls.name: cls for cls in (Apptainer, Singularity, PodmanHpc, Shifter)
}
