"""Push mode on Harvester's side: a worker's job bundle from its WorkSpec and access point
(submitter), and what comes back written into the access point as Harvester's shared-file
messenger reads it (monitor)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from siteagent.errors import ConfigError
from siteagent.push import (
    EVENT_STATUS_FILE,
    FILE_NAME,
    HEARTBEAT_FILE,
    JOB_REPORT_FILE,
    JOB_SPEC_FILE,
    RESERVED,
    WORKER_ATTRIBUTES_FILE,
    Bundle,
    check_bundle,
)

# what the monitor writes into the access point besides the messenger's files: the tails of
# the payload's and the pilot's output (Harvester's post-processing tars *.txt, *.json, ...)
TAILS = {"payload_stdout": "payload.stdout", "payload_stderr": "payload.stderr"}
PILOT_LOG_TAIL = "pilotlog.txt"
WRITTEN = frozenset({*TAILS.values(), PILOT_LOG_TAIL})
# access-point files larger than this do not travel in the task (Harvester stages data)
MAX_FILE_BYTES = 1024 * 1024


def access_point(workspec: Any) -> Path | None:
    """The worker's access point on Harvester's side (None when it has none)."""
    get = getattr(workspec, "get_access_point", None)
    path = get() if callable(get) else getattr(workspec, "accessPoint", None)
    return Path(path) if path else None


def _job_of(workspec: Any, ap: Path | None) -> dict[str, Any]:
    """``{PandaID: jobParams}`` from the WorkSpec's jobs, else the messenger's job spec file."""
    get = getattr(workspec, "get_jobspec_list", None)
    jobs = (get() if callable(get) else None) or []
    if jobs:
        out = {}
        for js in jobs:
            params = js.get_job_params(False) if hasattr(js, "get_job_params") else js.jobParams
            out[str(js.PandaID)] = params
        return out
    spec = ap / JOB_SPEC_FILE if ap else None
    if spec is None or not spec.is_file():
        raise ConfigError(
            "push job: job: the worker has no PanDA job (mode push needs Harvester to give "
            "each worker its job: mapType OneToOne)"
        )
    try:
        return json.loads(spec.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"push job: {spec}: not a JSON job spec: {err}") from None


def _queuedata_from_harvester(queue: str | None) -> dict[str, Any] | None:
    """The queue's CRIC data as Harvester caches it, where Harvester is installed."""
    if not queue:
        return None
    try:
        from pandaharvester.harvestermisc.info_utils import PandaQueuesDict
    except ImportError:
        return None
    data = PandaQueuesDict().get(queue)
    return dict(data) if isinstance(data, dict) else None


def _json_file(path: Path, field: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"push job: {field}: {path} is not JSON: {err}") from None


def push_bundle(workspec: Any, queue: str | None) -> Bundle:
    """The worker's bundle: its job, the queue's data (``queuedata.json`` in the access
    point, else Harvester's cache of CRIC), the storages (``cric_ddmendpoints.json``) and the
    other small text files the messenger or a preparator left in the access point."""
    ap = access_point(workspec)
    data: dict[str, Any] = {"job": _job_of(workspec, ap), "files": {}}
    if ap is not None and ap.is_dir():
        for path in sorted(ap.iterdir()):
            name = path.name
            if not path.is_file() or name in WRITTEN or name.startswith("."):
                continue
            if name == "queuedata.json":
                data["queuedata"] = _json_file(path, "queuedata")
            elif name == "cric_ddmendpoints.json":
                data["ddmendpoints"] = _json_file(path, "ddmendpoints")
            elif name in RESERVED:
                continue  # the job spec (read above) and what the pilot writes back
            elif not FILE_NAME.match(name):
                raise ConfigError(f"push job: files: {name!r} is not a plain file name")
            elif path.stat().st_size > MAX_FILE_BYTES:
                raise ConfigError(f"push job: files.{name}: larger than {MAX_FILE_BYTES} bytes")
            else:
                try:
                    data["files"][name] = path.read_text()
                except (OSError, UnicodeDecodeError) as err:
                    raise ConfigError(f"push job: files.{name}: not text: {err}") from None
    if "queuedata" not in data:
        qd = _queuedata_from_harvester(queue)
        if qd is not None:
            data["queuedata"] = qd
    return check_bundle(data)


def write_access_point(ap: Path, report: dict[str, Any], changed_at: float) -> list[str]:
    """Write what the worker's pilot left into Harvester's access point, where the
    shared-file messenger reads it: worker attributes, job report, output files (once: the
    messenger renames it to ``.read``), the heartbeat (its mtime: when the worker's files last
    changed) and the output tails. Returns the names written."""
    from siteagent.fileio import atomic_write

    ap.mkdir(parents=True, exist_ok=True)
    written = []
    texts: dict[str, str] = {}
    if report.get("attributes") is not None:
        texts[WORKER_ATTRIBUTES_FILE] = json.dumps(report["attributes"])
    if report.get("job_report") is not None:
        texts[JOB_REPORT_FILE] = json.dumps(report["job_report"])
    outputs = report.get("outputs")
    taken = (ap / EVENT_STATUS_FILE).exists() or (ap / f"{EVENT_STATUS_FILE}.read").exists()
    if outputs and not taken:
        texts[EVENT_STATUS_FILE] = json.dumps(outputs)
    for key, name in TAILS.items():
        if report.get(key) is not None:
            texts[name] = report[key]
    if report.get("pilot_log") is not None:
        texts[PILOT_LOG_TAIL] = report["pilot_log"]
    for name, text in texts.items():
        path = ap / name
        try:
            if path.read_text() == text:
                continue
        except OSError:
            pass
        atomic_write(path, text, mode=0o644, durable=False)
        written.append(name)
    beat = ap / HEARTBEAT_FILE
    atomic_write(beat, json.dumps({"changed": changed_at}), mode=0o644, durable=False)
    os.utime(beat, (changed_at, changed_at))
    return written
