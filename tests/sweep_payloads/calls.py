"""Python-callable payloads of the sweep tests (``module:function``)."""

import os


def events():
    """Every rank reports the events it processed."""
    return {"events": 10 * (int(os.environ["SITE_AGENT_RANK"]) + 1)}
