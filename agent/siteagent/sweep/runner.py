"""Run the points: each repetition of each point is one task on the endpoint (the user
endpoint of the point's config), up to ``parallel`` in flight, records appended as runs end.

Runs go point by point, so a point's user endpoint (on a batch site, its batch job) is released
as soon as its last repetition ends. Ctrl-C cancels what is in flight (the engine's shutdown
ends its workers: the pilot wrappers get SIGTERM; on Slurm the blocks are scancel'ed) and keeps
every record already written.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from siteagent.errors import SiteAgentError
from siteagent.sweep.grid import Point
from siteagent.sweep.payload import Payload, task_spec
from siteagent.sweep.results import ResultsFile, make_record, run_key

POLL = 0.25  # seconds between progress ticks while waiting


class SweepInterrupted(SiteAgentError):
    """Ctrl-C: what finished is kept; the message says how much."""

    exit_code = 130


@dataclass(frozen=True)
class Run:
    point: Point
    rep: int


@dataclass
class Progress:
    total: int
    done: int = 0
    failed: int = 0
    running: int = 0
    queued: int = 0
    elapsed: float = 0.0
    eta: float | None = None
    last: dict[str, Any] | None = None  # the record that just ended, if any


@dataclass
class RunSummary:
    records: list[dict[str, Any]] = field(default_factory=list)
    not_run: int = 0  # left out by the node-hour budget
    budget_hit: bool = False


def plan_runs(
    points: list[Point],
    repetitions: int,
    site: str,
    payload: str,
    done_keys: set[str],
) -> tuple[list[Run], int]:
    """The runs still to do (point by point) and how many the results file already holds."""
    runs, have = [], 0
    for point in points:
        for rep in range(repetitions):
            if run_key(site, payload, point.config, rep) in done_keys:
                have += 1
            else:
                runs.append(Run(point, rep))
    return runs, have


class _RunState:
    """What one ``Runner.run`` holds while it goes: queued and in-flight runs, progress."""

    def __init__(self, runs: list[Run], t0: float):
        self.queue = list(runs)
        self.left: dict[str, int] = {}
        for r in runs:
            self.left[r.point.key] = self.left.get(r.point.key, 0) + 1
        self.inflight: dict[concurrent.futures.Future, tuple[Run, float]] = {}
        self.progress = Progress(total=len(runs), queued=len(runs))
        self.summary = RunSummary()
        self.durations: list[float] = []
        self.t0 = t0


class Runner:
    """Submits runs to ``backend`` (a ``siteagent.harvester.backends.Backend``)."""

    def __init__(
        self,
        backend: Any,
        site: str,
        payload: Payload,
        results: ResultsFile,
        *,
        parallel: int = 1,
        max_node_hours: float | None = None,
        spent_node_hours: float = 0.0,
        on_progress: Callable[[Progress], None] | None = None,
    ):
        self.backend = backend
        self.site = site
        self.payload = payload
        self.results = results
        self.parallel = max(parallel, 1)
        self.max_node_hours = max_node_hours
        self.spent = spent_node_hours
        self.on_progress = on_progress or (lambda p: None)

    def run(self, runs: list[Run]) -> RunSummary:
        """Run ``runs`` to the end (or the budget); Ctrl-C raises SweepInterrupted."""
        state = _RunState(runs, time.monotonic())
        try:
            while state.queue or state.inflight:
                self._submit_more(state)
                if state.inflight:
                    self._collect(state)
        except KeyboardInterrupt:
            raise self._interrupted(state) from None
        return state.summary

    def _interrupted(self, state: _RunState) -> SweepInterrupted:
        """Cancel the runs in flight and stop the backend; what to tell the user."""
        cancelled = len(state.inflight)
        for future in state.inflight:
            future.cancel()
        self.backend.shutdown()
        return SweepInterrupted(
            f"interrupted: {state.progress.done} run(s) finished and kept in "
            f"{self.results.path}, {cancelled} in flight cancelled, {len(state.queue)} not "
            "started; rerun to resume"
        )

    def _submit_more(self, state: _RunState) -> None:
        """Fill the free slots from the queue, unless the node-hour budget is spent."""
        while state.queue and len(state.inflight) < self.parallel:
            if self._budget_spent():
                state.summary.budget_hit, state.summary.not_run = True, len(state.queue)
                state.queue.clear()
                return
            self._submit(state, state.queue.pop(0))

    def _budget_spent(self) -> bool:
        """The runs so far used the node-hours ``--max-node-hours`` allows."""
        return self.max_node_hours is not None and self.spent >= self.max_node_hours

    def _submit(self, state: _RunState, run: Run) -> None:
        """Send one run; one whose user endpoint cannot start is recorded as failed."""
        from siteagent.sweep.task import run_point

        spec = task_spec(self.payload, self.site, _worker_id(run))
        submitted_at = time.time()
        try:
            future = self.backend.executor(run.point.config).submit(run_point, spec)
        except Exception as err:  # this point's user endpoint cannot start
            error = f"submit: {type(err).__name__}: {err}"
            self._finish(state, run, self._record(run, None, submitted_at, error))
            return
        state.inflight[future] = (run, submitted_at)
        self._tick(state)

    def _collect(self, state: _RunState) -> None:
        """Wait a moment for runs to end; record those that did."""
        finished, _ = concurrent.futures.wait(
            state.inflight, timeout=POLL, return_when=concurrent.futures.FIRST_COMPLETED
        )
        if not finished:
            self._tick(state)
        for future in finished:
            run, submitted_at = state.inflight.pop(future)
            self._finish(state, run, self._record(run, future, submitted_at))

    def _finish(self, state: _RunState, run: Run, record: dict[str, Any]) -> None:
        self.results.append(record)
        state.summary.records.append(record)
        self.spent += record["node_hours"] or 0.0
        state.durations.append(record["turnaround_s"])
        state.progress.done += 1
        state.progress.failed += not record["ok"]
        state.left[run.point.key] -= 1
        if state.left[run.point.key] == 0:
            # its user endpoint (on a batch site: its batch job) is not needed again
            self.backend.release(run.point.config)
        self._tick(state, record)

    def _tick(self, state: _RunState, last: dict[str, Any] | None = None) -> None:
        progress = state.progress
        progress.running, progress.queued = len(state.inflight), len(state.queue)
        progress.elapsed = time.monotonic() - state.t0
        progress.last = last
        if state.durations:
            mean = sum(state.durations) / len(state.durations)
            progress.eta = mean * (len(state.queue) + len(state.inflight)) / self.parallel
        self.on_progress(progress)

    def _record(
        self,
        run: Run,
        future: concurrent.futures.Future | None,
        submitted_at: float,
        error: str | None = None,
    ) -> dict[str, Any]:
        outcome = None
        if future is not None:
            try:
                outcome = future.result()
            except Exception as err:  # the task failed remotely: a failed run, recorded as such
                error = f"{type(err).__name__}: {err}"
        return make_record(
            self.site,
            self.payload.text,
            run.point.values,
            run.point.config,
            run.rep,
            outcome,
            submitted_at,
            time.time(),
            error,
        )


def _worker_id(run: Run) -> str:
    digest = hashlib.sha256(run.point.key.encode()).hexdigest()[:10]
    return f"sweep-{digest}-{run.rep}-{uuid.uuid4().hex[:6]}"
