"""The ``site-agent`` console script. ``pilot`` (once per rank on every compute node) goes to
its light parser (``siteagent.pilot.cli``) before click and the other commands are imported;
``exec`` (once per task) execs the wrapper a previous call recorded (``wrappers.exec_cache``);
everything else, and any ``exec`` not seen before, goes to click (``siteagent.cli``)."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing per rank
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn


def main() -> None:
    """Run ``site-agent`` with ``sys.argv``."""
    if sys.argv[1:2] == ["pilot"]:
        from siteagent.pilot.cli import main as pilot_main

        _exit_without_teardown(pilot_main, sys.argv[2:])
    if sys.argv[1:2] == ["exec"]:
        from siteagent.wrappers.exec_cache import exec_cached

        exec_cached(sys.argv[2:])  # returns only when click must decide
    from siteagent.cli import main as click_main

    click_main()


def _exit_without_teardown(run: Callable[[list[str]], object], argv: list[str]) -> NoReturn:
    """``run(argv)``, then exit as ``sys.exit`` would, but through ``os._exit`` once stdout
    and stderr are flushed. By then a pilot rank has nothing left to clean up (the final
    report is fsync'd, the payload and its leftovers are reaped, no thread runs), and the
    interpreter's teardown of every module and object it loaded was a fifth of a rank's CPU.
    An exception other than SystemExit still ends the normal way (traceback, exit 1)."""
    import contextlib
    import os

    try:
        run(argv)
        code = 0
    except SystemExit as stop:
        code = _status(stop.code)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: Python loses it too
            stream.flush()
    os._exit(code)


def _status(code: object) -> int:
    """The exit status ``sys.exit(code)`` gives: None is 0, an int itself, anything else is
    printed to stderr and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    main()
