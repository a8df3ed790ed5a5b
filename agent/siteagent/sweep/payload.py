"""The payload of a sweep: a shell command (run by ``bash -c`` in every rank) or a Python
callable ``module:function`` (imported and called in every rank), found before anything runs."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from siteagent.errors import ConfigError

CALLABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Payload:
    text: str
    kind: str  # "shell" or "callable"
    pythonpath: str | None = None  # where a callable's module was found (the sweep's cwd)


def parse_payload(text: str, cwd: Path | None = None) -> Payload:
    """Classify and find the payload; ``ConfigError`` (exit 2) when it is not there."""
    text = text.strip()
    if not text:
        raise ConfigError("--payload: empty")
    cwd = Path(cwd or os.getcwd())
    if CALLABLE.fullmatch(text):
        _find_callable(text, cwd)
        return Payload(text, "callable", str(cwd))
    _find_program(text, cwd)
    # a relative path or file argument means the sweep's directory on the worker too
    return Payload(text, "shell", str(cwd))


def _find_callable(text: str, cwd: Path) -> None:
    """``module:function`` must import from ``cwd`` and name something callable."""
    module, _, name = text.partition(":")
    sys.path.insert(0, str(cwd))
    try:
        fn = getattr(importlib.import_module(module), name, None)
    except ImportError as err:
        raise ConfigError(f"--payload: {text}: cannot import {module}: {err}") from None
    finally:
        sys.path.remove(str(cwd))
    if not callable(fn):
        raise ConfigError(f"--payload: {text}: {module} has no callable {name}")


def _find_program(text: str, cwd: Path) -> None:
    """A shell payload's program must exist: a path that is executable, a command on PATH,
    or a bash builtin."""
    program = _program(text)
    if "/" in program:
        _check_path(program, cwd)
    elif shutil.which(program) is None and not _shell_word(program):
        raise ConfigError(f"--payload: {program}: command not found on PATH")


def _program(text: str) -> str:
    """The command a shell payload runs: its first word after any VAR=value."""
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise ConfigError(f"--payload: not a shell command: {err}") from None
    program = next((w for w in words if "=" not in w.split("/")[0]), None)  # skip VAR=value
    if program is None:
        raise ConfigError("--payload: no command to run")
    return program


def _check_path(program: str, cwd: Path) -> None:
    """A program given as a path (relative to ``cwd``) is an executable file."""
    path = (cwd / program).absolute() if not program.startswith("/") else Path(program)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ConfigError(f"--payload: {program}: not found or not executable")


def _shell_word(word: str) -> bool:
    import subprocess

    r = subprocess.run(["bash", "-c", f"type -t {shlex.quote(word)}"], capture_output=True)
    return r.returncode == 0  # a bash builtin or keyword (true, exit, for ...)


def _task_payload(payload: Payload) -> str:
    """The payload as the task runs it: a shell payload in the sweep's directory."""
    if payload.kind == "callable" or not payload.pythonpath:
        return payload.text
    return f"cd {shlex.quote(payload.pythonpath)} && {payload.text}"


def task_spec(payload: Payload, site: str, worker_id: str) -> dict[str, Any]:
    """What ``siteagent.sweep.task.run_point`` gets for one run."""
    spec: dict[str, Any] = {
        "kind": payload.kind,
        "payload": _task_payload(payload),
        "site": site,
        "worker_id": worker_id,
        "pythonpath": payload.pythonpath if payload.kind == "callable" else None,
    }
    return spec
