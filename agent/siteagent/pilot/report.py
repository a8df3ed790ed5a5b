"""The JSON report of one pilot rank: written atomically when the wrapper starts, when the
payload starts, and when everything is over, so a monitor reading it never sees half a file.
Only the last one (state ``done``) is also fsync'd: the intermediate ones are superseded
within the run, and an fsync costs milliseconds on local disk, far more on Lustre/GPFS.

Where: ``--report PATH``, else ``$SITE_AGENT_WORKDIR/pilots/<id>.json``, else
``~/.site-agent/pilots/<id>.json``; ``<id>`` is ``<job id>-<host>-r<rank>-<pid>``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from siteagent.records import asdict, field, record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from typing import Any

REPORT_VERSION = 1


# why the wrapper ended; setup-error: the payload never ran
REASONS = ("finished", "failed", "signalled", "walltime", "setup-error")


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
    started: str = field(default_factory=lambda: _now())
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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_report(path: str | Path, report: PilotReport) -> None:
    """Write ``report`` atomically; durably (fsync before the rename) once it is ``done``."""
    from siteagent.fileio import atomic_write

    text = json.dumps(report.to_dict(), indent=2) + "\n"
    atomic_write(Path(path), text, 0o644, durable=report.state == "done")


def read_report(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
