"""GPU binding layer: what this node has, and this rank's share of it (variables only)."""

from __future__ import annotations

from siteagent.binding import RankBinding, bind_rank
from siteagent.errors import ConfigError
from siteagent.gpus import GpuInventory, discover_gpus
from siteagent.names import Var
from siteagent.pilot.layers.base import Layer, PilotLayer, PlanContext
from siteagent.records import record


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
    value = ctx.environ.get(Var.GPUS_PER_RANK, "")
    if value and not value.isdigit():
        raise ConfigError(f"{Var.GPUS_PER_RANK}: '{value}' is not a whole number")
    return int(value) if value else (1 if gpus.count else 0)


class GpuLayer(PilotLayer):
    name = "gpu-binding"

    def plan(self, ctx: PlanContext) -> Layer:
        gpus, assumed = node_gpus(ctx)
        gpr = gpus_per_rank(ctx, gpus)
        binding = bind_rank(ctx.profile.node, ctx.local_rank, gpr)
        expected = ctx.profile.node.gpu_vendor
        if gpr and gpus.vendor not in ("none", expected):
            raise ConfigError(
                f"node.gpu_vendor: the profile says {expected}, this node has {gpus.vendor} GPUs"
            )
        found = (
            f"none found here, assumed: a {ctx.profile.name} compute node's {gpus.count} "
            f"{gpus.vendor} GPU(s)"
            if assumed
            else f"{gpus.count} {gpus.vendor} GPU(s) found"
        )
        summary = (
            f"{found}; local rank {ctx.local_rank} gets slot(s) "
            f"{','.join(map(str, binding.slots)) or 'none'}"
        )
        return Layer(
            self.name,
            summary,
            env=dict(binding.set),
            unset=binding.unset,
            detail=GpuShare(gpus, binding, assumed),
        )
