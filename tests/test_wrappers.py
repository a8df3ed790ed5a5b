"""Execution wrappers: rendered shell scripts, run by the local fork launcher, a strict PALS
stand-in, and (test_wrappers_slurm.py) the real srun."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from siteagent.binding import bind_rank
from siteagent.errors import ConfigError
from siteagent.profiles import load_profile, parse_profile
from siteagent.wrappers.render import binding_table, render_batch_header, render_wrapper

from .conftest import PROFILE_NAMES, REPO

PBS_STANDINS = Path(__file__).parent / "standins" / "pbs"


def write_wrapper(tmp_path: Path, profile) -> Path:
    path = tmp_path / f"exec-{profile.name}.sh"
    path.write_text(render_wrapper(profile))
    path.chmod(0o755)
    return path


def rank_lines(stdout: str) -> dict[int, dict[str, str]]:
    """Parse `rank=R KEY=VALUE ...` lines printed by each rank."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("rank="):
            fields = dict(kv.split("=", 1) for kv in line.split())
            out[int(fields.pop("rank"))] = fields
    return out


PRINT_RANK = (
    'echo "rank=$SITE_AGENT_RANK local=$SITE_AGENT_LOCAL_RANK '
    "cuda=${CUDA_VISIBLE_DEVICES-unset} rocr=${ROCR_VISIBLE_DEVICES-unset} "
    "hip=${HIP_VISIBLE_DEVICES-unset} ze=${ZE_AFFINITY_MASK-unset} "
    'zeh=${ZE_FLAT_DEVICE_HIERARCHY-unset} bind=${PALS_CPU_BIND-none}"'
)


@pytest.mark.parametrize("site", PROFILE_NAMES)
def test_rendered_wrapper_is_valid_bash(site, tmp_path):
    path = write_wrapper(tmp_path, load_profile(site))
    subprocess.run(["bash", "-n", str(path)], check=True)


@pytest.mark.parametrize("site", ["polaris", "aurora", "frontier", "perlmutter"])
def test_binding_table_is_binding_py(site):
    profile = load_profile(site)
    table = dict(binding_table(profile))
    for key, line in table.items():
        gpus, rank = map(int, key.split(":"))
        b = bind_rank(profile.node, rank, gpus)
        for name, value in b.set.items():
            assert f"{name}={value}" in line
        for name in b.unset:
            assert name in line.split(";")[0]


def local_gpu_profile(**node):
    """The local profile, given the GPU shape of a real site (the fork launcher binds it)."""
    text = (REPO / "site-profiles" / "local.yaml").read_text()
    return parse_profile(text, "local.yaml", overrides={"node": node})


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def test_local_launcher_forks_ranks_and_binds_nvidia_reverse(tmp_path):
    profile = local_gpu_profile(
        cores=8,
        gpus=4,
        gpu_vendor="nvidia",
        gpu_binding={"variable": "CUDA_VISIBLE_DEVICES", "order": "reverse"},
    )
    w = write_wrapper(tmp_path, profile)
    r = run(
        [str(w), "--ranks-per-node", "4", "--gpus-per-rank", "1", "--", "bash", "-c", PRINT_RANK]
    )
    assert r.returncode == 0, r.stderr
    ranks = rank_lines(r.stdout)
    assert sorted(ranks) == [0, 1, 2, 3]
    assert {r: f["cuda"] for r, f in ranks.items()} == {0: "3", 1: "2", 2: "1", 3: "0"}


def test_local_launcher_no_gpu_leaves_variables_alone(tmp_path):
    w = write_wrapper(tmp_path, load_profile("local"))
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "7"}
    r = run([str(w), "--ranks-per-node", "2", "--", "bash", "-c", PRINT_RANK], env=env)
    assert r.returncode == 0, r.stderr
    ranks = rank_lines(r.stdout)
    assert sorted(ranks) == [0, 1] and all(f["cuda"] == "7" for f in ranks.values())


