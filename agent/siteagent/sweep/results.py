"""The results file: JSON lines, one record per finished run, appended as runs end.

A rerun reads it first and skips every run it already holds (same site, payload, canonical
config and repetition), so an interrupted sweep resumes where it stopped. Lines that are not
whole JSON (a crash mid-write) are ignored. The record format is in ``RECORD_FIELDS`` and the
README ("Resource sweep").
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

RESULTS_VERSION = 1

# name -> meaning (the documentation of a record; tests check records have exactly these)
RECORD_FIELDS = {
    "v": "format version (1)",
    "site": "site profile as given to --site",
    "payload": "the payload text",
    "point": "the grid's own values of this point",
    "config": "the canonical user_endpoint_config the run used",
    "rep": "repetition number, from 0",
    "host": "where the task ran (first node of the job)",
    "job_id": "batch job id (SLURM_JOB_ID / PBS_JOBID), null on local",
    "started": "UTC time the run started on the worker (ISO 8601, milliseconds)",
    "seconds": "wall time of the execution wrapper with all ranks (time to solution)",
    "turnaround_s": "from submission on the login node to the result, queue included",
    "queue_wait_s": "batch queue wait this run saw (job start - submit), null where unknown",
    "exit_code": "exit code of the execution wrapper (the payload's)",
    "ok": "exit code 0 and every rank's pilot report finished",
    "node_hours": "nodes x seconds / 3600",
    "layers": "pilot wrapper layer -> seconds, the slowest rank's (as its report names them: plan, gpu-binding, proxy, cvmfs, container, env) and payload",
    "ranks": "per rank: rank, host, reason, exit_code, payload_seconds",
    "metrics": "numbers the payload printed as JSON objects, summed over ranks",
    "error": "why the run failed (remote error, pilot setup error, stderr tail), else null",
}


def run_key(site: str, payload: str, config: dict[str, Any], rep: int) -> str:
    """Identity of a run across reruns."""
    return json.dumps([site, payload, config, rep], sort_keys=True, separators=(",", ":"))


class ResultsFile:
    """Append-only JSON lines; thread-safe appends, each one line written whole and flushed."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def load(self) -> list[dict[str, Any]]:
        """The records so far (none if the file does not exist)."""
        if not self.path.exists():
            return []
        return _records(self.path.read_text())

    def done_keys(self) -> set[str]:
        """Runs measured already; see ``measured`` for the ones a rerun runs again."""
        return {
            run_key(r["site"], r["payload"], r["config"], r["rep"])
            for r in self.load()
            if measured(r)
        }

    def append(self, record: dict[str, Any]) -> None:
        # keys as made: the point keeps the grid's field order (labels, table columns)
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                # a cut line from an earlier crash must not swallow this record
                if os.fstat(fd).st_size and not _ends_with_newline(self.path):
                    line = "\n" + line
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)


def _records(text: str) -> list[dict[str, Any]]:
    """The records of the file's ``text``, lines that are none left out."""
    records = (_parse(line) for line in text.splitlines())
    return [r for r in records if r is not None]


def _parse(line: str) -> dict[str, Any] | None:
    """One line's record; None for a line of another format version or cut short by a crash
    (that run is simply run again)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("v") == RESULTS_VERSION else None


def _tail(outcome: dict[str, Any]) -> str:
    """The payload's last words on stderr, one line (the pilot wrapper's own summary lines
    name a report the run already removed)."""
    lines = _stderr_lines(outcome)
    own = [ln for ln in lines if not ln.startswith("site-agent pilot:")]
    return " | ".join((own or lines)[-3:])[-300:]


def _stderr_lines(outcome: dict[str, Any]) -> list[str]:
    """The non-blank lines of the run's stderr tail, stripped."""
    lines = (ln.strip() for ln in outcome.get("stderr_tail", "").splitlines())
    return [ln for ln in lines if ln]


def interrupted(record: dict[str, Any]) -> bool:
    """A run a stop signal ended (its pilot wrappers say ``signalled``): not a measurement."""
    return any(r.get("reason") == "signalled" for r in record.get("ranks", []))


