"""Image mode (siteagent/image.py): detecting the image, the engine's container options per
runtime, and endpoints whose user endpoints the endpoint's own loader builds with them; the
image's entrypoint (scripts/image-entrypoint.sh) run for real, as another uid."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from siteagent import image as image_mod
from siteagent.endpoint.validate import validate_endpoint
from siteagent.errors import ConfigError
from siteagent.image import RunningImage, detect, worker_image
from siteagent.install import install
from siteagent.profiles import load_profile

from .conftest import REPO

SIF = "/shared/images/site-agent.sif"
ENTRYPOINT = REPO / "scripts" / "image-entrypoint.sh"


@pytest.fixture
def marker(tmp_path, monkeypatch):
    """This process 'runs from the image': the Containerfile's mark exists."""
    path = tmp_path / "IMAGE"
    path.write_text("site-agent, version 0.1.0\n")
    monkeypatch.setattr(image_mod, "MARKER", path)
    monkeypatch.setattr(image_mod, "DOCKERENV", tmp_path / "no-dockerenv")
    return path


def test_detect_needs_the_image_mark(tmp_path):
    env = {"APPTAINER_CONTAINER": SIF}
    assert detect(env, marker=tmp_path / "none") is None


def test_detect_reads_each_runtime(marker, tmp_path):
    none = tmp_path / "no-containerenv"
    assert detect({"APPTAINER_CONTAINER": SIF}) == RunningImage("apptainer", SIF)
    assert detect({"SINGULARITY_CONTAINER": SIF}) == RunningImage("singularity", SIF)
    # podman names the image in /run/.containerenv only when privileged; else SITE_AGENT_IMAGE
    assert detect({"container": "podman"}, containerenv=none) == RunningImage("podman", None)
    assert detect(
        {"container": "podman", "SITE_AGENT_IMAGE": "localhost/site-agent:0.1.0"}, containerenv=none
    ) == RunningImage("podman", "localhost/site-agent:0.1.0")
    env_file = tmp_path / "containerenv"
    env_file.write_text('engine="podman-4.3.1"\nname="x"\nimage="localhost/site-agent:latest"\n')
    assert detect({}, containerenv=env_file) == RunningImage(
        "podman", "localhost/site-agent:latest"
    )
    assert detect({"container": "docker"}, containerenv=none) == RunningImage("docker", None)
    (tmp_path / "no-dockerenv").touch()  # docker marks its containers so
    assert detect({}, containerenv=none) == RunningImage("docker", None)


@pytest.mark.parametrize("site", ["polaris", "aurora", "frontier"])
def test_apptainer_sites_start_workers_with_apptainer_and_the_pilots_binds(site, tmp_path):
    profile = load_profile(site)
    ep = tmp_path / "ep"
    workers = worker_image(profile, ep, running=RunningImage("apptainer", SIF))
    assert (workers.container_type, workers.container_uri) == ("apptainer", SIF)
    opts = list(workers.options)
    binds = [opts[i + 1] for i, o in enumerate(opts) if o == "--bind"]
    assert binds[0] == str(ep)
    assert profile.check.scratch_dirs[0] in binds
    assert profile.cvmfs.cache_dir in binds  # cvmfsexec's node-local cache
    gpu_flag = {"polaris": "--nv", "frontier": "--rocm", "aurora": None}[site]
    assert ("--nv" in opts, "--rocm" in opts) == (gpu_flag == "--nv", gpu_flag == "--rocm")
    assert ("/dev/dri" in binds) == (site == "aurora")
    if site == "aurora":
        assert "--env=ONEAPI_DEVICE_SELECTOR=level_zero:gpu" in opts


def test_perlmutter_starts_workers_with_podman_hpc(tmp_path):
    profile = load_profile("perlmutter")
    ref = "registry.nersc.gov/m0000/site-agent:0.1.0"
    workers = worker_image(profile, tmp_path / "ep", image=ref)
    opts = list(workers.options)
    assert (workers.container_type, workers.container_uri) == ("podman-hpc", ref)
    assert opts[:3] == ["--rm", "--init", "--network=host"]
    assert "--volume=/cvmfs:/cvmfs" in opts and "--volume=/pscratch:/pscratch" in opts
    assert f"--volume={tmp_path / 'ep'}:{tmp_path / 'ep'}" in opts
    # podman passes no host variable unless named: worker_init's exports are
    assert {"--env=SITE_AGENT_EXEC", "--env=SITE_AGENT_PILOT_DIR", "--env=https_proxy"} <= set(opts)
    assert f"--env=SITE_AGENT_IMAGE={ref}" in opts and {"--gpu", "--cvmfs"} <= set(opts)
    assert not [o for o in opts if o.startswith("--user")]  # podman-hpc maps root to the user


