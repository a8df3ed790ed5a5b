"""The ``site-agent sweep`` click command; ``cli.py`` only registers it. Imports of the engine,
rich and the sweep's modules happen when it runs, so ``site-agent --help`` stays fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from siteagent.cli_options import (
    FiniteFloat,
    config_option,
    endpoint_dir_option,
    json_option,
    site_option,
)


@click.command("sweep")
@site_option(default="local", show_default=True)
@click.option(
    "--payload",
    required=True,
    help="Shell command run in every rank, or a Python callable module:function.",
)
@click.option(
    "--grid",
    "grid_words",
    multiple=True,
    metavar="FIELD=V1,V2",
    help="A user_endpoint_config field and its values (repeatable; list items joined by +).",
)
@click.option(
    "--grid-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML with grid:, config: and constraints: (see the README).",
)
@config_option("Fields every point shares.")
@click.option("--repetitions", "-r", type=click.IntRange(1, 1000), default=1, show_default=True)
@click.option(
    "--parallel", "-j", type=click.IntRange(1, 1000), default=1, show_default=True,
    help="Runs in flight at once.",
)  # fmt: skip
@click.option("--max-points", type=click.IntRange(1), help="Budget: measure at most N points.")
@click.option(
    "--max-node-hours", type=FiniteFloat(0, min_open=True),
    help="Budget: submit no new run once the recorded runs used this many node-hours.",
)  # fmt: skip
@click.option(
    "--objective",
    type=click.Choice(["time", "node-hours", "throughput"]),
    default="time",
    show_default=True,
    help="time to solution, node-hours per unit of work, or the payload's throughput.",
)
@click.option(
    "--metric",
    help="Key of the payload's JSON output: the rate for throughput, the units of work for node-hours.",
)
@click.option(
    "--results",
    type=click.Path(path_type=Path, dir_okay=False),
    default="sweep-results.jsonl",
    show_default=True,
    help="JSON lines; a rerun appends to it and skips runs it holds.",
)
@click.option(
    "--plot",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Chart: .svg alone or .html page (default: the results file with .html).",
)
@click.option(
    "--backend",
    type=click.Choice(["engine", "globus"]),
    help="Default: engine on local, globus on batch sites.",
)
@endpoint_dir_option("globus: the installed endpoint.", file_okay=False)
@click.option("--yes", "-y", is_flag=True, help="Run a grid of over 20 points.")
@json_option("The ranking as JSON on stdout.")
def sweep_command(**kw) -> None:
    """Measure a payload over a grid of worker shapes and rank them (see the README)."""
    sys.exit(run_command(**kw))


def run_command(
    site: str,
    payload: str,
    grid_words: tuple[str, ...],
    grid_file: Path | None,
    config_json: str | None,
    repetitions: int,
    parallel: int,
    max_points: int | None,
    max_node_hours: float | None,
    objective: str,
    metric: str | None,
    results: Path,
    plot: Path | None,
    backend: str | None,
    endpoint_dir: Path | None,
    yes: bool,
    as_json: bool,
) -> int:
    """Check, run, print; the exit code (0: a point succeeded, 1: none did)."""
    from siteagent.cli_options import parse_json_option
    from siteagent.sweep.plot import write_plot
    from siteagent.sweep.run import SweepOptions, prepare

    opts = SweepOptions(
        site=site,
        payload=payload,
        grid=list(grid_words),
        grid_file=grid_file,
        config=parse_json_option(config_json, "--config"),
        repetitions=repetitions,
        parallel=parallel,
        max_points=max_points,
        max_node_hours=max_node_hours,
        objective=objective,
        metric=metric,
        results=results,
        yes=yes,
        backend=backend,
        endpoint_dir=endpoint_dir,
    )
    plan = prepare(opts)
    _announce(plan, opts)
    outcome = _execute(plan, results)
    table_text = _table_text(outcome, plan)
    plot_path = plot or results.with_suffix(".html")
    title = f"site-agent sweep: {payload} on {plan.profile.name}"
    write_plot(plot_path, outcome.ranked, plan.objective, title, table_text)
    if as_json:
        print(json.dumps(_json_document(outcome, plan, results, plot_path), indent=2))
    else:
        _print_human(outcome, table_text, plot_path)
    return 0 if outcome.best else 1


def _announce(plan: Any, opts: Any) -> None:
    """What is about to run, and every skipped point with its reason, on stderr."""
    from siteagent.sweep.output import skipped_lines

    print(
        f"sweep on {plan.profile.name}: {len(plan.points)} point(s) x {opts.repetitions} "
        f"repetition(s), {len(plan.skipped)} skipped, results {opts.results}",
        file=sys.stderr,
        flush=True,
    )
    for line in skipped_lines(plan.skipped):
        print(line, file=sys.stderr, flush=True)


def _execute(plan: Any, results: Path) -> Any:
    """Run the plan with progress on stderr; Ctrl-C keeps what finished."""
    from siteagent.sweep.progress import Reporter
    from siteagent.sweep.run import execute
    from siteagent.sweep.runner import SweepInterrupted

    reporter = Reporter(sys.stderr)
    try:
        outcome = execute(plan, on_progress=reporter)
    except KeyboardInterrupt:  # outside the runner (engine start-up, ranking)
        raise SweepInterrupted(
            f"interrupted; finished runs are kept in {results}; rerun to resume"
        ) from None
    finally:
        reporter.close()
    if outcome.already:
        print(
            f"{outcome.already} run(s) were in {results} already, {len(outcome.summary.records)} "
            "run now",
            file=sys.stderr,
        )
    return outcome


def _table_text(outcome: Any, plan: Any) -> str:
    """The ranking table as text (full width when not on a terminal)."""
    from rich.console import Console

    from siteagent.sweep.output import table

    out = Console(width=200) if not sys.stdout.isatty() else Console()
    with out.capture() as cap:
        out.print(table(outcome.ranked, plan.objective, plan.fields))
    return cap.get()


def _json_document(outcome: Any, plan: Any, results: Path, plot_path: Path) -> dict[str, Any]:
    from siteagent.sweep.output import winner_text

    best = outcome.best
    return {
        "objective": plan.objective.name,
        "metric": plan.objective.metric,
        "points": [
            {
                "rank": e.rank,
                "value": e.value,
                "point": e.point,
                "config": e.config,
                "runs": len(e.runs),
                "ok_runs": len(e.ok_runs),
                "error": e.error,
            }
            for e in outcome.ranked
        ],
        "skipped": [{"point": s.values, "reason": s.reason} for s in plan.skipped],
        "winner": json.loads(winner_text(best)) if best else None,
        "results": str(results),
        "plot": str(plot_path),
    }


def _print_human(outcome: Any, table_text: str, plot_path: Path) -> None:
    from siteagent.sweep.output import winner_text

    sys.stdout.write(table_text)
    if outcome.summary.budget_hit:
        print(f"budget reached: {outcome.summary.not_run} run(s) not started")
    if outcome.best:
        print("best point, for the Harvester queue config:")
        print(winner_text(outcome.best))
    else:
        print("no point succeeded")
    print(f"plot: {plot_path}")
