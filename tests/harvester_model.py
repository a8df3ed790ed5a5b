"""A model of how PanDA Harvester (HSF/harvester) drives the plugins, for the tests.

Harvester is not on PyPI, so this module reproduces, for the parts the plugins meet, its call
order, arguments, placeholder values and status handling. Each piece names the file and
function of HSF/harvester (``pandaharvester/...``) it mirrors; none of its code is copied.

Workers live in a table of rows, as in Harvester's database: each agent cycle loads fresh
WorkSpec objects from the rows and writes back only WorkSpec columns, so nothing a plugin
keeps on a WorkSpec object outside those columns survives a cycle.

``python -m tests.harvester_model monitor QUEUE.json WORKERS.json`` runs one monitor cycle in
a process of its own (Harvester's monitor agent in another process, or after a restart) and
prints the rows it would write.
"""

from __future__ import annotations

import copy
import datetime
import importlib
import json
import sys
from typing import Any

# harvestercore/work_spec.py: WorkSpec.ST_* and ST_LIST
ST_SUBMITTED, ST_RUNNING, ST_FINISHED, ST_FAILED = "submitted", "running", "finished", "failed"
ST_READY, ST_CANCELLED, ST_IDLE, ST_MISSED = "ready", "cancelled", "idle", "missed"
ST_LIST = [ST_SUBMITTED, ST_RUNNING, ST_FINISHED, ST_FAILED, ST_READY, ST_CANCELLED, ST_IDLE]
ST_LIST += [ST_MISSED]
FINAL = (ST_FINISHED, ST_FAILED, ST_CANCELLED)

# harvestercore/work_spec.py: WorkSpec.attributesWithTypes, the columns the plugins meet
COLUMNS = (
    "workerID",
    "batchID",
    "queueName",
    "status",
    "workParams",
    "workAttributes",
    "computingSite",
    "submitTime",
    "startTime",
    "endTime",
    "nCore",
    "minRamCount",
    "maxDiskCount",
    "maxWalltime",
    "killTime",
    "resourceType",
    "nativeExitCode",
    "nativeStatus",
    "diagMessage",
    "checkTime",
    "postProcessed",
)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # core_utils.naive_utcnow


class WorkSpec:
    """harvestercore/work_spec.py: WorkSpec, the methods the agents call around the plugins."""

    def __init__(self, **row: Any):
        for column in COLUMNS:
            setattr(self, column, row.get(column))

    def row(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in COLUMNS}

    def set_status(self, value: str) -> None:
        """WorkSpec.set_status: no way back from running to submitted; start and end times."""
        if value == ST_SUBMITTED and self.status in (ST_RUNNING, ST_IDLE):
            return
        self.status = value
        if value == ST_RUNNING and self.startTime is None:
            self.startTime = now()
        elif value in (*FINAL, ST_MISSED) and self.endTime is None:
            self.endTime = now()

    def set_work_attributes(self, data: dict | None) -> None:
        """WorkSpec.set_work_attributes: merged into workAttributes, None is no change."""
        if data is not None:
            self.workAttributes = (self.workAttributes or {}) | data

    def set_work_params(self, data: dict) -> None:
        self.workParams = (self.workParams or {}) | data

    def get_work_params(self, name: str) -> tuple[bool, Any]:
        params = self.workParams or {}
        return name in params, params.get(name)

    def has_work_params(self, name: str) -> bool:
        return name in (self.workParams or {})

    def set_dialog_message(self, msg: str | None) -> None:
        """WorkSpec.set_dialog_message: an empty message leaves the last one."""
        if msg not in (None, ""):
            self.diagMessage = msg[:500]

    def is_post_processed(self) -> bool:
        return self.postProcessed == 1


