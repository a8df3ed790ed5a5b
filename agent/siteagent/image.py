"""Image mode: site-agent runs from its own image, and the endpoint it writes starts the worker
pools inside that same image (GlobusComputeEngine's ``container_type``, ``container_uri``,
``container_cmd_options``).

Inside the image (the Containerfile writes ``MARKER``) the runtime and the image are read from
the runtime's environment: apptainer/singularity export the SIF's path, podman names the image
in ``/run/.containerenv`` when it is privileged, else ``$SITE_AGENT_IMAGE`` (which the worker
pools get) names it. ``--image URI`` names the image explicitly (also outside the image).
The runtime that starts the workers on the compute nodes is the profile's ``container.runtime``
(apptainer on Polaris/Aurora/Frontier, podman-hpc on Perlmutter); a profile without one (local)
uses the runtime site-agent itself runs in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from siteagent.errors import ConfigError
from siteagent.fileio import read_text
from siteagent.names import IMAGE_RE, Var
from siteagent.pilot.layers.runtimes import (
    INTEL_DEVICES,
    checked_binds,
    flagged,
    gpu_options,
)
from siteagent.profiles import Profile
from siteagent.records import record
from siteagent.sections import ContainerSection

MARKER = "/opt/site-agent/IMAGE"
CONTAINERENV = "/run/.containerenv"
DOCKERENV = "/.dockerenv"
APPTAINER_TYPES = ("apptainer", "singularity")
DOCKER_TYPES = ("podman", "podman-hpc", "docker")
# what worker_init exports for the pilot wrapper; podman and docker pass no host variable
# into a container unless named (apptainer passes them all)
WORKER_VARIABLES = (
    Var.SITE,
    Var.SCHEDULER,
    Var.NODES,
    Var.RANKS_PER_NODE,
    Var.CORES_PER_RANK,
    Var.GPUS_PER_RANK,
    Var.WALLTIME,
    Var.JOB_START,
    Var.CVMFS_REPOS,
    Var.CONTAINER,
    Var.CONDA_ENV,
    Var.EXEC,
    Var.PILOT_DIR,
    "TMPDIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
)


@record(frozen=True)
class RunningImage:
    """The image site-agent runs from: its runtime and what that runtime calls it."""

    runtime: str  # apptainer | singularity | podman | docker
    uri: str | None  # SIF path or image reference; None where the runtime does not say


@record(frozen=True)
class WorkerImage:
    """The engine's container options that start the worker pools in the image."""

    container_type: str
    container_uri: str
    options: tuple[str, ...]  # container_cmd_options, word by word
    # bound directories the batch job creates first (a runtime refuses a missing bind source)
    create: tuple[str, ...] = ()

    @property
    def cmd_options(self) -> str:
        return " ".join(self.options)


def _containerenv_image(path: str) -> str | None:
    """``image="..."`` of podman's /run/.containerenv (empty unless podman filled it in)."""
    try:
        text = read_text(path)
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "image" and value.strip().strip('"'):
            return value.strip().strip('"')
    return None


def detect(
    environ: Mapping[str, str] | None = None,
    marker: str | os.PathLike[str] | None = None,
    containerenv: str | os.PathLike[str] | None = None,
) -> RunningImage | None:
    """The site-agent image this process runs in, or None outside it."""
    env = os.environ if environ is None else environ
    if not os.path.isfile(os.fspath(marker or MARKER)):
        return None
    return _apptainer_image(env) or _oci_image(env, os.fspath(containerenv or CONTAINERENV))


# runtime -> the variable it sets to the image inside its containers
_APPTAINER_VARIABLES = {"apptainer": "APPTAINER_CONTAINER", "singularity": "SINGULARITY_CONTAINER"}


def _apptainer_image(env: Mapping[str, str]) -> RunningImage | None:
    for runtime, var in _APPTAINER_VARIABLES.items():
        if env.get(var):
            return RunningImage(runtime, env[var])
    return None


def _oci_image(env: Mapping[str, str], containerenv: str) -> RunningImage:
    # podman sets container=podman and writes /run/.containerenv; docker writes /.dockerenv
    docker = env.get("container") == "docker" or os.path.exists(DOCKERENV)
    uri = env.get(Var.IMAGE) or _containerenv_image(containerenv)
    return RunningImage("docker" if docker else "podman", uri)


def _runtime(profile: Profile, running: RunningImage | None) -> str:
    runtime = profile.container.runtime
    if runtime == "none":
        return _running_runtime(profile, running)
    if runtime not in APPTAINER_TYPES + DOCKER_TYPES:
        raise ConfigError(
            f"container.runtime: '{runtime}' cannot start the endpoint's workers in the image "
            f"(supported: {', '.join(APPTAINER_TYPES + DOCKER_TYPES)})"
        )
    return runtime


def _running_runtime(profile: Profile, running: RunningImage | None) -> str:
    """For a profile without a runtime: the one site-agent itself runs in."""
    if running is None:
        raise ConfigError(
            f"container.runtime: site '{profile.name}' has none to start workers in the "
            "image (set container.runtime in the profile)"
        )
    return running.runtime


