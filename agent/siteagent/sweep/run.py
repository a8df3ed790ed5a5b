"""One sweep from start to end: check every input (nothing is submitted on bad input), run
what the results file does not hold yet, rank, and write the plot."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from siteagent.errors import ConfigError
from siteagent.sweep.grid import Point, Skipped
from siteagent.sweep.objective import Objective, Ranked
from siteagent.sweep.payload import Payload
from siteagent.sweep.runner import Progress, RunSummary

# a grid of more points than this runs only with --yes (a typo in a grid file can mean hours)
CONFIRM_OVER = 20


@dataclass
class SweepOptions:
    site: str = "local"
    payload: str = ""
    grid: list[str] = field(default_factory=list)
    grid_file: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    repetitions: int = 1
    parallel: int = 1
    max_points: int | None = None
    max_node_hours: float | None = None
    objective: str = "time"
    metric: str | None = None
    results: Path = Path("sweep-results.jsonl")
    yes: bool = False
    backend: str | None = None  # "engine" or "globus"; default: engine on local, else globus
    endpoint_dir: Path | None = None
    workdir: Path | None = None


@dataclass
class SweepPlan:
    """Everything checked, nothing submitted yet."""

    options: SweepOptions
    profile: Any
    payload: Payload
    objective: Objective
    points: list[Point]
    skipped: list[Skipped]
    fields: list[str]


@dataclass
class SweepOutcome:
    plan: SweepPlan
    summary: RunSummary
    already: int  # runs the results file held before
    ranked: list[Ranked]

    @property
    def best(self) -> Ranked | None:
        return next((e for e in self.ranked if e.rank == 1), None)


def prepare(opts: SweepOptions) -> SweepPlan:
    """Check the site, objective, grid and payload; ConfigError (exit 2) on any bad input."""
    from siteagent.profiles import load_profile
    from siteagent.sweep.grid import build_grid, expand
    from siteagent.sweep.objective import make_objective
    from siteagent.sweep.payload import parse_payload

    _check_options(opts)
    profile = load_profile(opts.site)
    objective = make_objective(opts.objective, opts.metric)
    grid = build_grid(profile, opts.grid, opts.grid_file, opts.config)
    payload = parse_payload(opts.payload)
    points, skipped = expand(profile, grid)
    if not points:
        raise ConfigError(
            f"--grid: no possible point on site {profile.name} (all {len(skipped)} skipped)"
        )
    points = _first_points(opts, points)
    return SweepPlan(opts, profile, payload, objective, points, skipped, list(grid.axes))


def _check_options(opts: SweepOptions) -> None:
    if opts.repetitions < 1:
        raise ConfigError("--repetitions: must be at least 1")
    if opts.backend not in (None, "engine", "globus"):
        raise ConfigError("--backend: 'engine' or 'globus'")


def _first_points(opts: SweepOptions, points: list[Point]) -> list[Point]:
    """The points --max-points keeps; more than CONFIRM_OVER need --yes."""
    if opts.max_points is not None:
        points = points[: opts.max_points]
    if len(points) > CONFIRM_OVER and not opts.yes:
        raise ConfigError(
            f"--grid: {len(points)} points x {opts.repetitions} repetition(s); over "
            f"{CONFIRM_OVER} points needs --yes (or --max-points)"
        )
    return points


def make_backend(
    plan: SweepPlan, factory: Callable[[str], Any] | None = None
) -> tuple[Any, Path | None]:
    """The engine in this process (local; or a batch site's provider from this login node
    with --backend engine), else the installed endpoint through the Globus Compute SDK."""
    opts, profile = plan.options, plan.profile
    kind = opts.backend or ("engine" if profile.scheduler == "local" else "globus")
    if kind == "engine":
        return _engine_backend(opts)
    return _globus_backend(plan, factory), None


def _engine_backend(opts: SweepOptions) -> tuple[Any, Path | None]:
    """The engine in this process, in --workdir or a temporary directory (returned)."""
    from siteagent.harvester.backends import EngineBackend

    tmp = None if opts.workdir else Path(tempfile.mkdtemp(prefix="site-agent-sweep-"))
    return EngineBackend(opts.site, opts.workdir or tmp), tmp


def _globus_backend(plan: SweepPlan, factory: Callable[[str], Any] | None) -> Any:
    """The installed endpoint (checked first) through the Globus Compute SDK."""
    from siteagent.harvester.backends import GlobusBackend
    from siteagent.install import default_endpoint_dir
    from siteagent.smoke.site import preflight

    opts, profile = plan.options, plan.profile
    directory = (
        opts.endpoint_dir.expanduser().absolute()
        if opts.endpoint_dir
        else default_endpoint_dir(profile)
    )
    ep_id = preflight(profile, directory)
    make = factory or (lambda ep: GlobusBackend(ep, batch_size=8))
    return make(ep_id)


def execute(
    plan: SweepPlan,
    on_progress: Callable[[Progress], None] | None = None,
    backend_factory: Callable[[str], Any] | None = None,
) -> SweepOutcome:
    """Run the runs the results file lacks, then rank every recorded run of these points."""
    from siteagent.sweep.objective import rank
    from siteagent.sweep.results import ResultsFile
    from siteagent.sweep.runner import plan_runs

    opts = plan.options
    results = ResultsFile(opts.results)
    runs, already = plan_runs(
        plan.points, opts.repetitions, opts.site, plan.payload.text, results.done_keys()
    )
    summary = RunSummary()
    if runs:
        spent = _spent(plan, results)
        summary = _run(plan, runs, results, spent, on_progress, backend_factory)
    return SweepOutcome(plan, summary, already, rank(_measured(plan, results), plan.objective))


def _spent(plan: SweepPlan, results: Any) -> float:
    """Node-hours the recorded runs of this sweep used (--max-node-hours counts them)."""
    return sum(r.get("node_hours") or 0.0 for r in results.load() if _of_this_sweep(r, plan))


def _of_this_sweep(record: dict[str, Any], plan: SweepPlan) -> bool:
    return record["site"] == plan.options.site and record["payload"] == plan.payload.text


def _run(
    plan: SweepPlan,
    runs: list[Any],
    results: Any,
    spent: float,
    on_progress: Callable[[Progress], None] | None,
    backend_factory: Callable[[str], Any] | None,
) -> RunSummary:
    """The runs through a backend made for the plan, shut down (and its files gone) after."""
    from siteagent.sweep.runner import Runner

    opts = plan.options
    backend, tmp = make_backend(plan, backend_factory)
    try:
        runner = Runner(
            backend,
            opts.site,
            plan.payload,
            results,
            parallel=opts.parallel,
            max_node_hours=opts.max_node_hours,
            spent_node_hours=spent,
            on_progress=on_progress,
        )
        return runner.run(runs)
    finally:
        backend.shutdown()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _measured(plan: SweepPlan, results: Any) -> list[dict[str, Any]]:
    """Every recorded, uninterrupted run of this sweep's points and repetitions."""
    from siteagent.sweep.results import interrupted

    keys = {p.key for p in plan.points}
    return [r for r in results.load() if _of_these_runs(r, plan, keys) and not interrupted(r)]


def _of_these_runs(record: dict[str, Any], plan: SweepPlan, keys: set[str]) -> bool:
    """A run of this sweep, of one of its points (``keys``), within its repetitions."""
    from siteagent.userconfig import config_key

    return (
        _of_this_sweep(record, plan)
        and record["rep"] < plan.options.repetitions
        and config_key(record["config"]) in keys
    )
