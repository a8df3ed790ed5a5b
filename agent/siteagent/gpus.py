"""GPU discovery from /proc and /sys, without vendor tools (fast, works in containers)."""

from __future__ import annotations

import os
from pathlib import Path

from siteagent.records import record


@record(frozen=True)
class GpuInventory:
    """The GPUs this node has."""

    vendor: str  # nvidia, amd, intel or none
    count: int


def _count_nvidia(base: Path) -> int:
    gpus = base / "proc/driver/nvidia/gpus"
    return sum(1 for _ in gpus.iterdir()) if gpus.is_dir() else 0


def _count_amd(base: Path) -> int:
    """KFD topology nodes with a GPU id (CPU nodes have none or 0)."""
    kfd = base / "sys/class/kfd/kfd/topology/nodes"
    if not kfd.is_dir():
        return 0
    return sum(1 for node in kfd.iterdir() if _has_gpu_id(node / "gpu_id"))


def _has_gpu_id(gpu_id: Path) -> bool:
    """A KFD node's ``gpu_id`` names a GPU (a CPU node's is missing or 0)."""
    return gpu_id.is_file() and gpu_id.read_text().strip() not in ("", "0")


def _is_intel_gpu(card: Path) -> bool:
    vendor = card / "device/vendor"
    is_intel = vendor.is_file() and vendor.read_text().strip() == "0x8086"
    return "-" not in card.name and is_intel and _has_local_memory(card)


def _has_local_memory(card: Path) -> bool:
    # integrated graphics have no local memory or tiles; data-centre GPUs do
    return (card / "device/tile0").exists() or os.path.exists(card / "device/lmem_total_bytes")


def _count_intel(base: Path) -> int:
    drm = base / "sys/class/drm"
    return sum(1 for card in drm.glob("card[0-9]*") if _is_intel_gpu(card)) if drm.is_dir() else 0


COUNTERS = (("nvidia", _count_nvidia), ("amd", _count_amd), ("intel", _count_intel))


def discover_gpus(root: str = "/") -> GpuInventory:
    """Count GPUs of the first vendor found; ``root`` lets tests point at a fake tree."""
    base = Path(root)
    for vendor, count in COUNTERS:
        n = count(base)
        if n:
            return GpuInventory(vendor, n)
    return GpuInventory("none", 0)
