"""Payload layer: the PanDA pilot (pilot3's ``pilot.py``), or the command given after ``--``,
with the time left in the batch job."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from siteagent.errors import ConfigError
from siteagent.names import WORD_RE, Var
from siteagent.pilot.layers.base import Layer, PilotLayer, PlanContext

if TYPE_CHECKING:
    from collections.abc import Mapping

    from siteagent.profiles import Profile

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
    extra: tuple[str, ...], environ: Mapping[str, str], resource_type: str | None = None,
) -> tuple[str, ...]:  # fmt: skip
    p = profile.pilot
    url = p.server_url
    args = [
        "python3", str(script),
        "-q", queue,
        "--pilot-user", p.pilot_user,
        "-w", p.workflow,
        "--resource-type", resource_type or p.resource_type,
        "--url", url,
        "-p", str(p.server_port),
        "--harvester-submit-mode", "PULL",
        "-a", workdir,
    ]  # fmt: skip
    if lifetime:
        args += ["-l", str(lifetime)]
    hw = environ.get(Var.HARVESTER_WORKDIR)
    if hw:
        args += ["--harvester-workdir", hw]
    return (*args, *extra)


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


@dataclass(frozen=True)
class Payload:
    summary: str
    argv: tuple[str, ...]
    script: Path | None  # pilot3's pilot.py (None: a command given after --)
    walltime_s: int | None  # seconds left in the batch job (None: unknown)


def given_payload(ctx: PlanContext) -> Payload:
    """The command given after ``--``."""
    return Payload("command given after --", tuple(ctx.opts.payload), None, walltime_left(ctx))


def panda_pilot(ctx: PlanContext) -> Payload:
    """PanDA pilot3 for the queue, told to stop by itself before the job's walltime."""
    opts = ctx.opts
    script = find_pilot(opts.pilot_dir or ctx.environ.get(Var.PILOT_DIR))
    walltime_s = walltime_left(ctx)
    queue = panda_queue(ctx)
    lifetime = ctx.profile.pilot.lifetime
    if walltime_s:
        # the pilot stops by itself before the wrapper has to kill it
        own = int(walltime_s - opts.margin - opts.grace)
        lifetime = max(min(own, lifetime or own), 60)
    argv = pilot_command(
        ctx.profile, queue, lifetime, ctx.workdir, script, tuple(opts.pilot_args), ctx.environ,
        opts.resource_type,
    )  # fmt: skip
    return Payload(f"PanDA pilot {script} for queue {queue}", argv, script, walltime_s)


class PayloadLayer(PilotLayer):
    name = "payload"

    def plan(self, ctx: PlanContext) -> Layer:
        payload = given_payload(ctx) if ctx.opts.payload else panda_pilot(ctx)
        return Layer(
            self.name, payload.summary, command=payload.argv, env=dict(PAYLOAD_ENV), detail=payload
        )
