"""Site profiles: every shipped one is valid, bad ones fail with file:line: field: problem."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from siteagent.errors import ConfigError
from siteagent.profiles import (
    builtin_profile_dir,
    list_profiles,
    load_profile,
    parse_profile,
    profile_schema,
)

from .conftest import PROFILE_NAMES

GOOD = """\
name: testsite
scheduler: slurm
launcher: srun
endpoint:
  name: test-ep
node:
  cores: 8
  gpus: 2
  gpu_vendor: nvidia
  gpu_binding:
    variable: CUDA_VISIBLE_DEVICES
"""


def test_shipped_profiles_are_exactly_the_five_sites():
    names = {p.stem for p in Path(builtin_profile_dir()).glob("*.yaml")}
    assert names == set(PROFILE_NAMES)


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_shipped_profile_loads_with_defaults_filled(name):
    p = load_profile(name)
    assert p.name == name
    assert p.scheduler in ("slurm", "pbspro", "local")
    assert isinstance(p.node.cores, int) and p.node.cores > 0
    assert p.endpoint.amqp_port in (443, 5671, 5672)
    assert p.check.targets


def test_site_facts():
    polaris, aurora, frontier, perlmutter = (
        load_profile(n) for n in ("polaris", "aurora", "frontier", "perlmutter")
    )
    assert (polaris.scheduler, polaris.launcher) == ("pbspro", "mpiexec")
    assert polaris.proxy.http == "http://proxy.alcf.anl.gov:3128"
    assert polaris.cvmfs.mode == "cvmfsexec"
    assert aurora.node.gpu_slots == 12 and aurora.node.gpu_binding.variable == "ZE_AFFINITY_MASK"
    assert aurora.proxy.scope == "compute"
    assert frontier.node.gpu_binding.unset == ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
    assert perlmutter.cvmfs.mode == "native"
    assert "--module=cvmfs" in perlmutter.directives.extra


def test_list_profiles_sees_search_path_first(tmp_path, monkeypatch):
    (tmp_path / "polaris.yaml").write_text(GOOD.replace("testsite", "polaris"))
    monkeypatch.setenv("SITE_AGENT_PROFILE_PATH", str(tmp_path))
    found = dict(list_profiles())
    assert found["polaris"] == str(tmp_path / "polaris.yaml")
    assert load_profile("polaris").scheduler == "slurm"


def test_profile_by_path(tmp_path):
    f = tmp_path / "mysite.yaml"
    f.write_text(GOOD)
    assert load_profile(str(f)).name == "testsite"


def test_unknown_profile_lists_known_ones():
    with pytest.raises(ConfigError, match=r"unknown site profile 'nosuch' \(known: .*polaris"):
        load_profile("nosuch")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("  gpus: 2", "  gpus: -1"), "x.yaml:8: node.gpus: "),
        (("scheduler: slurm", "scheduler: lsf"), "x.yaml:2: scheduler: must be one of: slurm"),
        (
            ("  cores: 8", "  cores: 8\n  colour: red"),
            "x.yaml:8: node.colour: is not a known field",
        ),
        (("  name: test-ep", "  name: Bad Name"), "x.yaml:5: endpoint.name: 'Bad Name' has"),
        (("node:", "nodes:"), "x.yaml:6: nodes: is not a known field"),
        (("    variable: CUDA_VISIBLE_DEVICES", "    variable: FOO"), "node.gpu_binding.variable"),
    ],
)
def test_bad_profile_names_file_line_and_field(edit, expected):
    text = GOOD.replace(*edit)
    with pytest.raises(ConfigError) as err:
        parse_profile(text, source="x.yaml")
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_missing_required_field_is_named():
    text = GOOD.replace("endpoint:\n  name: test-ep\n", "")
    with pytest.raises(ConfigError, match=r"^x\.yaml:1: endpoint: is required$"):
        parse_profile(text, source="x.yaml")


def test_shell_metacharacters_in_profile_directives_are_refused():
    text = GOOD + "directives:\n  account: 'abc;rm -rf'\n"
    with pytest.raises(ConfigError, match=r"x\.yaml:13: directives\.account: .*not allowed"):
        parse_profile(text, source="x.yaml")


def test_invalid_yaml_names_the_line():
    with pytest.raises(ConfigError, match=r"^x\.yaml:3: invalid YAML"):
        parse_profile("name: a\nscheduler: slurm\n  bad: [\n", source="x.yaml")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"launcher": "mpiexec"}, "launcher: 'mpiexec' does not go with scheduler 'slurm'"),
        ({"node": {"gpu_vendor": "none"}}, "node.gpu_vendor: must name the vendor"),
        ({"node": {"reserved_cores": [8]}}, "node.reserved_cores: every core must be < node.cores"),
        (
            {"node": {"cores": 2, "reserved_cores": [0, 1]}},
            "node.reserved_cores: must leave at least one core",
        ),
        (
            {"directives": {"queue": "x"}, "limits": {"queues": ["a"]}},
            "directives.queue: 'x' is not in limits.queues",
        ),
    ],
)
def test_cross_field_rules(extra, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_profile(GOOD, source="x.yaml", overrides=extra)


def test_overrides_merge_deeply():
    p = parse_profile(GOOD, source="x.yaml", overrides={"node": {"gpus": 1}})
    assert p.node.gpus == 1 and p.node.cores == 8


def test_local_profile_resolves_auto_from_this_machine():
    import os

    p = load_profile("local")
    assert p.node.cores == os.cpu_count()
    assert p.node.memory_gb >= 0
    assert (
        yaml.safe_load(Path(builtin_profile_dir(), "local.yaml").read_text())["node"]["cores"]
        == "auto"
    )


def test_section_classes_and_the_schema_name_the_same_keys():
    # the dataclasses hold the defaults, the schema says what is allowed: neither may know a
    # key the other does not, or a profile key would be accepted and then ignored
    from siteagent.sections import SECTIONS, GpuBinding

    schema = profile_schema()["properties"]
    for name, cls in SECTIONS.items():
        assert set(schema[name]["properties"]) == {f.name for f in fields(cls)}, name
    binding = schema["node"]["properties"]["gpu_binding"]["properties"]
    assert set(binding) == {f.name for f in fields(GpuBinding)}
    assert set(schema["environment"]["properties"]["conda"]["properties"]) == {"manager", "root"}


def test_a_minimal_profile_reads_every_default_through_its_sections():
    p = parse_profile(
        "name: tiny\nscheduler: local\nlauncher: none\nendpoint: {name: tiny}\n"
        "node: {cores: 4, gpus: 0}\n",
        source="tiny.yaml",
    )
    assert p.endpoint.amqp_port == 443 and p.endpoint.max_blocks == 1
    assert p.endpoint.display_name is None and p.endpoint.address is None
    assert p.directives.exclusive is True and p.directives.extra == ()
    assert p.limits.max_walltime == "24:00:00" and p.limits.queues is None
    assert p.node.threads_per_core == 1 and p.node.gpu_binding is None
    assert p.proxy.http is None and p.proxy.scope == "all"
    assert p.container.runtime == "none" and p.container.env == {}
    assert p.cvmfs.quota_mb == 4000 and p.cvmfs.repositories == ()
    assert p.environment.conda.manager == "auto"
    assert (p.pilot.instance, p.pilot.job_label) == ("cern", "managed")
    # left out, the server is the instance's (as the PanDA check reads it)
    assert (p.pilot.server_url, p.pilot.server_port) == ("https://pandaserver.cern.ch", 25443)
    assert p.credentials.require == "any" and p.credentials.min_lifetime == 3600
    assert p.check.min_free_gb == 5 and p.check.scratch_dirs == ()
    # the same defaults are what `profiles show` prints
    assert p.data["pilot"]["instance"] == "cern"
    assert p.data["environment"]["conda"] == {"manager": "auto"}
    assert "display_name" not in p.data["endpoint"]


def test_sections_are_read_only():
    import dataclasses

    p = load_profile("polaris")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.pilot.server_port = 1  # type: ignore[misc]
    assert isinstance(p.directives.extra, tuple)
