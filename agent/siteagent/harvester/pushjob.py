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
# access-point files that are bundle fields (JSON data), not files of the bundle
FIELD_FILES = {"queuedata.json": "queuedata", "cric_ddmendpoints.json": "ddmendpoints"}
# the report's parts written into the access point: as JSON, and as they are (text)
REPORT_JSON = {"attributes": WORKER_ATTRIBUTES_FILE, "job_report": JOB_REPORT_FILE}
REPORT_TEXT = TAILS | {"pilot_log": PILOT_LOG_TAIL}


def access_point(workspec: Any) -> Path | None:
    """The worker's access point on Harvester's side (None when it has none)."""
    get = getattr(workspec, "get_access_point", None)
    path = get() if callable(get) else getattr(workspec, "accessPoint", None)
    return Path(path) if path else None


def _job_params(jobspec: Any) -> Any:
    """A Harvester JobSpec's job parameters (``jobParams`` where it has no getter)."""
    if hasattr(jobspec, "get_job_params"):
        return jobspec.get_job_params(False)
    return jobspec.jobParams


def _job_spec_file(ap: Path | None) -> dict[str, Any]:
    """``{PandaID: jobParams}`` from the job spec file the messenger left in the access point."""
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


def _job_of(workspec: Any, ap: Path | None) -> dict[str, Any]:
    """``{PandaID: jobParams}`` from the WorkSpec's jobs, else the messenger's job spec file."""
    get = getattr(workspec, "get_jobspec_list", None)
    jobs = (get() if callable(get) else None) or []
    if jobs:
        return {str(js.PandaID): _job_params(js) for js in jobs}
    return _job_spec_file(ap)


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


def _text_file(path: Path) -> str:
    """An access-point file the bundle carries: a plain name, small, text."""
    name = path.name
    if not FILE_NAME.match(name):
        raise ConfigError(f"push job: files: {name!r} is not a plain file name")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ConfigError(f"push job: files.{name}: larger than {MAX_FILE_BYTES} bytes")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"push job: files.{name}: not text: {err}") from None


def _access_point_data(ap: Path) -> dict[str, Any]:
    """The bundle fields from the access point: its JSON data files and the other files."""
    data: dict[str, Any] = {"files": {}}
    for path in sorted(ap.iterdir()):
        name = path.name
        if not path.is_file() or name in WRITTEN or name.startswith("."):
            continue
        if name in FIELD_FILES:
            data[FIELD_FILES[name]] = _json_file(path, FIELD_FILES[name])
        elif name not in RESERVED:  # the job spec (read already) and what the pilot writes
            data["files"][name] = _text_file(path)
    return data


def push_bundle(workspec: Any, queue: str | None) -> Bundle:
    """The worker's bundle: its job, the queue's data (``queuedata.json`` in the access
    point, else Harvester's cache of CRIC), the storages (``cric_ddmendpoints.json``) and the
    other small text files the messenger or a preparator left in the access point."""
    ap = access_point(workspec)
    data: dict[str, Any] = {"job": _job_of(workspec, ap), "files": {}}
    if ap is not None and ap.is_dir():
        data |= _access_point_data(ap)
    if "queuedata" not in data:
        qd = _queuedata_from_harvester(queue)
        if qd is not None:
            data["queuedata"] = qd
    return check_bundle(data)


def _report_texts(ap: Path, report: dict[str, Any]) -> dict[str, str]:
    """The access-point files' texts from the worker's report (event status file once)."""
    texts = {
        name: json.dumps(report[key])
        for key, name in REPORT_JSON.items()
        if report.get(key) is not None
    }
    outputs = report.get("outputs")
    taken = (ap / EVENT_STATUS_FILE).exists() or (ap / f"{EVENT_STATUS_FILE}.read").exists()
    if outputs and not taken:
        texts[EVENT_STATUS_FILE] = json.dumps(outputs)
    texts |= {name: report[key] for key, name in REPORT_TEXT.items() if report.get(key) is not None}
    return texts


def _unchanged(path: Path, text: str) -> bool:
    try:
        return path.read_text() == text
    except OSError:
        return False


def write_access_point(ap: Path, report: dict[str, Any], changed_at: float) -> list[str]:
    """Write what the worker's pilot left into Harvester's access point, where the
    shared-file messenger reads it: worker attributes, job report, output files (once: the
    messenger renames it to ``.read``), the heartbeat (its mtime: when the worker's files last
    changed) and the output tails. Returns the names written."""
    from siteagent.fileio import atomic_write

    ap.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in _report_texts(ap, report).items():
        if not _unchanged(ap / name, text):
            atomic_write(ap / name, text, mode=0o644, durable=False)
            written.append(name)
    beat = ap / HEARTBEAT_FILE
    atomic_write(beat, json.dumps({"changed": changed_at}), mode=0o644, durable=False)
    os.utime(beat, (changed_at, changed_at))
    return written
