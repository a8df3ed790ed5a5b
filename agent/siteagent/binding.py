"""Per-rank GPU binding, computed from the profile's node shape.

One source of truth for both paths: the execution wrappers embed the result for every
local rank as a table in shell (no arithmetic, no Python per task), and the pilot wrapper
calls it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from siteagent.errors import ConfigError
from siteagent.profiles import NodeShape


@dataclass(frozen=True)
class RankBinding:
    """What one local rank gets: variables to set, variables to unset, the slots it owns."""

    local_rank: int
    slots: tuple[int, ...]
    set: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()


def slot_label(node: NodeShape, slot: int) -> str:
    """How a slot is written in the binding variable: ``3`` or, per tile, ``1.0``."""
    binding = node.gpu_binding
    if binding and binding.format == "tile":
        return f"{slot // node.tiles_per_gpu}.{slot % node.tiles_per_gpu}"
    return str(slot)


def bind_rank(node: NodeShape, local_rank: int, gpus_per_rank: int) -> RankBinding:
    """The binding of ``local_rank`` when each rank owns ``gpus_per_rank`` slots."""
    if local_rank < 0:
        raise ConfigError(f"local_rank: must be >= 0, got {local_rank}")
    if gpus_per_rank < 0:
        raise ConfigError(f"gpus_per_rank: must be >= 0, got {gpus_per_rank}")
    binding = node.gpu_binding
    if gpus_per_rank == 0 or binding is None:
        return RankBinding(local_rank, ())
    total = node.gpu_slots
    if gpus_per_rank > total:
        raise ConfigError(
            f"gpus_per_rank: {gpus_per_rank} is more than the {total} GPU slots of a node"
        )
    ranks_that_fit = total // gpus_per_rank
    first = (local_rank % ranks_that_fit) * gpus_per_rank
    slots = tuple(range(first, first + gpus_per_rank))
    if binding.order == "reverse":
        slots = tuple(total - 1 - s for s in slots)
    value = ",".join(slot_label(node, s) for s in slots)
    return RankBinding(
        local_rank=local_rank,
        slots=slots,
        set={**binding.env, binding.variable: value},
        unset=tuple(binding.unset),
    )
