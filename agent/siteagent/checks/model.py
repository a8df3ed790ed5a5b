"""What a check reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"


@dataclass
class CheckResult:
    """One check: ``step`` names where a network probe stopped (dns, tcp, proxy, tls)."""

    name: str
    status: str
    seconds: float = 0.0
    reason: str = ""
    hint: str = ""
    target: str = ""
    step: str = ""
    via: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
