"""How ``site-agent`` reports an error: one line on stderr (``site-agent: error: ...``) and,
when the command was given ``--json``, also ``{"error": ..., "exit_code": ...}`` on stdout,
so a program reading the JSON learns why there is no report. Click's own usage errors
(unknown option, missing option, bad value) take the same form, with exit code 2."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import NoReturn

import click


def wants_json(args: Sequence[str]) -> bool:
    """``--json`` among the command's own arguments (not in a payload after ``--``)."""
    args = list(args)
    own = args[: args.index("--")] if "--" in args else args
    return "--json" in own


def fail(message: str, code: int = 1, as_json: bool = False) -> NoReturn:
    """Report ``message`` and exit with ``code``."""
    click.echo(f"site-agent: error: {message}", err=True)
    if as_json:
        click.echo(json.dumps({"error": message, "exit_code": code}))
    sys.exit(code)


def usage_message(err: click.ClickException) -> str:
    """Click's several-line usage error as one line that says where help is."""
    message = " ".join(err.format_message().split())
    ctx = getattr(err, "ctx", None)
    if ctx is None:
        return message
    name = ctx.command_path.partition(" ")[2]
    where = f"{name}: " if name else ""
    return f"{where}{message} (see `{ctx.command_path} --help`)"


def command_args(ctx: click.Context) -> list[str]:
    """The arguments after the program name, as the root group saw them."""
    root = ctx.find_root()
    if "siteagent.args" not in root.meta:  # click keeps them here until a command takes them
        root.meta["siteagent.args"] = [*getattr(root, "_protected_args", []), *root.args]
    return root.meta["siteagent.args"]


def run_standalone(group: click.Group, args: Sequence[str] | None, **kwargs) -> NoReturn:
    """Run ``group`` as a program: its usage errors become one line (see the module)."""
    argv = list(sys.argv[1:] if args is None else args)
    kwargs.pop("standalone_mode", None)
    try:
        rv = click.Group.main(group, argv, standalone_mode=False, **kwargs)
    except click.exceptions.Abort:
        fail("aborted", 1)
    except click.ClickException as err:
        fail(usage_message(err), err.exit_code, wants_json(argv))
    sys.exit(rv if isinstance(rv, int) else 0)
