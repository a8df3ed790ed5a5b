"""Payload layer: the PanDA pilot (pilot3's ``pilot.py``), or the command given after ``--``,
with the time left in the batch job."""

from __future__ import annotations

import contextlib
import os

from siteagent import pathstr
from siteagent.errors import ConfigError
from siteagent.fileio import read_text
from siteagent.names import WORD_RE, Var
from siteagent.pilot.layers.base import Layer, PilotLayer, PlanContext
from siteagent.records import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from collections.abc import Mapping

    from siteagent.pilot.plan import PilotOptions
    from siteagent.pilot.source import PilotSource
    from siteagent.profiles import Profile
    from siteagent.push import Bundle

QUEUE = WORD_RE
# pilot3's kill_orphans() SIGTERMs every process of the user whose parent is init: on a
# shared or non-exclusive node that hits other pilots and the endpoint's workers. The
# wrapper is the subreaper of the payload and ends its leftovers itself, so it is not needed.
PAYLOAD_ENV = {"PILOT_NOKILL": "1"}


def parse_walltime(value: str) -> int:
    from siteagent.names import WALLTIME_RE
    from siteagent.userconfig import walltime_seconds

    if not WALLTIME_RE.match(value):
        raise ConfigError(f"--walltime: '{value}' is not HH:MM:SS")
    seconds = walltime_seconds(value)
    if seconds == 0:
        raise ConfigError("--walltime: must be more than 00:00:00")
    return seconds


def _job_walltime_left(environ: Mapping[str, str], now: float) -> float | None:
    """The job's ``SITE_AGENT_WALLTIME``, counted from ``SITE_AGENT_JOB_START`` when known."""
    if not environ.get(Var.WALLTIME):
        return None
    left: float = parse_walltime(environ[Var.WALLTIME])
    start = environ.get(Var.JOB_START, "")
    if start:
        if not start.isdigit():
            raise ConfigError(f"{Var.JOB_START}: '{start}' is not epoch seconds")
        left = int(start) + left - now
    return left


def remaining_walltime(
    given: str | None, environ: Mapping[str, str], now: float | None = None
) -> int | None:
    """Seconds from now until the batch job ends. ``--walltime`` counts from now; the
    job's ``SITE_AGENT_WALLTIME`` counts from ``SITE_AGENT_JOB_START`` (epoch seconds, exported
    when the job starts) when known; Slurm's ``SLURM_JOB_END_TIME`` caps either."""
    import time

    now = time.time() if now is None else now
    left = parse_walltime(given) if given is not None else _job_walltime_left(environ, now)
    end = environ.get("SLURM_JOB_END_TIME", "")
    if end.isdigit() and int(end) > 0:
        left = min(left, int(end) - now) if left is not None else int(end) - now
    return None if left is None else max(int(left), 0)


# Harvester's pilot types -> (pilot3 -i, the job label they ask for; None: the queue's), as
# harvestersubmitter/submitter_common.py get_complicated_pilot_options maps them: release
# candidates and ALRB tests ask for their own test jobs, PT is a PR pilot asking for ptest
PILOT_TYPES = {
    "PR": ("PR", None), "RC": ("RC", "rc_test2"), "ALRB": ("ALRB", "rc_alrb"), "PT": ("PR", "ptest"),
}  # fmt: skip


@record(frozen=True)
class Labels:
    """What kind of jobs the pilot asks for: pilot3's ``-j``, ``--job-type``, ``-i``."""

    job_label: str
    job_type: str | None = None
    pilot_type: str | None = None

    def args(self) -> list[str]:
        """pilot3's options (pilot.py get_args: -j/--joblabel dest job_label, --job-type dest
        jobtype, -i/--versiontag dest version_tag)."""
        tag, label = PILOT_TYPES.get(self.pilot_type or "", (None, None))
        args = ["-j", label or self.job_label]
        if self.job_type:
            args += ["--job-type", self.job_type]
        if tag:
            args += ["-i", tag]
        return args


def check_labels(opts: PilotOptions) -> None:
    """Refuse a bad ``--job-label``, ``--job-type`` or ``--pilot-type`` in one line."""
    if opts.pilot_type is not None and opts.pilot_type not in PILOT_TYPES:
        raise ConfigError(
            f"--pilot-type: '{opts.pilot_type}' is not one of {', '.join(PILOT_TYPES)}"
        )
    for flag, value in (("--job-label", opts.job_label), ("--job-type", opts.job_type)):
        if value is not None and not WORD_RE.match(value):
            raise ConfigError(f"{flag}: '{value}' has characters that are not allowed")


def labels_of(profile: Profile, opts: PilotOptions) -> Labels:
    """The options (from the WorkSpec and queue config) over the profile's defaults."""
    p = profile.pilot
    return Labels(
        opts.job_label or p.job_label, opts.job_type or p.job_type, opts.pilot_type or p.pilot_type
    )


