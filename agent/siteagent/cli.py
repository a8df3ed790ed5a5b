"""The ``site-agent`` command. It parses and prints; the modules do the work.

Imports of anything heavy (globus, parsl, jsonschema, rich) happen inside the commands,
so ``site-agent --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from siteagent import __version__
from siteagent.cli_options import (
    PASSTHROUGH,
    FiniteFloat,
    config_option,
    endpoint_dir_option,
    force_option,
    json_option,
    out_option,
    parse_json_option,
    site_option,
)
from siteagent.errors import ConfigError, SiteAgentError


class _Group(click.Group):
    def main(  # type: ignore[override]  # always standalone: exits, never returns
        self, args: Any = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        from siteagent.cli_errors import run_standalone

        run_standalone(self, args, prog_name=prog_name, **extra)  # one-line usage errors

    def invoke(self, ctx: click.Context) -> Any:
        from siteagent.cli_errors import command_args, fail, wants_json

        args = command_args(ctx)
        try:
            return super().invoke(ctx)
        except SiteAgentError as err:
            fail(str(err), err.exit_code, wants_json(args))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="site-agent")
def cli() -> None:
    """Run PanDA/Harvester pilots on this HPC site through Globus Compute."""


# ---------------------------------------------------------------- profiles
@cli.group(cls=_Group)
def profiles() -> None:
    """Site profiles: the data that describes a site."""


@profiles.command("list")
@json_option()
def profiles_list(as_json: bool) -> None:
    """List the profiles on the search path, where each was found, and what is wrong among
    them (a name: that is not the file's, a shared endpoint name, a hidden file)."""
    from siteagent.profile_audit import problems
    from siteagent.profiles import list_profiles, load_profile

    rows = []
    for name, path in list_profiles():
        try:
            p = load_profile(str(path))
            rows.append(
                {
                    "name": name,
                    "profile_name": p.name,
                    "endpoint": p.endpoint.name,
                    "scheduler": p.scheduler,
                    "launcher": p.launcher,
                    "gpus": p.node.gpus,
                    "gpu_vendor": p.node.gpu_vendor,
                    "description": p.description,
                    "path": str(path),
                    "error": None,
                }
            )
        except SiteAgentError as err:
            rows.append({"name": name, "path": str(path), "error": str(err)})
    warnings = problems(rows)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        for w in warnings:
            click.echo(f"warning: {w}", err=True)
        return
    from rich.table import Table

    from siteagent.term import console as term_console

    table = Table("profile", "scheduler", "launcher", "GPUs/node", "description", "found in")
    for r in rows:
        where = str(Path(r["path"]).parent)
        if r["error"]:
            table.add_row(r["name"], "[red]invalid[/red]", "", "", r["error"], where)
        else:
            gpus = f"{r['gpus']} {r['gpu_vendor']}" if r["gpus"] else "0"
            table.add_row(r["name"], r["scheduler"], r["launcher"], gpus, r["description"], where)
    console = term_console()
    console.print(table)
    for w in warnings:
        console.print(f"[yellow]warning:[/yellow] {w}", soft_wrap=True, highlight=False)


@profiles.command("show")
@click.argument("name")
@json_option("JSON instead of YAML.")
def profiles_show(name: str, as_json: bool) -> None:
    """Show a profile with every default filled in (credentials masked): name, scheduler and
    launcher first."""
    import yaml

    from siteagent.profiles import load_profile
    from siteagent.secrets import mask_data

    data = mask_data(load_profile(name).data)
    first = {k: data[k] for k in ("name", "scheduler", "launcher", "description") if k in data}
    data = first | data  # what the site is, before how it is set up
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


# ---------------------------------------------------------------- endpoint
@cli.group(cls=_Group)
def endpoint() -> None:
    """The Globus Compute template endpoint: render and validate its files."""


@endpoint.command("render")
@site_option()
@out_option("out_dir", "Endpoint directory to write, e.g. ~/.globus_compute/NAME.", required=True)
@force_option()
def endpoint_render(site: str, out_dir: Path, force: bool) -> None:
    """Write a site's template endpoint: config.yaml, user_config_template.yaml.j2,
    user_config_schema.json, user_environment.yaml and bin/site-agent-exec, listed in
    .site-agent-manifest.json."""
    from siteagent.endpoint.render import render_endpoint, write_endpoint
    from siteagent.profiles import load_profile
    from siteagent.site_switch import check_same_site

    out_dir = out_dir.expanduser().absolute()
    profile = load_profile(site)
    check_same_site(profile.name, out_dir, force)
    rendered = render_endpoint(profile, out_dir)
    existed = {name for name in rendered.files if (out_dir / name).is_file()}
    report = write_endpoint(rendered, out_dir, force=force)
    # the words install uses
    _echo_each("updated     ", report.directory, [n for n in report.written if n in existed])
    _echo_each("created     ", report.directory, [n for n in report.written if n not in existed])
    _echo_each("unchanged   ", report.directory, report.unchanged)
    if report.backup_dir:
        click.echo(f"backed up {', '.join(report.backed_up)} to {report.backup_dir}")


def _echo_each(label: str, directory: Path, names: Iterable[str], note: str = "") -> None:
    """One line per file: ``label`` (padded), its path, ``note``."""
    for name in names:
        click.echo(f"{label}{directory / name}{note}")


@endpoint.command("validate")
@click.argument("endpoint_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@config_option(
    "user_endpoint_config to render with (default: {}; batch sites require at least "
    'account, e.g. \'{"account": "MYPROJECT"}\').'
)
@click.option("--show", is_flag=True, help="Print the rendered user endpoint config.")
def endpoint_validate(endpoint_dir: Path, config_json: str | None, show: bool) -> None:
    """Render the template with a user_endpoint_config and load the result with
    globus-compute-endpoint's own loader."""
    from siteagent.endpoint.validate import validate_endpoint
    from siteagent.secrets import mask_url

    user_config = parse_json_option(config_json, "--config")
    if not endpoint_dir.is_dir():
        raise ConfigError(f"{endpoint_dir}: no such endpoint directory")
    try:
        result = validate_endpoint(endpoint_dir, user_config)
    except ConfigError as err:
        raise _with_required_hint(err, endpoint_dir) from None
    try:
        if show:
            click.echo(mask_url(result.rendered_yaml))
        for w in result.warnings:
            click.echo(f"note: {w}", err=True)
        click.echo(
            f"ok: {endpoint_dir} renders a {result.engine_type} with "
            f"{result.provider_type} for {json.dumps(user_config, sort_keys=True)}"
        )
    finally:
        result.config.engine.shutdown()


def _with_required_hint(err: ConfigError, endpoint_dir: Path) -> ConfigError:
    """A missing required field also names every required field and an example --config."""
    from siteagent.endpoint.render import SCHEMA
    from siteagent.next_steps import required_hint, schema_required

    if not str(err).endswith(": is required"):
        return err
    try:
        required = schema_required(json.loads((endpoint_dir / SCHEMA).read_text()))
    except (OSError, ValueError):
        return err
    return ConfigError(f"{err}; {required_hint(required)}") if required else err


# ---------------------------------------------------------------- wrappers
@cli.command(
    "exec",
    context_settings=PASSTHROUGH,
)
@site_option()
@click.option("--nodes", type=int, default=1, show_default=True)
@click.option("--ranks-per-node", type=int, default=1, show_default=True)
@click.option("--cores-per-rank", type=int, default=None, help="Default: the node's cores / ranks.")
@click.option("--gpus-per-rank", type=int, default=0, show_default=True)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(
    site: str,
    nodes: int,
    ranks_per_node: int,
    cores_per_rank: int | None,
    gpus_per_rank: int,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as nodes x ranks-per-node ranks through the site's execution wrapper
    (srun, PALS mpiexec or local fork) with per-rank GPU binding (put it after --)."""
    import os

    from siteagent.exec_preflight import check_gpus, check_launcher, launcher_program
    from siteagent.profiles import load_profile
    from siteagent.userconfig import validate
    from siteagent.wrappers.cache import cached_wrapper
    from siteagent.wrappers.exec_cache import remember

    profile = load_profile(site)
    check_gpus(profile, gpus_per_rank)
    request = {"nodes": nodes, "ranks_per_node": ranks_per_node, "gpus_per_rank": gpus_per_rank}
    if cores_per_rank is not None:
        request["cores_per_rank"] = cores_per_rank
    try:
        validate(profile, request | _required_defaults(profile))
    except ConfigError as err:  # name the flag, not the config field
        field, _, problem = str(err).removeprefix("user_endpoint_config: ").partition(": ")
        raise ConfigError(f"--{field.replace('_', '-')}: {problem}") from None
    check_launcher(profile)  # after the flags: a bad flag is said wherever exec runs
    wrapper = cached_wrapper(profile)
    # the next call with this line execs it at once (where the launcher is on PATH)
    remember(site, request, wrapper, launcher_program(profile))
    args = [
        str(wrapper),
        "--nodes",
        str(nodes),
        "--ranks-per-node",
        str(ranks_per_node),
        "--gpus-per-rank",
        str(gpus_per_rank),
    ]
    if cores_per_rank is not None:
        args += ["--cores-per-rank", str(cores_per_rank)]
    sys.stdout.flush()
    os.execv(str(wrapper), [*args, "--", *command])


def _required_defaults(profile) -> dict[str, Any]:
    # exec needs no account: the batch job it runs in already has one
    from siteagent.userconfig import required_fields

    return {"account": "x"} if "account" in required_fields(profile) else {}


@cli.group(cls=_Group)
def wrapper() -> None:
    """Execution wrappers and batch headers, for inspection."""


@wrapper.command("render")
@site_option()
@out_option("out_file", "Write here (mode 0755) instead of standard output.", dir_okay=False)
def wrapper_render(site: str, out_file: Path | None) -> None:
    """The execution wrapper script of a site."""
    from siteagent.fileio import atomic_write
    from siteagent.profiles import load_profile
    from siteagent.wrappers.render import render_wrapper

    text = render_wrapper(load_profile(site))
    if out_file is None:
        click.echo(text, nl=False)
    else:
        atomic_write(out_file, text, 0o755)
        click.echo(f"wrote {out_file}")


@wrapper.command("header")
@site_option()
@config_option("Resource request, as a user_endpoint_config.")
@click.option("--job-name", metavar="NAME", default="site-agent", show_default=True)
def wrapper_header(site: str, config_json: str | None, job_name: str) -> None:
    """The #SBATCH / #PBS header of a batch script for a resource request."""
    from siteagent.profiles import load_profile
    from siteagent.wrappers.render import render_batch_header

    request = parse_json_option(config_json, "--config")
    click.echo(render_batch_header(load_profile(site), request, job_name), nl=False)


# ---------------------------------------------------------------- pilot
class _Forward(click.Command):
    """A command that hands its arguments, untouched (``--`` included), to its callback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.args = list(args)
        return []


def _pilot_help() -> str:
    from siteagent.pilot.cli import DESCRIPTION

    return DESCRIPTION


@cli.command("pilot", cls=_Forward, add_help_option=False, help=_pilot_help())
@click.pass_context
def pilot(ctx: click.Context) -> None:
    """The pilot wrapper of one rank, parsed by ``siteagent.pilot.cli`` (``main`` sends it
    there before click is even imported: it runs once per rank)."""
    from siteagent.pilot.cli import main as pilot_main

    pilot_main(ctx.args)


# ---------------------------------------------------------------- check
@cli.command("check")
@site_option(default="local", show_default=True)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="URL",
    help="Also probe this https://, amqps://, http:// or tcp://host:port (repeatable).",
)
@click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    type=FiniteFloat(0.1, 300),
    help="Seconds each probe may take.",
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False),
    help="CA bundle for TLS probes (default: the system's, or SSL_CERT_FILE).",
)
@click.option("--only", type=click.Choice(["network", "local"]), help="Run one kind of check.")
@click.option(
    "--scope",
    type=click.Choice(["login", "compute"]),
    default="login",
    show_default=True,
    help="Probe as this login node does, or as a compute node would (its proxy).",
)
@json_option("Machine-readable report.")
def check(
    site: str,
    targets: tuple[str, ...],
    timeout: float,
    ca_file: str | None,
    only: str | None,
    scope: str,
    as_json: bool,
) -> None:
    """Validate this node: outbound connectivity through the proxy (DNS, TCP, proxy CONNECT,
    TLS), the PanDA queue as the pilot sees it (when the profile sets pilot.panda_queue),
    scheduler, GPUs, container runtime, cvmfsexec prerequisites, disk, Python.
    Exit 0 when nothing failed (warnings pass), 1 when something failed, 2 for bad input."""
    from siteagent.checks.runner import run_checks
    from siteagent.profiles import load_profile

    report = run_checks(
        load_profile(site),
        targets,
        timeout,
        ca_file,
        network=only != "local",
        local=only != "network",
        scope=scope,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_check_table(report)
    sys.exit(0 if report.ok else 1)


def _print_check_table(report) -> None:
    from rich.table import Table

    from siteagent.term import console as term_console

    colours = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
    table = Table(title=f"site-agent check: {report.site} (proxy from {report.proxy_source})")
    table.add_column("status", no_wrap=True)
    tty = sys.stdout.isatty()  # in a pipe or file: no column is narrowed, nothing folds
    table.add_column("check", max_width=16 if tty else None)
    table.add_column("target", overflow="fold", max_width=36 if tty else None)
    table.add_column("step", no_wrap=True)
    table.add_column("time", no_wrap=True, justify="right")
    table.add_column("result / hint", ratio=1)
    for r in report.results:
        text = r.reason + (f"\n[dim]hint: {r.hint}[/dim]" if r.hint and r.status != "pass" else "")
        table.add_row(
            f"[{colours[r.status]}]{r.status.upper()}[/]",
            r.name,
            r.target,
            r.step,
            f"{r.seconds:.2f}s",
            text,
        )
    console = term_console()  # no wrapping in a pipe or file
    console.print(table)
    failed = sum(r.failed for r in report.results)
    verdict = "[green]all checks passed[/]" if not failed else f"[red]{failed} failed[/]"
    console.print(f"{verdict} in {report.seconds:.1f}s")


# ---------------------------------------------------------------- install
@cli.command("install")
@site_option()
@endpoint_dir_option()
@force_option()
@click.option(
    "--pilot-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Unpacked PanDA pilot3 (with pilot.py) the workers run (default: <venv>/pilot3).",
)
@click.option(
    "--image",
    metavar="SIF-OR-REF",
    help="Start the workers inside this site-agent image (SIF path or image reference; "
    "default: the image site-agent runs from, if any).",
)
@click.option(
    "--cvmfsexec",
    "with_cvmfsexec",
    is_flag=True,
    help="Also clone cvmfsexec (github.com/cvmfs/cvmfsexec) and run its makedist where the "
    "pilot looks for it (cvmfsexec sites; needs outbound access from this node).",
)
def install_command(
    site: str,
    endpoint_dir: Path | None,
    force: bool,
    pilot_dir: Path | None,
    image: str | None,
    with_cvmfsexec: bool,
) -> None:
    """Write the endpoint directory of a site (default ~/.globus_compute/<endpoint name>):
    the template endpoint files, bin/site-agent-exec and, for cvmfsexec sites,
    cvmfs/default.local; one line per file (created, unchanged, updated, kept-edited,
    removed), then the next steps, each a command that works as printed. Running it again
    changes nothing; files edited by hand are kept unless --force (a backup is kept); another
    site's endpoint is replaced only with --force. It also leaves the validated profile in
    ~/.cache/site-agent/profiles/ for the ranks on compute nodes. Run from the image, or with
    --image, its workers start inside that image."""
    from siteagent.install import install
    from siteagent.profilecache import load_profile_cached

    # also writes the validated profile where the compute nodes' ranks look for it (a shared
    # home): their first start then parses no YAML and loads no jsonschema
    profile = load_profile_cached(site)
    if with_cvmfsexec and profile.cvmfs.mode == "cvmfsexec":
        from siteagent.cvmfsexec import provision

        for cmd in provision(profile):
            click.echo(f"ran         {cmd}")
    report = install(profile, endpoint_dir, force=force, pilot_dir=pilot_dir, image=image)
    for name, status in report.files:
        click.echo(f"{status:<11} {report.directory / name}")
    if report.backup_dir:
        click.echo(f"backed up   {report.backup_dir}")
    kept = report.names("kept-edited")
    if kept:
        click.echo(
            f"note: kept {len(kept)} file(s) edited by hand; `site-agent install --site {site} "
            "--force` replaces them (a backup is kept)"
        )
    for note in report.notes:
        click.echo(f"note: {note}")
    verdict = "installed" if report.changed else "unchanged"
    click.echo(f"endpoint '{report.endpoint_name}' {verdict} in {report.directory}")
    from siteagent.next_steps import install_steps

    click.echo("next steps:")
    for step in install_steps(profile, site, report.directory):
        click.echo(f"  {step}")


@cli.command("uninstall")
@site_option(required=False, help="Find the endpoint directory from this profile.")
@endpoint_dir_option(
    "Endpoint directory (default: the one site-agent installed under ~/.globus_compute).",
    file_okay=False,
)
@force_option("Also remove files edited by hand.")
def uninstall_command(site: str | None, endpoint_dir: Path | None, force: bool) -> None:
    """Remove exactly the files `site-agent install` wrote (its manifest says which);
    anything else stays. Refuses while the endpoint runs; nothing installed is success."""
    from siteagent.install import NothingInstalled, default_endpoint_dir, find_installed, uninstall
    from siteagent.profiles import load_profile

    try:
        if endpoint_dir is None:
            endpoint_dir = default_endpoint_dir(load_profile(site)) if site else find_installed()
        report = uninstall(endpoint_dir, force=force)
    except NothingInstalled as err:  # the state asked for is already there
        click.echo(str(err))
        return
    _echo_each("removed     ", report.directory, report.removed)
    _echo_each("left        ", report.directory, report.left, " (not written by site-agent)")
    if report.backup_dir:
        click.echo(f"backed up   {report.backup_dir}")
    if report.directory_removed:
        click.echo(f"removed     {report.directory}/")


# ---------------------------------------------------------------- smoke test
@cli.command("smoke-test")
@site_option(default="local", show_default=True)
@config_option("user_endpoint_config for the user endpoint (default: {}).")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="local: keep files here instead of a temporary directory.",
)
@endpoint_dir_option(file_okay=False)
@click.option(
    "--timeout",
    type=FiniteFloat(1, 86400),
    help="Seconds to wait for each task (default: 60 on local, 1800 where a batch queue waits).",
)
@click.option(
    "--harvester",
    is_flag=True,
    help="Also run Harvester's plugins: submit, monitor and stop workers on the engine.",
)
@json_option("Machine-readable report.")
def smoke_test(
    site: str,
    config_json: str | None,
    workdir: Path | None,
    endpoint_dir: Path | None,
    timeout: float | None,
    harvester: bool,
    as_json: bool,
) -> None:
    """Prove the path end to end. local: render, start the real engine in-process, run a Python
    function and a shell command on its workers. Batch sites: `site-agent check`, then the same
    two tasks through the installed endpoint (needs `globus-compute-endpoint login` and a
    started endpoint). Exit 0 only if every result is right."""
    from siteagent.profiles import load_profile

    user_config = parse_json_option(config_json, "--config")

    def show(step) -> None:
        if not as_json:
            mark = click.style("ok  ", fg="green") if step.ok else click.style("FAIL", fg="red")
            click.echo(f"{mark} {step.name:<22} {step.seconds:6.2f}s  {step.detail}")

    profile = load_profile(site)
    from siteagent.userconfig import validate

    validate(profile, user_config)  # bad input is exit 2 before anything starts
    if profile.scheduler == "local":
        from siteagent.smoke.local import run_smoke_test

        report = run_smoke_test(
            site,
            user_config,
            workdir,
            timeout=timeout or 60.0,
            on_step=show,
            harvester=harvester,
        )
    else:
        from siteagent.install import default_endpoint_dir
        from siteagent.smoke.site import run_site_smoke_test

        if harvester:
            raise ConfigError(
                f"--harvester: runs the plugins on the in-process engine, so only on "
                f"local-scheduler profiles ('{profile.name}' uses {profile.scheduler})"
            )
        directory = (
            endpoint_dir.expanduser().absolute() if endpoint_dir else default_endpoint_dir(profile)
        )
        report = run_site_smoke_test(
            profile, directory, user_config, timeout=timeout or 1800.0, on_step=show
        )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        verdict = "passed" if report.ok else "FAILED"
        click.echo(f"smoke test {verdict} on site '{site}' in {report.seconds:.1f}s")
    sys.exit(0 if report.ok else 1)


# ---------------------------------------------------------------- sweep
from siteagent.sweep.command import sweep_command  # noqa: E402  (click only; the rest is lazy)

cli.add_command(sweep_command)


def main() -> None:
    """The command line; ``pilot`` goes to its light parser, as in ``siteagent.entry``."""
    if sys.argv[1:2] == ["pilot"]:
        from siteagent.pilot.cli import main as pilot_main

        pilot_main(sys.argv[2:])
    cli(prog_name="site-agent")


if __name__ == "__main__":
    main()
