"""The user_endpoint_config's limits as a submitter meets them: each bound of the schema is
accepted at the bound and refused one past it, the shape must fit a node, the walltime the
site, and the canonical form is exactly what the submitter sends."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from siteagent.errors import ConfigError
from siteagent.profiles import builtin_profile_dir, load_profile, parse_profile
from siteagent.userconfig import (
    canonicalize,
    config_key,
    defaults,
    format_walltime,
    required_fields,
    user_config_schema,
    validate,
    walltime_seconds,
)

# (site, base config): polaris is PBS Pro (4 GPUs, 32 cores x 2 threads), frontier is Slurm
# (8 GCDs, 56 usable cores x 2 threads, 512 GB). The site-wide limits are pinned here and
# the queues listed by name only, so these tests state the site-wide rules; the real per-queue
# limits (nodes and walltime per queue) are facts of tests/site_facts.yaml.
SITE_WIDE = {
    "polaris": {"queues": ["debug", "prod"], "max_nodes": 496, "max_walltime": "24:00:00"},
    "frontier": {"queues": ["batch", "extended", "debug"], "max_nodes": 9408},
}
POLARIS = (load_profile("polaris", {"limits": SITE_WIDE["polaris"]}), {"account": "atlas"})
FRONTIER = (load_profile("frontier", {"limits": SITE_WIDE["frontier"]}), {"account": "atlas"})


def refused(site, config, message):
    profile, base = site
    with pytest.raises(ConfigError) as err:
        validate(profile, base | config)
    assert str(err.value) == f"user_endpoint_config: {message}"


def accepted(site, config):
    profile, base = site
    validate(profile, base | config)


@pytest.mark.parametrize(
    ("site", "field", "low", "high"),
    [
        (POLARIS, "nodes", 1, 496),
        (FRONTIER, "nodes", 1, 9408),
        (POLARIS, "ranks_per_node", 1, 64),
        (POLARIS, "cores_per_rank", 1, 64),
        (FRONTIER, "cores_per_rank", 1, 112),
        (POLARIS, "gpus_per_rank", 0, 4),
        (FRONTIER, "gpus_per_rank", 0, 8),
        (POLARIS, "max_blocks", 1, 4),
        (FRONTIER, "mem_per_node_gb", 1, 512),
    ],
)
def test_each_number_is_bounded(site, field, low, high):
    # ranks_per_node alone: one core per rank so the shape fits
    extra = {"cores_per_rank": 1} if field == "ranks_per_node" else {}
    accepted(site, extra | {field: low})
    accepted(site, extra | {field: high})
    refused(site, extra | {field: low - 1}, f"{field}: must be >= {low}")
    refused(site, extra | {field: high + 1}, f"{field}: must be <= {high}")


def test_numbers_are_whole_numbers():
    # JSON Schema counts 1.0 as an integer; a #SBATCH line or an srun option does not
    for field in ("nodes", "ranks_per_node", "cores_per_rank", "gpus_per_rank", "max_blocks"):
        refused(FRONTIER, {field: 1.0}, f"{field}: must be a whole number, not 1.0")
    refused(FRONTIER, {"mem_per_node_gb": 8.0}, "mem_per_node_gb: must be a whole number, not 8.0")
    # a number where text belongs is the wrong type, not a number to round
    refused(FRONTIER, {"walltime": 1.0}, "walltime: must be of type string")


def test_memory_is_a_slurm_option_of_nodes_with_known_memory():
    refused(POLARIS, {"mem_per_node_gb": 8}, "mem_per_node_gb: is not a known field")
    no_memory = load_profile("frontier", {"node": {"memory_gb": 0}})
    refused(
        (no_memory, {"account": "a"}),
        {"mem_per_node_gb": 8},
        "mem_per_node_gb: is not a known field",
    )


def test_lists_and_maps_are_bounded():
    repos = [f"r{i}.cern.ch" for i in range(33)]
    accepted(POLARIS, {"cvmfs_repos": repos[:32]})
    refused(POLARIS, {"cvmfs_repos": repos}, "cvmfs_repos: must have at most 32 items")
    refused(
        POLARIS, {"cvmfs_repos": ["a.cern.ch", "a.cern.ch"]}, "cvmfs_repos: must not repeat items"
    )
    env = {f"V{i}": "x" for i in range(33)}
    accepted(POLARIS, {"env": dict(list(env.items())[:32])})
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: env: "):
        validate(POLARIS[0], POLARIS[1] | {"env": env})


@pytest.mark.parametrize(
    ("site", "field", "good"),
    [
        (FRONTIER, "qos", "normal"),
        (FRONTIER, "reservation", "hackathon_1"),
        (FRONTIER, "constraint", "nvme&gpu|hbm"),
        (FRONTIER, "queue", "extended"),
        (POLARIS, "filesystems", "home:eagle"),
        (POLARIS, "queue", "prod"),
        (POLARIS, "container", "docker://ghcr.io/atlas/athena:24.0"),
        (POLARIS, "conda_env", "/lus/envs/py311"),
        (POLARIS, "walltime", "12:30:45"),
    ],
)
def test_scheduler_options_are_accepted_where_they_apply(site, field, good):
    accepted(site, {field: good})


@pytest.mark.parametrize(
    ("site", "field", "bad"),
    [
        (POLARIS, "qos", "normal"),
        (POLARIS, "reservation", "r"),
        (POLARIS, "constraint", "gpu"),
        (FRONTIER, "filesystems", "home"),
    ],
)
def test_options_of_the_other_scheduler_are_unknown(site, field, bad):
    refused(site, {field: bad}, f"{field}: is not a known field")


def test_local_takes_no_batch_options():
    for field in ("account", "queue", "qos", "filesystems"):
        refused((load_profile("local"), {}), {field: "x"}, f"{field}: is not a known field")


def test_constraint_and_filesystems_have_their_own_syntax():
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: filesystems: 'home,eagle'"):
        validate(POLARIS[0], POLARIS[1] | {"filesystems": "home,eagle"})
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: constraint: 'a b'"):
        validate(FRONTIER[0], FRONTIER[1] | {"constraint": "a b"})


def test_queue_is_free_where_the_site_lists_none():
    import yaml

    data = yaml.safe_load(Path(builtin_profile_dir(), "frontier.yaml").read_text())
    del data["limits"]["queues"]
    data["directives"].pop("queue_kind", None)
    open_queues = parse_profile(yaml.safe_dump(data), "f.yaml")
    validate(open_queues, {"account": "a", "queue": "any_queue"})


def test_gpus_times_ranks_must_fit_the_node():
    accepted(POLARIS, {"ranks_per_node": 4, "gpus_per_rank": 1, "cores_per_rank": 16})
    accepted(POLARIS, {"ranks_per_node": 2, "gpus_per_rank": 2})
    refused(
        POLARIS,
        {"ranks_per_node": 5, "gpus_per_rank": 1, "cores_per_rank": 1},
        "gpus_per_rank: 5 ranks x 1 GPUs needs 5 per node, but a polaris node has 4",
    )


def test_ranks_times_cores_must_fit_the_hardware_threads():
    accepted(POLARIS, {"ranks_per_node": 8, "cores_per_rank": 8})
    refused(
        POLARIS,
        {"ranks_per_node": 8, "cores_per_rank": 9},
        "cores_per_rank: 8 ranks x 9 cores exceeds the 64 hardware threads of a polaris node",
    )
    # without cores_per_rank, the ranks share the node's cores
    accepted(POLARIS, {"ranks_per_node": 64})


def test_walltime_up_to_the_site_limit():
    accepted(POLARIS, {"walltime": "24:00:00"})
    refused(POLARIS, {"walltime": "24:00:01"}, "walltime: 24:00:01 exceeds the site limit 24:00:00")
    refused(POLARIS, {"walltime": "00:00:00"}, "walltime: must be longer than 00:00:00")
    accepted(POLARIS, {"walltime": "00:00:01"})
    perlmutter = (load_profile("perlmutter"), {"account": "a"})
    accepted(perlmutter, {"walltime": "48:00:00"})


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [
        ("00:00:01", 1, "00:00:01"),
        ("00:01:00", 60, "00:01:00"),
        ("1:00:00", 3600, "01:00:00"),
        ("1:02:03", 3723, "01:02:03"),
        ("23:59:59", 86399, "23:59:59"),
        ("100:00:59", 360059, "100:00:59"),
    ],
)
def test_walltime_arithmetic(text, seconds, canonical):
    assert walltime_seconds(text) == seconds
    assert format_walltime(seconds) == canonical


def test_validate_wants_an_object():
    for config in (None, [], "nodes: 1", 1):
        with pytest.raises(ConfigError) as err:
            validate(POLARIS[0], config)
        assert str(err.value) == "user_endpoint_config: must be a JSON object"


def test_schema_names_its_profile_and_dialect():
    schema = user_config_schema(POLARIS[0])
    assert schema["title"] == "user_endpoint_config for site profile polaris"
    assert validator_for(schema, default=None) is Draft202012Validator


def test_account_is_required_only_without_a_profile_default():
    assert required_fields(FRONTIER[0]) == ["account"]
    with_account = load_profile("frontier", {"directives": {"account": "atlas"}})
    assert required_fields(with_account) == []
    validate(with_account, {})
    assert canonicalize(with_account, {})["account"] == "atlas"
    assert required_fields(load_profile("local")) == []


def test_defaults_come_from_the_profile():
    assert defaults(POLARIS[0]) == {
        "nodes": 1,
        "ranks_per_node": 1,
        "gpus_per_rank": 0,
        "walltime": "01:00:00",
        "max_blocks": 4,
        "cvmfs_repos": ["atlas.cern.ch", "atlas-condb.cern.ch", "sft.cern.ch", "unpacked.cern.ch"],
        "env": {},
        "queue": "debug",
        "filesystems": "home:eagle",
    }


def test_canonical_config_is_exactly_what_is_sent():
    config = {
        "account": "atlas",
        "ranks_per_node": 4,
        "gpus_per_rank": 1,
        "walltime": "2:30:00",
        "cvmfs_repos": ["sft.cern.ch", "atlas.cern.ch"],
        "env": {"B": "2", "A": "1"},
        "qos": "normal",
    }
    c = canonicalize(FRONTIER[0], config)
    assert c == {
        "account": "atlas",
        "cores_per_rank": 14,  # 56 usable cores shared by 4 ranks
        "cvmfs_repos": ["atlas.cern.ch", "sft.cern.ch"],
        "env": {"A": "1", "B": "2"},
        "gpus_per_rank": 1,
        "max_blocks": 4,
        "nodes": 1,
        "qos": "normal",
        "queue": "batch",
        "ranks_per_node": 4,
        "walltime": "02:30:00",
    }
    assert list(c["env"]) == ["A", "B"]
    assert config_key(c).startswith('{"account":"atlas","cores_per_rank":14,"cvmfs_repos":[')
    # a given cores_per_rank is kept; many ranks get at least one core each
    assert canonicalize(FRONTIER[0], config | {"cores_per_rank": 2})["cores_per_rank"] == 2
    many = canonicalize(FRONTIER[0], {"account": "a", "ranks_per_node": 112})
    assert many["cores_per_rank"] == 1


def test_local_canonical_config_has_no_batch_fields():
    c = canonicalize(load_profile("local"), {"walltime": "0:10:00"})
    assert c["walltime"] == "00:10:00"
    assert not {"account", "queue"} & set(c)


def test_list_and_map_values_must_be_strings():
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: cvmfs_repos\[0\]: .*string"):
        validate(POLARIS[0], POLARIS[1] | {"cvmfs_repos": [5]})
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: env\.A: .*string"):
        validate(POLARIS[0], POLARIS[1] | {"env": {"A": 5}})


def test_the_schema_alone_holds_the_boundary():
    # the endpoint enforces user_config_schema.json itself, before site-agent code runs
    check = Draft202012Validator(user_config_schema(POLARIS[0]))
    assert check.is_valid({"control": True})
    assert check.is_valid({"account": "a", "nodes": 2})
    for bad in ([], "x", {"control": True, "nodes": 1}, {"nodes": 2}, {"account": "a", "x": 1}):
        assert not check.is_valid(bad), bad


def test_control_config_needs_no_worker_shape():
    # a site whose limit is below the default walltime still runs control tasks
    short = load_profile("local", {"limits": {"max_walltime": "00:30:00"}})
    with pytest.raises(ConfigError, match=r"walltime: 01:00:00 exceeds the site limit 00:30:00"):
        validate(short, {})
    validate(short, {"control": True})
    assert canonicalize(short, {"control": True}) == {"control": True}


def test_canonicalize_refuses_what_validate_refuses():
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: nodes: must be <= 496$"):
        canonicalize(POLARIS[0], POLARIS[1] | {"nodes": 497})
