"""The logs of failed pilots, kept after the per-pilot workdir is removed.

A pilot that did not finish cleanly leaves ``<state>/pilot-logs/<pilot id>/`` with pilot3's
``pilotlog.txt`` (and its ``pandaIDs.out`` when it had jobs) and ``wrapper.log``, the
wrapper's own account of the run. ``<state>`` is ``$SITE_AGENT_WORKDIR``, else
``$SITE_AGENT_STATE``, else ``~/.site-agent``; only the newest ``pilot.failed_logs_kept``
directories stay.
"""

from __future__ import annotations

import os
from pathlib import Path

from siteagent.names import Var

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from collections.abc import Mapping

    from siteagent.pilot.report import PilotReport

# what pilot3 leaves in its main workdir that tells an operator what happened
PILOT_FILES = ("pilotlog.txt", "pandaIDs.out")
TAIL_LINES = 20


def state_root(environ: Mapping[str, str]) -> Path:
    """``$SITE_AGENT_WORKDIR``, else ``$SITE_AGENT_STATE``, else ``~/.site-agent``."""
    base = environ.get(Var.WORKDIR) or environ.get(Var.STATE)
    return Path(base).expanduser() if base else Path.home() / ".site-agent"


def log_dir(environ: Mapping[str, str], pilot_id: str) -> Path:
    return state_root(environ) / "pilot-logs" / pilot_id


def _pilot_files(workdir: Path) -> list[Path]:
    """pilot3's logs in ``workdir`` (its main workdir is one level down: PanDA_Pilot3_*)."""
    found = []
    for name in PILOT_FILES:
        found += [p for p in (workdir / name, *workdir.glob(f"*/{name}")) if p.is_file()]
    return found


def wrapper_log(report: PilotReport) -> str:
    """The wrapper's own account of a run, from its report."""
    lines = [
        f"pilot {report.pilot_id} on {report.host}, started {report.started}",
        f"command: {' '.join(report.argv)}",
    ]
    lines += [
        f"layer {lay.name}: {lay.summary} ({'; '.join(lay.actions)})" for lay in report.layers
    ]
    if report.received_signals:
        lines.append(f"signals received: {', '.join(report.received_signals)}")
    lines.append(f"ended: {report.reason}, exit code {report.exit_code}")
    if report.error:
        lines.append(f"error: {report.error}")
    return "\n".join(lines) + "\n"


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(f.tell() - 64 * 1024, 0))
        return f.read().decode(errors="replace").splitlines()[-lines:]


def keep_logs(workdir: str | Path, dest: Path, report: PilotReport, keep: int) -> list[str]:
    """Copy the pilot's logs and the wrapper's to ``dest``, prune all but the newest ``keep``
    log directories beside it; the tail of ``pilotlog.txt`` (empty if it had none)."""
    if keep <= 0:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    out = _copy_pilot_files(Path(workdir), dest)
    (dest / "wrapper.log").write_text(wrapper_log(report))
    prune(dest.parent, keep)
    return out


def _copy_pilot_files(workdir: Path, dest: Path) -> list[str]:
    """Copy pilot3's logs into ``dest``; the tail of ``pilotlog.txt`` (empty without one)."""
    import shutil  # only a failed run keeps its logs: not imported by every rank

    out: list[str] = []
    for path in _pilot_files(workdir):
        shutil.copy2(path, dest / path.name)
        if path.name == "pilotlog.txt":
            out = tail(path)
    return out


def prune(root: Path, keep: int) -> None:
    """Remove all but the ``keep`` newest directories in ``root``."""
    import shutil

    dirs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in dirs[: max(len(dirs) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)
