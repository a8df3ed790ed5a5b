"""The JSON report of one pilot rank: written atomically when the wrapper starts, when the
payload starts, and when everything is over, so a monitor reading it never sees half a file.

Where: ``--report PATH``, else ``$SITE_AGENT_WORKDIR/pilots/<id>.json``, else
``~/.site-agent/pilots/<id>.json``; ``<id>`` is ``<job id>-<host>-r<rank>-<pid>``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPORT_VERSION = 1
# Why the wrapper ended; "setup-error" means the payload never ran; "lost" that the wrapper
# itself was killed (SIGKILL, node trouble) and a later run found its report unfinished.
REASONS = ("finished", "failed", "signalled", "walltime", "setup-error", "lost")


@dataclass
class LayerReport:
    name: str
    summary: str
    seconds: float = 0.0
    actions: list[str] = field(default_factory=list)


@dataclass
class PilotReport:
    pilot_id: str
    site: str
    host: str
    pid: int
    local_rank: int = 0
    rank: int = 0
    state: str = "starting"  # starting, running, done
    reason: str | None = None
    exit_code: int | None = None
    signal: str | None = None  # the signal that ended the payload, if one did
    received_signals: list[str] = field(default_factory=list)
    error: str | None = None
    started: str = field(default_factory=lambda: _now())
    finished: str | None = None
    seconds: float = 0.0
    payload_pid: int | None = None
    payload_seconds: float | None = None
    walltime_s: int | None = None
    gpus: dict[str, Any] = field(default_factory=dict)
    layers: list[LayerReport] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    report_version: int = REPORT_VERSION

    def to_dict(self) -> dict[str, Any]:
        from siteagent.secrets import mask_data

        return mask_data(asdict(self))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_report(path: str | Path, report: PilotReport) -> None:
    from siteagent.fileio import atomic_write

    atomic_write(Path(path), json.dumps(report.to_dict(), indent=2) + "\n", 0o644)


def read_report(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _wrapper_alive(pid: int, started: str) -> bool:
    """Is the wrapper that wrote a report (``pid``, started at ``started``) still running?
    A pid in use by a process younger than the report is another process (pid reuse)."""
    import calendar

    import psutil

    try:
        created = psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, ValueError):
        return False
    except psutil.AccessDenied:
        return True
    try:
        written = calendar.timegm(time.strptime(started, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return True
    return created <= written + 1


def mark_lost(directory: str | Path, host: str, *, skip: str | Path | None = None) -> list[Path]:
    """Mark the unfinished reports in ``directory`` written on ``host`` whose wrapper is gone
    (killed with SIGKILL, so it could not say so) as ``done``/``lost``; the paths marked."""
    marked: list[Path] = []
    directory = Path(directory)
    if not directory.is_dir():
        return marked
    for path in directory.glob("*.json"):
        if skip is not None and path == Path(skip):
            continue
        try:
            with path.open("rb") as fh:  # most reports are done: the state is near the top
                if b'"state": "done"' in fh.read(1024):
                    continue
            data = read_report(path)
            unfinished = data.get("state") in ("starting", "running") and data.get("host") == host
            if not unfinished or _wrapper_alive(int(data["pid"]), str(data.get("started"))):
                continue
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # not a report, or one being replaced right now
        data |= {"state": "done", "reason": "lost", "finished": _now()}
        data["error"] = data.get("error") or f"wrapper pid {data['pid']} ended without a report"
        from siteagent.fileio import atomic_write

        try:
            atomic_write(path, json.dumps(data, indent=2) + "\n", 0o644)
        except OSError:
            continue
        marked.append(path)
    return marked
