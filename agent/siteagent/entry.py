"""The ``site-agent`` console script. ``pilot`` (once per rank on every compute node) goes to
its light parser (``siteagent.pilot.cli``) before click and the other commands are imported;
``exec`` (once per task) execs the wrapper a previous call recorded (``wrappers.exec_cache``);
everything else, and any ``exec`` not seen before, goes to click (``siteagent.cli``)."""

from __future__ import annotations

import sys


def main() -> None:
    """Run ``site-agent`` with ``sys.argv``."""
    if sys.argv[1:2] == ["pilot"]:
        from siteagent.pilot.cli import main as pilot_main

        pilot_main(sys.argv[2:])
    if sys.argv[1:2] == ["exec"]:
        from siteagent.wrappers.exec_cache import exec_cached

        exec_cached(sys.argv[2:])  # returns only when click must decide
    from siteagent.cli import main as click_main

    click_main()


if __name__ == "__main__":
    main()
