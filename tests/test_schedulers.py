"""Schedulers and launchers: what each one writes (directives, commands, shell) and the
registries that map a profile's ``scheduler:``/``launcher:`` names to them."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from siteagent.errors import ConfigError
from siteagent.launchers import LAUNCHERS, get_launcher, launcher_for, launcher_names
from siteagent.profiles import load_profile, parse_profile, profile_schema
from siteagent.schedulers import (
    SCHEDULERS,
    Scheduler,
    all_fields,
    cancel_command,
    get_scheduler,
    job_id_expr,
    job_id_vars,
    scheduler_for,
    scheduler_names,
)
from siteagent.userconfig import canonicalize, user_config_schema, validate
from siteagent.wrappers.render import render_batch_header


def bash(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``script`` in a real bash with only ``env`` (and PATH) set."""
    return subprocess.run(
        ["bash", "-c", script],
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=10,
    )


# --- registries ---------------------------------------------------------------------------


def test_registries_know_the_shipped_names_in_order():
    assert scheduler_names() == ("slurm", "pbspro", "local")
    assert launcher_names() == ("srun", "mpiexec", "none")
    assert all_fields() == ("account", "queue", "qos", "constraint", "reservation", "filesystems")


@pytest.mark.parametrize(
    ("lookup", "name", "field"),
    [(get_scheduler, "lsf", "scheduler"), (get_launcher, "jsrun", "launcher")],
)
def test_registry_refuses_an_unknown_name_in_one_line_naming_the_field(lookup, name, field):
    with pytest.raises(ConfigError) as err:
        lookup(name)
    message = str(err.value)
    assert message.startswith(f"{field}: '{name}' is not a known {field} (one of: ")
    assert "\n" not in message


def test_profile_schema_takes_its_names_from_the_registries():
    props = profile_schema()["properties"]
    assert props["scheduler"]["enum"] == list(SCHEDULERS)
    assert props["launcher"]["enum"] == list(LAUNCHERS)


# --- Slurm --------------------------------------------------------------------------------


def test_perlmutter_header_asks_for_what_the_request_names():
    header = render_batch_header(
        load_profile("perlmutter"),
        {
            "account": "m1234",
            "nodes": 2,
            "ranks_per_node": 4,
            "gpus_per_rank": 1,
            "walltime": "2:00:00",
        },
        "pilot-1",
    )
    assert header == (
        "#!/bin/bash\n"
        "#SBATCH --job-name=pilot-1\n"
        "#SBATCH --nodes=2\n"
        "#SBATCH --ntasks-per-node=4\n"
        "#SBATCH --cpus-per-task=16\n"
        "#SBATCH --time=02:00:00\n"
        "#SBATCH --account=m1234\n"
        "#SBATCH --qos=regular\n"
        "#SBATCH --constraint=gpu\n"
        "#SBATCH --gpus-per-node=4\n"
        "#SBATCH --exclusive\n"
        "#SBATCH --module=cvmfs\n"
        "#SBATCH -L cvmfs\n"
        "#SBATCH --signal=B:TERM@60\n"
    )


def test_slurm_options_become_sbatch_flags():
    profile = load_profile("frontier")
    request = {"account": "m1", "qos": "normal", "reservation": "hack", "mem_per_node_gb": 200}
    header = render_batch_header(profile, request, "x")
    for line in ("--partition=batch", "--qos=normal", "--reservation=hack", "--mem=200G"):
        assert f"#SBATCH {line}\n" in header
    assert "--gpus-per-node" not in header  # no GPU asked for, none allocated


def test_a_slurm_queue_is_a_partition_or_a_qos_as_the_profile_says():
    # NERSC: every queue is a QOS (directives.queue_kind: qos); no partition is named
    perlmutter = load_profile("perlmutter")
    header = render_batch_header(perlmutter, {"account": "m1", "queue": "premium"}, "x")
    assert "#SBATCH --qos=premium\n" in header and "--partition" not in header
    # Frontier: batch and extended are partitions, debug is a QOS (limits.queues kind: qos)
    frontier = load_profile("frontier")
    header = render_batch_header(frontier, {"account": "m1", "queue": "debug"}, "x")
    assert "#SBATCH --qos=debug\n" in header and "--partition" not in header
    header = render_batch_header(frontier, {"account": "m1", "queue": "extended"}, "x")
    assert "#SBATCH --partition=extended\n" in header and "--qos" not in header
    # a QOS given twice (as the queue and as qos) is refused, naming the field
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: qos: queue 'regular' is"):
        validate(perlmutter, {"account": "m1", "qos": "premium"})
    assert get_scheduler("slurm").template_context(perlmutter) == {"qos_queues": "none"}
    assert get_scheduler("slurm").template_context(frontier) == {"qos_queues": '["debug"]'}


