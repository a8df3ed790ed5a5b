"""Click options that several ``site-agent`` commands take, each declared once.

Each is a decorator factory (as ``globus_compute_endpoint/cli.py`` does): the flag, its
type and metavar are fixed here; a command may give its own help or default.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]

SITE_HELP = "Site profile name (see `site-agent profiles list`) or path to a profile YAML."
ENDPOINT_DIR_HELP = (
    "Endpoint directory (default: ~/.globus_compute/<endpoint name of the profile>)."
)
FORCE_HELP = "Replace files edited by hand (a backup is kept)."
# commands that hand what follows -- to another program
PASSTHROUGH = {"ignore_unknown_options": True, "allow_interspersed_args": False}


class FiniteFloat(click.FloatRange):
    """``click.FloatRange`` that also refuses ``nan`` and ``inf`` (which pass any range
    check: ``nan < 0`` is false), so ``--grace nan`` cannot mean "never"."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def site_option(required: bool = True, help: str = SITE_HELP, **kwargs: Any) -> Decorator:
    """``--site NAME|PATH`` (required unless a default is given)."""
    if "default" in kwargs:
        required = False
    kwargs.setdefault("metavar", "NAME")
    return click.option("--site", required=required, help=help, **kwargs)


def out_option(dest: str, help: str, required: bool = False, dir_okay: bool = True) -> Decorator:
    """``--out PATH``, passed as ``dest`` (a Path)."""
    kind = click.Path(path_type=Path, dir_okay=dir_okay)
    metavar = "DIR" if dir_okay else "FILE"
    return click.option("--out", dest, required=required, type=kind, metavar=metavar, help=help)


def json_option(help: str = "Machine-readable output.") -> Decorator:
    """``--json``, passed as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def config_option(help: str) -> Decorator:
    """``--config JSON|@FILE``, passed as ``config_json`` (parse with ``parse_json_option``)."""
    return click.option("--config", "config_json", metavar="JSON|@FILE", help=help)


def endpoint_dir_option(help: str = ENDPOINT_DIR_HELP, file_okay: bool = True) -> Decorator:
    """``--endpoint-dir DIRECTORY`` as a ``Path``."""
    return click.option(
        "--endpoint-dir",
        type=click.Path(path_type=Path, file_okay=file_okay),
        metavar="DIR",
        help=help,
    )


def force_option(help: str = FORCE_HELP) -> Decorator:
    """``--force``."""
    return click.option("--force", is_flag=True, help=help)


def parse_json_option(value: str | None, name: str) -> dict[str, Any]:
    """A JSON object given inline or as @file."""
    import json

    from siteagent.errors import ConfigError

    if not value:
        return {}
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text()
        except OSError as err:
            raise ConfigError(f"{name}: cannot read {value[1:]}: {err.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{name}: not valid JSON: {err.msg} at column {err.colno}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: must be a JSON object")
    return data
