"""The sections of a site profile as typed, frozen dataclasses: the one place for defaults.

``profiles.py`` validates the YAML against ``profile.schema.json`` (which says what is
allowed), fills in the defaults declared here (``section_defaults``) and then builds these
objects once (``build_section``); code reads ``profile.pilot.server_url``, never
``profile.data["pilot"]["server_url"]``. This module imports nothing heavy: the per-rank pilot
path reads cached profiles through it.
"""

from __future__ import annotations

from siteagent.records import MISSING, field, fields, is_record, record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")


def _nested(cls: type) -> Any:
    """Field metadata marking a nested section, built from a mapping of its own."""
    return {"section": cls}


@record(frozen=True)
class EndpointSection:
    """The endpoint's name and the engine settings of its user endpoints."""

    name: str
    display_name: str | None = None
    address: str | None = None  # interface (hsn0) or IP the workers reach the interchange on
    amqp_port: int = 443
    max_blocks: int = 1
    init_blocks: int = 0
    strategy_period: float | None = None
    max_workers_per_node: int = 1
    idle_heartbeats_soft: int = 10
    idle_heartbeats_hard: int = 5760
    dir: str | None = None


@record(frozen=True)
class Directives:
    """Scheduler directives every batch job of the site carries (user configs may override
    the scheduler's own fields: account, queue, ...)."""

    account: str | None = None
    queue: str | None = None
    qos: str | None = None
    constraint: str | None = None
    filesystems: str | None = None
    select: str | None = None
    place: str | None = None
    exclusive: bool = True
    # Slurm: what a ``queue`` names unless ``limits.queues`` says otherwise (NERSC: a QOS)
    queue_kind: str = "partition"
    extra: tuple[str, ...] = ()

    def get(self, name: str) -> Any:
        """A directive by name (the scheduler's user-config fields are looked up this way)."""
        return getattr(self, name, None)


@record(frozen=True)
class QueueLimits:
    """One queue (PBS queue, Slurm partition or QOS) of ``limits.queues`` and its limits;
    ``None`` means the site-wide limit applies."""

    name: str
    kind: str | None = None  # Slurm: partition | qos (None: directives.queue_kind)
    min_nodes: int = 1
    max_nodes: int | None = None
    max_walltime: str | None = None
    # ((max_nodes, max_walltime), ...): the walltime allowed up to that many nodes (Frontier)
    walltime_bins: tuple[tuple[int, str], ...] = ()

    @classmethod
    def of(cls, item: str | dict[str, Any]) -> QueueLimits:
        """A ``limits.queues`` item: a bare name, or a mapping with the limits."""
        if isinstance(item, str):
            return cls(item)
        bins = tuple((b["max_nodes"], b["max_walltime"]) for b in item.get("walltime_bins", ()))
        return cls(**{k: v for k, v in item.items() if k != "walltime_bins"}, walltime_bins=bins)


@record(frozen=True)
class Limits:
    """What a user_endpoint_config may ask for at most."""

    max_nodes: int = 1
    max_walltime: str = "24:00:00"
    queues: tuple[Any, ...] | None = None  # names, or mappings (QueueLimits)

    @property
    def queue_names(self) -> tuple[str, ...]:
        return tuple(q.name for q in self.queue_limits)

    @property
    def queue_limits(self) -> tuple[QueueLimits, ...]:
        return tuple(QueueLimits.of(item) for item in self.queues or ())

    def queue(self, name: str | None) -> QueueLimits | None:
        """The entry of queue ``name`` (None when not listed or not given)."""
        return next((q for q in self.queue_limits if q.name == name), None)


@record(frozen=True)
class GpuBinding:
    """How one GPU slot is given to each local rank."""

    variable: str
    order: Any = "natural"  # natural | reverse | (slot of local rank 0, of 1, ...)
    format: str = "index"
    unset: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


@record(frozen=True)
class NodeShape:
    """One compute node: cores, memory, GPUs and how ranks are bound to them."""

    cores: Any  # int once resolved; "auto" only before profiles._resolve_auto
    gpus: Any
    threads_per_core: int = 1
    memory_gb: Any = 0
    gpu_vendor: str = "none"
    tiles_per_gpu: int = 1
    reserved_cores: tuple[int, ...] = ()
    gpu_binding: GpuBinding | None = field(default=None, metadata=_nested(GpuBinding))
    cpu_bind: str | None = None

    @property
    def gpu_slots(self) -> int:
        """Bindable GPU units per node: GPUs, or tiles where the binding is per tile."""
        if self.gpu_binding and self.gpu_binding.format == "tile":
            return int(self.gpus) * self.tiles_per_gpu
        return int(self.gpus)

    @property
    def usable_cores(self) -> int:
        return int(self.cores) - len(self.reserved_cores)


@record(frozen=True)
class ProxySection:
    """The site's HTTP proxy, and where it applies."""

    http: str | None = None
    https: str | None = None
    no_proxy: tuple[str, ...] = ()
    scope: str = "all"  # "compute": only compute nodes use the proxy


@record(frozen=True)
class ContainerSection:
    """The container runtime the pilot enters, its binds, options and GPU flag."""

    runtime: str = "none"
    setup: tuple[str, ...] = ()
    binds: tuple[str, ...] = ()
    gpu_flag: str = "none"
    options: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    default_image: str | None = None


@record(frozen=True)
class CvmfsSection:
    """How CVMFS is reached on compute nodes: native mounts or cvmfsexec."""

    mode: str = "none"
    repositories: tuple[str, ...] = ()
    config: str = "default"
    cache_dir: str | None = None
    dist_dir: str | None = None
    quota_mb: int = 4000


