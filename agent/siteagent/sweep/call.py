"""``python -m siteagent.sweep.call module:function``: one rank of a Python-callable payload.

The callable gets no arguments; a dict it returns is printed as one JSON line (the sweep reads
metrics such as throughput from it), and an exception fails the rank with exit code 1.
"""

from __future__ import annotations

import importlib
import json
import sys


def main(argv: list[str]) -> int:
    module, _, name = argv[0].partition(":")
    fn = getattr(importlib.import_module(module), name)
    result = fn()
    if isinstance(result, dict):
        print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