def test_bad_images_and_runtimes_are_one_line_errors(tmp_path):
    perlmutter, local = load_profile("perlmutter"), load_profile("local")
    with pytest.raises(ConfigError, match=r"^--image: 'a b' is not an image path or URI$"):
        worker_image(perlmutter, tmp_path, image="a b")
    with pytest.raises(ConfigError, match=r"^--image: podman-hpc runs an image reference, not"):
        worker_image(perlmutter, tmp_path, image=SIF)
    with pytest.raises(ConfigError, match=r"^--image: 'site-agent\.sif' is relative; name"):
        worker_image(load_profile("polaris"), tmp_path, image="site-agent.sif")
    with pytest.raises(ConfigError, match=r"^--image: podman does not say which image"):
        worker_image(local, tmp_path, running=RunningImage("podman", None))
    with pytest.raises(ConfigError, match=r"^container\.runtime: site 'local' has none"):
        worker_image(local, tmp_path, image="localhost/site-agent:latest")
    profile = load_profile("perlmutter", {"container": {"runtime": "shifter", "gpu_flag": "none"}})
    with pytest.raises(ConfigError, match=r"^container\.runtime: 'shifter' cannot start"):
        worker_image(profile, tmp_path, image="x/y:1")


def test_cli_install_image_error_is_one_line_exit_2(run_cli, tmp_path):
    r = run_cli("install", "--site", "perlmutter", "--endpoint-dir", str(tmp_path / "ep"),
                "--image", "a;b")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr == "site-agent: error: --image: 'a;b' is not an image path or URI\n"


def launch_cmd(engine, run_dir: Path) -> list[str]:
    """The worker pool's command line as the engine composes it at start."""
    engine.run_dir = str(run_dir)
    return shlex.split(engine.containerized_launch_cmd())


@pytest.mark.parametrize("site", ["polaris", "frontier", "aurora"])
def test_installed_from_the_sif_the_loader_builds_an_apptainer_engine(
    site, tmp_path, marker, monkeypatch
):
    monkeypatch.setenv("APPTAINER_CONTAINER", SIF)
    ep = tmp_path / "ep"
    report = install(load_profile(site), ep)
    assert f"workers start in the image: apptainer {SIF}" in report.notes
    result = validate_endpoint(ep, {"account": "ABC"})
    engine = result.config.engine
    assert (engine.container_type, engine.container_uri) == ("apptainer", SIF)
    cmd = launch_cmd(engine, ep / "run")
    assert cmd[:2] == ["apptainer", "run"]
    image_at = cmd.index(SIF)
    # the image's entrypoint runs the venv's program
    assert cmd[image_at + 1 : image_at + 3] == ["globus-compute-endpoint", "python-exec"]
    assert ["--bind", str(ep)] == cmd[cmd.index("--bind") : cmd.index("--bind") + 2]
    worker_init = engine.executor.provider.worker_init
    # no venv of the login node's image on PATH; the runtime is loaded for the batch job
    assert "export PATH=" not in worker_init
    for line in load_profile(site).container.setup:
        assert line in worker_init.splitlines()
    # cvmfsexec's cache is bound: the job creates it before apptainer needs it
    cache = load_profile(site).cvmfs.cache_dir
    assert f"mkdir -p {cache}" in worker_init.splitlines()
    # the control endpoint runs on the login node, where the endpoint runs: no container
    control = validate_endpoint(ep, {"control": True}).config.engine
    assert control.container_type is None


def test_installed_with_image_the_loader_builds_a_podman_hpc_engine(tmp_path):
    ref = "registry.nersc.gov/m0000/site-agent:0.1.0"
    ep = tmp_path / "ep"
    install(load_profile("perlmutter"), ep, image=ref)
    result = validate_endpoint(ep, {"account": "m0000", "env": {"ATHENA_CORE_NUMBER": "4"}})
    engine = result.config.engine
    assert (engine.container_type, engine.container_uri) == ("podman-hpc", ref)
    cmd = launch_cmd(engine, ep / "run")
    assert cmd[:5] == ["podman-hpc", "run", "--rm", "--init", "--network=host"]
    # the user's env option reaches the container by name; the engine binds its run dir
    assert "--env=ATHENA_CORE_NUMBER" in cmd
    at = cmd.index(ref)
    assert cmd[at - 3 : at] == ["-v", f"{ep / 'run'}:{ep / 'run'}", "-t"]
    assert cmd[at + 1 : at + 3] == ["globus-compute-endpoint", "python-exec"]
    assert "export PATH=" not in engine.executor.provider.worker_init


