"""GPU discovery from /proc and /sys, without vendor tools (fast, works in containers)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GpuInventory:
    vendor: str  # nvidia, amd, intel or none
    count: int


def discover_gpus(root: str = "/") -> GpuInventory:
    """Count GPUs of the first vendor found; ``root`` lets tests point at a fake tree."""
    base = Path(root)
    nvidia = base / "proc/driver/nvidia/gpus"
    if nvidia.is_dir():
        n = sum(1 for _ in nvidia.iterdir())
        if n:
            return GpuInventory("nvidia", n)
    kfd = base / "sys/class/kfd/kfd/topology/nodes"
    if kfd.is_dir():
        n = 0
        for node in kfd.iterdir():
            gpu_id = node / "gpu_id"
            if gpu_id.is_file() and gpu_id.read_text().strip() not in ("", "0"):
                n += 1
        if n:
            return GpuInventory("amd", n)
    drm = base / "sys/class/drm"
    if drm.is_dir():
        n = 0
        for card in drm.glob("card[0-9]*"):
            vendor = card / "device/vendor"
            is_intel = vendor.is_file() and vendor.read_text().strip() == "0x8086"
            # integrated graphics have no local memory or tiles; data-centre GPUs do
            has_lmem = (card / "device/tile0").exists() or os.path.exists(
                card / "device/lmem_total_bytes"
            )
            if "-" not in card.name and is_intel and has_lmem:
                n += 1
        if n:
            return GpuInventory("intel", n)
    return GpuInventory("none", 0)
