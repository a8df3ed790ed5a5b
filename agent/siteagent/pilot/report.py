"""The JSON report of one pilot rank: written atomically when the wrapper starts, when the
payload starts, and when everything is over, so a monitor reading it never sees half a file.
Only the last one (state ``done``) is also fsync'd: the intermediate ones are superseded
within the run, and an fsync costs milliseconds on local disk, far more on Lustre/GPFS.

Where: ``--report PATH``, else ``$SITE_AGENT_WORKDIR/pilots/<id>.json``, else
``~/.site-agent/pilots/<id>.json``; ``<id>`` is ``<job id>-<host>-r<rank>-<pid>``.
"""

from __future__ import annotations

import json
import os
import time

from siteagent.records import asdict, field, record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from typing import Any

REPORT_VERSION = 1


# Why the wrapper ended; "setup-error" means the payload never ran; "lost" that the wrapper
# itself was killed (SIGKILL, node trouble) and a later run found its report unfinished.
REASONS = ("finished", "failed", "signalled", "walltime", "setup-error", "lost")


@record
class LayerReport:
    """One layer's set-up: how long it took and what it did."""

    name: str
    summary: str
    seconds: float = 0.0
    actions: list[str] = field(default_factory=list)


@record
class PilotReport:
    """Everything a monitor learns about one pilot rank (the JSON report)."""

    pilot_id: str
    site: str
    host: str
    pid: int
    local_rank: int = 0
    rank: int = 0
    state: str = "starting"  # starting, running, done
    reason: str | None = None  # one of REASONS
    exit_code: int | None = None
    signal: str | None = None  # the signal that ended the payload, if one did
    received_signals: list[str] = field(default_factory=list)
    error: str | None = None
    started: str = field(default_factory=lambda: utc_now())
    finished: str | None = None
    seconds: float = 0.0
    payload_pid: int | None = None
    payload_seconds: float | None = None
    walltime_s: int | None = None
    gpus: dict[str, Any] = field(default_factory=dict)
    layers: list[LayerReport] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    pilot: dict[str, str] | None = None  # pilot3's source and version
    logs: str | None = None  # where the logs of a run that did not finish are kept
    log_tail: list[str] = field(default_factory=list)  # the last lines of its pilotlog.txt
    # the site-agent image this rank ran in ({"runtime", "uri"}), None outside it
    image: dict[str, Any] | None = field(default_factory=lambda: _running_image())
    report_version: int = REPORT_VERSION

    def to_dict(self) -> dict[str, Any]:
        from siteagent.secrets import mask_data

        return mask_data(asdict(self))


def _running_image() -> dict[str, Any] | None:
    from siteagent.image import detect

    running = detect()
    return asdict(running) if running else None


def utc_now() -> str:
    """Now, as a report stamps it (UTC, to the second)."""
    # gmtime() without an argument reads time(2), a coarse clock that can be a tick behind
    # time.time(): a report would then seem to start before its wrapper asked for the time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time()))


def write_report(path: str | os.PathLike[str], report: PilotReport) -> None:
    """Write ``report`` atomically; durably (fsync before the rename) once it is ``done``."""
    from siteagent.fileio import atomic_write

    text = json.dumps(report.to_dict(), indent=2) + "\n"
    atomic_write(path, text, 0o644, durable=report.state == "done")


def read_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The report at ``path``, as a dict."""
    with open(path) as fh:  # the locale's encoding, as Path.read_text had it
        return json.loads(fh.read())


def _started_at(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds, from /proc: no psutil on the per-rank
    path); None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
        with open("/proc/stat") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _wrapper_alive(pid: int, started: str) -> bool:
    """Is the wrapper that wrote a report (``pid``, started at ``started``) still running?
    A pid in use by a process younger than the report is another process (pid reuse)."""
    import calendar

    created = _started_at(pid)
    if created is None:
        return False  # gone, or a zombie
    try:
        written = calendar.timegm(time.strptime(started, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return True
    return created <= written + 1


def mark_lost(
    directory: str | os.PathLike[str], host: str, *, skip: str | os.PathLike[str] | None = None
) -> list[str]:
    """Mark the unfinished reports in ``directory`` written on ``host`` whose wrapper is gone
    (killed with SIGKILL, so it could not say so) as ``done``/``lost``; the paths marked
    (``directory`` joined with each file's name)."""
    from siteagent.pathstr import clean

    skipped = clean(os.fspath(skip)) if skip is not None else None
    marked: list[str] = []
    for path in _json_files(os.fspath(directory)):
        data = None if clean(path) == skipped else _lost_report(path, host)
        if data is not None and _write_lost(path, data):
            marked.append(path)
    return marked


def _json_files(directory: str) -> list[str]:
    """``directory``'s entries named ``*.json`` (hidden ones too, as Path.glob had them), in
    the order listed; none when it is missing or no directory."""
    try:
        with os.scandir(directory) as entries:
            return [e.path for e in entries if e.name.endswith(".json")]
    except OSError:
        return []


def _lost_report(path: str, host: str) -> dict[str, Any] | None:
    """The report at ``path`` when it is unfinished, written on ``host`` and its wrapper is
    gone; None otherwise (also for what is not a report, or one being replaced right now)."""
    try:
        with open(path, "rb") as fh:  # most reports are done: the state is near the top
            if b'"state": "done"' in fh.read(1024):
                return None  # without parsing: only quicker, the state is checked below too
        data = read_report(path)
        if not _unfinished_here(data, host) or _wrapper_alive(
            int(data["pid"]), str(data.get("started"))
        ):
            return None
        # the wrapper may have written its last report and exited since the read above; now
        # that it is gone the file can no longer change, so this read is the one that counts
        data = read_report(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return data if _unfinished_here(data, host) else None


def _unfinished_here(data: dict[str, Any], host: str) -> bool:
    return data.get("state") in ("starting", "running") and data.get("host") == host


def _write_lost(path: str, data: dict[str, Any]) -> bool:
    """Rewrite the report at ``path`` as ``done``/``lost``; False when it cannot be written."""
    data |= {"state": "done", "reason": "lost", "finished": utc_now()}
    data["error"] = data.get("error") or f"wrapper pid {data['pid']} ended without a report"
    from siteagent.fileio import atomic_write

    try:
        atomic_write(path, json.dumps(data, indent=2) + "\n", 0o644)
    except OSError:
        return False  # left unfinished: a later run tries again
    return True
