"""Endpoint files: rendered per profile, checked by globus-compute-endpoint's own code."""

from __future__ import annotations

import json
import os
import stat

import pytest
import yaml

from siteagent.endpoint.render import ENDPOINT_FILES, render_endpoint, write_endpoint
from siteagent.endpoint.validate import load_parent_config, render_user_config, validate_endpoint
from siteagent.errors import ConfigError
from siteagent.managed import MANIFEST, UserEditedError
from siteagent.profiles import load_profile
from siteagent.schedulers.slurm import queue_kind

from .conftest import PROFILE_NAMES

CONFIGS = {
    "local": [
        {},
        {"ranks_per_node": 2, "walltime": "0:30:00"},
        {"env": {"FOO": "bar"}, "container": "docker://busybox:1"},
    ],
    "perlmutter": [
        {"account": "m1234"},
        {"account": "m1234", "queue": "debug", "nodes": 4, "ranks_per_node": 4, "gpus_per_rank": 1},
        {
            "account": "m1234",
            "mem_per_node_gb": 200,
            "reservation": "hackathon",
            "queue": "premium",
        },
    ],
    "polaris": [
        {"account": "ATLAS-HEP"},
        {
            "account": "ATLAS-HEP",
            "queue": "prod",
            "nodes": 10,
            "ranks_per_node": 4,
            "gpus_per_rank": 1,
        },
        {
            "account": "ATLAS-HEP",
            "filesystems": "home:eagle:grand",
            "container": "/cvmfs/unpacked.cern.ch/x:y",
        },
    ],
    "aurora": [
        {"account": "hep"},
        {"account": "hep", "ranks_per_node": 12, "gpus_per_rank": 1, "nodes": 2},
        {"account": "hep", "conda_env": "mobo/env.yml", "cvmfs_repos": ["atlas.cern.ch"]},
    ],
    "frontier": [
        {"account": "hep123"},
        {"account": "hep123", "ranks_per_node": 8, "gpus_per_rank": 1, "queue": "extended"},
        {"account": "hep123", "walltime": "02:00:00", "max_blocks": 2, "constraint": "nvme"},
    ],
}
PROVIDERS = {"local": "LocalProvider", "slurm": "SlurmProvider", "pbspro": "PBSProProvider"}


@pytest.fixture
def endpoint_dir(tmp_path):
    def make(site):
        d = tmp_path / site
        write_endpoint(render_endpoint(load_profile(site)), d)
        return d

    return make


@pytest.mark.parametrize("site", PROFILE_NAMES)
def test_parent_config_is_a_template_endpoint(site, endpoint_dir):
    d = endpoint_dir(site)
    assert sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) == sorted(
        ENDPOINT_FILES
    )
    parent = load_parent_config(d)
    assert type(parent).__name__ == "CoreEndpointConfig"
    json.loads((d / "user_config_schema.json").read_text())
    assert isinstance(yaml.safe_load((d / "user_environment.yaml").read_text()) or {}, dict)


@pytest.mark.parametrize(("site", "index"), [(s, i) for s in PROFILE_NAMES for i in range(3)])
def test_every_profile_renders_and_loads_with_the_endpoint_loader(site, index, endpoint_dir):
    profile = load_profile(site)
    config = CONFIGS[site][index]
    result = validate_endpoint(endpoint_dir(site), config)
    try:
        engine = result.config.engine
        provider = engine.provider
        assert result.engine_type == "GlobusComputeEngine"
        assert result.provider_type == PROVIDERS[profile.scheduler]
        assert provider.nodes_per_block == config.get("nodes", 1)
        assert f"export SITE_AGENT_SITE={site}" in provider.worker_init
        assert (
            f"export SITE_AGENT_RANKS_PER_NODE={config.get('ranks_per_node', 1)}"
            in provider.worker_init
        )
        if profile.scheduler == "slurm":
            assert provider.account == config["account"]
            queue = config.get("queue", profile.directives.queue)
            if queue_kind(profile, queue) == "qos":  # NERSC: the queue is a QOS
                assert (provider.qos, provider.partition) == (queue, None)
            else:
                assert provider.partition == queue
            assert (
                provider.walltime
                == f"{int(config.get('walltime', '01:00:00').split(':')[0]):02d}:"
                + config.get("walltime", "01:00:00").split(":", 1)[1]
            )
            if "reservation" in config:
                assert (
                    f"#SBATCH --reservation={config['reservation']}" in provider.scheduler_options
                )
            gpus = config.get("ranks_per_node", 1) * config.get("gpus_per_rank", 0)
            assert provider.gpus_per_node == (gpus or None)
        if profile.scheduler == "pbspro":
            assert provider.account == config["account"]
            assert provider.queue == config.get("queue", profile.directives.queue)
            fs = config.get("filesystems", profile.directives.filesystems)
            assert f"#PBS -l filesystems={fs}\n" in provider.scheduler_options + "\n"
        if "container" in config:
            assert f'export SITE_AGENT_CONTAINER="{config["container"]}"' in provider.worker_init
        for key, value in config.get("env", {}).items():
            assert f'export {key}="{value}"' in provider.worker_init
    finally:
        result.config.engine.shutdown()


