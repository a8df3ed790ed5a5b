"""The logs of failed pilots, kept after the per-pilot workdir is removed.

A pilot that did not finish cleanly leaves ``<state>/pilot-logs/<pilot id>/`` with pilot3's
``pilotlog.txt`` (and its ``pandaIDs.out`` when it had jobs) and ``wrapper.log``, the
wrapper's own account of the run. ``<state>`` is ``$SITE_AGENT_WORKDIR``, else
``$SITE_AGENT_STATE``, else ``~/.site-agent``; only the newest ``pilot.failed_logs_kept``
directories stay.
"""

from __future__ import annotations

import os

from siteagent.names import Var
from siteagent.pathstr import clean

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from collections.abc import Mapping

    from siteagent.pilot.report import PilotReport

# what pilot3 leaves in its main workdir that tells an operator what happened
PILOT_FILES = ("pilotlog.txt", "pandaIDs.out")
TAIL_LINES = 20


def state_root(environ: Mapping[str, str]) -> str:
    """``$SITE_AGENT_WORKDIR``, else ``$SITE_AGENT_STATE``, else ``~/.site-agent``."""
    base = environ.get(Var.WORKDIR) or environ.get(Var.STATE)
    return clean(os.path.expanduser(base) if base else os.path.expanduser("~/.site-agent"))


def log_dir(environ: Mapping[str, str], pilot_id: str) -> str:
    """Where the logs of the failed pilot ``pilot_id`` are kept."""
    return os.path.join(state_root(environ), "pilot-logs", pilot_id)


def _pilot_files(workdir: str) -> list[str]:
    """pilot3's logs in ``workdir`` (its main workdir is one level down: PanDA_Pilot3_*)."""
    try:  # every entry, hidden ones too (as Path.glob("*/NAME") had it); order as listed
        with os.scandir(workdir) as entries:
            subdirs = [e.path for e in entries]
    except OSError:
        subdirs = []
    found = []
    for name in PILOT_FILES:
        candidates = (os.path.join(workdir, name), *(os.path.join(d, name) for d in subdirs))
        found += [p for p in candidates if os.path.isfile(p)]
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


def tail(path: str, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of the file at ``path`` (of its last 64 kB)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(f.tell() - 64 * 1024, 0))
        return f.read().decode(errors="replace").splitlines()[-lines:]


def keep_logs(workdir: str, dest: str, report: PilotReport, keep: int) -> list[str]:
    """Copy the pilot's logs and the wrapper's to ``dest``, prune all but the newest ``keep``
    log directories beside it; the tail of ``pilotlog.txt`` (empty if it had none)."""
    if keep <= 0:
        return []
    dest = clean(dest)  # its parent is the directory pruned
    os.makedirs(dest, exist_ok=True)
    out = _copy_pilot_files(workdir, dest)
    with open(os.path.join(dest, "wrapper.log"), "w") as fh:
        fh.write(wrapper_log(report))
    prune(os.path.dirname(dest), keep)
    return out


def _copy_pilot_files(workdir: str, dest: str) -> list[str]:
    """Copy pilot3's logs into ``dest``; the tail of ``pilotlog.txt`` (empty without one)."""
    import shutil  # only a failed run keeps its logs: not imported by every rank

    out: list[str] = []
    for path in _pilot_files(workdir):
        name = os.path.basename(path)
        shutil.copy2(path, os.path.join(dest, name))
        if name == "pilotlog.txt":
            out = tail(path)
    return out


def prune(root: str, keep: int) -> None:
    """Remove all but the ``keep`` newest directories in ``root``."""
    import shutil

    with os.scandir(root) as entries:
        dirs = [(e.stat().st_mtime, e.path) for e in entries if e.is_dir()]
    dirs.sort(key=lambda d: d[0])
    for _, old in dirs[: max(len(dirs) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)
