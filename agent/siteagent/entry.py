"""The ``site-agent`` console script: ``pilot``, which runs once per rank on every compute
node, goes to its light parser (``siteagent.pilot.cli``) before click and the other commands
are imported; everything else goes to click (``siteagent.cli``)."""

from __future__ import annotations

import sys


def main() -> None:
    """Run ``site-agent`` with ``sys.argv``."""
    if sys.argv[1:2] == ["pilot"]:
        from siteagent.pilot.cli import main as pilot_main

        pilot_main(sys.argv[2:])
    from siteagent.cli import main as click_main

    click_main()


if __name__ == "__main__":
    main()
