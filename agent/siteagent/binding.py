"""Per-rank GPU binding, computed from the profile's node shape.

One source of truth for both paths: the execution wrappers embed the result for every
local rank as a table in shell (no arithmetic, no Python per task), and the pilot wrapper
calls it directly.
"""

from __future__ import annotations

from siteagent.errors import ConfigError
from siteagent.profiles import NodeShape
from siteagent.records import field, record


@record(frozen=True)
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


def rank_slots(
    total: int, local_rank: int, gpus_per_rank: int, *, order: str | tuple[int, ...] = "natural"
) -> tuple[int, ...]:
    """The ``gpus_per_rank`` slots of ``local_rank`` among ``total``; ranks beyond those that
    fit wrap around (they share). ``order``: ``natural``, ``reverse`` (from the last slot), or
    the slot of each position (Frontier: the GCD closest to each rank's L3 region)."""
    if gpus_per_rank > total:
        raise ConfigError(
            f"gpus_per_rank: {gpus_per_rank} is more than the {total} GPU slots of a node"
        )
    first = (local_rank % (total // gpus_per_rank)) * gpus_per_rank
    return _in_order(range(first, first + gpus_per_rank), total, order)


def _in_order(positions: range, total: int, order: str | tuple[int, ...]) -> tuple[int, ...]:
    """The slots ``order`` puts at ``positions`` (of ``total``)."""
    if order == "reverse":
        return tuple(total - 1 - s for s in positions)
    if isinstance(order, (tuple, list)):
        return tuple(order[s] for s in positions)
    return tuple(positions)


def _check_not_negative(**counts: int) -> None:
    for name, count in counts.items():
        if count < 0:
            raise ConfigError(f"{name}: must be >= 0, got {count}")


def bind_rank(node: NodeShape, local_rank: int, gpus_per_rank: int) -> RankBinding:
    """The binding of ``local_rank`` when each rank owns ``gpus_per_rank`` slots."""
    _check_not_negative(local_rank=local_rank, gpus_per_rank=gpus_per_rank)
    binding = node.gpu_binding
    if gpus_per_rank == 0 or binding is None:
        return RankBinding(local_rank, ())
    slots = rank_slots(node.gpu_slots, local_rank, gpus_per_rank, order=binding.order)
    value = ",".join(slot_label(node, s) for s in slots)
    return RankBinding(
        local_rank=local_rank,
        slots=slots,
        set={**binding.env, binding.variable: value},
        unset=tuple(binding.unset),
    )
