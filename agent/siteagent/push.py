"""Push mode: the PanDA job travels inside the task, the pilot's reports come back as data.

What Harvester's shared-file-system messenger (pandaharvester/harvestermessenger/
shared_file_messenger.py) would write into a push-mode worker's access point travels in the
Globus Compute task as one JSON *bundle*; the pilot wrapper writes it into the worker's push
directory on the site (``$SITE_AGENT_STATE/push/<worker>``, on the shared file system) and runs
pilot3 with ``--harvester-submit-mode PUSH`` there. What pilot3 leaves there for Harvester is
read back by ``collect`` (at the end, on the node: the task's result; while it runs, by a
control task on the login node) and written into Harvester's access point by the monitor.

This module runs on the site (pilot wrapper, control tasks) and inside Harvester: standard
library only.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from siteagent.errors import ConfigError

# Harvester's payload_interaction file names (its panda_harvester.cfg defaults) and pilot3's
# (pilot/util/default.cfg: Pilot.pandajobdata, Harvester.workerAttributesFile/StageOutnFile/
# kill_worker_file, Payload.jobreport)
JOB_SPEC_FILE = "pandaJobData.out"
WORKER_ATTRIBUTES_FILE = "worker_attributes.json"
JOB_REPORT_FILE = "jobReport.json"
EVENT_STATUS_FILE = "event_status.dump.json"
HEARTBEAT_FILE = "worker_heartbeat.json"
KILL_WORKER_FILE = "kill_worker"
# pilot3's information sources read from files instead of CRIC and the PanDA server:
# --queuedata-url FILE, $LOCAL_AGIS_SCHEDCONF, --storagedata-url FILE (pilot/info/extinfo.py)
QUEUEDATA_FILE = "queuedata.json"
SCHEDCONF_FILE = "cric_pandaqueues.json"
DDMENDPOINTS_FILE = "cric_ddmendpoints.json"
# the bundle itself, as the worker command leaves it in the push directory
BUNDLE_FILE = "siteagent_push.json"
# the wrapper's last stdout line in push mode: this prefix, then the collected report as JSON
RESULT_PREFIX = "SITEAGENT-PUSH-RESULT "
# files pilot3 writes or reads by these names: a bundle's own files may not take them
RESERVED = frozenset(
    {
        JOB_SPEC_FILE, WORKER_ATTRIBUTES_FILE, JOB_REPORT_FILE, EVENT_STATUS_FILE,
        HEARTBEAT_FILE, KILL_WORKER_FILE, QUEUEDATA_FILE, SCHEDCONF_FILE, DDMENDPOINTS_FILE,
        BUNDLE_FILE,
    }
)  # fmt: skip
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")
PANDA_ID = re.compile(r"^[0-9]{1,20}$")
PARAM_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
# a Globus Compute task's payload is at most 10 MB; a bundle stays well below
MAX_BUNDLE_BYTES = 4 * 1024 * 1024
# what comes back: text files are cut to their last TAIL_BYTES, a job report to REPORT_BYTES
TAIL_BYTES = 8192
REPORT_BYTES = 1024 * 1024
FORMAT = 1


@dataclass(frozen=True)
class Bundle:
    """One push-mode worker's job: ``job`` is the job spec file's content (``{PandaID:
    jobParams}``, one job), ``queuedata`` the PanDA queue's data (None: pilot3 finds its own),
    ``ddmendpoints`` the storages, ``files`` other files of the access point (name -> text,
    e.g. the transformation script pilot3 copies from ``$HARVESTER_WORKDIR``)."""

    job: dict[str, dict[str, Any]]
    queuedata: dict[str, Any] | None = None
    ddmendpoints: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def panda_id(self) -> str:
        return next(iter(self.job))

    def to_json(self) -> str:
        data = {"format": FORMAT, "job": self.job, "files": self.files}
        if self.queuedata is not None:
            data["queuedata"] = self.queuedata
        if self.ddmendpoints is not None:
            data["ddmendpoints"] = self.ddmendpoints
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _fail(where: str, problem: str) -> ConfigError:
    return ConfigError(f"push job: {where}: {problem}")


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _check_param(where: str, key: Any, value: Any) -> None:
    """One job parameter: a word for a name, a flat value without NUL characters."""
    if not isinstance(key, str) or not PARAM_NAME.match(key):
        raise _fail(where, f"parameter name {str(key)[:40]!r} is not a word")
    if not _scalar(value):
        raise _fail(f"{where}.{key}", "must be a string, number, boolean or null")
    if isinstance(value, str) and "\x00" in value:
        raise _fail(f"{where}.{key}", "contains a NUL character")


def check_job(job: Any) -> dict[str, dict[str, Any]]:
    """The job spec ``{PandaID: {key: value}}``: one job, a numeric PandaID, flat values."""
    if not isinstance(job, dict) or len(job) != 1:
        raise _fail("job", "must hold exactly one PanDA job ({PandaID: job parameters})")
    [(panda_id, params)] = job.items()
    if not PANDA_ID.match(str(panda_id)):
        raise _fail("job", f"PandaID {str(panda_id)[:40]!r} is not a number")
    if not isinstance(params, dict) or not params:
        raise _fail(f"job.{panda_id}", "must be an object of job parameters")
    for key, value in params.items():
        _check_param(f"job.{panda_id}", key, value)
    return {str(panda_id): dict(params)}


def _check_fields(data: Any) -> None:
    """The bundle's shape: an object of known fields, its format and its data objects."""
    if not isinstance(data, dict):
        raise _fail("bundle", "must be a JSON object")
    unknown = sorted(set(data) - {"format", "job", "queuedata", "ddmendpoints", "files"})
    if unknown:
        raise _fail(unknown[0], "is not a bundle field")
    if data.get("format", FORMAT) != FORMAT:
        raise _fail("format", f"must be {FORMAT}")


