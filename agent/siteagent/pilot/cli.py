"""``site-agent pilot`` without click: the per-rank entry point.

It runs once per rank on every compute node, so it parses its own flags (the same flags,
help and errors as the other commands, which click parses) and imports only what a run
needs: no click, yaml, jsonschema, jinja2 or psutil. ``siteagent.entry`` sends
``site-agent pilot ...`` here before click is imported.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from siteagent.names import Var

PROG = "site-agent pilot"
USAGE = f"Usage: {PROG} [OPTIONS] [PAYLOAD]..."
DESCRIPTION = (
    "GPU pilot wrapper for one rank: bind GPUs, set the proxy, enter CVMFS, the container "
    "and the environment, then run the PanDA pilot, or PAYLOAD after -- (what follows -- and "
    "starts with '-' is more pilot arguments instead). Forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/"
    "SIGXCPU/SIGUSR1/SIGUSR2, stops the payload at the walltime margin, exits with its exit code and always writes a "
    "JSON report."
)
SITE_HELP = "Site profile name (see `site-agent profiles list`) or path to a profile YAML."


class UsageError(Exception):
    """A bad command line: click's three-line usage error, exit 2."""


class Opt:
    """One option: its flag, the PilotOptions field it fills, how its value is checked."""

    def __init__(
        self,
        flag: str,
        dest: str,
        metavar: str = "TEXT",
        help: str = "",
        *,
        kind: str = "text",  # text, flag, int, float, file, dir
        low: float = 0,
        high: float = 0,
        default: Any = None,
        multiple: bool = False,
        const: Any = True,  # what a flag sets
    ) -> None:
        self.flag, self.dest, self.metavar, self.help = flag, dest, metavar, help
        self.kind, self.low, self.high = kind, low, high
        self.default, self.multiple, self.const = default, multiple, const

    def convert(self, value: str) -> Any:
        """The option's value from its text, or a UsageError in click's words."""
        bad = f"Invalid value for '{self.flag}'"
        if self.kind in ("int", "float"):
            cast, name = (int, "integer") if self.kind == "int" else (float, "float")
            try:
                number = cast(value)
            except ValueError:
                raise UsageError(f"{bad}: {value!r} is not a valid {name} range.") from None
            if not self.low <= number <= self.high:
                raise UsageError(
                    f"{bad}: {number} is not in the range {self.low:g}<=x<={self.high:g}."
                )
            return number
        if self.kind in ("file", "dir"):
            import os

            if self.kind == "file" and os.path.isdir(value):
                raise UsageError(f"{bad}: File {value!r} is a directory.")
            if self.kind == "dir" and os.path.exists(value) and not os.path.isdir(value):
                raise UsageError(f"{bad}: Directory {value!r} is a file.")
        return value

    def column(self) -> str:
        """The option as the help's left column shows it."""
        if self.kind == "flag":
            return self.flag
        shown = {"int": "INTEGER RANGE", "float": "FLOAT RANGE", "file": "FILE"}
        return f"{self.flag} {shown.get(self.kind, 'DIRECTORY' if self.kind == 'dir' else self.metavar)}"

    def extra(self) -> str:
        """Click's bracketed note: required, default, range."""
        notes = []
        if self.dest == "site":
            notes.append("required")
        if self.default is not None and self.kind != "flag" and not self.multiple:
            notes.append(f"default: {self.default}")
        if self.kind in ("int", "float"):
            notes.append(f"{self.low:g}<=x<={self.high:g}")
        return f"  [{'; '.join(notes)}]" if notes else ""