@record(frozen=True)
class CondaSection:
    """Which conda-like manager creates the pilot's environments, and where."""

    manager: str = "auto"
    root: str | None = None


@record(frozen=True)
class EnvironmentSection:
    """What every worker sets up: worker_init lines, variables, conda."""

    worker_init: tuple[str, ...] = ()
    variables: dict[str, str] = field(default_factory=dict)
    conda: CondaSection = field(default_factory=CondaSection, metadata=_nested(CondaSection))


@record(frozen=True)
class PilotSection:
    """PanDA pilot3 defaults: queue, user, resource type, server."""

    panda_queue: str | None = None
    pilot_user: str = "ATLAS"
    resource_type: str = "SCORE"
    workflow: str = "generic"
    # the PanDA instance the queues belong to (pilot/instances.py): its server, queuedata and
    # storagedata URLs and the check targets; server_url/port/... override it one by one.
    # Left out (None), server_url/server_port are the instance's once the section is built,
    # so code reads them as str/int (hence the ignores)
    instance: str = "cern"
    server_url: str = None  # type: ignore[assignment]
    server_port: int = None  # type: ignore[assignment]
    queuedata_url: str | None = None  # {queue} is replaced by the PanDA queue
    storagedata_url: str | None = None
    lifetime: int | None = None
    job_label: str = "managed"  # pilot3 -j (prodSourceLabel); pilot3's own default is ptest
    job_type: str | None = None  # pilot3 --job-type (managed, user, unified)
    pilot_type: str | None = None  # pilot3 -i (PR, RC, ALRB; Harvester's PT means PR + ptest)
    debug: bool = False  # pilot3 -d
    # where pilot3 comes from: auto (--pilot-dir/$SITE_AGENT_PILOT_DIR, else the CVMFS tarball
    # when /cvmfs has it, else the installed panda-pilot), cvmfs, a URL, a directory or tarball
    source: str = "auto"
    cvmfs_tarball: str = "/cvmfs/atlas.cern.ch/repo/sw/PandaPilot/tar/pilot3.tar.gz"
    failed_logs_kept: int = 50  # failed pilots whose logs stay under <state>/pilot-logs

    def __post_init__(self) -> None:
        from siteagent.pilot.instances import INSTANCES

        inst = INSTANCES[self.instance]
        if self.server_url is None:
            object.__setattr__(self, "server_url", inst.server_url)
        if self.server_port is None:
            object.__setattr__(self, "server_port", inst.server_port)


@record(frozen=True)
class CredentialsSection:
    """Where the pilot's X509 proxy and PanDA token are (None: from the environment)."""

    require: str = "any"  # any, proxy, token, both, none: what the PanDA pilot must have
    x509_proxy: str | None = None  # default: $X509_USER_PROXY, else /tmp/x509up_u<uid>
    panda_token: str | None = None  # default: $PANDA_AUTH_DIR/$PANDA_AUTH_TOKEN
    panda_origin: str | None = None  # default: $PANDA_AUTH_ORIGIN
    panda_token_key: str | None = None  # newer pilot3 renews the token with it
    min_lifetime: int = 3600  # seconds either must still be valid when the pilot starts


@record(frozen=True)
class CheckSection:
    """`site-agent check` targets and the scratch directories it checks."""

    targets: tuple[str, ...] = (
        "https://compute.api.globus.org:443",
        "amqps://compute.amqps.globus.org:443",
        "https://auth.globus.org:443",
        # PanDA at CERN (pilot.instance cern; check probes another instance's instead): its
        # HTTPS port, and 25080, its plain-HTTP port (https there fails on TLS)
        "https://pandaserver.cern.ch:25443",
        "http://pandaserver.cern.ch:25080",
    )
    scratch_dirs: tuple[str, ...] = ()
    min_free_gb: float = 5


# profile key -> section class; the order is the order of ``profiles show``
SECTIONS: dict[str, type] = {
    "endpoint": EndpointSection,
    "directives": Directives,
    "limits": Limits,
    "node": NodeShape,
    "proxy": ProxySection,
    "container": ContainerSection,
    "cvmfs": CvmfsSection,
    "environment": EnvironmentSection,
    "pilot": PilotSection,
    "credentials": CredentialsSection,
    "check": CheckSection,
}


def section_defaults(cls: type) -> dict[str, Any]:
    """The defaults of a section as profile data (lists, not tuples); fields without a
    default and ``None`` defaults are left out, as a profile leaves them out."""
    out: dict[str, Any] = {}
    for f in fields(cls):
        value = _default(f)
        if value is not MISSING and value is not None:
            out[f.name] = _profile_data(value)
    return out


def _profile_data(value: Any) -> Any:
    """A default as a profile gives it: a nested section as its mapping, a tuple as a list."""
    if is_record(value):
        return section_defaults(type(value))
    return list(value) if isinstance(value, tuple) else value


def _default(f: Any) -> Any:
    """A field's default (its factory called), ``MISSING`` if it has none."""
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else MISSING


def profile_defaults() -> dict[str, Any]:
    """Everything a profile may leave out, as the mapping merged under it."""
    out: dict[str, Any] = {"description": ""}
    out.update({name: section_defaults(cls) for name, cls in SECTIONS.items()})
    return out


def build_section(cls: type[T], data: dict[str, Any]) -> T:
    """A section object from its (validated, defaults-filled) profile mapping."""
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _field_value(f, data[f.name])
    return cls(**kwargs)


def _field_value(f: Any, value: Any) -> Any:
    """A field's value from profile data: a nested section built, lists as tuples, a
    mapping copied."""
    nested = f.metadata.get("section")
    if nested is not None and isinstance(value, dict):
        return build_section(nested, value)
    if isinstance(value, list):
        return tuple(value)
    return dict(value) if isinstance(value, dict) else value
