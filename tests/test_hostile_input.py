"""The adversarial corpus: every user_endpoint_config field of every shipped profile, given
each hostile value, goes through the endpoint's own ``render_config_user_template`` (with the
rendered ``user_config_schema.json``, as globus-compute-endpoint runs it when a task arrives)
and must be refused with one line naming the field; a traceback is a failure.

The totals are the README's (Security): the test checks the README states them.
"""

from __future__ import annotations

import math
import re

import pytest

from siteagent.endpoint.render import render_endpoint, write_endpoint
from siteagent.endpoint.validate import load_endpoint_template, render_loaded
from siteagent.errors import ConfigError
from siteagent.profiles import load_profile
from siteagent.userconfig import required_fields, user_config_schema

from .conftest import PROFILE_NAMES, REPO

MB = 1024 * 1024
# suffixes appended to a valid value (so only the hostile part can be refused) ...
SUFFIXES = {
    "newline": "x\ny",
    "trailing newline": "\n",
    "CR": "\r",
    "NUL": "\x00",
    "U+2028": "\u2028",
    "semicolon": ";id",
    "command substitution": "$(id)",
    "backtick": "`id`",
}
# ... and whole values
WHOLE = {
    "jinja expression": "{{ _GC.env }}",
    "jinja statement": "{% for k in _GC.env %}{{ k }}{% endfor %}",
    "1 MB string": "a" * MB,
    "NaN": math.nan,
    "1.0 for an integer": 1.0,
    "negative": -1,
    "huge": 10**30,
}
KINDS = len(SUFFIXES) + len(WHOLE)


def _valid(name: str, prop: dict) -> object:
    """A value the schema accepts for ``name`` (hostile variants are built from it)."""
    if "enum" in prop:
        return prop["enum"][0]
    if prop.get("type") == "integer":
        return 1
    return {
        "walltime": "01:00:00",
        "container": "docker://ghcr.io/atlas/image:1",
        "filesystems": "home:eagle",
        "constraint": "gpu&hbm80g",
    }.get(name, "a1")


def _hostile_values(valid: object) -> list[tuple[str, object]]:
    text = str(valid)
    return [(k, text + s) for k, s in SUFFIXES.items()] + list(WHOLE.items())


def _cases(name: str, prop: dict) -> list[tuple[str, object]]:
    """(label, value of the field) for every hostile value, placed where the field takes it:
    the field itself, an item of a list, the value and the key of a mapping."""
    if name == "cvmfs_repos":
        return [(k, [v]) for k, v in _hostile_values("atlas.cern.ch")]
    if name == "env":
        values = [(f"value {k}", {"FOO": v}) for k, v in _hostile_values("x")]
        keys = [(f"key {k}", {v: "x"}) for k, v in _hostile_values("FOO") if isinstance(v, str)]
        return values + keys
    if name == "control":
        return _hostile_values("true")
    return _hostile_values(_valid(name, prop))


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory):
    out = {}
    for site in PROFILE_NAMES:
        profile = load_profile(site)
        d = tmp_path_factory.mktemp(site)
        write_endpoint(render_endpoint(profile, d), d)
        out[site] = (profile, load_endpoint_template(d))
    return out


def run_corpus(endpoints) -> dict[str, int]:
    """Render every case; count what was tried, refused in one line naming the field, and
    anything else (accepted, several lines, another exception)."""
    tried = refused = 0
    problems: list[str] = []
    for site, (profile, loaded) in endpoints.items():
        base = {name: "a1" for name in required_fields(profile)}
        render_loaded(loaded, base)  # the base is fine: a refusal is the hostile value's
        for name, prop in user_config_schema(profile)["properties"].items():
            for label, value in _cases(name, prop):
                tried += 1
                config = {name: value} if name == "control" else base | {name: value}
                try:
                    render_loaded(loaded, config)
                    problems.append(f"{site} {name} {label}: accepted")
                except ConfigError as err:
                    text = str(err)
                    if "\n" in text or f"user_endpoint_config: {name}" not in text:
                        problems.append(f"{site} {name} {label}: {text[:200]!r}")
                    else:
                        refused += 1
                except Exception as err:
                    problems.append(f"{site} {name} {label}: {type(err).__name__}: {err}"[:300])
    return {"tried": tried, "refused": refused, "problems": len(problems), "list": problems}