OPTIONS = (
    Opt("--site", "site", help=SITE_HELP),
    Opt("--queue", "queue", help="PanDA queue (default: the profile's pilot.panda_queue)."),
    Opt(
        "--container",
        "container",
        "IMAGE",
        f"Image to run in, or 'none' (default: ${Var.CONTAINER}, container.default_image).",
    ),
    Opt(
        "--cvmfs",
        "cvmfs",
        "REPO,...",
        "Repositories or lists (atlas, epic), or 'none' "
        f"(default: ${Var.CVMFS_REPOS}, cvmfs.repositories).",
    ),
    Opt(
        "--conda-env",
        "conda_env",
        "SPEC",
        f"Packages (a,b=1.2) or an environment.yml/requirements.txt (default: ${Var.CONDA_ENV}).",
    ),
    Opt("--walltime", "walltime", "HH:MM:SS", f"Default: ${Var.WALLTIME}."),
    Opt(
        "--report",
        "report",
        help=f"JSON report (default: ${Var.WORKDIR}/pilots/ID.json or ~/.site-agent/pilots/ID.json).",
        kind="file",
    ),
    Opt(
        "--pilot-dir",
        "pilot_dir",
        help=f"Unpacked PanDA pilot3 with pilot.py (default: ${Var.PILOT_DIR}).",
        kind="dir",
    ),
    Opt(
        "--pilot-arg",
        "pilot_args",
        help="Extra pilot argument (repeatable).",
        multiple=True,
        default=(),
    ),
    Opt(
        "--resource-type",
        "resource_type",
        help="PanDA resource type for the pilot (default: the profile's pilot.resource_type).",
    ),
    Opt(
        "--job-label",
        "job_label",
        help="pilot3 -j, the prodSourceLabel it asks for (default: the profile's pilot.job_label).",
    ),
    Opt(
        "--job-type", "job_type", help="pilot3 --job-type (default: the profile's pilot.job_type)."
    ),
    Opt(
        "--pilot-type",
        "pilot_type",
        help="Harvester's pilot type PR, RC, ALRB or PT (default: the profile's pilot.pilot_type).",
    ),
    Opt("--debug", "debug", help="pilot3 -d (default: the profile's pilot.debug).", kind="flag"),
    Opt("--no-debug", "debug", help="No pilot3 -d.", kind="flag", const=False),
    Opt(
        "--harvester-id", "harvester_id", help="Exported as HARVESTER_ID (default: $HARVESTER_ID)."
    ),
    Opt(
        "--harvester-worker-id",
        "harvester_worker_id",
        help="Exported as HARVESTER_WORKER_ID (default: $HARVESTER_WORKER_ID).",
    ),
    Opt(
        "--push",
        "push",
        help="Push mode: run the PanDA job the Harvester worker command left in "
        f"${Var.STATE}/push/${Var.WORKER_ID} (pilot3 --harvester-submit-mode PUSH).",
        kind="flag",
    ),
    Opt(
        "--gpus-per-rank",
        "gpus_per_rank",
        help=f"Default: ${Var.GPUS_PER_RANK}, else 1 when the node has GPUs.",
        kind="int",
        high=64,
    ),
    Opt(
        "--margin",
        "margin",
        help="Seconds before the walltime at which the payload gets SIGTERM.",
        kind="float",
        high=86400,
        default=60.0,
    ),
    Opt(
        "--grace",
        "grace",
        help="Seconds between SIGTERM and SIGKILL.",
        kind="float",
        high=3600,
        default=180.0,
    ),
    Opt(
        "--dry-run", "dry_run", help="Print the layers and command lines; run nothing.", kind="flag"
    ),
    Opt("--json", "as_json", help="With --dry-run: the plan as JSON.", kind="flag"),
)
BY_FLAG = {o.flag: o for o in OPTIONS}
HELP_FLAGS = ("-h", "--help")


def help_text() -> str:
    """The help, laid out as click lays out every other command's."""
    import textwrap

    rows = [(o.column(), o.help + o.extra()) for o in OPTIONS]
    rows.append((", ".join(HELP_FLAGS), "Show this message and exit."))
    width = max(len(left) for left, _ in rows) + 2
    lines = [
        USAGE,
        "",
        *textwrap.wrap(DESCRIPTION, 78, initial_indent="  ", subsequent_indent="  "),
    ]
    lines += ["", "Options:"]
    for left, right in rows:
        wrapped = textwrap.wrap(right, max(78 - width - 2, 30)) or [""]
        lines.append(f"  {left.ljust(width)}{wrapped[0]}")
        lines += [" " * (width + 2) + more for more in wrapped[1:]]
    return "\n".join(lines) + "\n"


