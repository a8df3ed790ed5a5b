"""user_endpoint_config: schema is tight, canonical form is stable."""

from __future__ import annotations

import pytest

from siteagent.errors import ConfigError
from siteagent.profiles import load_profile
from siteagent.userconfig import (
    canonicalize,
    config_key,
    required_fields,
    user_config_schema,
    validate,
)

from .conftest import PROFILE_NAMES

INJECTIONS = ["a\nb", "a;b", "a$b", "a`b`", "$(id)", "a b", 'a"b', "a'b", "a\\b", "a{{b}}", "a\rb"]


def _string_fields(schema):
    """(field, sample-good-value) for every free-text string option in a schema."""
    for name, prop in schema["properties"].items():
        if prop.get("type") == "string" and "pattern" in prop:
            yield name


@pytest.mark.parametrize("site", PROFILE_NAMES)
def test_schema_is_closed(site):
    schema = user_config_schema(load_profile(site))
    assert schema["additionalProperties"] is False
    for name, prop in schema["properties"].items():
        assert (
            "enum" in prop
            or "const" in prop
            or prop["type"] in ("integer", "array", "object")
            or "pattern" in prop
        ), name


@pytest.mark.parametrize("site", PROFILE_NAMES)
@pytest.mark.parametrize("bad", INJECTIONS)
def test_every_string_field_refuses_shell_and_newlines(site, bad):
    profile = load_profile(site)
    schema = user_config_schema(profile)
    base = {"account": "acct"} if "account" in required_fields(profile) else {}
    fields = list(_string_fields(schema))
    assert fields, "schema has string fields"
    for field in fields:
        with pytest.raises(ConfigError, match=f"^user_endpoint_config: {field}: "):
            validate(profile, base | {field: bad})
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: env"):
        validate(profile, base | {"env": {"OK": bad}})
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: cvmfs_repos\[0\]"):
        validate(profile, base | {"cvmfs_repos": [bad]})


@pytest.mark.parametrize("key", ["A;B", "a", "PATH=x", "X\nY", "1X"])
def test_env_names_are_checked(key):
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: env: has a key"):
        validate(load_profile("local"), {"env": {key: "v"}})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"nodes": 0}, "nodes: must be >= 1"),
        ({"nodes": 2}, "nodes: must be <= 1"),
        ({"nodes": "1"}, "nodes: must be of type integer"),
        ({"colour": "red"}, "colour: is not a known field"),
        ({"walltime": "1h"}, "walltime: '1h' has characters"),
        ({"walltime": "00:00:00"}, "walltime: must be longer than 00:00:00"),
        ({"walltime": "25:00:00"}, "walltime: 25:00:00 exceeds the site limit 24:00:00"),
        ({"ranks_per_node": 0}, "ranks_per_node: must be >= 1"),
    ],
)
def test_bad_local_configs(config, message):
    with pytest.raises(ConfigError) as err:
        validate(load_profile("local"), config)
    assert str(err.value).startswith(f"user_endpoint_config: {message}")
    assert "\n" not in str(err.value)


def test_more_gpus_than_the_node_has():
    with pytest.raises(
        ConfigError,
        match=r"gpus_per_rank: 4 ranks x 2 GPUs needs 8 per node, but a polaris node has 4",
    ):
        validate(load_profile("polaris"), {"account": "a", "ranks_per_node": 4, "gpus_per_rank": 2})


def test_queue_is_an_enum_of_the_site_queues():
    with pytest.raises(ConfigError, match="queue: must be one of: debug, debug-scaling, prod"):
        validate(load_profile("polaris"), {"account": "a", "queue": "nosuch"})


def test_account_required_where_the_profile_has_none():
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: account: is required$"):
        validate(load_profile("frontier"), {})


def test_equal_shapes_canonicalise_to_the_same_config():
    p = load_profile("polaris")
    a = canonicalize(
        p,
        {
            "account": "atlas",
            "walltime": "1:00:00",
            "cvmfs_repos": ["sft.cern.ch", "atlas.cern.ch"],
        },
    )
    b = canonicalize(
        p,
        {
            "cvmfs_repos": ["atlas.cern.ch", "sft.cern.ch"],
            "walltime": "01:00:00",
            "account": "atlas",
            "queue": "debug",
        },
    )
    assert a == b
    assert config_key(a) == config_key(b)
    assert list(a) == sorted(a)
    c = canonicalize(p, {"account": "atlas", "nodes": 2})
    assert config_key(c) != config_key(a)


def test_canonical_config_passes_its_own_schema():
    for site in PROFILE_NAMES:
        p = load_profile(site)
        c = canonicalize(
            p,
            {"account": "acct"} if site in ("frontier", "polaris", "aurora", "perlmutter") else {},
        )
        validate(p, c)
        assert c["cores_per_rank"] >= 1


@pytest.mark.parametrize("site", PROFILE_NAMES)
def test_control_config_stands_alone(site):
    profile = load_profile(site)
    assert canonicalize(profile, {"control": True}) == {"control": True}
    with pytest.raises(
        ConfigError, match=r"^user_endpoint_config: control: takes no other option$"
    ):
        validate(profile, {"control": True, "nodes": 1})
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: control: "):
        validate(profile, {"control": False})
