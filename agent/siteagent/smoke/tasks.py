"""The Python task both smoke tests send: a function that says where it ran."""

from __future__ import annotations

import os
import socket
from concurrent.futures import Executor
from typing import Any

from siteagent.errors import SiteAgentError


def probe(n: int) -> dict[str, Any]:
    """The Python payload: runs on a worker and says where it ran."""
    import os
    import socket
    import sys

    from siteagent.names import Var

    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "site": os.environ.get(Var.SITE),
        "sum_of_squares": sum(i * i for i in range(n)),
    }


def _check_answer(got: dict[str, Any], n: int, site: str) -> None:
    """The probe's sum is right and it ran at ``site``."""
    if got["sum_of_squares"] != sum(i * i for i in range(n)) or got["site"] != site:
        raise SiteAgentError(f"wrong result from worker: {got}")


def _check_elsewhere(got: dict[str, Any]) -> None:
    """The probe ran in another process than this one (a worker's)."""
    if got["pid"] == os.getpid() and got["host"] == socket.gethostname():
        raise SiteAgentError("the function ran in this process, not on a worker")


def python_task(executor: Executor, site: str, timeout: float) -> str:
    """Run ``probe`` through ``executor`` and check its answer: right sum, right site, and
    not in this process."""
    n = 1000
    got = executor.submit(probe, n).result(timeout=timeout)
    _check_answer(got, n, site)
    _check_elsewhere(got)
    return f"probe({n}) on {got['host']} pid {got['pid']} python {got['python']}"