def test_per_queue_limits_in_the_request_and_in_the_endpoint_schema():
    from jsonschema import Draft202012Validator

    frontier = load_profile("frontier")
    # batch: 2 h up to 91 nodes, 6 h up to 183, 12 h beyond (walltime_bins)
    validate(frontier, {"account": "a", "queue": "batch", "nodes": 92, "walltime": "06:00:00"})
    with pytest.raises(
        ConfigError,
        match=r"^user_endpoint_config: walltime: 6:00:01 exceeds queue batch.s limit 06:00:00 for 183 ",
    ):
        validate(frontier, {"account": "a", "queue": "batch", "nodes": 183, "walltime": "6:00:01"})
    polaris = load_profile("polaris")
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: nodes: 9 is outside queue prod"):
        validate(polaris, {"account": "a", "queue": "prod", "nodes": 9})
    # the endpoint enforces the node limits itself (its schema), walltimes are site-agent's
    schema = Draft202012Validator(user_config_schema(polaris))
    assert not list(schema.iter_errors({"account": "a", "queue": "prod", "nodes": 10}))
    assert list(schema.iter_errors({"account": "a", "queue": "prod"}))  # nodes needed
    assert list(schema.iter_errors({"account": "a", "queue": "debug", "nodes": 3}))
    assert not list(schema.iter_errors({"account": "a", "queue": "capacity", "nodes": 4}))


def test_slurm_fields_schema_and_commands():
    slurm = get_scheduler("slurm")
    assert slurm.fields == ("account", "queue", "qos", "constraint", "reservation")
    assert (slurm.cancel_command, slurm.probe_command) == ("scancel", ("sinfo", "-h", "-o", "%P"))
    assert slurm.launchers == {"srun", "none"}
    props = user_config_schema(load_profile("perlmutter"))["properties"]
    assert props["mem_per_node_gb"]["maximum"] == load_profile("perlmutter").node.memory_gb
    # Perlmutter's feature expressions pass; a space (a second directive) does not
    validate(load_profile("perlmutter"), {"account": "m1", "constraint": "gpu&hbm80g"})
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: constraint: 'gpu hbm' has"):
        validate(load_profile("perlmutter"), {"account": "m1", "constraint": "gpu hbm"})


def test_slurm_without_node_memory_takes_no_mem_option():
    profile = load_profile("perlmutter", overrides={"node": {"memory_gb": 0}})
    assert "mem_per_node_gb" not in user_config_schema(profile)["properties"]


# --- PBS Pro ------------------------------------------------------------------------------


def test_polaris_header_selects_nodes_with_the_site_resources():
    header = render_batch_header(
        load_profile("polaris"), {"account": "ATLAS-HEP", "nodes": 10, "queue": "prod"}, "pilot-1"
    )
    assert header == (
        "#!/bin/bash\n"
        "#PBS -N pilot-1\n"
        "#PBS -l select=10:system=polaris\n"
        "#PBS -l walltime=01:00:00\n"
        "#PBS -l place=scatter\n"
        "#PBS -l filesystems=home:eagle\n"
        "#PBS -A ATLAS-HEP\n"
        "#PBS -q prod\n"
        "#PBS -k doe\n"
    )


def test_pbspro_fields_schema_and_commands():
    pbs = get_scheduler("pbspro")
    assert pbs.fields == ("account", "queue", "filesystems")
    assert (pbs.cancel_command, pbs.probe_command) == ("qdel", ("qstat", "-B"))
    assert pbs.launchers == {"mpiexec", "none"}
    validate(load_profile("polaris"), {"account": "a", "filesystems": "home:eagle:grand"})
    with pytest.raises(ConfigError, match=r"^user_endpoint_config: filesystems: "):
        validate(load_profile("polaris"), {"account": "a", "filesystems": "home,eagle"})
    assert pbs.template_context(load_profile("polaris")) == {"select_options": ":system=polaris"}


def test_an_option_without_a_length_in_its_pattern_is_capped_at_256_characters():
    # filesystems' pattern admits a list of any length; the user config schema (the one the
    # endpoint checks too) caps it, so a megabyte of "a:a:..." never reaches a directive
    polaris = load_profile("polaris")
    longest = "home:" + "e" * 251
    validate(polaris, {"account": "a", "filesystems": longest})
    with pytest.raises(ConfigError) as err:
        validate(polaris, {"account": "a", "filesystems": longest + "e"})
    assert str(err.value) == "user_endpoint_config: filesystems: must have at most 256 characters"


