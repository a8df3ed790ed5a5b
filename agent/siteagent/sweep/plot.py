"""The sweep's picture, with no extra dependency: an SVG bar chart (objective, time split into
pilot overhead and payload with each run as a dot, node-hours per point, best point marked),
alone (``.svg``) or in a self-contained HTML page with the table and the winner (``.html``).

Why not matplotlib: login nodes often cannot install more packages, an SVG opens in any browser
and can be copied off the site as one file, and it is plain text to test.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

from siteagent.sweep.objective import Objective, Ranked
from siteagent.sweep.output import fmt, overhead, queue_keys

# one bar's segments: (value, colour or None for the entry's own)
Segments = Callable[[Ranked], list[tuple[float | None, str | None]]]

ROW, LABEL_W, PANEL_W, GAP, TOP = 26, 300, 240, 40, 56
VALUE_W = 70  # room right of the longest bar for its value
BEST_COLOR, COLOR, OVERHEAD_COLOR, FAILED_COLOR = "#1a9850", "#4575b4", "#fdae61", "#bbbbbb"


def _label(e: Ranked) -> str:
    words = " ".join(f"{k}={_point_value(v)}" for k, v in e.point.items())
    return ("★ " if e.rank == 1 else "") + (words or "(defaults)")


def _point_value(v: object) -> object:
    """A point's value as its label shows it: a list joined by ``+`` (empty: ``none``)."""
    return ("+".join(map(str, v)) or "none") if isinstance(v, list) else v


def svg(ranked: list[Ranked], objective: Objective, title: str) -> str:
    """The chart as one SVG document: a label per point, then three panels of bars (the
    objective, time with what lies outside the payload, node-hours)."""
    # (title, the bar's segments of a point, digits of its value)
    panels: list[tuple[str, Segments, int]] = [
        (
            f"{objective.name} ({objective.unit})",
            lambda e: [(e.value, None)],
            objective.digits,
        ),
        (
            "time s (orange: outside the payload)",
            lambda e: [(overhead(e), OVERHEAD_COLOR), (e.median_layer("payload"), None)],
            2,
        ),
        ("node-hours", lambda e: [(e.median("node_hours"), None)], 6),
    ]
    height = TOP + ROW * max(len(ranked), 1) + 30
    width = LABEL_W + len(panels) * (PANEL_W + GAP)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="8" y="20" font-size="15" font-weight="bold">{html.escape(title)}</text>',
    ]
    out += _labels(ranked)
    for p, (name, segments_of, digits) in enumerate(panels):
        out += _panel(ranked, p, name, segments_of, digits)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _labels(ranked: list[Ranked]) -> list[str]:
    """The column of labels left of the panels, the best point's in bold."""
    out = []
    for i, e in enumerate(ranked):
        weight = ' font-weight="bold"' if e.rank == 1 else ""
        out.append(
            f'<text x="{LABEL_W - 8}" y="{TOP + i * ROW + 16}" text-anchor="end"{weight}>'
            f"{html.escape(_label(e))}</text>"
        )
    return out


def _panel(
    ranked: list[Ranked], p: int, name: str, segments_of: Segments, digits: int
) -> list[str]:
    """One panel: its title, axis and a bar per point (panel 1, time, also a dot per run)."""
    x0 = LABEL_W + p * (PANEL_W + GAP)
    with_runs = p == 1  # the time panel also shows each run as a dot
    scale = _scale(ranked, segments_of, with_runs)
    out = [
        f'<text x="{x0}" y="{TOP - 12}" font-weight="bold">{html.escape(name)}</text>',
        f'<line x1="{x0}" y1="{TOP - 4}" x2="{x0}" y2="{TOP + ROW * len(ranked)}" stroke="#333"/>',
    ]
    for i, e in enumerate(ranked):
        out += _panel_row(e, x0, TOP + i * ROW + 4, segments_of, scale, digits, with_runs)
    return out


