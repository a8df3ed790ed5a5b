"""GPU discovery from a fake /proc and /sys tree."""

import pytest

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


def test_frontier_ranks_get_the_gcd_closest_to_their_cores():
    """OLCF's node diagram: L3 regions 0-7 are closest to GCDs 4, 5, 2, 3, 6, 7, 0, 1."""
    from siteagent.binding import bind_rank
    from siteagent.profiles import load_profile

    node = load_profile("frontier").node
    got = [bind_rank(node, r, 1).set["ROCR_VISIBLE_DEVICES"] for r in range(8)]
    assert got == ["4", "5", "2", "3", "6", "7", "0", "1"]
    assert bind_rank(node, 0, 2).set["ROCR_VISIBLE_DEVICES"] == "4,5"  # a rank per MI250X


def test_an_order_that_is_not_a_permutation_of_the_slots_is_refused():
    from pathlib import Path

    from siteagent.errors import ConfigError
    from siteagent.profiles import find_profile, parse_profile

    text = Path(find_profile("frontier")).read_text()
    text = text.replace("[4, 5, 2, 3, 6, 7, 0, 1]", "[4, 5, 2]")
    with pytest.raises(ConfigError, match=r"node.gpu_binding.order: must list each of the 8 "):
        parse_profile(text, "frontier.yaml")