def _check_objects(data: dict[str, Any]) -> None:
    """The queue's and the storages' data: JSON objects when given."""
    for key in ("queuedata", "ddmendpoints"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise _fail(key, "must be a JSON object")


def _check_files(files: Any) -> dict[str, str]:
    """The bundle's extra files: plain names pilot3 and Harvester leave alone, text."""
    if not isinstance(files, dict):
        raise _fail("files", "must be an object of file name -> text")
    for name, text in files.items():
        if not isinstance(name, str) or not FILE_NAME.match(name):
            raise _fail("files", f"{str(name)[:60]!r} is not a plain file name")
        if name in RESERVED:
            raise _fail(f"files.{name}", "is a name pilot3 or Harvester use themselves")
        if not isinstance(text, str):
            raise _fail(f"files.{name}", "must be text")
    return dict(files)


def check_bundle(data: Any) -> Bundle:
    """A bundle from its JSON data, every field checked (ConfigError naming the field)."""
    _check_fields(data)
    job = check_job(data.get("job"))
    _check_objects(data)
    files = _check_files(data.get("files") or {})
    bundle = Bundle(job, data.get("queuedata"), data.get("ddmendpoints"), files)
    if len(bundle.to_json().encode()) > MAX_BUNDLE_BYTES:
        raise _fail("bundle", f"is larger than {MAX_BUNDLE_BYTES} bytes")
    return bundle


def read_bundle(path: str | os.PathLike[str]) -> Bundle:
    """The checked bundle in ``path``."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise _fail(str(path), f"cannot be read: {err.strerror or err}") from None
    except ValueError as err:
        raise _fail(str(path), f"is not JSON: {err}") from None
    return check_bundle(data)


def push_dir(environ: Any, worker: str) -> Path:
    """The worker's push directory: ``$SITE_AGENT_STATE/push/<worker>`` (else under
    ``~/.site-agent``), the same path on the compute node and on the login node."""
    from siteagent.names import WORKER_ID_RE, Var

    if not WORKER_ID_RE.match(worker or ""):
        raise ConfigError(f"{Var.WORKER_ID}: {worker!r} is not a worker name")
    base = environ.get(Var.STATE)
    root = Path(base).expanduser() if base else Path.home() / ".site-agent"
    return root / "push" / worker


def write_bundle(bundle: Bundle, directory: str | os.PathLike[str]) -> list[str]:
    """Write the bundle into ``directory`` as files (data only: nothing is run or expanded);
    the names written."""
    from siteagent.fileio import atomic_write

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = {JOB_SPEC_FILE: json.dumps(bundle.job)}
    if bundle.queuedata is not None:
        out[QUEUEDATA_FILE] = json.dumps(bundle.queuedata)
        out[SCHEDCONF_FILE] = json.dumps({queue_name(bundle): bundle.queuedata})
    out[DDMENDPOINTS_FILE] = json.dumps(bundle.ddmendpoints or {})
    out |= bundle.files
    for name, text in out.items():
        atomic_write(directory / name, text, mode=0o600)
    return sorted(out)


def queue_name(bundle: Bundle) -> str:
    """The PanDA queue the queuedata describes (its ``nickname``), else the job's."""
    qd = bundle.queuedata or {}
    params = bundle.job[bundle.panda_id]
    return str(qd.get("nickname") or qd.get("panda_resource") or params.get("computingSite", ""))