def pilot_command(
    profile: Profile, queue: str, lifetime: int | None, workdir: str, script: str,
    extra: tuple[str, ...], environ: Mapping[str, str], resource_type: str | None = None,
    labels: Labels | None = None, debug: bool | None = None,
    push: tuple[str, ...] | None = None,
) -> tuple[str, ...]:  # fmt: skip
    from siteagent.pilot.instances import endpoints

    p = profile.pilot
    ends = endpoints(p, queue)
    labels = labels or Labels(p.job_label, p.job_type, p.pilot_type)
    args = [
        "python3", script,
        "-q", queue,
        *labels.args(),
        "--pilot-user", p.pilot_user,
        "-w", p.workflow,
        "--resource-type", resource_type or p.resource_type,
        "--url", ends.server_url,
        "-p", str(ends.server_port),
        *(push if push is not None else ("--harvester-submit-mode", "PULL")),
        "-a", workdir,
        # pilot3 removes its main workdir (-a/PanDA_Pilot3_*, with pilotlog.txt) at the end
        # (pilot.py wrap_up); the wrapper removes the workdir itself, after keeping the logs
        # of a failed pilot (pilot/logs.py)
        "--cleanup", "False",
    ]  # fmt: skip
    # pilot.py get_args: --queuedata-url, --storagedata-url (default "": its default.cfg's)
    args += _given(
        ("--queuedata-url", ends.queuedata_url), ("--storagedata-url", ends.storagedata_url)
    )
    if p.debug if debug is None else debug:
        args.append("-d")
    hw = environ.get(Var.HARVESTER_WORKDIR) if push is None else None
    args += _given(("-l", lifetime), ("--harvester-workdir", hw))
    return (*args, *extra)


def _given(*options: tuple[str, object]) -> list[str]:
    """``flag value`` for each option that has a value (pilot.py's default for the rest)."""
    return [word for flag, value in options if value for word in (flag, str(value))]


def pilot_user_of(profile: Profile, extra: tuple[str, ...]) -> str:
    """The ``--pilot-user`` pilot3 will see: the last one in ``--pilot-arg``, else the profile's
    (argparse keeps the last of a repeated option)."""
    user = profile.pilot.pilot_user
    for i, arg in enumerate(extra):
        if arg == "--pilot-user" and i + 1 < len(extra):
            user = extra[i + 1]
        elif arg.startswith("--pilot-user="):
            user = arg.split("=", 1)[1]
    return user


def walltime_left(ctx: PlanContext) -> int | None:
    """Seconds left in the job, refused when not more than ``--margin``; checks the margins."""
    opts = ctx.opts
    walltime_s = remaining_walltime(opts.walltime, ctx.environ)
    if walltime_s is not None and walltime_s <= opts.margin:
        raise ConfigError(
            f"--walltime: only {walltime_s}s of the batch job are left, not more than the "
            f"{opts.margin:g}s --margin"
        )
    if opts.margin < 0 or opts.grace < 0:
        raise ConfigError("--margin/--grace: must be >= 0 seconds")
    return walltime_s


def panda_queue(ctx: PlanContext) -> str:
    queue = ctx.opts.queue or ctx.profile.pilot.panda_queue
    if not queue:
        raise ConfigError(
            "--queue: no PanDA queue (give --queue or set pilot.panda_queue in the profile)"
        )
    if not QUEUE.match(queue):
        raise ConfigError(f"--queue: '{queue}' has characters that are not allowed")
    return queue


@record(frozen=True)
class Payload:
    """What the rank finally runs, and the walltime it has left."""

    summary: str
    argv: tuple[str, ...]
    script: str | None  # pilot3's pilot.py (None: a command given after --)
    walltime_s: int | None  # seconds left in the batch job (None: unknown)
    source: PilotSource | None = None  # where pilot3 comes from (None: a command after --)
    pilot_user: str | None = None
    shutdowntime: int | None = None  # the batch job's end (epoch seconds), when known
    machinefeatures: str | None = None  # the directory pilot3 reads it from
    push: PushJob | None = None  # push mode: the job and where pilot3 runs it


@record(frozen=True)
class PushJob:
    """Push mode: the worker's push directory and the bundle the worker command left there."""

    dir: str
    bundle: Bundle


def push_job(ctx: PlanContext) -> PushJob:
    """The bundle of this worker (``$SITE_AGENT_STATE/push/<worker>``), checked; push mode
    runs one PanDA job, so one rank."""
    from siteagent.push import BUNDLE_FILE, push_dir, read_bundle

    if ctx.opts.payload:
        raise ConfigError("--push: runs the PanDA pilot; give no command after --")
    world = ctx.environ.get(Var.WORLD_SIZE, "1")
    if world not in ("", "1"):
        raise ConfigError(f"--push: one PanDA job runs on one rank, not {world}")
    directory = os.fspath(push_dir(ctx.environ, ctx.environ.get(Var.WORKER_ID, "")))
    return PushJob(directory, read_bundle(os.path.join(directory, BUNDLE_FILE)))


def given_payload(ctx: PlanContext) -> Payload:
    """The command given after ``--``."""
    return Payload("command given after --", tuple(ctx.opts.payload), None, walltime_left(ctx))


