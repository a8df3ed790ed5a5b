"""Run pip without any package index: the dependencies come from the test venv.

A fresh venv sees the test venv's site-packages through PYTHONPATH, so pip finds every
dependency already satisfied, and builds site-agent with the hatchling installed there (no build
isolation). The install steps stay real; nothing is downloaded at test time.
"""

from __future__ import annotations

import os
import sysconfig


def offline_pip_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in (base if base is not None else os.environ).items()
        if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))
    }
    return env | {
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip reads "0" here as: no isolation
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