def test_shape_comes_from_endpoint_variables(tmp_path):
    w = write_wrapper(tmp_path, load_profile("local"))
    env = os.environ | {"SITE_AGENT_RANKS_PER_NODE": "2", "SITE_AGENT_CORES_PER_RANK": "1"}
    r = run(
        [str(w), "--", "bash", "-c", 'echo "rank=$SITE_AGENT_RANK c=$SITE_AGENT_CORES_PER_RANK"'],
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert {r: f["c"] for r, f in rank_lines(r.stdout).items()} == {0: "1", 1: "1"}


def test_first_failing_rank_sets_the_exit_code(tmp_path):
    w = write_wrapper(tmp_path, load_profile("local"))
    r = run([str(w), "--ranks-per-node", "2", "--", "bash", "-c", "exit $((SITE_AGENT_RANK + 4))"])
    assert r.returncode == 4


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--ranks-per-node", "0"], {}, "ranks_per_node: must be >= 1"),
        (["--ranks-per-node", "x"], {}, "ranks_per_node: 'x' is not a whole number"),
        (
            ["--gpus-per-rank", "1"],
            {},
            "gpus_per_rank: 1 ranks x 1 GPUs needs 1 per node, but a local node has 0",
        ),
        (["--nodes", "2"], {}, "nodes: must be <= 1 on local"),
        (["--bogus"], {}, "unknown option '--bogus'"),
        ([], {"SITE_AGENT_RANKS_PER_NODE": "1;rm"}, "ranks_per_node: '1;rm' is not a whole number"),
        (["--cores-per-rank", "999"], {}, "cores_per_rank: 1 ranks x 999 cores exceeds"),
    ],
)
def test_bad_requests_are_one_line_errors(tmp_path, args, env, message):
    w = write_wrapper(tmp_path, load_profile("local"))
    r = run([str(w), *args, "--", "true"], env=os.environ | env)
    assert r.returncode == 2
    assert r.stderr.startswith(f"site-agent-exec: {message}")
    assert r.stderr.count("\n") == 1


def test_no_command_is_an_error(tmp_path):
    w = write_wrapper(tmp_path, load_profile("local"))
    r = run([str(w)])
    assert r.returncode == 2 and "no command given" in r.stderr