def test_proxy_reaches_compute_nodes_and_login_environment(endpoint_dir):
    d = endpoint_dir("polaris")
    env = yaml.safe_load((d / "user_environment.yaml").read_text())
    assert env["https_proxy"] == env["HTTPS_PROXY"] == "http://proxy.alcf.anl.gov:3128"
    rendered = render_user_config(d, {"account": "a"})
    assert "export https_proxy=http://proxy.alcf.anl.gov:3128" in rendered
    # Aurora: only compute nodes use the proxy, the login node has none
    aurora = endpoint_dir("aurora")
    assert "proxy" not in (aurora / "user_environment.yaml").read_text().lower()
    assert "export http_proxy=http://proxy.alcf.anl.gov:3128" in render_user_config(
        aurora, {"account": "a"}
    )


@pytest.mark.parametrize("bad", ["x\ny", "x;y", "x$y", "`x`"])
def test_endpoint_itself_refuses_injection(bad, endpoint_dir):
    """The schema file is enforced by globus-compute-endpoint's own render function."""
    d = endpoint_dir("perlmutter")
    for field in ("account", "constraint", "reservation", "container", "conda_env"):
        with pytest.raises(ConfigError, match=f"^user_endpoint_config: {field}: "):
            render_user_config(
                d, {"account": "a", field: bad} if field != "account" else {field: bad}
            )


def test_reserved_template_words_are_refused(endpoint_dir):
    with pytest.raises(ConfigError, match="user_endpoint_config: "):
        render_user_config(endpoint_dir("local"), {"_GC": "x"})


def test_endpoint_dir_gets_the_execution_wrapper_as_launch_path(tmp_path):
    d = tmp_path / "ep"
    write_endpoint(render_endpoint(load_profile("frontier"), d), d)
    wrapper = d / "bin" / "site-agent-exec"
    assert stat.S_IMODE(wrapper.stat().st_mode) == 0o755
    assert "ROCR_VISIBLE_DEVICES" in wrapper.read_text()
    rendered = render_user_config(d, {"account": "a"})
    assert f"export SITE_AGENT_EXEC={wrapper}" in rendered


def test_rewrite_is_idempotent_and_atomic(tmp_path):
    rendered = render_endpoint(load_profile("polaris"))
    first = write_endpoint(rendered, tmp_path / "ep")
    assert sorted(first.written) == sorted(ENDPOINT_FILES)
    second = write_endpoint(rendered, tmp_path / "ep")
    assert second.written == [] and sorted(second.unchanged) == sorted(ENDPOINT_FILES)
    leftovers = [p.name for p in (tmp_path / "ep").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    mode = stat.S_IMODE(os.stat(tmp_path / "ep" / "user_environment.yaml").st_mode)
    assert mode == 0o600


def test_user_edits_are_never_silently_overwritten(tmp_path):
    d = tmp_path / "ep"
    write_endpoint(render_endpoint(load_profile("local")), d)
    edited = (d / "user_config_template.yaml.j2").read_text() + "\n# my site tweak\n"
    (d / "user_config_template.yaml.j2").write_text(edited)
    newer = render_endpoint(load_profile("polaris"))
    with pytest.raises(UserEditedError, match=r"user_config_template\.yaml\.j2 edited"):
        write_endpoint(newer, d)
    assert (d / "user_config_template.yaml.j2").read_text() == edited
    assert "polaris" not in (d / "config.yaml").read_text()  # nothing written at all
    report = write_endpoint(newer, d, force=True)
    assert report.backed_up == ["user_config_template.yaml.j2"]
    assert (report.backup_dir / "user_config_template.yaml.j2").read_text() == edited
    assert "polaris" in (d / "config.yaml").read_text()
    manifest = json.loads((d / MANIFEST).read_text())
    assert set(manifest["files"]) == set(ENDPOINT_FILES)


def test_unmanaged_existing_file_is_not_overwritten(tmp_path):
    d = tmp_path / "ep"
    d.mkdir()
    (d / "config.yaml").write_text("display_name: mine\n")
    with pytest.raises(UserEditedError):
        write_endpoint(render_endpoint(load_profile("local")), d)
    assert (d / "config.yaml").read_text() == "display_name: mine\n"


def test_broken_template_is_reported_with_its_path(endpoint_dir):
    d = endpoint_dir("local")
    (d / "user_config_template.yaml.j2").write_text("engine: {{ nosuchvar }}\n")
    with pytest.raises(ConfigError, match=r"user_config_template\.yaml\.j2: UndefinedError"):
        render_user_config(d, {})


@pytest.mark.parametrize("site", PROFILE_NAMES)
def test_control_config_runs_on_the_login_node(site, tmp_path):
    profile = load_profile(site)
    write_endpoint(render_endpoint(profile, tmp_path), tmp_path)
    result = validate_endpoint(tmp_path, {"control": True})
    provider = result.config.engine.executor.provider
    assert result.provider_type == "LocalProvider"
    assert (provider.nodes_per_block, provider.init_blocks, provider.max_blocks) == (1, 0, 1)
    assert f"export SITE_AGENT_EXEC={tmp_path}/bin/site-agent-exec" in provider.worker_init


@pytest.mark.parametrize("site", PROFILE_NAMES)
def test_batch_jobs_tell_the_pilot_wrapper_when_they_started(site, tmp_path):
    profile = load_profile(site)
    write_endpoint(render_endpoint(profile, tmp_path), tmp_path)
    account = {"account": "a"} if profile.scheduler != "local" else {}
    worker_init = validate_endpoint(tmp_path, account).config.engine.executor.provider.worker_init
    control = validate_endpoint(tmp_path, {"control": True}).config.engine.executor.provider
    batch = profile.scheduler != "local"
    assert ("export SITE_AGENT_JOB_START=$(date +%s)" in worker_init) is batch
    assert "SITE_AGENT_JOB_START" not in control.worker_init