@pytest.mark.parametrize(
    ("site", "closing"), [("perlmutter", "--signal=B:TERM@60"), ("polaris", "-k doe")]
)
def test_closing_directive_is_written_once_in_header_and_endpoint_template(site, closing):
    from siteagent.endpoint.render import TEMPLATE, render_endpoint

    profile = load_profile(site)
    header = render_batch_header(profile, {"account": "a"}, "x")
    assert header.count(closing) == 1 and header.endswith(f" {closing}\n")
    template = render_endpoint(profile).files[TEMPLATE]
    assert template.count(closing) == 1


# --- local --------------------------------------------------------------------------------


def test_local_has_no_batch_system():
    local = get_scheduler("local")
    assert local.fields == () and local.cancel_command is None and local.probe_command is None
    assert (local.has_walltime, local.parsl_launcher) == (False, "SingleNodeLauncher")
    assert render_batch_header(load_profile("local"), {}, "x") == (
        "#!/bin/bash\n# local: no batch scheduler, no directives\n"
    )
    assert local.canonicalize({"account": "a", "queue": "q", "nodes": 1}) == {"nodes": 1}
    assert "account" not in canonicalize(load_profile("local"), {})


def test_local_forks_its_ranks_whatever_launcher_the_profile_names():
    profile = load_profile("local", overrides={"launcher": "mpiexec"})
    assert scheduler_for(profile).launcher_of(profile) == "none"
    assert launcher_for(profile).name == "none"
    assert launcher_for(load_profile("polaris")).name == "mpiexec"


def test_only_batch_sites_require_an_account():
    assert get_scheduler("local").required_fields(load_profile("local")) == []
    assert get_scheduler("slurm").required_fields(load_profile("perlmutter")) == ["account"]
    with_default = load_profile("perlmutter", overrides={"directives": {"account": "m1"}})
    assert get_scheduler("slurm").required_fields(with_default) == []


def test_scheduler_refuses_a_launcher_that_does_not_go_with_it():
    with pytest.raises(ConfigError) as err:
        get_scheduler("pbspro").check_launcher("srun", "x.yaml")
    assert str(err.value) == (
        "x.yaml: launcher: 'srun' does not go with scheduler 'pbspro' (use one of mpiexec, none)"
    )


# --- over all schedulers: cancel, job id ------------------------------------------------


def test_cancel_command_by_the_worker_environment_name():
    assert cancel_command("slurm") == "scancel"
    assert cancel_command("pbspro") == "qdel"
    assert cancel_command("local") is None and cancel_command("") is None


@pytest.mark.parametrize(
    ("env", "job"),
    [
        ({"SLURM_JOB_ID": "4711"}, "4711"),
        ({"PBS_JOBID": "12.polaris-pbs-01"}, "12.polaris-pbs-01"),
        ({}, ""),
    ],
)
def test_job_id_expression_finds_the_batch_job_in_bash(env, job):
    assert job_id_vars() == ("SLURM_JOB_ID", "PBS_JOBID")
    assert job_id_expr() == "${SLURM_JOB_ID:-${PBS_JOBID:-}}"
    assert bash(f'printf %s "{job_id_expr()}"', env).stdout == job


# --- launchers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "env", "local", "rank"),
    [
        ("srun", {"SLURM_LOCALID": "2", "SLURM_PROCID": "6"}, "2", "6"),
        ("mpiexec", {"PALS_LOCAL_RANKID": "1", "PALS_RANKID": "5"}, "1", "5"),
        ("mpiexec", {"PMI_LOCAL_RANK": "3", "PMI_RANK": "7"}, "3", "7"),  # MPICH without PALS
        ("none", {"SITE_AGENT_LOCAL_RANK": "1", "SITE_AGENT_RANK": "1"}, "1", "1"),
        ("srun", {}, "0", "0"),  # run by hand: rank 0
    ],
)
def test_rank_expressions_read_the_launcher_variables(name, env, local, rank):
    launcher = get_launcher(name)
    out = bash(f'printf "%s %s" {launcher.local_rank_expr()} {launcher.global_rank_expr()}', env)
    assert out.stdout == f"{local} {rank}"
    # the pilot wrapper reads the same variables as the execution wrapper's shell
    from siteagent.pilot.plan import local_rank

    site = {"srun": "perlmutter", "mpiexec": "polaris", "none": "local"}[name]
    assert local_rank(load_profile(site), env) == (int(local), int(rank))