def measured(record: dict[str, Any]) -> bool:
    """The worker ran it to the end: not interrupted, and not a run that never got a result
    (its user endpoint did not start, the task was lost); a rerun runs the others again."""
    return record.get("seconds") is not None and not interrupted(record)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def make_record(
    site: str,
    payload: str,
    point_values: dict[str, Any],
    config: dict[str, Any],
    rep: int,
    outcome: dict[str, Any] | None,
    submitted_at: float,
    finished_at: float,
    error: str | None = None,
) -> dict[str, Any]:
    """A record from what ``task.run_point`` returned (``outcome``), or from a remote error."""
    o = outcome or {}
    nodes = int(config.get("nodes", 1))
    seconds = o.get("seconds")
    reports = o.get("reports") or []
    ranks = _rank_rows(reports)
    want_ranks = nodes * int(config.get("ranks_per_node", 1))
    ok, error = _verdict(outcome, reports, ranks, want_ranks, error)
    return {
        "v": RESULTS_VERSION,
        "site": site,
        "payload": payload,
        "point": point_values,
        "config": config,
        "rep": rep,
        "host": o.get("host"),
        "job_id": o.get("job_id"),
        "started": _iso(o.get("started")),
        "seconds": seconds,
        "turnaround_s": round(finished_at - submitted_at, 4),
        "queue_wait_s": _queue_wait(o.get("queue"), submitted_at),
        "exit_code": o.get("exit_code"),
        "ok": ok,
        "node_hours": _node_hours(nodes, seconds),
        "layers": _layer_seconds(reports),
        "ranks": ranks,
        "metrics": sum_metrics(o.get("metrics") or []),
        "error": error,
    }


def _verdict(
    outcome: dict[str, Any] | None,
    reports: list[dict[str, Any]],
    ranks: list[dict[str, Any]],
    want_ranks: int,
    error: str | None,
) -> tuple[bool, str | None]:
    """Whether the run is ok, and the error of one that is not: the remote error if there
    was one, else why the result it got is not ok."""
    if error is not None:
        return False, error
    o = outcome or {}
    if _all_finished(o, ranks, want_ranks):
        return True, None
    if outcome is None:
        return False, None
    return False, _run_error(o, reports, len(ranks), want_ranks)


def _all_finished(o: dict[str, Any], ranks: list[dict[str, Any]], want_ranks: int) -> bool:
    """Exit code 0 and a finished pilot report from every rank."""
    return (
        o.get("exit_code") == 0
        and len(ranks) == want_ranks
        and all(r["reason"] == "finished" for r in ranks)
    )


def _node_hours(nodes: int, seconds: float | None) -> float | None:
    return round(nodes * seconds / 3600, 8) if seconds is not None else None


def _layer_seconds(reports: list[dict[str, Any]]) -> dict[str, float]:
    """Each layer's time over the ranks' pilot reports (the slowest rank's)."""
    layers: dict[str, float] = {}
    for report in reports:
        for name, seconds in _report_seconds(report):
            layers[name] = max(layers.get(name, 0.0), seconds)
    return {k: round(v, 4) for k, v in layers.items()}


def _report_seconds(report: dict[str, Any]) -> list[tuple[str, float]]:
    """(layer, seconds) of one rank's pilot report, the payload's too when it ran."""
    times = [(layer["name"], layer.get("seconds", 0.0)) for layer in report.get("layers", [])]
    if report.get("payload_seconds") is not None:
        times.append(("payload", report["payload_seconds"]))
    return times


def _rank_rows(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("rank", "host", "reason", "exit_code", "payload_seconds")
    return [{k: r.get(k) for k in keys} for r in sorted(reports, key=lambda r: r.get("rank", 0))]


def _run_error(o: dict[str, Any], reports: list[dict[str, Any]], ranks: int, want: int) -> str:
    """Why a run that got a result is not ok: a rank's own error, missing ranks, or its exit."""
    error = _rank_error(reports)
    if error:
        return error
    if ranks != want:
        return f"{ranks} of {want} pilot reports; stderr: {_tail(o)}"
    return f"exit code {o.get('exit_code')}; stderr: {_tail(o)}"


def _rank_error(reports: list[dict[str, Any]]) -> str | None:
    """The first error a rank's pilot report names."""
    return next((str(r["error"]) for r in reports if r.get("error")), None)


def _queue_wait(queue: dict[str, float] | None, submitted_at: float) -> float | None:
    # the job's wait counts for this run only if the job started after the run was sent
    # (a later run on the same block found it running: no wait)
    if not queue:
        return None
    return round(max(queue["start"] - max(queue["submit"], submitted_at), 0.0), 3)


def _iso(epoch: float | None) -> str | None:
    """UTC with milliseconds: runs in flight together must show that they overlapped."""
    from datetime import UTC, datetime

    if not epoch:
        return None
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def sum_metrics(objects: list[dict[str, Any]]) -> dict[str, float]:
    """Numbers under the same key summed over the ranks that printed them."""
    out: dict[str, float] = {}
    for obj in objects:
        for k, v in obj.items():
            if _is_number(v):
                out[k] = out.get(k, 0) + v
    return out


def _is_number(value: Any) -> bool:
    """An int or float of JSON; not a boolean (which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
