"""The commands site-agent prints as "next steps": each one works as printed, for the endpoint
directory that was actually used (not only ``~/.globus_compute/NAME``)."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

COMPUTE_DIR_ENV = "GLOBUS_COMPUTE_USER_DIR"  # globus_compute_sdk's; imported lazily elsewhere

# placeholders for required user_endpoint_config fields; the admin replaces them
PLACEHOLDERS = {"account": "MYPROJECT", "queue": "QUEUE"}


def program(name: str) -> str:
    """``name`` when PATH finds this venv's, else this venv's by its path (the install
    script prints its next steps before the venv is on PATH)."""
    mine = Path(sys.executable).with_name(name)
    if not mine.is_file():
        return name
    found = shutil.which(name)
    return name if found and Path(found).resolve() == mine.resolve() else str(mine)


def gce_program() -> str:
    """``globus-compute-endpoint`` of this venv (see ``program``)."""
    return program("globus-compute-endpoint")


def user_dir_words(directory: Path) -> list[str]:
    """``GLOBUS_COMPUTE_USER_DIR=PARENT`` when ``directory`` is not in the Globus Compute
    directory the tools look in (``$GLOBUS_COMPUTE_USER_DIR`` or ``~/.globus_compute``):
    globus-compute-endpoint finds endpoints by name only there, and keeps the login there."""
    from globus_compute_sdk.sdk.compute_dir import get_compute_dir

    parent = Path(directory).absolute().parent
    if parent == get_compute_dir().expanduser().absolute():
        return []
    return [f"{COMPUTE_DIR_ENV}={shlex.quote(str(parent))}"]


def _command(prefix: list[str], words: list[str]) -> str:
    return " ".join([*prefix, shlex.join(words)])


def gce_command(directory: Path, action: str) -> str:
    """``[GLOBUS_COMPUTE_USER_DIR=P] globus-compute-endpoint ACTION [NAME]`` for the endpoint
    in ``directory`` (no NAME for ``login``)."""
    name = [] if action == "login" else [Path(directory).name]
    return _command(user_dir_words(directory), [gce_program(), action, *name])


def example_config(required: list[str]) -> dict[str, Any]:
    """A user_endpoint_config with a placeholder for each required field."""
    return {name: PLACEHOLDERS.get(name, name.upper()) for name in required}


def config_words(required: list[str]) -> list[str]:
    """``--config '{"account": "MYPROJECT"}'`` for the required fields, else nothing."""
    return ["--config", json.dumps(example_config(required))] if required else []


def smoke_test_command(profile: Any, site: str, directory: Path | None) -> str:
    """``site-agent smoke-test`` for ``site`` as the user named it; ``--endpoint-dir`` when the
    endpoint is not where smoke-test looks by default. The local profile runs in-process."""
    from siteagent.install import default_endpoint_dir
    from siteagent.userconfig import required_fields

    words = [program("site-agent"), "smoke-test", "--site", site]
    words += config_words(required_fields(profile))
    prefix: list[str] = []
    batch = directory is not None and profile.scheduler != "local"
    if batch and directory and Path(directory).absolute() != default_endpoint_dir(profile):
        words += ["--endpoint-dir", str(directory)]
        prefix = user_dir_words(directory)  # the login lives beside the endpoint
    return _command(prefix, words)


def install_steps(profile: Any, site: str, directory: Path) -> list[str]:
    """What to run after ``site-agent install``, in order."""
    steps = [gce_command(directory, "login"), gce_command(directory, "start")]
    smoke = smoke_test_command(profile, site, directory)
    # the local profile's smoke test needs neither a login nor a started endpoint: first
    return [smoke, *steps] if profile.scheduler == "local" else [*steps, smoke]


def schema_required(schema: dict[str, Any]) -> list[str]:
    """The fields a worker's user_endpoint_config must give, from an endpoint's
    ``user_config_schema.json`` (the control config is the ``if`` branch)."""
    return list(schema.get("else", {}).get("required", schema.get("required", [])))


def required_hint(required: list[str]) -> str:
    """``required: account (e.g. --config '{"account": "MYPROJECT"}')``."""
    example = shlex.join(config_words(required)[1:])
    return f"required: {', '.join(required)} (e.g. --config {example})"
