"""Human-readable form of a pilot plan (``site-agent pilot --dry-run``)."""

from __future__ import annotations

import shlex

from siteagent.pilot.plan import PilotPlan


def format_plan(plan: PilotPlan) -> str:
    lines = [
        f"pilot {plan.pilot_id} on site {plan.site} "
        f"(host {plan.host}, local rank {plan.local_rank}, rank {plan.rank})",
        f"report:  {plan.report_path}",
        f"workdir: {plan.workdir} (removed at the end)",
        "layers, outermost first:",
    ]
    for i, layer in enumerate(plan.layers, 1):
        lines.append(f"  {i}. {layer.name:<12} {layer.summary}")
        for name in layer.unset:
            lines.append(f"       unset   {name}")
        for name, value in layer.env.items():
            lines.append(f"       set     {name}={value}")
        for cmd in layer.setup:
            lines.append(f"       setup   {shlex.join(cmd)}")
        if layer.command:
            lines.append(f"       command {shlex.join(layer.command)}")
    if plan.path_prepend:
        lines.append(f"PATH prepended with {':'.join(plan.path_prepend)}")
    lines.append("full command:")
    lines.append(f"  {shlex.join(plan.argv)}")
    if plan.walltime_s:
        lines.append(
            f"{plan.walltime_s}s left in the batch job: SIGTERM to the payload's process group at "
            f"{plan.walltime_s - plan.margin_s:g}s, SIGKILL {plan.grace_s:g}s later"
        )
    else:
        lines.append("no walltime: the payload runs until it ends or is signalled")
    return "\n".join(lines)
