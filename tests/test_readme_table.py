"""Issue #15 item 15: README's command table is the command line's own (rendered by
siteagent.readme_table); a flag added without the README, or the reverse, fails here."""

from __future__ import annotations

import click

from siteagent.readme_table import BEGIN, END, leaf_commands, render_table, replace_table, usage

from .conftest import REPO


def test_readme_table_is_generated_from_the_cli():
    text = (REPO / "README.md").read_text()
    assert BEGIN in text and END in text
    current = BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END
    assert current == render_table(), (
        "README.md's command table differs from the CLI: run "
        "`python -m siteagent.readme_table --write README.md`"
    )


def test_every_option_of_every_command_is_in_the_table():
    from siteagent.cli import cli

    table = render_table()
    for path, cmd in leaf_commands(cli):
        line = next(ln for ln in table.splitlines() if ln.startswith(f"| `site-agent {path} "))
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert max(param.opts, key=len) in line, (path, param.opts)
    for flag in ("--only", "--ca-file", "--workdir", "--pilot-dir", "--cores-per-rank"):
        assert flag in table
    assert "--job-name NAME" in table and "wrapper render --site NAME [--out FILE]" in table


def test_a_new_flag_changes_the_table():
    @click.command()
    @click.option("--site", required=True, metavar="NAME")
    @click.option("--new-flag", is_flag=True)
    @click.argument("payload", nargs=-1)
    def demo(**kw):
        """Demo."""

    assert usage("demo", demo) == "site-agent demo --site NAME [--new-flag] [-- PAYLOAD...]"
    group = click.Group("g", commands={"demo": demo})
    table = render_table(group)
    assert replace_table(f"a\n{BEGIN}\nold\n{END}\nb", table) == f"a\n{table}\nb"


def test_readme_clone_line_is_a_command():
    text = (REPO / "README.md").read_text()
    assert "<site-agent repository>" not in text