def plugin_configs(queue_name: str, queue_dict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """harvestercore/queue_config_mapper.py: QueueConfigMapper.load_data. Each plugin section
    gets the "common" keys it does not set itself, then ``siteName`` (the queue name before
    a ``/resourceType``) and ``queueName``."""
    common = queue_dict.get("common", {})
    out = {}
    for key, val in queue_dict.items():
        if isinstance(val, dict) and "module" in val and "name" in val:
            val = copy.deepcopy(val)
            for c_key, c_val in common.items():
                if c_key not in val and c_key not in ("module", "name"):
                    val[c_key] = c_val
            val.setdefault("siteName", queue_name.split("/")[0])
            val.setdefault("queueName", queue_name)
            out[key] = val
    return out


def get_plugin(conf: dict[str, Any]) -> Any:
    """harvestercore/plugin_factory.py: PluginFactory.get_plugin, a new instance per call,
    with every key but module and name as a keyword, and a dbInterface."""
    cls = getattr(importlib.import_module(conf["module"]), conf["name"])
    args = {k: v for k, v in conf.items() if k not in ("module", "name")}
    args["dbInterface"] = object()  # harvestercore/db_interface.py: DBInterface()
    return cls(**args)


class Harvester:
    """One Harvester instance with one queue: its worker table and its agents' cycles."""

    def __init__(self, queue_name: str, queue_dict: dict[str, Any], check_timeout: float = 3600):
        self.queue_name = queue_name
        self.configs = plugin_configs(queue_name, queue_dict)
        self.rows: dict[int, dict[str, Any]] = {}
        self.check_timeout = check_timeout  # harvester_config.monitor.checkTimeout
        self.next_id = 1

    def workers(self, ids: list[int] | None = None) -> list[WorkSpec]:
        """db_proxy.get_workers_to_update and friends: fresh WorkSpecs from the rows."""
        return [WorkSpec(**copy.deepcopy(self.rows[i])) for i in ids or sorted(self.rows)]

    def save(self, workers: list[WorkSpec]) -> None:
        for ws in workers:
            self.rows[ws.workerID] = copy.deepcopy(ws.row())

    def make_workers(self, n: int, resource_type: str = "ANY") -> list[WorkSpec]:
        """harvesterworkermaker/simple_worker_maker.py: SimpleWorkerMaker.make_worker for a
        queue CRIC knows nothing about (PandaQueuesDict gives {}), and no job (pull mode):
        nCore = corecount or 1, minRamCount = maxrss or 1, maxWalltime = maxtime or 1,
        maxDiskCount = maxwdir or 1; resourceType from the argument, else SCORE for 1 core.
        The workerID comes from db_proxy.insert_workers."""
        out = []
        for _ in range(n):
            ws = WorkSpec(nCore=1, minRamCount=1, maxWalltime=1, maxDiskCount=1)
            ws.resourceType = resource_type if resource_type != "ANY" else "SCORE"
            ws.workerID, self.next_id = self.next_id, self.next_id + 1
            out.append(ws)
        return out

    def submit(self, workers: list[WorkSpec]) -> list[tuple[Any, str]]:
        """harvesterbody/submitter.py: Submitter.run after make_workers: computingSite, then
        Submitter.submit_workers (ready and running workers are not passed to the plugin),
        then per answer: missed with the message, or submitted; submitTime and checkTime."""
        for ws in workers:
            ws.computingSite = self.queue_name
        plugin = get_plugin(self.configs["submitter"])
        to_submit = [ws for ws in workers if ws.status not in (ST_READY, ST_RUNNING)]
        answers = plugin.submit_workers(to_submit)
        assert isinstance(answers, list) and len(answers) == len(to_submit), answers
        for ws, (ok, msg) in zip(to_submit, answers, strict=True):
            if not ok:
                ws.set_status(ST_MISSED)
                ws.set_dialog_message(msg)
            else:
                ws.set_status(ST_SUBMITTED)
            ws.submitTime = ws.checkTime = now()
        self.save(workers)
        return answers

    def monitor(self, ids: list[int] | None = None, plugin: Any = None) -> list[WorkSpec]:
        """harvesterbody/monitor.py: Monitor.monitor_agent_core and Monitor.check_workers for
        the workers still active: workers with a finalMonStatus are post-processed without the
        plugin; the plugin's (None, diag) keeps the old status until checkTimeout has passed
        since the last good check, then the worker is cancelled; a final status is first
        held as running/idle while the worker is post-processed (one more cycle)."""
        workers = [w for w in self.workers(ids) if w.status in (ST_SUBMITTED, ST_RUNNING, ST_IDLE)]
        plugin = plugin or get_plugin(self.configs["monitor"])
        to_check = [w for w in workers if not w.has_work_params("finalMonStatus")]
        answers = plugin.check_workers(to_check) if to_check else (True, [])
        ok, states = answers
        assert ok is True or ok is False, answers
        if not ok:
            to_check, states = [], []
        assert len(states) == len(to_check), answers
        t = now()
        results: dict[int, tuple[Any, str, bool]] = {}
        for ws, (new, diag) in zip(to_check, states, strict=True):
            checked = True
            if new is None:  # failed to check this worker
                checked = False
                old = ws.checkTime
                if old is not None and (t - old).total_seconds() > self.check_timeout:
                    new = ST_CANCELLED
                    diag = "Killed by Harvester due to consecutive worker check failures. " + diag
                else:
                    new = ws.status
            results[ws.workerID] = (new, diag, checked)
        for ws in workers:
            if ws.workerID in results:
                new, diag, checked = results[ws.workerID]
                mon = new
            elif ws.has_work_params("finalMonStatus"):
                new = mon = ws.get_work_params("finalMonStatus")[1]
                diag, checked = "", True
            else:
                continue  # plugin call failed: nothing changes, checkTime stays
            assert new in ST_LIST, f"unknown status={new}"
            if new in FINAL and not ws.is_post_processed():
                ws.postProcessed = 1  # messenger.post_processing, then held one cycle
                new = ST_RUNNING if ws.status == ST_RUNNING else ST_IDLE
            ws.set_status(new)
            ws.set_dialog_message(diag)
            if checked:
                ws.checkTime = t
            if mon in FINAL:
                ws.set_work_params({"finalMonStatus": mon})
        self.save(workers)
        return workers

    def kill(self, ids: list[int]) -> list[tuple[bool, str]]:
        """harvesterbody/sweeper.py: Sweeper.run, first part: the workers marked to kill
        (db_proxy.mark_workers_to_kill_by_workerids sets killTime) go to kill_workers."""
        workers = self.workers(ids)
        for ws in workers:
            ws.killTime = now()
        self.save(workers)
        plugin = get_plugin(self.configs["sweeper"])
        answers = plugin.kill_workers(workers)
        assert len(answers) == len(workers), answers
        return answers

    def clean_up(self) -> list[tuple[bool, str]]:
        """harvesterbody/sweeper.py: Sweeper.run, second part: workers in a final (or missed)
        status past their keep time go to kill_workers first, then sweep_worker each; a
        worker is deleted from the table only when sweep_worker says True."""
        workers = [w for w in self.workers() if w.status in (*FINAL, ST_MISSED)]
        plugin = get_plugin(self.configs["sweeper"])
        plugin.kill_workers(workers)
        answers = []
        for ws in workers:
            ok, diag = plugin.sweep_worker(ws)
            answers.append((ok, diag))
            if ok:
                del self.rows[ws.workerID]
        return answers


def _json_default(value: Any) -> str:
    return value.isoformat()


def main(argv: list[str]) -> None:
    """One monitor cycle in this process, from the queue and the rows given as JSON files."""
    what, queue_file, rows_file = argv
    assert what == "monitor", what
    with open(queue_file) as f:
        queue = json.load(f)
    with open(rows_file) as f:
        rows = json.load(f)
    harvester = Harvester(queue["name"], queue["config"])
    for row in rows:
        for column in ("submitTime", "startTime", "endTime", "checkTime", "killTime"):
            if row.get(column):
                row[column] = datetime.datetime.fromisoformat(row[column])
        harvester.rows[row["workerID"]] = row
    workers = harvester.monitor()
    print(json.dumps([ws.row() for ws in workers], default=_json_default))


if __name__ == "__main__":
    main(sys.argv[1:])
