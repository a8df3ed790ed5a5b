"""``site-agent pilot`` without click: the per-rank entry point.

It runs once per rank on every compute node, so it parses its own flags (the same flags,
help and errors as the other commands, which click parses) and imports only what a run
needs: no click, yaml, jsonschema, jinja2 or psutil. ``siteagent.entry`` sends
``site-agent pilot ...`` here before click is imported.
"""

from __future__ import annotations

import os
import sys

from siteagent.names import Var

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from typing import Any, NoReturn

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
    """A bad command line, in click's words: one line, exit 2 (see ``main``)."""


NUMBERS = {"int": (int, "integer"), "float": (float, "float")}  # kind: cast, click's name
METAVARS = {"int": "INTEGER RANGE", "float": "FLOAT RANGE", "file": "FILE", "dir": "DIRECTORY"}


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
        if self.kind in NUMBERS:
            return self._number(value)
        if self.kind in ("file", "dir"):
            self._check_path(value)
        return value

    def _check_path(self, value: str) -> None:
        """A file option may not name a directory, nor a directory option a file."""
        import os

        if self.kind == "file" and os.path.isdir(value):
            raise UsageError(f"Invalid value for '{self.flag}': File {value!r} is a directory.")
        if self.kind == "dir" and os.path.exists(value) and not os.path.isdir(value):
            raise UsageError(f"Invalid value for '{self.flag}': Directory {value!r} is a file.")

    def _number(self, value: str) -> int | float:
        cast, name = NUMBERS[self.kind]
        try:
            number = cast(value)
        except ValueError:
            raise UsageError(
                f"Invalid value for '{self.flag}': {value!r} is not a valid {name} range."
            ) from None
        if number != number or number in (float("inf"), float("-inf")):
            # nan and inf pass any range check (nan < 0 is false): --grace nan = never
            raise UsageError(f"Invalid value for '{self.flag}': {value!r} is not a finite number.")
        if not self.low <= number <= self.high:
            raise UsageError(
                f"Invalid value for '{self.flag}': {number} is not in the range "
                f"{self.low:g}<=x<={self.high:g}."
            )
        return number

    def take(self, current: Any, inline: str | None, rest: list[str]) -> Any:
        """The option's new value: its ``=`` value, else the next argument (taken from
        ``rest``); a flag's constant; a repeatable option's values so far plus this one."""
        if self.kind == "flag":
            if inline is not None:
                raise UsageError(f"Option '{self.flag}' does not take a value.")
            return self.const
        if inline is None:
            if not rest:
                raise UsageError(f"Option '{self.flag}' requires an argument.")
            inline = rest.pop(0)
        value = self.convert(inline)
        return (*current, value) if self.multiple else value

    def column(self) -> str:
        """The option as the help's left column shows it."""
        if self.kind == "flag":
            return self.flag
        return f"{self.flag} {METAVARS.get(self.kind, self.metavar)}"

    def extra(self) -> str:
        """Click's bracketed note: required, default, range."""
        notes = []
        if self.dest == "site":
            notes.append("required")
        if self.default is not None and self.kind != "flag" and not self.multiple:
            notes.append(f"default: {self.default}")
        if self.kind in NUMBERS:
            notes.append(f"{self.low:g}<=x<={self.high:g}")
        return f"  [{'; '.join(notes)}]" if notes else ""


