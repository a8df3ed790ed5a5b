"""Progress of a sweep: a live status line on a terminal, one plain line per event when piped."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from siteagent.sweep.runner import Progress


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = round(seconds)
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def status(p: Progress) -> str:
    return (
        f"[{p.done}/{p.total}] done {p.done} ({p.failed} failed), running {p.running}, "
        f"queued {p.queued}, elapsed {clock(p.elapsed)}, eta {clock(p.eta)}"
    )


def run_line(record: dict[str, Any]) -> str:
    point = " ".join(f"{k}={v}" for k, v in record["point"].items())
    if record["ok"]:
        return f"{point} rep {record['rep']}: {record['seconds']:.2f}s ok"
    return f"{point} rep {record['rep']}: FAILED {record.get('error') or ''}".rstrip()


class Reporter:
    """Call with each ``Progress``; ``close()`` when done. ``live`` defaults to isatty."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._live: Any = None  # rich's Live, on a terminal
        self._last_status = ""
        if self.live:
            self._start_live()

    def _start_live(self) -> None:
        """The status line, redrawn in place on the terminal."""
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=self.stream)
        self._live = Live("", console=self.console, refresh_per_second=4, transient=True)
        self._live.start()

    def __call__(self, p: Progress) -> None:
        if self._live is not None:
            self._show_live(self._live, p)
        else:
            self._print(p)

    def _show_live(self, live: Any, p: Progress) -> None:
        """A finished run's line above the status line, which is redrawn in place."""
        from rich.text import Text

        if p.last is not None:
            self.console.print(run_line(p.last), markup=False, highlight=False)
        live.update(Text(status(p)))  # plain: no highlighting of every number

    def _print(self, p: Progress) -> None:
        """Piped: a line when a run ends or starts, never one per tick."""
        line = status(p)
        if p.last is not None:
            print(f"{line} | {run_line(p.last)}", file=self.stream, flush=True)
        elif line.split(", elapsed")[0] != self._last_status:
            print(line, file=self.stream, flush=True)
        self._last_status = line.split(", elapsed")[0]

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
