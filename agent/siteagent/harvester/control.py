"""Housekeeping tasks the sweeper sends to the control user endpoint (a local provider on
the login node). They run on the site, so they import only what the site-agent install has."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def state_dir() -> Path:
    """Where workers leave their records and the pilots their reports on this host."""
    import os

    from siteagent.names import Var

    return Path(os.environ.get(Var.STATE) or Path.home() / ".site-agent")


def stop_worker(worker_id: str) -> dict[str, Any]:
    """Stop one worker wherever it is: a signal when it runs on this host, its batch job
    otherwise, and a stop mark that keeps a still-queued worker from starting."""
    import json
    import socket

    from siteagent.fileio import atomic_write
    from siteagent.harvester.control import state_dir

    state = state_dir() / "workers"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    record_path = state / f"{worker_id}.json"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        # not started yet (or already gone): make sure it never starts
        atomic_write(state / f"{worker_id}.stop", "stopped by the sweeper\n", mode=0o600)
        return {"worker": worker_id, "action": "marked", "detail": "not running: will not start"}

    if record.get("host") == socket.gethostname():
        return _signal_here(worker_id, int(record["pid"]))
    return _cancel_job(worker_id, record)


def _signal_here(worker_id: str, pid: int) -> dict[str, Any]:
    """SIGTERM to the worker's process on this host, if that pid is still the worker."""
    import signal

    import psutil

    from siteagent.names import Var

    try:
        proc = psutil.Process(pid)
        if proc.environ().get(Var.WORKER_ID) != worker_id:
            raise psutil.NoSuchProcess(proc.pid)
        proc.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        return {"worker": worker_id, "action": "none", "detail": "already ended"}
    return {"worker": worker_id, "action": "signalled", "detail": f"SIGTERM to pid {pid}"}


def _cancel_job(worker_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """Cancel the batch job the worker runs in, the way the site's scheduler does."""
    import subprocess

    job_id, cancel = _batch_job(worker_id, record)
    out = subprocess.run([cancel, job_id], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"{cancel} {job_id}: {out.stderr.strip() or out.returncode}")
    return {"worker": worker_id, "action": "cancelled", "detail": f"{cancel} {job_id}"}


def _batch_job(worker_id: str, record: dict[str, Any]) -> tuple[str, str]:
    """The worker's batch job id and the site's command that cancels it."""
    import os

    from siteagent.names import Var
    from siteagent.schedulers import cancel_command

    job_id = str(record.get("job_id") or "")
    cancel = cancel_command(os.environ.get(Var.SCHEDULER, ""))
    if not (job_id and cancel):
        raise RuntimeError(
            f"worker {worker_id} runs on {record.get('host')} with no batch job to cancel"
        )
    return job_id, cancel


def forget_worker(worker_id: str) -> dict[str, Any]:
    """Remove what a worker that has ended left on the site: its stop mark (a reused worker
    id would otherwise refuse to start), a record its killed batch job could not remove, its
    pilots' reports and its push directory."""
    from siteagent.harvester.control import state_dir

    state = state_dir() / "workers"
    mark, record = state / f"{worker_id}.stop", state / f"{worker_id}.json"
    # and a record being written (``.json.<pid>``) when its batch job was killed
    gone = _remove_existing([mark, record, *state.glob(f"{worker_id}.json.*")])
    gone += _forget_reports(worker_id)
    gone += _forget_push_dir(worker_id)
    detail = f"removed {', '.join(gone)}" if gone else "nothing left on the site"
    return {"worker": worker_id, "action": "forgot", "detail": detail}


def _remove_existing(paths: list[Path]) -> list[str]:
    """Remove those of ``paths`` that exist; their names."""
    gone = [path for path in paths if path.exists()]
    for path in gone:
        path.unlink(missing_ok=True)
    return [path.name for path in gone]


def _forget_reports(worker_id: str) -> list[str]:
    """The reports of the worker's pilot ranks (``pilots/<worker>-r<rank>.json``), once
    Harvester swept the worker: its monitor has read the last of them. Kept, they would pile
    up in the shared state directory, and every later rank opens each report there when it
    looks for lost neighbours."""
    import os

    from siteagent.harvester.control import state_dir

    directory = state_dir() / "pilots"
    prefix = f"{worker_id}-r"
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    # exactly this worker's: not those of a worker whose id goes on (Q-1-r... of Q-1-rx-7)
    ranks = [
        name
        for name in names
        if name.startswith(prefix) and name.endswith(".json") and _is_rank(name[len(prefix) : -5])
    ]
    return [f"pilots/{name}" for name in _remove_existing([directory / n for n in ranks])]


def _is_rank(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _forget_push_dir(worker_id: str) -> list[str]:
    """A push-mode worker's push directory (its job and what its pilot left), once Harvester
    swept the worker: it has read everything from it by then."""
    import os
    import shutil

    from siteagent.errors import ConfigError
    from siteagent.push import push_dir

    try:
        directory = push_dir(os.environ, worker_id)
    except ConfigError:
        return []
    if not directory.is_dir():
        return []
    shutil.rmtree(directory, ignore_errors=True)
    return [f"push/{worker_id}"]


def collect_workers(worker_ids: list[str]) -> dict[str, Any]:
    """What the pilots of push-mode workers left in their push directories on the shared
    file system, for all of them at once (the monitor sends one such task per cycle):
    ``{worker: siteagent.push.collect(...)}``; a name that is not a worker's gets None."""
    import os

    from siteagent.errors import ConfigError
    from siteagent.push import collect, push_dir

    out: dict[str, Any] = {}
    for wid in worker_ids:
        try:
            out[wid] = collect(push_dir(os.environ, wid))
        except ConfigError:
            out[wid] = None
    return out
