"""Jinja2 for shell templates: ``<< var >>``, ``<% block %>``, ``<# comment #>``, so that
bash's own ``${...}`` and ``{...}`` need no escaping."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def shell_environment(*packages: str) -> Any:
    """A strict (undefined names fail) environment loading the ``templates`` directory of
    each of ``packages``, the first that has a name winning."""
    import jinja2

    loaders = [jinja2.PackageLoader(package, "templates") for package in packages]
    return jinja2.Environment(
        loader=loaders[0] if len(loaders) == 1 else jinja2.ChoiceLoader(loaders),
        block_start_string="<%",
        block_end_string="%>",
        variable_start_string="<<",
        variable_end_string=">>",
        comment_start_string="<#",
        comment_end_string="#>",
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