def _scale(ranked: list[Ranked], segments_of: Segments, with_runs: bool) -> float:
    """Pixels per unit: the longest bar (or run dot) leaves room for its value."""
    return (PANEL_W - VALUE_W) / (max(_lengths(ranked, segments_of, with_runs)) or 1.0)


def _lengths(ranked: list[Ranked], segments_of: Segments, with_runs: bool) -> list[float]:
    """What a panel draws along its axis: each bar's length and, with_runs, each run's time."""
    lengths = [_total(segments_of(e)) for e in ranked]
    if with_runs:
        lengths += [s for e in ranked for s in _run_seconds(e)]
    return lengths


def _panel_row(
    e: Ranked,
    x0: int,
    y: int,
    segments_of: Segments,
    scale: float,
    digits: int,
    with_runs: bool,
) -> list[str]:
    """One point's bar with its value after it (and, with_runs, a dot per run)."""
    x, out = _bar(e, segments_of(e), float(x0), y, scale)
    total: float = _total(segments_of(e))
    if with_runs:
        x, total = _median_run(e, x, x0, scale)
    text = "failed" if e.rank is None else fmt(total, digits)
    out.append(f'<text x="{x + 6:.1f}" y="{y + 13}" font-size="11">{text}</text>')
    if with_runs:
        out += _run_dots(e, x0, y, scale)
    return out


def _median_run(e: Ranked, x: float, x0: int, scale: float) -> tuple[float, float]:
    """Where the time panel's value goes (right of the bar and of every run's dot) and what
    it says (the median run's time)."""
    x = max([x, *(x0 + s * scale for s in _run_seconds(e))])
    return x, e.median("seconds") or 0.0


def _total(segments: list[tuple[float | None, str | None]]) -> float:
    """A bar's length: its segments' values, a missing one as 0."""
    return sum(v or 0 for v, _ in segments)


def _run_seconds(e: Ranked) -> list[float]:
    return [r["seconds"] for r in e.ok_runs if r.get("seconds")]


def _run_dots(e: Ranked, x0: int, y: int, scale: float) -> list[str]:
    return [
        f'<circle cx="{x0 + r["seconds"] * scale:.1f}" cy="{y + (ROW - 8) / 2}" r="3" '
        f'fill="none" stroke="#000"><title>rep {r["rep"]}: {r["seconds"]:.3f}s</title></circle>'
        for r in e.ok_runs
    ]


def _bar(
    e: Ranked, segments: list[tuple[float | None, str | None]], x: float, y: int, scale: float
) -> tuple[float, list[str]]:
    """The stacked rectangles of one point's bar, and where the bar ends."""
    base = _bar_color(e)
    out = []
    for value, color in segments:
        if not value:
            continue
        w = value * scale
        out.append(
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{ROW - 8}" '
            f'fill="{color or base}"><title>{fmt(value, 6)}</title></rect>'
        )
        x += w
    return x, out


def _bar_color(e: Ranked) -> str:
    """Grey for a failed point, green for the best, blue for the rest."""
    if e.rank is None:
        return FAILED_COLOR
    return BEST_COLOR if e.rank == 1 else COLOR


def page(ranked: list[Ranked], objective: Objective, title: str, table_text: str) -> str:
    """A self-contained HTML page: the chart, the table as text, the winner's queue keys."""
    best = next((e for e in ranked if e.rank == 1), None)
    winner = json.dumps(queue_keys(best.config), indent=2) if best else "no point succeeded"
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em}</style>"
        f"</head><body>\n{svg(ranked, objective, title)}"
        f"<h3>Table</h3><pre>{html.escape(table_text)}</pre>"
        f"<h3>Winner for the Harvester queue config</h3><pre>{html.escape(winner)}</pre>"
        "</body></html>\n"
    )


def write_plot(
    path: Path, ranked: list[Ranked], objective: Objective, title: str, table_text: str
) -> None:
    """``.svg``: the chart alone; anything else: the HTML page."""
    from siteagent.fileio import atomic_write

    text = (
        svg(ranked, objective, title)
        if path.suffix == ".svg"
        else page(ranked, objective, title, table_text)
    )
    atomic_write(Path(path), text, 0o644)
