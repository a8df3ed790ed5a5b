"""Steps of a smoke test and the report they add up to."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from siteagent.errors import SiteAgentError


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class SmokeReport:
    site: str
    workdir: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok, "seconds": round(self.seconds, 3)}


class SmokeTest:
    """Runs named steps (methods returning their detail line) into a ``SmokeReport``."""

    def __init__(self, report: SmokeReport, on_step: Callable[[Step], None] | None):
        self.report, self.on_step = report, on_step

    def step(self, name: str, fn: Callable[[], str]) -> bool:
        """Run one step; an exception fails it with its message. True when it passed."""
        t0 = time.perf_counter()
        try:
            detail, ok = fn(), True
        except SiteAgentError as err:
            detail, ok = str(err), False
        except Exception as err:
            detail, ok = f"{type(err).__name__}: {err}", False
        step = Step(name, ok, time.perf_counter() - t0, detail)
        self.report.steps.append(step)
        if self.on_step:
            self.on_step(step)
        return ok

    def steps(self, steps: list[tuple[str, Callable[[], str]]]) -> bool:
        """Run steps in order up to the first that fails. True when all passed."""
        return all(self.step(name, fn) for name, fn in steps)  # all() stops at the first False
