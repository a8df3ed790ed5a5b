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