def parse(argv: list[str]) -> dict[str, Any]:
    """The options and payload of ``argv``, parsed as click parses its pass-through commands:
    options until the first argument or ``--``; unknown options and everything after are
    the payload. Raises UsageError; returns ``{"help": True}`` for -h/--help."""
    values: dict[str, Any] = {o.dest: o.default for o in OPTIONS}
    extra: list[str] = []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            rest.insert(0, arg)
            break
        if arg in HELP_FLAGS:
            return {"help": True}
        flag, eq, inline = arg.partition("=")
        opt = BY_FLAG.get(flag) if flag.startswith("--") else None
        if opt is None:
            extra.append(arg)  # an unknown option belongs to the payload (pilot arguments)
            continue
        if opt.kind == "flag":
            if eq:
                raise UsageError(f"Option '{flag}' does not take a value.")
            values[opt.dest] = opt.const
            continue
        if not eq:
            if not rest:
                raise UsageError(f"Option '{flag}' requires an argument.")
            inline = rest.pop(0)
        value = opt.convert(inline)
        values[opt.dest] = (*values[opt.dest], value) if opt.multiple else value
    if values["site"] is None:
        raise UsageError("Missing option '--site'.")
    values["payload"] = (*extra, *rest)
    return values


def run(values: dict[str, Any]) -> None:
    """Plan and run (or show, with --dry-run) one rank; exits with the payload's code."""
    import time

    from siteagent.errors import SiteAgentError

    dry_run, as_json = values.pop("dry_run"), values.pop("as_json")
    if not dry_run:
        from siteagent.pilot import catch_early_signals

        catch_early_signals()  # a stop during start-up still ends with a report
    from siteagent.pilot.plan import PilotOptions, build_plan

    payload, pilot_args = values.pop("payload"), values.pop("pilot_args")
    if payload and payload[0].startswith("-"):  # `-- --arg ...`: the Harvester plugin's form
        pilot_args, payload = (*pilot_args, *payload), ()
    opts = PilotOptions(payload=payload, pilot_args=pilot_args, dry_run=dry_run, **values)
    t = time.monotonic()
    try:
        plan = build_plan(opts)
    except SiteAgentError as err:
        if not dry_run:
            from siteagent.pilot.run import report_plan_error

            report_plan_error(opts, err)  # the monitor learns why; the user sees one line
        raise
    if dry_run:
        _show_plan(plan, as_json)
    else:
        _run_plan_and_exit(plan, plan_seconds=round(time.monotonic() - t, 4))


def _show_plan(plan: Any, as_json: bool) -> None:
    import json

    from siteagent.pilot.show import format_plan
    from siteagent.secrets import mask_url

    text = json.dumps(plan.to_dict(), indent=2) if as_json else format_plan(plan)
    print(mask_url(text))


def _run_plan_and_exit(plan: Any, plan_seconds: float) -> NoReturn:
    """Run the pilot plan, say in one line how it ended, exit with the payload's code."""
    from siteagent.pilot.run import run_plan

    sys.stdout.flush()
    result = run_plan(plan, plan_seconds=plan_seconds)
    push = plan.layer("payload").detail.push
    if push is not None:  # what pilot3 left for Harvester: the task's result
        from siteagent.push import result_line

        print(result_line(push.dir), flush=True)
    line = f"{PROG}: {result.reason}, exit code {result.exit_code}"
    if result.error:
        line += f": {result.error}"
    print(f"{line}; report {plan.report_path}", file=sys.stderr)
    sys.exit(result.exit_code if result.exit_code is not None else 1)


def main(argv: list[str]) -> NoReturn:
    """``site-agent pilot ARGV``: help, a usage error (exit 2), a one-line error naming the
    field (``site-agent: error: ...``, exit 2 for bad input), or the run's exit code."""
    from siteagent.errors import SiteAgentError

    try:
        values = parse(argv)
    except UsageError as err:
        print(f"{USAGE}\nTry '{PROG} -h' for help.\n\nError: {err}", file=sys.stderr)
        sys.exit(2)
    if values.get("help"):
        print(help_text(), end="")
        sys.exit(0)
    try:
        run(values)
    except SiteAgentError as err:
        print(f"site-agent: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    sys.exit(0)
