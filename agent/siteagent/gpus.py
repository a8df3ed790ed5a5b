"""GPU discovery from /proc and /sys, without vendor tools (fast, works in containers)."""

from __future__ import annotations

import os

from siteagent.fileio import read_text
from siteagent.records import record


@record(frozen=True)
class GpuInventory:
    """The GPUs this node has."""

    vendor: str  # nvidia, amd, intel or none
    count: int


def _count_nvidia(base: str) -> int:
    gpus = os.path.join(base, "proc/driver/nvidia/gpus")
    return len(os.listdir(gpus)) if os.path.isdir(gpus) else 0


def _count_amd(base: str) -> int:
    """KFD topology nodes with a GPU id (CPU nodes have none or 0)."""
    kfd = os.path.join(base, "sys/class/kfd/kfd/topology/nodes")
    if not os.path.isdir(kfd):
        return 0
    return sum(1 for node in os.listdir(kfd) if _has_gpu_id(os.path.join(kfd, node, "gpu_id")))


def _has_gpu_id(gpu_id: str) -> bool:
    """A KFD node's ``gpu_id`` names a GPU (a CPU node's is missing or 0)."""
    return os.path.isfile(gpu_id) and read_text(gpu_id).strip() not in ("", "0")


def _is_intel_gpu(card: str) -> bool:
    vendor = os.path.join(card, "device/vendor")
    is_intel = os.path.isfile(vendor) and read_text(vendor).strip() == "0x8086"
    return "-" not in os.path.basename(card) and is_intel and _has_local_memory(card)


def _has_local_memory(card: str) -> bool:
    # integrated graphics have no local memory or tiles; data-centre GPUs do
    tile0 = os.path.join(card, "device/tile0")
    return os.path.exists(tile0) or os.path.exists(os.path.join(card, "device/lmem_total_bytes"))


def _is_card(name: str) -> bool:
    """What the glob ``card[0-9]*`` matches: ``card``, an ASCII digit, anything."""
    return len(name) > 4 and name.startswith("card") and "0" <= name[4] <= "9"


def _cards(drm: str) -> list[str]:
    """The ``card[0-9]*`` entries of ``drm`` (none where it is missing or cannot be read,
    as glob gave)."""
    try:
        names = os.listdir(drm)
    except OSError:
        return []
    return [os.path.join(drm, name) for name in names if _is_card(name)]


def _count_intel(base: str) -> int:
    drm = os.path.join(base, "sys/class/drm")
    return sum(1 for card in _cards(drm) if _is_intel_gpu(card))


COUNTERS = (("nvidia", _count_nvidia), ("amd", _count_amd), ("intel", _count_intel))


def discover_gpus(root: str = "/") -> GpuInventory:
    """Count GPUs of the first vendor found; ``root`` lets tests point at a fake tree."""
    for vendor, count in COUNTERS:
        n = count(root)
        if n:
            return GpuInventory(vendor, n)
    return GpuInventory("none", 0)
