"""The endpoint's own schema holds each queue to its node range (limits.queues): what the
Globus Compute endpoint refuses before site-agent runs, for the shipped sites and for the
shapes a profile may give a queue (a maximum, a minimum, walltime bins, nothing)."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from siteagent.errors import ConfigError
from siteagent.profiles import load_profile, parse_profile
from siteagent.userconfig import user_config_schema, validate

SITE = """\
name: testsite
scheduler: slurm
launcher: srun
endpoint: {name: test-ep}
node: {cores: 8, gpus: 0}
limits:
  max_nodes: 100
  queues:
    - name: binned
      walltime_bins:
        - {max_nodes: 4, max_walltime: "02:00:00"}
        - {max_nodes: 8, max_walltime: "01:00:00"}
    - {name: big, min_nodes: 5}
    - {name: small, max_nodes: 3}
    - {name: open}
"""


def accepts(schema: Draft202012Validator, config: dict) -> bool:
    return not list(schema.iter_errors(config))


@pytest.mark.parametrize(
    ("site", "queue", "low", "high", "nodes_required"),
    [
        ("polaris", "prod", 10, 496, True),
        ("polaris", "debug", 1, 2, False),
        ("frontier", "extended", 1, 64, False),
        ("aurora", "debug-scaling", 2, 256, True),
        ("test", "binned", 1, 8, False),  # the last walltime bin's nodes
        ("test", "big", 5, 100, True),  # a minimum only: the site's maximum applies
        ("test", "small", 1, 3, False),
        ("test", "open", 1, 100, False),  # nothing of its own: the site's limits
    ],
)
def test_the_endpoint_schema_holds_each_queue_to_its_node_range(
    site, queue, low, high, nodes_required
):
    profile = parse_profile(SITE, source="x.yaml") if site == "test" else load_profile(site)
    schema = Draft202012Validator(user_config_schema(profile))
    request = {"account": "a", "queue": queue}
    assert accepts(schema, request | {"nodes": low}) and accepts(schema, request | {"nodes": high})
    assert not accepts(schema, request | {"nodes": low - 1})
    assert not accepts(schema, request | {"nodes": high + 1})
    assert accepts(schema, request) is not nodes_required


def test_site_agent_names_the_queue_whose_node_range_a_request_is_outside():
    profile = parse_profile(SITE, source="x.yaml")
    for queue, nodes, rule in (("big", 4, "at least 5"), ("small", 4, "1-3"), ("binned", 9, "1-8")):
        with pytest.raises(ConfigError) as err:
            validate(profile, {"account": "a", "queue": queue, "nodes": nodes})
        assert str(err.value) == (
            f"user_endpoint_config: nodes: {nodes} is outside queue {queue}'s {rule} nodes"
        )
    validate(profile, {"account": "a", "queue": "open", "nodes": 100})


def test_a_request_without_a_queue_is_held_to_the_site_limits_only():
    schema = Draft202012Validator(user_config_schema(parse_profile(SITE, source="x.yaml")))
    assert accepts(schema, {"account": "a", "nodes": 100})
    assert accepts(schema, {"account": "a", "nodes": 1})


def test_a_walltime_over_the_queue_limit_for_its_node_count_is_refused():
    profile = parse_profile(SITE, source="x.yaml")
    for nodes, walltime, limit in (
        (1, "02:00:01", "02:00:00 for 1 node"),
        (5, "1:30:00", "01:00:00 for 5 nodes"),
    ):
        with pytest.raises(ConfigError) as err:
            validate(
                profile, {"account": "a", "queue": "binned", "nodes": nodes, "walltime": walltime}
            )
        assert str(err.value) == (
            f"user_endpoint_config: walltime: {walltime} exceeds queue binned's limit {limit}"
        )
    validate(profile, {"account": "a", "queue": "binned", "nodes": 5, "walltime": "01:00:00"})


def test_the_scheduler_s_own_checks_are_part_of_validation():
    # Slurm: a queue that is the QOS, and a qos besides
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: qos: queue 'debug' is already"):
        validate(load_profile("perlmutter"), {"account": "m1", "queue": "debug", "qos": "premium"})
