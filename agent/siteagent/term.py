"""Rich consoles for tables: wrapped to the terminal, never wrapped in a pipe or a file
(a URL split over two lines cannot be copied, and grep misses it)."""

from __future__ import annotations

import sys
from typing import Any

UNWRAPPED_WIDTH = 1000  # wider than any row we print: nothing wraps


def console(**kwargs: Any) -> Any:
    """A ``rich.console.Console`` on stdout; not a terminal: as wide as the longest row."""
    from rich.console import Console

    if not sys.stdout.isatty():
        kwargs.setdefault("width", UNWRAPPED_WIDTH)
    return Console(**kwargs)
