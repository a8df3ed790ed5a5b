"""Jinja2 for shell templates: ``<< var >>``, ``<% block %>``, ``<# comment #>``, so that
bash's own ``${...}`` and ``{...}`` need no escaping."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def shell_environment(package: str, directory: str = "templates") -> Any:
    """A strict (undefined names fail) environment loading ``package``'s ``directory``."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, directory),
        block_start_string="<%",
        block_end_string="%>",
        variable_start_string="<<",
        variable_end_string=">>",
        comment_start_string="<#",
        comment_end_string="#>",
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
