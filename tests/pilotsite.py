"""A test site for the pilot wrapper: a profile (PBS Pro + PALS, 4 NVIDIA GPUs bound in reverse
order, a proxy, apptainer, cvmfsexec, micromamba), a fake /proc with 4 GPUs, and the strict
stand-ins for cvmfsexec/makedist, apptainer and micromamba on PATH."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

STANDINS = Path(__file__).parent / "standins"

PROFILE = """\
name: gputest
scheduler: pbspro
launcher: mpiexec
endpoint: {{name: gputest}}
limits: {{max_nodes: 2}}
node:
  cores: 32
  gpus: 4
  gpu_vendor: nvidia
  gpu_binding: {{variable: CUDA_VISIBLE_DEVICES, order: reverse}}
proxy:
  http: {proxy}
  https: {proxy}
  no_proxy: [localhost, 127.0.0.1]
  scope: compute
container:
  runtime: apptainer
  gpu_flag: --nv
  binds: [{opt}]
  env: {{SITE_FLAVOUR: test}}
cvmfs:
  mode: cvmfsexec
  repositories: [atlas.cern.ch, sft.cern.ch]
  dist_dir: {cvmfsexec}
  cache_dir: {cache}
  quota_mb: 2000
environment:
  conda: {{manager: {manager}, root: {envs}}}
pilot:
  panda_queue: SITEAGENT_TEST
  pilot_user: generic
{pilot_extra}"""


@dataclass
class PilotSite:
    root: Path
    profile: Path
    env: dict[str, str]
    log: Path
    cvmfsexec: Path
    envs: Path
    scratch: Path

    def log_lines(self, tool: str) -> list[str]:
        if not self.log.is_file():
            return []
        return [line for line in self.log.read_text().splitlines() if line.startswith(tool + " ")]


def make_site(
    root: Path,
    *,
    manager: str = "micromamba",
    gpus: int = 4,
    pilot_extra: str = "",
    proxy: str = "http://proxy.example.org:3128",
) -> PilotSite:
    root.mkdir(parents=True, exist_ok=True)
    cvmfsexec = root / "cvmfsexec"
    cvmfsexec.mkdir()
    for tool in ("cvmfsexec", "makedist"):
        shutil.copy2(STANDINS / "cvmfsexec" / tool, cvmfsexec / tool)
    (root / "opt").mkdir()
    (root / "cvmfs").mkdir()  # where CVMFS would appear; empty, so cvmfsexec is needed
    scratch = root / "scratch"
    scratch.mkdir()
    gpu_root = root / "gpuroot"
    for i in range(gpus):
        (gpu_root / f"proc/driver/nvidia/gpus/0000:{i:02x}:00.0").mkdir(parents=True)
    profile = root / "gputest.yaml"
    text = PROFILE
    if "pilot_user:" in pilot_extra:  # the extra one replaces it (duplicate keys are refused)
        text = text.replace("  pilot_user: generic\n", "")
    profile.write_text(
        text.format(
            opt=root / "opt",
            cvmfsexec=cvmfsexec,
            cache=root / "cvmfs-cache",
            manager=manager,
            envs=root / "envs",
            pilot_extra=pilot_extra,
            proxy=proxy,
        )
    )
    log = root / "standin.log"
    path = os.pathsep.join(
        [str(STANDINS / "apptainer"), str(STANDINS / "micromamba"), os.environ["PATH"]]
    )
    env = {
        "PATH": path,
        "HOME": str(root / "home"),
        "TMPDIR": str(scratch),
        "STANDIN_LOG": str(log),
        "SITE_AGENT_GPU_ROOT": str(gpu_root),
        "SITE_AGENT_CVMFS_ROOT": str(root / "cvmfs"),
    }
    for var in (
        "SITE_AGENT_CONTAINER",
        "SITE_AGENT_CVMFS_REPOS",
        "SITE_AGENT_CONDA_ENV",
        "SITE_AGENT_WALLTIME",
        "SITE_AGENT_GPUS_PER_RANK",
        "SITE_AGENT_LOCAL_RANK",
        "SITE_AGENT_RANK",
        "SITE_AGENT_WORKDIR",
        "PALS_LOCAL_RANKID",
        "PMI_LOCAL_RANK",
        "PALS_RANKID",
        "PMI_RANK",
        "PBS_JOBID",
        "SLURM_JOB_ID",
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "PILOT_NOKILL",  # the wrapper must set it itself (see pilot/layers/payload.py)
    ):
        env[var] = ""
    return PilotSite(root, profile, env, log, cvmfsexec, root / "envs", scratch)


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """os.environ with ``extra`` applied; empty values in ``extra`` remove the variable."""
    env = dict(os.environ)
    for k, v in extra.items():
        if v == "":
            env.pop(k, None)
        else:
            env[k] = v
    return env