def test_site_agent_exec_cli(run_cli, tmp_path):
    r = run_cli(
        "exec",
        "--site",
        "local",
        "--ranks-per-node",
        "2",
        "--",
        "bash",
        "-c",
        'echo "rank=$SITE_AGENT_RANK"',
        env={"XDG_CACHE_HOME": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr
    assert sorted(rank_lines(r.stdout)) == [0, 1]
    assert list((tmp_path / "site-agent" / "wrappers").glob("local-*.sh"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ranks-per-node", "0"], "--ranks-per-node: must be >= 1"),
        (
            ["--gpus-per-rank", "2"],
            "--gpus-per-rank: this node has no GPU (profile local: node.gpus 0); use --gpus-per-rank 0",
        ),
        (["--nodes", "3"], "--nodes: must be <= 1"),
    ],
)
def test_site_agent_exec_refuses_bad_shapes(run_cli, args, message):
    r = run_cli("exec", "--site", "local", *args, "--", "true")
    assert r.returncode == 2
    assert r.stderr == f"site-agent: error: {message}\n"


def test_unknown_scheduler_is_refused(tmp_path):
    text = (
        (REPO / "site-profiles" / "local.yaml")
        .read_text()
        .replace("scheduler: local", "scheduler: lsf")
    )
    with pytest.raises(ConfigError, match="scheduler: must be one of: slurm, pbspro, local"):
        parse_profile(text, "local.yaml")


# ------------------------------------------------------------------ PBS Pro / PALS stand-in
def pbs_env(tmp_path, nodes=1):
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("".join(f"x{i}\n" for i in range(nodes)))
    return os.environ | {
        "PATH": f"{PBS_STANDINS}:{os.environ['PATH']}",
        "PBS_NODEFILE": str(nodefile),
        "STANDIN_LOG": str(tmp_path / "standin.log"),
    }


def test_aurora_tiles_through_pals_mpiexec(tmp_path):
    w = write_wrapper(tmp_path, load_profile("aurora"))
    r = run(
        [
            str(w),
            "--nodes",
            "2",
            "--ranks-per-node",
            "12",
            "--gpus-per-rank",
            "1",
            "--cores-per-rank",
            "8",
            "--",
            "bash",
            "-c",
            PRINT_RANK,
        ],
        env=pbs_env(tmp_path, nodes=2),
    )
    assert r.returncode == 0, r.stderr
    ranks = rank_lines(r.stdout)
    assert sorted(ranks) == list(range(24))
    for rank, f in ranks.items():
        local = rank % 12
        assert f["local"] == str(local)
        assert f["ze"] == f"{local // 2}.{local % 2}"
        assert f["zeh"] == "COMPOSITE"
    log = (tmp_path / "standin.log").read_text()
    assert "mpiexec -n 24 --ppn 12 --depth 8 --cpu-bind list:1-8:9-16" in log


def test_polaris_reverse_binding_and_site_cpu_list(tmp_path):
    w = write_wrapper(tmp_path, load_profile("polaris"))
    r = run(
        [str(w), "--ranks-per-node", "4", "--gpus-per-rank", "1", "--", "bash", "-c", PRINT_RANK],
        env=pbs_env(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    ranks = rank_lines(r.stdout)
    assert {k: v["cuda"] for k, v in ranks.items()} == {0: "3", 1: "2", 2: "1", 3: "0"}
    # rank r on the NUMA domain of its GPU 3 - r (ALCF's device-affinity table)
    assert all(
        v["bind"] == "list:0-7,32-39:8-15,40-47:16-23,48-55:24-31,56-63" for v in ranks.values()
    )


def test_polaris_other_rank_counts_bind_by_depth(tmp_path):
    w = write_wrapper(tmp_path, load_profile("polaris"))
    r = run(
        [str(w), "--ranks-per-node", "2", "--gpus-per-rank", "2", "--", "bash", "-c", PRINT_RANK],
        env=pbs_env(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    ranks = rank_lines(r.stdout)
    assert {k: v["cuda"] for k, v in ranks.items()} == {0: "3,2", 1: "1,0"}
    assert "--depth 16 --cpu-bind depth" in (tmp_path / "standin.log").read_text()


def test_pbs_header_and_wrapper_through_strict_qsub(tmp_path):
    profile = load_profile("polaris")
    w = write_wrapper(tmp_path, profile)
    header = render_batch_header(
        profile,
        {"account": "ATLAS-HEP", "nodes": 2, "ranks_per_node": 4, "gpus_per_rank": 1},
        "pilot-7",
    )
    assert "#PBS -l select=2:system=polaris\n" in header
    assert "#PBS -l filesystems=home:eagle\n" in header and "#PBS -A ATLAS-HEP\n" in header
    script = tmp_path / "job.sh"
    script.write_text(
        header + f"{w} --nodes 2 --ranks-per-node 4 --gpus-per-rank 1 -- bash -c '{PRINT_RANK}'\n"
    )
    env = pbs_env(tmp_path)
    env.pop("PBS_NODEFILE")
    r = run(["qsub", str(script)], env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip().split(".")[0]
    output = (tmp_path / f"pilot-7.o{job_id}").read_text()
    assert output.rstrip().endswith("Exit_status=0")
    ranks = rank_lines(output)
    assert sorted(ranks) == list(range(8))
    assert [ranks[i]["cuda"] for i in range(8)] == ["3", "2", "1", "0"] * 2


def test_strict_qsub_refuses_unknown_directive(tmp_path):
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n#PBS -l select=1\n#PBS -l walltime=01:00:00\n#PBS -W bogus=1\ntrue\n"
    )
    r = run(["qsub", str(script)], env=pbs_env(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and "unknown directive option '-W'" in r.stderr


def test_strict_mpiexec_refuses_unknown_option(tmp_path):
    r = run(["mpiexec", "--bogus", "1", "true"], env=pbs_env(tmp_path))
    assert r.returncode == 2 and "unknown option '--bogus'" in r.stderr


def test_batch_header_validates_request():
    with pytest.raises(ConfigError, match="user_endpoint_config: nodes: must be >= 1"):
        render_batch_header(load_profile("polaris"), {"account": "a", "nodes": 0}, "x")
    with pytest.raises(ConfigError, match="job_name: "):
        render_batch_header(load_profile("polaris"), {"account": "a"}, "bad name;rm")