def test_outside_the_image_install_is_unchanged(tmp_path):
    ep = tmp_path / "ep"
    report = install(load_profile("polaris"), ep)
    assert not [n for n in report.notes if "image" in n]
    engine = validate_endpoint(ep, {"account": "ABC"}).config.engine
    assert engine.container_type is None
    assert 'export PATH="' in engine.executor.provider.worker_init


# ----------------------------------------------------------------- the image's entrypoint


@pytest.fixture
def fake_image():
    """SITE_AGENT_HOME with a venv of stand-ins that print their argv (readable by any uid)."""
    root = Path(tempfile.mkdtemp(prefix="site-agent-entrypoint-", dir="/tmp"))
    root.chmod(0o755)
    bin_dir = root / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("site-agent", "process_worker_pool.py", "globus-compute-endpoint"):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*"\n')
        (bin_dir / name).chmod(0o755)
    for d in (root / "venv", bin_dir):
        d.chmod(0o755)
    locked = root / "locked"  # a HOME only root may write
    locked.mkdir(mode=0o755)
    home = root / "home"
    home.mkdir()
    home.chmod(0o777)
    yield root
    shutil.rmtree(root)


def entry(root: Path, *args: str, home: str | None, extra: dict[str, str] | None = None):
    """The entrypoint as uid 12345 (apptainer runs the image as the calling user)."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to run as another uid")
    env = {"PATH": "/usr/bin:/bin", "SITE_AGENT_HOME": str(root)}
    if home is not None:
        env["HOME"] = home
    cmd = ["setpriv", "--reuid=12345", "--regid=12345", "--clear-groups", str(ENTRYPOINT)]
    env |= extra or {}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=30)


def test_entrypoint_fails_fast_in_one_line_when_home_is_not_writable(fake_image):
    for home in (str(fake_image / "locked"), "/", None):
        r = entry(fake_image, "smoke-test", home=home)
        assert r.returncode == 2 and r.stdout == "", r
        assert r.stderr.count("\n") == 1 and "not writable by uid 12345" in r.stderr
        assert "apptainer run --home DIR" in r.stderr and "-e HOME=DIR" in r.stderr
    r = entry(fake_image, "install", "--site", "polaris", "--endpoint-dir",
              str(fake_image / "locked" / "ep"), home=str(fake_image / "home"))  # fmt: skip
    assert r.returncode == 2 and r.stderr.startswith("site-agent: --endpoint-dir "), r
    r = entry(fake_image, "globus-compute-endpoint", "start", "x", home=str(fake_image / "home"),
              extra={"GLOBUS_COMPUTE_USER_DIR": str(fake_image / "locked")})  # fmt: skip
    assert r.returncode == 2 and "the Globus Compute directory" in r.stderr, r


def test_entrypoint_runs_site_agent_or_the_venvs_programs(fake_image):
    home = str(fake_image / "home")
    r = entry(fake_image, "smoke-test", "--json", home=home)
    assert (r.returncode, r.stdout) == (0, "site-agent smoke-test --json\n"), r
    # `install` is site-agent's command, not /usr/bin/install
    r = entry(fake_image, "install", "--site", "local", home=home)
    assert r.stdout == "site-agent install --site local\n", r
    assert entry(fake_image, home=home).stdout == "site-agent \n"
    assert entry(fake_image, "site-agent", "check", home=home).stdout == "site-agent check\n"
    # help needs no writable HOME
    assert entry(fake_image, "--help", home="/").stdout == "site-agent --help\n"
    # worker pools start with any HOME: they write only to the endpoint's run directory
    r = entry(fake_image, "process_worker_pool.py", "-a", "127.0.0.1", home="/")
    assert (r.returncode, r.stdout) == (0, "process_worker_pool.py -a 127.0.0.1\n"), r
    r = entry(fake_image, "globus-compute-endpoint", "python-exec", "m", home="/")
    assert r.stdout == "globus-compute-endpoint python-exec m\n", r
    r = entry(fake_image, "/bin/echo", "plain", home="/")
    assert r.stdout == "plain\n", r
