"""Shared fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROFILE_NAMES = ("local", "perlmutter", "polaris", "aurora", "frontier")


@pytest.fixture
def run_cli(tmp_path):
    """Run the real console entry point in a subprocess; returns CompletedProcess."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
        full_env = os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {})
        return subprocess.run(
            [sys.executable, "-m", "siteagent", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=tmp_path,
        )

    return run