def _binds(profile: Profile, endpoint_dir: str) -> list[str]:
    """Host paths the worker pool and the pilot wrapper need inside the image: the endpoint
    directory (execution wrapper, tasks' sandboxes), scratch, CVMFS, the profile's binds and,
    for Intel GPUs, /dev/dri."""
    binds = [endpoint_dir, *profile.check.scratch_dirs, *_cvmfs_binds(profile)]
    binds += profile.container.binds
    if profile.node.gpu_vendor == "intel":
        binds.append(INTEL_DEVICES)  # once: the loop below drops a repeated bind
    return checked_binds(binds)


def _cvmfs_binds(profile: Profile) -> list[str]:
    cvmfs = profile.cvmfs
    # cvmfsexec's distribution and cache live on the host, shared by the pilots of a node
    by_mode: dict[str, list[str | None]] = {
        "native": ["/cvmfs"],
        "cvmfsexec": [cvmfs.dist_dir, cvmfs.cache_dir],
    }
    return [p for p in by_mode.get(cvmfs.mode, []) if p]


def worker_image(
    profile: Profile,
    endpoint_dir: str | os.PathLike[str],
    image: str | None = None,
    running: RunningImage | None = None,
) -> WorkerImage:
    """The container options of the engine for ``profile``: ``image`` (``--image``) or the
    image site-agent runs from (``running``, see :func:`detect`)."""
    runtime = _runtime(profile, running)
    uri = _image_uri(runtime, image, running)
    binds = _binds(profile, os.fspath(endpoint_dir))
    if runtime in APPTAINER_TYPES:
        options = _apptainer_options(profile.container, binds)
    else:
        options = _docker_options(runtime, profile.container, binds, uri)
    options += profile.container.options
    _check_shell_words(options)
    return WorkerImage(runtime, uri, tuple(options), _created_dirs(profile))


def _created_dirs(profile: Profile) -> tuple[str, ...]:
    """Bound directories the batch job creates: cvmfsexec's node-local cache."""
    cache = profile.cvmfs.cache_dir
    return (cache,) if profile.cvmfs.mode == "cvmfsexec" and cache else ()


def _check_shell_words(options: list[str]) -> None:
    """The engine writes the options into a shell line: none may hold what a shell reads."""
    for word in options:
        if any(c in word for c in "\n;$`\"'\\ {}#"):
            raise ConfigError(f"container.options: '{word}' has characters a shell would read")


def _image_uri(runtime: str, image: str | None, running: RunningImage | None) -> str:
    """The image the workers start in, checked for the form ``runtime`` takes."""
    uri = _named_uri(image, running)
    if not IMAGE_RE.match(uri):
        raise ConfigError(f"--image: '{uri}' is not an image path or URI")
    _check_form(runtime, uri)
    return uri


def _named_uri(image: str | None, running: RunningImage | None) -> str:
    """``--image``, else the image site-agent runs from, if its runtime says which."""
    uri = image or (running.uri if running else None)
    if not uri:
        raise ConfigError(
            f"--image: {running.runtime if running else 'the runtime'} does not say which image "
            "site-agent runs from; name it (--image localhost/site-agent:latest)"
        )
    return uri


def _check_form(runtime: str, uri: str) -> None:
    """Refuse an image form ``runtime`` cannot start (a SIF for podman, a relative SIF)."""
    if runtime in DOCKER_TYPES:
        _check_reference(runtime, uri)
    else:
        _check_sif(uri)


def _check_reference(runtime: str, uri: str) -> None:
    if uri.endswith(".sif"):
        raise ConfigError(f"--image: {runtime} runs an image reference, not the SIF file {uri}")


def _check_sif(uri: str) -> None:
    if "://" not in uri and not uri.startswith("/"):
        # batch jobs start in other directories: the compute nodes need the SIF's full path
        raise ConfigError(f"--image: '{uri}' is relative; name the SIF by its absolute path")


def _apptainer_options(cfg: ContainerSection, binds: list[str]) -> list[str]:
    # apptainer passes the batch job's environment (worker_init's exports) and binds HOME
    return [*gpu_options(cfg), *flagged("--bind", binds), *_env_options(cfg)]


def _docker_options(runtime: str, cfg: ContainerSection, binds: list[str], uri: str) -> list[str]:
    # the worker pool connects back to the interchange: the host's network; --rm leaves no
    # stopped container per block; --init: the worker pool is not PID 1, which ignores the
    # SIGTERM that stops a block. The engine adds `-v RUNDIR:RUNDIR -t`.
    return [
        "--rm",
        "--init",
        "--network=host",
        *gpu_options(cfg),  # podman-hpc's GPU module (--gpu)
        *_user_options(runtime),
        *map(_volume, binds),
        *[f"--env={name}" for name in WORKER_VARIABLES],
        f"--env={Var.IMAGE}={uri}",
        *_env_options(cfg),
    ]


def _env_options(cfg: ContainerSection) -> list[str]:
    """The profile's ``container.env`` as ``--env=NAME=VALUE`` options."""
    return [f"--env={k}={v}" for k, v in cfg.env.items()]


def _user_options(runtime: str) -> list[str]:
    """The files the workers write belong to whoever installed the endpoint (podman-hpc maps
    the container's root to the calling user already)."""
    return [] if runtime == "podman-hpc" else [f"--user={os.getuid()}:{os.getgid()}"]


def _volume(bind: str) -> str:
    """A bind (``HOST[:CONTAINER[:OPTIONS]]``) as docker's ``--volume``."""
    host, _, rest = bind.partition(":")
    return f"--volume={host}:{rest or host}"