def pilot_args(directory: str | os.PathLike[str], bundle: Bundle) -> list[str]:
    """pilot3's options for a push-mode run in ``directory``: no server updates (``-z``), the
    job and reports in ``directory`` (``--harvester-workdir``/``--harvester-datadir``), the
    queue's and storages' data from its files."""
    directory = Path(directory)
    args = [
        "-z",
        "--harvester-submit-mode", "PUSH",
        "--harvester-workdir", str(directory),
        "--harvester-datadir", str(directory),
        "--storagedata-url", str(directory / DDMENDPOINTS_FILE),
    ]  # fmt: skip
    if bundle.queuedata is not None:
        args += ["--queuedata-url", str(directory / QUEUEDATA_FILE)]
    return args


def pilot_env(directory: str | os.PathLike[str], bundle: Bundle) -> dict[str, str]:
    """The variables pilot3 reads in push mode: ``HARVESTER_WORKDIR`` (the transformation is
    copied from there, not downloaded) and the schedconfig file (``LOCAL_AGIS_SCHEDCONF``)."""
    directory = Path(directory)
    env = {"HARVESTER_WORKDIR": str(directory)}
    if bundle.queuedata is not None:
        env["LOCAL_AGIS_SCHEDCONF"] = str(directory / SCHEDCONF_FILE)
    return env


def _read_json(path: Path, limit: int = REPORT_BYTES) -> Any:
    try:
        if path.stat().st_size > limit:
            return {"truncated": f"{path.name} is larger than {limit} bytes"}
        return json.loads(path.read_text(errors="replace"))
    except (OSError, ValueError):
        return None


def _tail(path: Path, size: int = TAIL_BYTES) -> str | None:
    try:
        with path.open("rb") as fh:
            fh.seek(max(path.stat().st_size - size, 0))
            return fh.read().decode(errors="replace")
    except OSError:
        return None


def _newest(paths: list[Path]) -> Path | None:
    existing = [p for p in paths if p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime) if existing else None


def _newest_tail(paths: list[Path], size: int = TAIL_BYTES) -> str | None:
    """The tail of the newest of ``paths`` that exists (None when none does)."""
    found = _newest(paths)
    return _tail(found, size) if found else None


def _files(directory: Path, depth: int = 2) -> list[Path]:
    """The files in ``directory`` and its subdirectories ``depth`` levels down: the push
    directory, pilot3's main workdir and its job's workdir, not whatever the payload makes
    below that (a control task reads this for every running worker, on a shared file system)."""
    out: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return out
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False):
                out.append(Path(entry.path))
            elif depth and entry.is_dir(follow_symlinks=False):
                out += _files(Path(entry.path), depth - 1)
        except OSError:
            continue
    return out


def collect(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """What pilot3 left in a push directory for Harvester, as JSON data: its worker
    attributes, job report, output file list (with their paths on the site), whether it
    ended (``kill_worker``), the tails of the payload's and pilot's output, and ``signature``
    (the newest change of any file: how the monitor sees that the worker is alive)."""
    directory = Path(directory)
    out: dict[str, Any] = {"dir": str(directory), "exists": directory.is_dir()}
    if not out["exists"]:
        return out
    files = _files(directory)
    out["signature"] = max((p.stat().st_mtime for p in files), default=0.0)
    out["files"] = len(files)
    out["attributes"] = _read_json(directory / WORKER_ATTRIBUTES_FILE)
    # pilot3 copies the job report up only when the work report was written, which 3.7
    # believes failed (write_json's True taken as an error): read it from the job's workdir too
    report = _newest([directory / JOB_REPORT_FILE, *directory.glob(f"*/*/{JOB_REPORT_FILE}")])
    out["job_report"] = _read_json(report) if report else None
    out["outputs"] = _read_json(directory / EVENT_STATUS_FILE)
    out["ended"] = (
        any(directory.glob(f"*/{KILL_WORKER_FILE}")) or (directory / KILL_WORKER_FILE).exists()
    )
    for name in ("payload.stdout", "payload.stderr"):
        out[name.replace(".", "_")] = _newest_tail(list(directory.glob(f"*/*/{name}")))
    logs = [*directory.glob("*/pilotlog.txt"), *directory.glob("*/*/pilotlog.txt")]
    out["pilot_log"] = _newest_tail(logs, 4096)
    return out


def result_line(directory: str | os.PathLike[str]) -> str:
    """The wrapper's last stdout line in push mode: the collected report, one line."""
    return RESULT_PREFIX + json.dumps(collect(directory), separators=(",", ":"))


def parse_result(stdout: str | None) -> dict[str, Any] | None:
    """The collected report in a push-mode task's stdout (its last result line), else None."""
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(RESULT_PREFIX):
            try:
                data = json.loads(line[len(RESULT_PREFIX) :])
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None