OPTIONS = (
    Opt("--site", "site", "NAME", SITE_HELP),
    Opt("--queue", "queue", "QUEUE", "PanDA queue (default: the profile's pilot.panda_queue)."),
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
        "ARG",
        help="Extra pilot argument (repeatable).",
        multiple=True,
        default=(),
    ),
    Opt(
        "--resource-type",
        "resource_type",
        "TYPE",
        help="PanDA resource type for the pilot (default: the profile's pilot.resource_type).",
    ),
    Opt(
        "--job-label",
        "job_label",
        "LABEL",
        help="pilot3 -j, the prodSourceLabel it asks for (default: the profile's pilot.job_label).",
    ),
    Opt(
        "--job-type",
        "job_type",
        "TYPE",
        help="pilot3 --job-type (default: the profile's pilot.job_type).",
    ),
    Opt(
        "--pilot-type",
        "pilot_type",
        "TYPE",
        help="Harvester's pilot type PR, RC, ALRB or PT (default: the profile's pilot.pilot_type).",
    ),
    Opt("--debug", "debug", help="pilot3 -d (default: the profile's pilot.debug).", kind="flag"),
    Opt("--no-debug", "debug", help="No pilot3 -d.", kind="flag", const=False),
    Opt(
        "--harvester-id",
        "harvester_id",
        "ID",
        help="Exported as HARVESTER_ID (default: $HARVESTER_ID).",
    ),
    Opt(
        "--harvester-worker-id",
        "harvester_worker_id",
        "ID",
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
        lines += _help_row(left, right, width)
    return "\n".join(lines) + "\n"


def _help_row(left: str, right: str, width: int) -> list[str]:
    """One option's help lines: its column, then its text wrapped beside it."""
    import textwrap

    wrapped = textwrap.wrap(right, max(78 - width - 2, 30)) or [""]
    return [f"  {left.ljust(width)}{wrapped[0]}", *(" " * (width + 2) + w for w in wrapped[1:])]


def parse(argv: list[str]) -> dict[str, Any]:
    """The options and payload of ``argv``, parsed as click parses its pass-through commands:
    options until the first argument or ``--``; unknown options and everything after are
    the payload. Raises UsageError; returns ``{"help": True}`` for -h/--help."""
    values: dict[str, Any] = {o.dest: o.default for o in OPTIONS}
    extra: list[str] = []
    rest = list(argv)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        arg = rest.pop(0)
        if arg == "--":
            break
        if arg in HELP_FLAGS:
            return {"help": True}
        flag, eq, inline = arg.partition("=")
        opt = BY_FLAG.get(flag)
        if opt is None:
            extra.append(arg)  # an unknown option belongs to the payload (pilot arguments)
        else:
            values[opt.dest] = opt.take(values[opt.dest], inline if eq else None, rest)
    if values["site"] is None:
        raise UsageError("Missing option '--site'.")
    values["payload"] = (*extra, *rest)
    return values


def run(values: dict[str, Any]) -> None:
    """Plan and run (or show, with --dry-run) one rank; exits with the payload's code."""
    import time

    dry_run, as_json = values.pop("dry_run"), values.pop("as_json")
    if not dry_run:
        from siteagent.pilot import catch_early_signals

        catch_early_signals()  # a stop during start-up still ends with a report
    opts = _pilot_options(values, dry_run)
    early = None if dry_run else _start_reporting(opts)
    t = time.monotonic()
    plan = _plan(opts)
    if early is not None and os.path.abspath(early) != os.path.abspath(plan.report_path):
        from siteagent.pilot.run import drop_own_report

        drop_own_report(early)  # the plan's pilot id differs (a launcher's rank variable)
    if dry_run:
        _show_plan(plan, as_json)
    else:
        _run_plan_and_exit(plan, plan_seconds=round(time.monotonic() - t, 4))


def _pilot_options(values: dict[str, Any], dry_run: bool) -> Any:
    """The PilotOptions of the parsed ``values``; a payload that starts with an option is
    more pilot arguments (``-- --arg ...``: the Harvester plugin's form)."""
    from siteagent.pilot.plan import PilotOptions

    payload, pilot_args = values.pop("payload"), values.pop("pilot_args")
    if payload and payload[0].startswith("-"):
        pilot_args, payload = (*pilot_args, *payload), ()
    return PilotOptions(payload=payload, pilot_args=pilot_args, dry_run=dry_run, **values)


def _plan(opts: Any) -> Any:
    """The rank's plan; a run (not a dry run) that cannot plan reports why first."""
    from siteagent.errors import SiteAgentError
    from siteagent.pilot.plan import build_plan

    try:
        return build_plan(opts)
    except SiteAgentError as err:
        if not opts.dry_run:
            from siteagent.pilot.run import report_plan_error

            report_plan_error(opts, err)  # the monitor learns why; the user sees one line
        raise


def _start_reporting(opts: Any) -> Any:
    """Write the ``starting`` report first (its path); a report that cannot be written is a
    setup error (exit SETUP_ERROR_EXIT: the payload never runs) with the reason on stderr."""
    from siteagent.pilot.outcome import SETUP_ERROR_EXIT
    from siteagent.pilot.run import report_starting

    try:
        return report_starting(opts)
    except OSError as err:
        print(
            f"site-agent: error: --report: cannot write {err.filename or opts.report}: "
            f"{err.strerror}",
            file=sys.stderr,
        )
        sys.exit(SETUP_ERROR_EXIT)


def _show_plan(plan: Any, as_json: bool) -> None:
    import json

    from siteagent.pilot.show import format_plan
    from siteagent.secrets import mask_url

    text = json.dumps(plan.to_dict(), indent=2) if as_json else format_plan(plan)
    print(mask_url(text))
    from siteagent.pilot.missing import missing_reasons

    for reason in missing_reasons(plan):  # a real run would stop here
        print(f"missing: {reason}", file=sys.stderr)


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


def fail(message: str, code: int, as_json: bool) -> NoReturn:
    """One line on stderr and, with --json, ``{"error", "exit_code"}`` on stdout: the form
    of every other command (``siteagent.cli_errors``, which imports click)."""
    print(f"site-agent: error: {message}", file=sys.stderr)
    if as_json:
        import json

        print(json.dumps({"error": message, "exit_code": code}))
    sys.exit(code)


def main(argv: list[str]) -> NoReturn:
    """``site-agent pilot ARGV``: help, a usage error (one line, exit 2), a one-line error
    naming the field (``site-agent: error: ...``, exit 2 for bad input; with --json also as
    JSON on stdout), or the run's exit code."""
    from siteagent.errors import SiteAgentError

    try:
        values = parse(argv)
    except UsageError as err:
        as_json = "--json" in argv[: argv.index("--") if "--" in argv else len(argv)]
        fail(f"pilot: {err} (see `{PROG} --help`)", 2, as_json)
    if values.get("help"):
        print(help_text(), end="")
        sys.exit(0)
    as_json = bool(values["as_json"])
    try:
        run(values)
    except SiteAgentError as err:
        fail(str(err), err.exit_code, as_json)
    sys.exit(0)
