"""Per-rank GPU binding: which GPUs (or tiles) each local rank of a node sees, for the shipped
site profiles. The values are what the sites document (ALCF, NERSC, OLCF, Aurora)."""

from __future__ import annotations

from pathlib import Path

import pytest

from siteagent.binding import bind_rank
from siteagent.errors import ConfigError
from siteagent.profiles import builtin_profile_dir, load_profile, parse_profile


def node(site):
    return load_profile(site).node


# OLCF's closest GCD for local ranks 0-7 is 4,5,2,3,6,7,0,1 (docs/sites.md frontier/gcd-closest)
@pytest.mark.parametrize(
    ("rank", "visible"),
    [(0, "4"), (1, "5"), (7, "1"), (8, "4"), (9, "5"), (15, "1")],
)
def test_frontier_one_gcd_per_rank_wraps_around_the_node(rank, visible):
    b = bind_rank(node("frontier"), rank, 1)
    assert b.local_rank == rank
    assert b.set == {"ROCR_VISIBLE_DEVICES": visible}
    assert b.slots == (int(visible),)
    # HIP sees no GPU when these are set as well
    assert b.unset == ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")


@pytest.mark.parametrize(
    ("rank", "gpus", "visible"),
    [
        (0, 2, "4,5"),
        (3, 2, "0,1"),
        (4, 2, "4,5"),
        (0, 3, "4,5,2"),
        (1, 3, "3,6,7"),
        # two ranks of three fit on eight GCDs: the third starts over at the first slot
        (2, 3, "4,5,2"),
        (0, 8, "4,5,2,3,6,7,0,1"),
        (5, 8, "4,5,2,3,6,7,0,1"),
    ],
)
def test_frontier_several_gcds_per_rank(rank, gpus, visible):
    assert bind_rank(node("frontier"), rank, gpus).set["ROCR_VISIBLE_DEVICES"] == visible


@pytest.mark.parametrize(
    ("rank", "gpus", "visible"),
    [(0, 1, "3"), (1, 1, "2"), (3, 1, "0"), (4, 1, "3"), (0, 2, "3,2"), (1, 2, "1,0")],
)
def test_polaris_binds_in_reverse_like_alcf_affinity_script(rank, gpus, visible):
    # ALCF set_affinity_gpu_polaris.sh: GPU = 3 - (local rank % 4)
    b = bind_rank(node("polaris"), rank, gpus)
    assert b.set == {"CUDA_VISIBLE_DEVICES": visible}
    assert b.slots == tuple(int(x) for x in visible.split(","))
    assert b.unset == ()


@pytest.mark.parametrize(
    ("rank", "gpus", "mask"),
    [
        (0, 1, "0.0"),
        (1, 1, "0.1"),
        (2, 1, "1.0"),
        (11, 1, "5.1"),
        (12, 1, "0.0"),
        (1, 2, "1.0,1.1"),
        (0, 3, "0.0,0.1,1.0"),
    ],
)
def test_aurora_binds_tiles(rank, gpus, mask):
    b = bind_rank(node("aurora"), rank, gpus)
    assert b.set == {
        "ZE_AFFINITY_MASK": mask,
        "ZE_FLAT_DEVICE_HIERARCHY": "COMPOSITE",
        "ZE_ENABLE_PCI_ID_DEVICE_ORDER": "1",
    }


@pytest.mark.parametrize("site", ["polaris", "frontier", "aurora", "perlmutter"])
def test_cpu_only_rank_on_a_gpu_node_gets_no_binding(site):
    b = bind_rank(node(site), 2, 0)
    assert (b.local_rank, b.slots, b.set, b.unset) == (2, (), {}, ())


def test_node_without_gpu_binding_binds_nothing():
    text = Path(builtin_profile_dir(), "frontier.yaml").read_text()
    start = text.index("  gpu_binding:")
    end = text.index("proxy:", start)
    profile = parse_profile(text[:start] + text[end:], "frontier-unbound.yaml")
    assert profile.node.gpu_binding is None
    b = bind_rank(profile.node, 1, 2)
    assert (b.slots, b.set, b.unset) == ((), {}, ())


def test_a_rank_may_own_every_slot_of_the_node_but_no_more():
    assert bind_rank(node("aurora"), 0, 12).slots == tuple(range(12))
    with pytest.raises(ConfigError) as err:
        bind_rank(node("aurora"), 0, 13)
    assert str(err.value) == "gpus_per_rank: 13 is more than the 12 GPU slots of a node"


def test_negative_ranks_and_gpu_counts_are_refused():
    with pytest.raises(ConfigError) as err:
        bind_rank(node("polaris"), -1, 1)
    assert str(err.value) == "local_rank: must be >= 0, got -1"
    with pytest.raises(ConfigError) as err:
        bind_rank(node("polaris"), 0, -1)
    assert str(err.value) == "gpus_per_rank: must be >= 0, got -1"
