"""Objectives and the ranking of points from their recorded runs.

``time``: time to solution, the median of the runs' wall seconds (lower is better).
``node-hours``: node-hours per unit of work, the median of ``node_hours / metrics[METRIC]``
(per run when no ``--metric``; lower is better).
``throughput``: ``metrics[METRIC]`` as the payload printed it, summed over ranks, median over
runs (higher is better).
A point ranks only on runs that succeeded; points with none come last, unranked.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, cast

from siteagent.errors import ConfigError

OBJECTIVES = {
    "time": ("seconds", "lower"),
    "node-hours": ("node-hours", "lower"),
    "throughput": ("", "higher"),
}


@dataclass(frozen=True)
class Objective:
    name: str
    metric: str | None = None

    @property
    def higher_is_better(self) -> bool:
        return OBJECTIVES[self.name][1] == "higher"

    @property
    def unit(self) -> str:
        """The unit of its values: per unit of ``metric`` where it has one (time has none)."""
        if self.metric and self.name != "time":
            return self.metric if self.name == "throughput" else f"node-hours/{self.metric}"
        return OBJECTIVES[self.name][0]

    @property
    def digits(self) -> int:
        """Decimals its values are shown with (node-hours per run are small)."""
        return 6 if self.name == "node-hours" else 2

    def value(self, record: dict[str, Any]) -> float | None:
        """This objective for one run (None when the run gives no value for it)."""
        if not record.get("ok"):
            return None
        return _VALUES[self.name](record, self.metric)


def _work(record: dict[str, Any], metric: str | None) -> Any:
    """The run's units of work: the metric the payload printed, else 1 (per run)."""
    return record.get("metrics", {}).get(metric) if metric else 1.0


def _time(record: dict[str, Any], metric: str | None) -> float | None:
    return record.get("seconds")


def _throughput(record: dict[str, Any], metric: str | None) -> float | None:
    work = _work(record, metric)
    return float(work) if work is not None else None


def _node_hours(record: dict[str, Any], metric: str | None) -> float | None:
    work = _work(record, metric)
    if not work or record.get("node_hours") is None:
        return None
    return record["node_hours"] / float(work)


# objective name -> its value for one successful run
_VALUES = {"time": _time, "throughput": _throughput, "node-hours": _node_hours}


def make_objective(name: str, metric: str | None) -> Objective:
    """Check the pair given on the command line (bad input: ConfigError)."""
    if name not in OBJECTIVES:
        raise ConfigError(f"--objective: {name!r}: one of {', '.join(OBJECTIVES)}")
    if name == "throughput" and not metric:
        raise ConfigError(
            "--metric: required with --objective throughput (the key of the payload's JSON output)"
        )
    return Objective(name, metric)


@dataclass
class Ranked:
    """One point's measurements."""

    key: str
    point: dict[str, Any]
    config: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    value: float | None = None
    rank: int | None = None

    @property
    def ok_runs(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("ok")]

    def median(self, name: str) -> float | None:
        return _median([r[name] for r in self.ok_runs if r.get(name) is not None])

    def median_layer(self, layer: str) -> float | None:
        return _median([r["layers"][layer] for r in self.ok_runs if layer in r.get("layers", {})])

    @property
    def error(self) -> str | None:
        """The error of the last run that failed (None: none did, or it named none)."""
        return next((r.get("error") for r in reversed(self.runs) if not r.get("ok")), None)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def rank(records: list[dict[str, Any]], objective: Objective) -> list[Ranked]:
    """Points best first, each with the median objective over its successful runs."""
    entries = _by_point(records)
    for entry in entries:
        entry.value = _median_value(entry, objective)
    measured = _best_first([e for e in entries if e.value is not None], objective)
    return measured + [e for e in entries if e.value is None]


def _best_first(measured: list[Ranked], objective: Objective) -> list[Ranked]:
    """Points that have a value, in the objective's order, ranked from 1."""
    sign = -1.0 if objective.higher_is_better else 1.0
    ordered = sorted(measured, key=lambda e: sign * cast(float, e.value))
    for i, e in enumerate(ordered, 1):
        e.rank = i
    return ordered


def _median_value(entry: Ranked, objective: Objective) -> float | None:
    """The objective's median over the point's runs that give a value."""
    values = (objective.value(r) for r in entry.runs)
    return _median([v for v in values if v is not None])


def _by_point(records: list[dict[str, Any]]) -> list[Ranked]:
    """The records grouped by canonical config, in the order points first appear."""
    from siteagent.userconfig import config_key

    by_key: dict[str, Ranked] = {}
    for r in records:
        key = config_key(r["config"])
        entry = by_key.setdefault(key, Ranked(key, r["point"], r["config"]))
        entry.runs.append(r)
    return list(by_key.values())
