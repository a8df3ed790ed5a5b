"""Human-readable form of a pilot plan (``site-agent pilot --dry-run``)."""

from __future__ import annotations

import shlex

from siteagent.pilot.layers import Layer
from siteagent.pilot.plan import PilotPlan


def format_plan(plan: PilotPlan) -> str:
    """The plan as ``site-agent pilot --dry-run`` prints it."""
    lines = [
        f"pilot {plan.pilot_id} on site {plan.site} "
        f"(host {plan.host}, local rank {plan.local_rank}, rank {plan.rank})",
        f"report:  {plan.report_path}",
        f"workdir: {plan.workdir} (removed at the end)",
        "layers, outermost first:",
    ]
    for i, layer in enumerate(plan.layers, 1):
        lines += layer_lines(i, layer)
    if plan.path_prepend:
        lines.append(f"PATH prepended with {':'.join(plan.path_prepend)}")
    lines.append("full command:")
    lines.append(f"  {shlex.join(plan.argv)}")
    lines.append(walltime_line(plan))
    return "\n".join(lines)


def layer_lines(number: int, layer: Layer) -> list[str]:
    """A layer's summary, then what it unsets, sets, sets up and puts in front."""
    return [
        f"  {number}. {layer.name:<12} {layer.summary}",
        *(f"       unset   {name}" for name in layer.unset),
        *(f"       set     {name}={value}" for name, value in layer.env.items()),
        *(f"       setup   {shlex.join(cmd)}" for cmd in layer.setup),
        *([f"       command {shlex.join(layer.command)}"] if layer.command else []),
    ]


def walltime_line(plan: PilotPlan) -> str:
    if not plan.walltime_s:
        return "no walltime: the payload runs until it ends or is signalled"
    return (
        f"{plan.walltime_s}s left in the batch job: SIGTERM to the payload's process group at "
        f"{plan.walltime_s - plan.margin_s:g}s, SIGKILL {plan.grace_s:g}s later"
    )