def panda_pilot(ctx: PlanContext) -> Payload:
    """PanDA pilot3 for the queue, told to stop by itself before the job's walltime."""
    from siteagent.pilot.source import check_pilot_user, choose_source
    from siteagent.push import pilot_args as push_args

    opts = ctx.opts
    push = push_job(ctx) if opts.push else None
    source = choose_source(
        ctx.profile.pilot, opts.pilot_dir or ctx.environ.get(Var.PILOT_DIR), ctx.environ
    )
    script = os.fspath(source.script)
    user = pilot_user_of(ctx.profile, tuple(opts.pilot_args))
    if os.path.isfile(script):  # else checked by setup, once the tarball is unpacked
        check_pilot_user(source.dir, user)
    walltime_s = walltime_left(ctx)
    queue = panda_queue(ctx)
    lifetime = ctx.profile.pilot.lifetime
    if walltime_s:
        # the pilot stops by itself before the wrapper has to kill it
        own = int(walltime_s - opts.margin - opts.grace)
        lifetime = max(min(own, lifetime or own), 60)
    argv = pilot_command(
        ctx.profile, queue, lifetime, push.dir if push else ctx.workdir, script,
        tuple(opts.pilot_args), ctx.environ, opts.resource_type, labels_of(ctx.profile, opts),
        opts.debug, tuple(push_args(push.dir, push.bundle)) if push else None,
    )  # fmt: skip
    summary = f"PanDA pilot {script} ({source.kind} {source.origin}) for queue {queue}"
    if push:
        summary += f", push mode: PanDA job {push.bundle.panda_id} in {push.dir}"
    return Payload(summary, argv, script, walltime_s, source, user, push=push)


def with_shutdowntime(payload: Payload, workdir: str, now: float) -> Payload:
    """``payload`` with the batch job's end as machine features: pilot3 stops asking for work
    and aborts 10 minutes before ``$MACHINEFEATURES/shutdowntime`` (pilot/control/monitor.py
    ``run_shutdowntime_minute_check``, read by pilot/util/features.py ``MachineFeatures``)
    instead of trusting its queue's CRIC maxtime over ``-l``."""
    from siteagent.records import replace

    if payload.walltime_s is None:
        return payload
    end = int(now + payload.walltime_s)
    mf = pathstr.clean(os.path.join(workdir, "machinefeatures"))
    return replace(payload, shutdowntime=end, machinefeatures=mf)


def write_machinefeatures(payload: Payload, site_dir: str | None) -> str:
    """Write ``shutdowntime`` (copying the site's own machine features, keeping its earlier
    shutdown time); what it did."""
    assert payload.machinefeatures is not None and payload.shutdowntime is not None
    mf = pathstr.clean(payload.machinefeatures)
    os.makedirs(mf, exist_ok=True)
    shutdowntime = os.path.join(mf, "shutdowntime")
    end = payload.shutdowntime
    if site_dir and os.path.isdir(site_dir) and pathstr.clean(site_dir) != mf:
        import shutil  # only here: a rank never imports it otherwise

        with os.scandir(site_dir) as entries:
            for f in entries:
                if f.is_file():
                    shutil.copy2(f.path, os.path.join(mf, f.name))
        # a site's file that is missing, empty or not a time leaves the batch job's end
        with contextlib.suppress(OSError, ValueError, IndexError):
            end = min(end, int(read_text(shutdowntime).split()[0]))
    with open(shutdowntime, "w") as fh:
        fh.write(f"{end}\n")
    return f"shutdowntime {end} in {mf}"


class PayloadLayer(PilotLayer):
    name = "payload"

    def plan(self, ctx: PlanContext) -> Layer:
        import time

        payload = given_payload(ctx) if ctx.opts.payload else panda_pilot(ctx)
        payload = with_shutdowntime(payload, ctx.workdir, time.time())
        env = dict(PAYLOAD_ENV)
        if payload.push:
            from siteagent.push import pilot_env

            env |= pilot_env(payload.push.dir, payload.push.bundle)
        if payload.machinefeatures:
            env["MACHINEFEATURES"] = payload.machinefeatures
        return Layer(self.name, payload.summary, command=payload.argv, env=env, detail=payload)

    def setup(self, layer: Layer, env: dict[str, str]) -> list[str]:
        """Unpack pilot3 when it comes as a tarball, check its --pilot-user, write the
        shutdown time; what it did."""
        payload: Payload = layer.detail
        done: list[str] = []
        if payload.push:  # the job as data, where pilot3 reads it
            from siteagent.push import write_bundle

            names = write_bundle(payload.push.bundle, payload.push.dir)
            done.append(f"push job {payload.push.bundle.panda_id}: {', '.join(names)}")
        if payload.source is not None:  # pilot3 (a command given after -- has no source)
            from siteagent.pilot.source import check_pilot_user, ensure_unpacked, pilot_version

            unpacked = ensure_unpacked(payload.source, env)  # through the site's proxy
            done += [unpacked] if unpacked else []
            check_pilot_user(payload.source.dir, payload.pilot_user or "")
            done.append(f"PanDA pilot {pilot_version(payload.source.dir)}")
        if payload.machinefeatures:
            done.append(write_machinefeatures(payload, os.environ.get("MACHINEFEATURES")))
        return done
