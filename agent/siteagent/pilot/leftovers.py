"""The sweep that ends whatever a payload left behind (processes, read straight from /proc,
and the per-pilot workdir).

The wrapper is the payload's subreaper, so every process the payload started is below it:
its children are listed in ``/proc/<pid>/task/<tid>/children`` (a walk of a few small files,
where psutil would import itself and scan all of /proc). Without that file (a kernel built
without CONFIG_PROC_CHILDREN) the parent of every process is read from ``/proc/*/stat``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

LEFTOVER_GRACE = 2.0


# whether the kernel lists each thread's children (CONFIG_PROC_CHILDREN); without it the
# parent of every process is read from /proc/*/stat (the same processes, found slower)
CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` from its threads' ``children`` files; [] once it ended."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in tasks:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as fh:
            found += [int(c) for c in fh.read().split()]  # none if the thread ended meanwhile
    return found


def _parents() -> dict[int, list[int]]:
    """Children of every process, from each one's parent in ``/proc/*/stat``."""
    below: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        # not a process (/proc/self: no number; /proc/meminfo: no stat), or it ended meanwhile
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{name}/stat") as fh:
                ppid = int(fh.read().rpartition(")")[2].split()[1])
            below.setdefault(ppid, []).append(int(name))
    return below


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first), zombies included."""
    table = None if CHILDREN_FILES else _parents()
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop(0)
        kids = _children(parent) if table is None else table.get(parent, [])
        new = [k for k in kids if k not in found]
        found += new
        todo += new
    return found


def _gone(pid: int) -> bool:
    """Reap ``pid`` if it is our child and ended; True when it no longer runs (a zombie that
    is not ours counts as ended)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _send(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout: float, pgid: int | None = None) -> list[int]:
    """Wait up to ``timeout`` for ``pids`` (and the group ``pgid``) to end, reaping our own;
    those of ``pids`` still running."""
    alive = _running(pids)
    end = time.monotonic() + timeout
    while (alive or _group_left(pgid)) and time.monotonic() < end:
        time.sleep(0.01)
        alive = _running(alive)
    return alive


def _running(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (the ended ones of ours reaped)."""
    return [p for p in pids if not _gone(p)]


def _group_left(pgid: int | None) -> bool:
    """Whether a process is left in the group ``pgid`` (without a subreaper, orphans of the
    payload's group are not below us, but still in it)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if pgid is not None:
            os.killpg(pgid, 0)  # a zombie counts, until its parent reaps it
            return True
    return False


def _killpg(pgid: int | None, sig: int) -> None:
    """Signal the process group ``pgid``, if there is one."""
    if pgid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def end_leftovers(pgid: int | None, grace: float = LEFTOVER_GRACE) -> list[int]:
    """TERM, then KILL after ``grace``, every process still below us or in the payload's
    group ``pgid``; the pids found."""
    me = os.getpid()
    _killpg(pgid, signal.SIGTERM)
    procs = descendants(me)
    _send(procs, signal.SIGTERM)
    alive = _wait_gone(procs, grace, pgid)
    _killpg(pgid, signal.SIGKILL)
    _send(alive, signal.SIGKILL)
    _wait_gone(alive, grace)
    late = [p for p in descendants(me) if p not in procs]  # orphans re-parented meanwhile
    _send(late, signal.SIGKILL)
    _wait_gone(late, grace)
    return procs + late


def remove_workdir(path: str) -> None:
    """Remove the per-pilot workdir and everything in it; nothing if it is gone already.
    Most payloads leave it empty: ``rmdir`` then, without importing shutil (and its
    compression modules) on every rank."""
    try:
        os.rmdir(path)
    except OSError:  # not empty (or gone already: rmtree ignores that)
        import shutil

        shutil.rmtree(path, ignore_errors=True)
