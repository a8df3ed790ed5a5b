"""GPU binding layer: what this node has, and this rank's share of it (variables only)."""

from __future__ import annotations

from siteagent.binding import RankBinding, bind_rank
from siteagent.errors import ConfigError
from siteagent.gpus import GpuInventory, discover_gpus
from siteagent.names import Var
from siteagent.pilot.layers.base import Layer, PilotLayer, PlanContext
from siteagent.records import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from collections.abc import Mapping


@record(frozen=True)
class GpuShare:
    """The node's GPUs and this rank's share of them."""

    gpus: GpuInventory  # what the node has
    binding: RankBinding  # what this rank gets
    assumed: bool = False  # a dry run where none were found: a compute node's, per the profile


def node_gpus(ctx: PlanContext) -> tuple[GpuInventory, bool]:
    """The GPUs found here; on a dry run that finds none (a login node) those a compute node
    of the profile has, and True: the plan shows the binding the node would get."""
    gpus = discover_gpus(ctx.environ.get(Var.GPU_ROOT, "/"))
    node = ctx.profile.node
    if ctx.opts.dry_run and gpus.count == 0 and int(node.gpus) > 0:
        return GpuInventory(node.gpu_vendor, int(node.gpus)), True
    return gpus, False


def gpus_per_rank(ctx: PlanContext, gpus: GpuInventory) -> int:
    """``--gpus-per-rank``, else ``$SITE_AGENT_GPUS_PER_RANK``, else 1 where GPUs exist."""
    if ctx.opts.gpus_per_rank is not None:
        return ctx.opts.gpus_per_rank
    value = _variable_gpus_per_rank(ctx.environ)
    return min(gpus.count, 1) if value is None else value


def _variable_gpus_per_rank(environ: Mapping[str, str]) -> int | None:
    """``$SITE_AGENT_GPUS_PER_RANK``; None when it is unset or empty."""
    value = environ.get(Var.GPUS_PER_RANK, "")
    if not value:
        return None
    if not value.isdigit():
        raise ConfigError(f"{Var.GPUS_PER_RANK}: '{value}' is not a whole number")
    return int(value)


def _check_vendor(expected: str, gpus: GpuInventory) -> None:
    """Refuse GPUs of another vendor than the profile's (none found is let through)."""
    if gpus.vendor not in ("none", expected):
        raise ConfigError(
            f"node.gpu_vendor: the profile says {expected}, this node has {gpus.vendor} GPUs"
        )


def _found(site: str, gpus: GpuInventory, assumed: bool) -> str:
    """The GPUs found here in words, or those assumed for a compute node of ``site``."""
    if assumed:
        return (
            f"none found here, assumed: a {site} compute node's {gpus.count} {gpus.vendor} GPU(s)"
        )
    return f"{gpus.count} {gpus.vendor} GPU(s) found"


class GpuLayer(PilotLayer):
    name = "gpu-binding"

    def plan(self, ctx: PlanContext) -> Layer:
        gpus, assumed = node_gpus(ctx)
        gpr = gpus_per_rank(ctx, gpus)
        binding = bind_rank(ctx.profile.node, ctx.local_rank, gpr)
        if gpr:
            _check_vendor(ctx.profile.node.gpu_vendor, gpus)
        summary = (
            f"{_found(ctx.profile.name, gpus, assumed)}; local rank {ctx.local_rank} gets "
            f"slot(s) {','.join(map(str, binding.slots)) or 'none'}"
        )
        return Layer(
            self.name,
            summary,
            env=dict(binding.set),
            unset=binding.unset,
            detail=GpuShare(gpus, binding, assumed),
        )
