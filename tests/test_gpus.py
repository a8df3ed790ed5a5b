"""GPU discovery from a fake /proc and /sys tree."""

from siteagent.gpus import discover_gpus


def test_no_gpus(tmp_path):
    inv = discover_gpus(str(tmp_path))
    assert (inv.vendor, inv.count) == ("none", 0)


def test_nvidia(tmp_path):
    for i in range(4):
        (tmp_path / f"proc/driver/nvidia/gpus/0000:0{i}:00.0").mkdir(parents=True)
    inv = discover_gpus(str(tmp_path))
    assert (inv.vendor, inv.count) == ("nvidia", 4)


def test_amd_counts_only_gpu_nodes(tmp_path):
    base = tmp_path / "sys/class/kfd/kfd/topology/nodes"
    for i, gpu_id in enumerate(["0", "1234", "5678"]):
        (base / str(i)).mkdir(parents=True)
        (base / str(i) / "gpu_id").write_text(gpu_id + "\n")
    inv = discover_gpus(str(tmp_path))
    assert (inv.vendor, inv.count) == ("amd", 2)


def test_intel_data_centre_gpus(tmp_path):
    for i in range(6):
        dev = tmp_path / f"sys/class/drm/card{i}/device"
        (dev / "tile0").mkdir(parents=True)
        (dev / "vendor").write_text("0x8086\n")
    igpu = tmp_path / "sys/class/drm/card9/device"
    igpu.mkdir(parents=True)
    (igpu / "vendor").write_text("0x8086\n")
    inv = discover_gpus(str(tmp_path))
    assert (inv.vendor, inv.count) == ("intel", 6)
