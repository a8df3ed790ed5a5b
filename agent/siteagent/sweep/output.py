"""What a sweep prints: the ranked table (best marked), the skipped points, and the winner as
the keys of a Harvester queue config."""

from __future__ import annotations

import json
from typing import Any

from siteagent.sweep.grid import Skipped
from siteagent.sweep.objective import Objective, Ranked

BEST = "★ best"


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if value and abs(value) < 10 ** (-digits):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def overhead(entry: Ranked) -> float | None:
    """Median seconds of a run spent outside the payload (wrappers, layers, start-up)."""
    values = sorted(v for v in map(_run_overhead, entry.ok_runs) if v is not None)
    return values[len(values) // 2] if values else None


def _run_overhead(run: dict[str, Any]) -> float | None:
    """Seconds of one run outside its payload (None without both times)."""
    if run.get("seconds") is None or "payload" not in run.get("layers", {}):
        return None
    return run["seconds"] - run["layers"]["payload"]


def table(ranked: list[Ranked], objective: Objective, fields: list[str]) -> Any:
    """A rich Table of the points, best first."""
    from rich.table import Table

    t = Table(title=f"sweep: objective {objective.name} ({objective.unit})", title_justify="left")
    with_time = objective.name != "time"  # else the objective column is the time
    _add_columns(t, objective, fields, with_time)
    for e in ranked:
        t.add_row(
            *_row(e, objective, fields, with_time), style="bold green" if e.rank == 1 else None
        )
    return t


def _add_columns(t: Any, objective: Objective, fields: list[str], with_time: bool) -> None:
    t.add_column("", no_wrap=True)
    t.add_column("#", justify="right")
    for f in fields:
        t.add_column(f)
    t.add_column(objective.unit or objective.name, justify="right")
    if with_time:
        t.add_column("time s", justify="right")
    t.add_column("overhead s", justify="right")
    t.add_column("node-h", justify="right")
    t.add_column("queue s", justify="right")
    t.add_column("ok/runs", justify="right")
    t.add_column("note")


def _row(e: Ranked, objective: Objective, fields: list[str], with_time: bool) -> list[str]:
    """One point's cells, in the order of ``_add_columns``."""
    return [
        *_rank_cells(e),
        *(_cell(e.point.get(f, e.config.get(f))) for f in fields),
        fmt(e.value, objective.digits),
        *([fmt(e.median("seconds"))] if with_time else []),
        fmt(overhead(e)),
        fmt(e.median("node_hours"), 6),
        fmt(e.median("queue_wait_s"), 1),
        f"{len(e.ok_runs)}/{len(e.runs)}",
        (e.error or "")[:80],
    ]


def _rank_cells(e: Ranked) -> list[str]:
    """The best mark and the rank (``-`` for a point without a value)."""
    return [BEST if e.rank == 1 else "", str(e.rank) if e.rank else "-"]


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(map(str, value)) or "none"
    return "-" if value is None else str(value)


def skipped_lines(skipped: list[Skipped]) -> list[str]:
    return [
        "skipped " + " ".join(f"{k}={_cell(v)}" for k, v in s.values.items()) + f": {s.reason}"
        for s in skipped
    ]


def queue_keys(config: dict[str, Any]) -> dict[str, Any]:
    """The Harvester queue-config keys that give ``config`` for every worker: the shape as
    nodesPerWorker/ranksPerNode/gpusPerWorker (the plugins set those fields from them), the
    rest as userEndpointConfig."""
    rest = dict(config)
    nodes, ranks = rest.pop("nodes", 1), rest.pop("ranks_per_node", 1)
    gpus = rest.pop("gpus_per_rank", 0)
    return {
        "nodesPerWorker": nodes,
        "ranksPerNode": ranks,
        "gpusPerWorker": nodes * ranks * gpus,
        "userEndpointConfig": rest,
    }


def winner_text(best: Ranked) -> str:
    return json.dumps(queue_keys(best.config), indent=2, sort_keys=False)