def launch_argv(profile_name: str, ranks: int, **overrides: Any) -> list[str]:
    """The argv the launcher's lines build for 2 nodes x ``ranks`` ranks x 8 cores."""
    profile = load_profile(profile_name, overrides=overrides or None)
    script = (
        f"nodes=2 ranks={ranks} cores=8 total=$((2 * {ranks})) self=/ep/bin/site-agent-exec\n"
        f"set -- pilot.py --queue q\n{launcher_for(profile).launch_lines(profile)}\n"
        'printf "%s\\n" "${launch[@]}"'
    )
    out = bash(script)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_srun_starts_all_ranks_in_one_step_and_reenters_the_wrapper():
    argv = launch_argv("perlmutter", 4)
    assert argv == [
        "srun",
        *("--nodes=2", "--ntasks=8", "--ntasks-per-node=4", "--cpus-per-task=8"),
        *("--cpu-bind=cores", "--kill-on-bad-exit=1", "--export=ALL"),
        *("/ep/bin/site-agent-exec", "--rank", "--", "pilot.py", "--queue", "q"),
    ]
    assert "--cpu-bind=none" in launch_argv("perlmutter", 4, node={"cpu_bind": "none"})


def test_mpiexec_uses_the_site_core_list_when_ranks_match_it():
    polaris_list = "list:0-7,32-39:8-15,40-47:16-23,48-55:24-31,56-63"  # GPU 3 - r's domain
    argv = launch_argv("polaris", 4)
    assert argv[:9] == [
        "mpiexec",
        "-n",
        "8",
        "--ppn",
        "4",
        "--depth",
        "8",
        "--cpu-bind",
        polaris_list,
    ]
    assert argv[9:] == ["/ep/bin/site-agent-exec", "--rank", "--", "pilot.py", "--queue", "q"]
    assert launch_argv("polaris", 2)[8] == "depth"  # 2 ranks: the 4-entry list does not apply


def test_local_fork_runs_on_one_node_only():
    launcher = get_launcher("none")
    script = 'die() { echo "$1"; exit 2; }\nnodes=2\n' + launcher.launch_lines(
        load_profile("local")
    )
    out = bash(script)
    assert (out.returncode, out.stdout) == (2, "nodes: the local launcher runs on one node only\n")


def test_local_fork_starts_each_rank_and_returns_the_first_failure():
    launcher = get_launcher("none")
    script = (
        "run_rank() {\n"
        '  echo "rank $SITE_AGENT_LOCAL_RANK of $SITE_AGENT_WORLD_SIZE"\n'
        "  exit $((SITE_AGENT_LOCAL_RANK == 1 ? 5 : 0))\n}\n"
        "ranks=3 total=3 child_pids=()\n" + launcher.start_lines()
    )
    out = bash(script)
    assert out.returncode == 5
    assert sorted(out.stdout.splitlines()) == ["rank 0 of 3", "rank 1 of 3", "rank 2 of 3"]


# --- adding a scheduler -------------------------------------------------------------------


class Lsf(Scheduler):
    """The docs' example (docs/architecture.md): a scheduler is one class."""

    name = "lsf"
    fields = ("account", "queue")
    launchers = frozenset({"none"})
    directive_prefix = "#BSUB"
    job_id_var = "LSB_JOBID"
    cancel_command = "bkill"
    probe_command = ("bqueues",)
    provider_template = "lsf_provider.j2.in"

    def directives(self, profile, request: dict[str, Any], job_name: str) -> list[str]:
        return [f"-J {job_name}", f"-nnodes {request['nodes']}", f"-P {request['account']}"]


def test_a_new_scheduler_is_one_class_in_the_registry(monkeypatch):
    monkeypatch.setitem(SCHEDULERS, "lsf", Lsf)
    profile_schema.cache_clear()
    try:
        text = (
            "name: summit\nscheduler: lsf\nlauncher: none\nendpoint: {name: s}\n"
            "node: {cores: 42, gpus: 0}\nlimits: {max_nodes: 4}\n"
        )
        profile = parse_profile(text, source="summit.yaml")
        schema = user_config_schema(profile)
        assert schema["else"] == {"required": ["account"]}  # no default account in the profile
        assert {"account", "queue"} <= set(schema["properties"])
        assert render_batch_header(profile, {"account": "csc1", "nodes": 3}, "p") == (
            "#!/bin/bash\n#BSUB -J p\n#BSUB -nnodes 3\n#BSUB -P csc1\n"
        )
        assert cancel_command("lsf") == "bkill" and job_id_vars()[-1] == "LSB_JOBID"
        with pytest.raises(ConfigError, match=r"^summit\.yaml: launcher: 'srun' does not go with"):
            parse_profile(text.replace("launcher: none", "launcher: srun"), source="summit.yaml")
    finally:
        profile_schema.cache_clear()
