"""What the schedulers and launchers promise a user, beyond tests/test_schedulers.py: the
registries' public names and errors, the user endpoint's provider and launcher as the endpoint
renders them, the typed Slurm options, GPUs per node, and the launchers' shell."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from siteagent import launchers, schedulers
from siteagent.errors import ConfigError
from siteagent.launchers import get_launcher, launcher_names
from siteagent.profiles import load_profile, parse_profile
from siteagent.schedulers import get_scheduler, scheduler_names
from siteagent.userconfig import validate
from siteagent.wrappers.render import render_batch_header


def bash(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", script],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=10,
    )


# ---------------------------------------------------------------- registries
@pytest.mark.parametrize("package", [schedulers, launchers])
def test_public_names_import_with_a_star(package):
    names: dict = {}
    exec(f"from {package.__name__} import *", names)
    assert set(package.__all__) <= set(names)


def test_unknown_names_are_refused_listing_every_known_one():
    with pytest.raises(ConfigError) as err:
        get_scheduler("lsf")
    known = ", ".join(scheduler_names())
    assert str(err.value) == f"scheduler: 'lsf' is not a known scheduler (one of: {known})"
    assert known == "slurm, pbspro, local"
    with pytest.raises(ConfigError) as err:
        get_launcher("aprun")
    known = ", ".join(launcher_names())
    assert str(err.value) == f"launcher: 'aprun' is not a known launcher (one of: {known})"
    assert known == "srun, mpiexec, none"


# ---------------------------------------------------------------- the user endpoint's provider
@pytest.mark.parametrize(
    ("site", "config", "provider", "launcher"),
    [
        ("perlmutter", {"account": "m1"}, "SlurmProvider", "SimpleLauncher"),
        ("polaris", {"account": "a"}, "PBSProProvider", "SimpleLauncher"),
        ("local", {}, "LocalProvider", "SingleNodeLauncher"),
    ],
)
def test_the_endpoint_renders_each_scheduler_s_provider_and_launcher(
    site, config, provider, launcher, tmp_path
):
    from siteagent.endpoint.render import render_endpoint, write_endpoint
    from siteagent.endpoint.validate import render_user_config

    write_endpoint(render_endpoint(load_profile(site)), tmp_path)
    rendered = yaml.safe_load(render_user_config(tmp_path, config))["engine"]["provider"]
    assert rendered["type"] == provider
    assert rendered["launcher"] == {"type": launcher}


# ---------------------------------------------------------------- Slurm
def test_slurm_options_must_be_strings_and_memory_a_positive_integer():
    perlmutter = load_profile("perlmutter")
    validate(perlmutter, {"account": "m1", "mem_per_node_gb": 1})
    for field, bad in (("account", 5), ("mem_per_node_gb", 0), ("mem_per_node_gb", "64")):
        with pytest.raises(ConfigError, match=rf"^user_endpoint_config: {field}: "):
            validate(perlmutter, {"account": "m1", field: bad})


def test_slurm_allocates_every_rank_s_gpus_on_each_node():
    request = {"account": "m1", "ranks_per_node": 2, "gpus_per_rank": 2, "nodes": 1}
    header = render_batch_header(load_profile("perlmutter"), request, "x")
    assert "#SBATCH --gpus-per-node=4\n" in header


# ---------------------------------------------------------------- launchers' shell
@pytest.mark.parametrize("name", ["srun", "mpiexec"])
def test_batch_launchers_start_the_ranks_and_exit_with_their_status(name):
    launcher = get_launcher(name)
    script = "launch=(sh -c 'echo started; exit 7')\n" + launcher.start_lines()
    out = bash(script)
    assert (out.returncode, out.stdout) == (7, "started\n")


@pytest.mark.parametrize("name", launcher_names())
def test_launcher_shell_has_no_final_newline(name):
    # the execution wrapper places the lines itself (see Launcher.launch_lines)
    launcher = get_launcher(name)
    profile = load_profile({"srun": "perlmutter", "mpiexec": "polaris", "none": "local"}[name])
    assert not launcher.start_lines().endswith("\n")
    assert not launcher.launch_lines(profile).endswith("\n")


def test_mpiexec_without_a_site_core_list_binds_by_depth():
    profile = load_profile("polaris", overrides={"node": {"cpu_bind": "depth"}})
    lines = get_launcher("mpiexec").launch_lines(profile)
    out = bash(
        "nodes=1 ranks=1 cores=8 total=1 self=/x\n" + lines + '\nprintf "%s\\n" "${launch[@]}"'
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[8] == "depth"


SLURM_SITE = """\
name: testsite
scheduler: slurm
launcher: srun
endpoint: {name: test-ep}
directives: {queue_kind: KIND}
node: {cores: 8, gpus: 0}
"""


@pytest.mark.parametrize("kind", ["qos", "partition"])
def test_a_slurm_site_without_a_queue_table_sends_any_queue_as_its_queue_kind(kind):
    profile = parse_profile(SLURM_SITE.replace("KIND", kind), source="x.yaml")
    header = render_batch_header(profile, {"account": "a", "queue": "anyq", "nodes": 1}, "x")
    assert f"#SBATCH --{kind}=anyq\n" in header
    assert header.count("anyq") == 1 and header.count("--account=a\n") == 1


def test_every_queue_a_qos_whether_its_entry_says_so_or_not():
    # NERSC-like: queue_kind qos, one queue's entry stating kind: qos; the provider block
    # then renders every queue as a QOS (no list of QOS queues)
    queues = [{"name": "debug", "kind": "qos"}, {"name": "regular"}]
    perlmutter = load_profile("perlmutter", overrides={"limits": {"queues": queues}})
    assert get_scheduler("slurm").template_context(perlmutter) == {"qos_queues": "none"}
    header = render_batch_header(perlmutter, {"account": "m1", "queue": "regular"}, "x")
    assert "#SBATCH --qos=regular\n" in header and "--partition" not in header


def test_a_qos_given_as_queue_and_as_qos_is_refused_saying_how():
    with pytest.raises(ConfigError) as err:
        validate(load_profile("perlmutter"), {"account": "m1", "queue": "debug", "qos": "premium"})
    assert str(err.value) == (
        "user_endpoint_config: qos: queue 'debug' is already the QOS at perlmutter; "
        "give the QOS as queue alone"
    )