@pytest.mark.slow  # about a minute: each render checks the schema first, as the endpoint does
def test_every_field_refuses_every_hostile_value_on_every_profile(endpoints):
    result = run_corpus(endpoints)
    assert result["list"] == []
    assert result["refused"] == result["tried"] > 5 * 10 * KINDS
    readme = (REPO / "README.md").read_text()
    stated = re.search(r"(\d[\d,]*) hostile `user_endpoint_config` inputs", readme)
    assert stated, "README's security section states the corpus totals"
    assert int(stated[1].replace(",", "")) == result["tried"]


@pytest.mark.parametrize("site", PROFILE_NAMES)
def test_the_corpus_names_every_field_of_the_schema(site, endpoints):
    # a new option is in the corpus without editing this file: fields come from the schema
    profile, _ = endpoints[site]
    props = user_config_schema(profile)["properties"]
    assert {"nodes", "walltime", "env", "cvmfs_repos", "container", "control"} <= set(props)


def test_site_limits_are_the_endpoints_own(endpoints):
    """What issue #11 found the endpoint accepting, refused by the endpoint itself."""
    _, loaded = endpoints["perlmutter"]
    cases = {
        "walltime: must be longer than 00:00:00": {"walltime": "0:00:00"},
        "walltime: 999:59:59 exceeds the site limit 48:00:00": {"walltime": "999:59:59"},
        "gpus_per_rank: with 4 ranks per node a perlmutter node (4 GPUs) has at most 1": {
            "ranks_per_node": 4,
            "gpus_per_rank": 4,
        },
        "cores_per_rank: with 2 ranks per node": {"ranks_per_node": 2, "cores_per_rank": 65},
        "gpus_per_rank: must be a whole number": {"gpus_per_rank": 1.0},
        "nodes: must be a whole number": {"nodes": 2.0},
        "account: must not contain a line break": {"account": "P1\n"},
        "env: has a key 'LD_PRELOAD'": {"env": {"LD_PRELOAD": "/tmp/x.so"}},
        "env: has a key 'SITE_AGENT_JOB_START'": {"env": {"SITE_AGENT_JOB_START": "0"}},
        "env: has a key 'BASH_ENV'": {"env": {"BASH_ENV": "/tmp/x"}},
    }
    for message, bad in cases.items():
        with pytest.raises(ConfigError, match=re.escape(message)):
            render_loaded(loaded, {"account": "m1"} | bad)
    # the limits themselves still pass
    ok = {"account": "m1", "walltime": "48:00:00", "ranks_per_node": 4, "gpus_per_rank": 1}
    assert 'SITE_AGENT_WALLTIME="48:00:00"' in render_loaded(loaded, ok)


def test_a_pbs_account_with_a_newline_never_reaches_qsub(endpoints):
    _, loaded = endpoints["polaris"]
    with pytest.raises(ConfigError, match="account: must not contain a line break"):
        render_loaded(loaded, {"account": "P1\n"})
    assert '    account: "P1"\n' in render_loaded(loaded, {"account": "P1"})


def test_env_key_with_newline_is_one_line_not_a_yaml_traceback(endpoints):
    _, loaded = endpoints["local"]
    with pytest.raises(ConfigError, match="env: has a key"):
        render_loaded(loaded, {"env": {"FOO\n": "x"}})


def test_corpus_runs_in_bounded_time(endpoints):
    import time

    _, loaded = endpoints["polaris"]
    t = time.monotonic()
    with pytest.raises(ConfigError):
        render_loaded(loaded, {"account": "a" * MB})
    assert time.monotonic() - t < 5
