"""The layers of the pilot wrapper one by one: CVMFS, container, software environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from siteagent.cvmfs import parse_repositories, repository_list
from siteagent.errors import ConfigError, SiteAgentError
from siteagent.pilot.layers.container import plan_container
from siteagent.pilot.layers.cvmfs import plan_cvmfs, prepare_cvmfs
from siteagent.pilot.layers.env import MARKER, ensure_env, find_manager, parse_spec, plan_env
from siteagent.profiles import find_profile, load_profile, parse_profile

from .pilotsite import STANDINS, make_site


# ---------------------------------------------------------------- CVMFS
def test_repository_lists_expand_in_order_without_duplicates():
    assert repository_list("atlas") == [
        "atlas.cern.ch",
        "atlas-condb.cern.ch",
        "atlas-nightlies.cern.ch",
        "sft.cern.ch",
        "unpacked.cern.ch",
    ]
    assert "singularity.opensciencegrid.org" in repository_list("epic")
    assert parse_repositories("sft.cern.ch,atlas, epic") == (
        "sft.cern.ch",
        "atlas.cern.ch",
        "atlas-condb.cern.ch",
        "atlas-nightlies.cern.ch",
        "unpacked.cern.ch",
        "singularity.opensciencegrid.org",
        "eic.opensciencegrid.org",
    )


@pytest.mark.parametrize("bad", ["cms", "atlas.cern.ch;rm", "Atlas.cern.ch", "-x.y", "../a.b"])
def test_bad_repositories_are_refused(bad):
    with pytest.raises(ConfigError, match="cvmfs: '"):
        parse_repositories(bad)


def test_native_repositories_are_used_where_mounted(tmp_path):
    (tmp_path / "atlas.cern.ch").mkdir()
    profile = load_profile("perlmutter")
    plan = plan_cvmfs(profile, ("atlas.cern.ch",), cvmfs_root=str(tmp_path))
    assert (plan.mode, plan.prefix) == ("native", ())
    with pytest.raises(ConfigError, match=r"sft.cern.ch not mounted .* cvmfs.mode is 'native'"):
        plan_cvmfs(profile, ("atlas.cern.ch", "sft.cern.ch"), cvmfs_root=str(tmp_path))


def test_cvmfsexec_plan_and_prepare(tmp_path):
    site = make_site(tmp_path / "site")
    profile = load_profile(str(site.profile))
    plan = plan_cvmfs(profile, ("atlas.cern.ch",), cvmfs_root=str(tmp_path / "none"))
    assert plan.mode == "cvmfsexec"
    assert plan.prefix == (str(site.cvmfsexec / "cvmfsexec"), "atlas.cern.ch", "--")
    assert plan.makedist == (str(site.cvmfsexec / "makedist"), "default")
    env = dict(os.environ, STANDIN_LOG=str(site.log))
    assert prepare_cvmfs(plan, env) == [
        f"{site.cvmfsexec}/makedist default",
        f"wrote {plan.default_local_path}",
    ]
    assert (tmp_path / "site" / "cvmfs-cache").is_dir()
    assert os.stat(plan.default_local_path).st_mode & 0o777 == 0o600
    assert prepare_cvmfs(plan, env) == []  # built once, config unchanged
    # the stand-in accepts what was written and runs the command
    r = subprocess.run([*plan.prefix, "sh", "-c", "exit 5"], env=env)
    assert r.returncode == 5
    # and refuses what the real cvmfsexec would not take
    r = subprocess.run([*plan.prefix[:-1], "-x", "--", "true"], env=env, capture_output=True)
    assert r.returncode == 2


def test_cvmfsexec_missing_is_a_setup_error(tmp_path):
    site = make_site(tmp_path / "site")
    (site.cvmfsexec / "cvmfsexec").unlink()
    plan = plan_cvmfs(load_profile(str(site.profile)), ("atlas.cern.ch",), cvmfs_root="/nope")
    with pytest.raises(SiteAgentError, match="no cvmfsexec in"):
        prepare_cvmfs(plan)


def test_one_default_local_renderer_for_install_and_pilot(tmp_path):
    from siteagent.install import render_cvmfs_config

    profile = load_profile("polaris")
    plan = plan_cvmfs(profile, ("atlas.cern.ch", "sft.cern.ch"), cvmfs_root="/nope")
    # the pilot renders the repositories it was asked for, install those of the profile;
    # the rest is the same text from the same template
    assert plan.default_local == render_cvmfs_config(profile).replace(
        "atlas.cern.ch,atlas-condb.cern.ch,sft.cern.ch,unpacked.cern.ch",
        "atlas.cern.ch,sft.cern.ch",
    )


# ---------------------------------------------------------------- container
def test_container_flags_per_vendor():
    polaris = plan_container(load_profile("polaris"), "/img.sif", gpu_vendor="nvidia")
    assert polaris.prefix == (
        "apptainer", "exec", "--nv", "--bind", "/opt", "--bind", "/var/run/palsd/", "--fakeroot",
        "/img.sif",
    )  # fmt: skip
    frontier = plan_container(load_profile("frontier"), "rocm/x:1", gpu_vendor="amd")
    assert frontier.prefix == ("apptainer", "exec", "--rocm", "docker://rocm/x:1")
    aurora = plan_container(
        load_profile("aurora"), "/i.sif", gpu_vendor="intel", extra_binds=("/w",),
        prepend_path=("/env/bin",),
    )  # fmt: skip
    assert aurora.prefix == ("apptainer", "exec", "--bind", "/dev/dri", "--bind", "/w", "/i.sif")
    assert aurora.env == {
        "APPTAINERENV_ZE_FLAT_DEVICE_HIERARCHY": "COMPOSITE",
        "APPTAINERENV_ONEAPI_DEVICE_SELECTOR": "level_zero:gpu",
        "APPTAINERENV_PREPEND_PATH": "/env/bin",
    }


def test_intel_gpus_get_dev_dri_even_when_the_profile_forgets():
    from pathlib import Path

    text = Path(find_profile("aurora")).read_text().replace("binds: [/dev/dri]", "binds: []")
    plan = plan_container(parse_profile(text, "aurora.yaml"), "/i.sif", gpu_vendor="intel")
    assert plan.prefix == ("apptainer", "exec", "--bind", "/dev/dri", "/i.sif")


def test_singularity_is_apptainer_with_its_own_names():
    from pathlib import Path

    text = Path(find_profile("polaris")).read_text()
    text = text.replace("runtime: apptainer", "runtime: singularity")
    plan = plan_container(
        parse_profile(text, "polaris.yaml"), "/img.sif", gpu_vendor="nvidia", prepend_path=("/e",)
    )
    assert plan.prefix[:3] == ("singularity", "exec", "--nv")
    assert plan.env == {"SINGULARITYENV_PREPEND_PATH": "/e"}
    assert plan.describe() == "singularity /img.sif"


@pytest.mark.parametrize(
    ("site", "image", "message"),
    [
        ("local", "/i.sif", "has container.runtime none"),
        ("perlmutter", "/i.sif", "^--container: '/i.sif' is not a registry image; podman-hpc "),
        ("perlmutter", "library://a/b:1", "is not a registry image; podman-hpc takes a"),
        ("polaris", "/i.sif --privileged", "is not an image path or URI"),
    ],
)
def test_container_refusals(site, image, message):
    with pytest.raises(ConfigError, match=message):
        plan_container(load_profile(site), image, gpu_vendor="nvidia")


@pytest.mark.parametrize(
    ("runtime", "image", "ref"),
    [
        ("apptainer", "ghcr.io/x/y:1", "docker://ghcr.io/x/y:1"),
        ("apptainer", "docker://ghcr.io/x/y:1", "docker://ghcr.io/x/y:1"),
        ("apptainer", "/cvmfs/unpacked.cern.ch/x/y:1", "/cvmfs/unpacked.cern.ch/x/y:1"),
        ("apptainer", "oras://ghcr.io/x/y:1", "oras://ghcr.io/x/y:1"),
        ("podman-hpc", "docker://docker.io/library/ubuntu:22.04", "docker.io/library/ubuntu:22.04"),
        ("podman-hpc", "ubuntu:22.04", "ubuntu:22.04"),
        ("shifter", "docker://ubuntu:22.04", "docker:ubuntu:22.04"),
        ("shifter", "docker:ubuntu:22.04", "docker:ubuntu:22.04"),
        ("shifter", "ghcr.io/x/y:1", "docker:ghcr.io/x/y:1"),
    ],
)
def test_image_references_are_spelled_per_runtime(runtime, image, ref):
    from siteagent.pilot.layers.runtimes import RUNTIMES
    from siteagent.sections import ContainerSection

    assert RUNTIMES[runtime](ContainerSection(runtime=runtime)).image_ref(image) == ref


@pytest.mark.parametrize("runtime", ["podman-hpc", "shifter"])
@pytest.mark.parametrize("image", ["/images/x.sif", "./x.sif", "oras://a/b:1", "x.sqsh"])
def test_a_file_or_another_scheme_is_refused_by_podman_hpc_and_shifter(runtime, image):
    from siteagent.pilot.layers.runtimes import RUNTIMES
    from siteagent.sections import ContainerSection

    with pytest.raises(ConfigError) as err:
        RUNTIMES[runtime](ContainerSection(runtime=runtime)).image_ref(image)
    assert str(err.value) == (
        f"--container: '{image}' is not a registry image; {runtime} takes a reference such as "
        "docker.io/library/ubuntu:22.04"
    )


def test_podman_hpc_line_names_what_podman_does_not_pass_by_itself():
    plan = plan_container(
        load_profile("perlmutter"), "docker://a/b:1", gpu_vendor="nvidia",
        extra_binds=("/w", "/cvmfs"), workdir="/w", name="site-agent-p1",
        pass_env=("CUDA_VISIBLE_DEVICES", "http_proxy"),
    )  # fmt: skip
    p = plan.prefix
    assert p[:7] == ("podman-hpc", "run", "--rm", "--init", "--name", "site-agent-p1", "--gpu")
    assert p[p.index("CUDA_VISIBLE_DEVICES") - 1 :][:2] == ("-e", "CUDA_VISIBLE_DEVICES")
    assert "SITE_AGENT_*" in p and "http_proxy" in p and "TMPDIR" not in p
    assert p[-6:] == ("-w", "/w", "-v", "/w:/w", "--cvmfs", "a/b:1")  # --cvmfs binds /cvmfs
    assert plan.teardown == (
        "podman-hpc", "rm", "--force", "--ignore", "--time", "0", "site-agent-p1",
    )  # fmt: skip
    # no GPU on the node: no GPU module (it binds the NVIDIA libraries a GPU node has)
    cpu = plan_container(load_profile("perlmutter"), "a/b:1", gpu_vendor="none")
    assert "--gpu" not in cpu.prefix


def test_a_gpu_flag_of_another_runtime_is_refused():
    from pathlib import Path

    text = Path(find_profile("polaris")).read_text()
    text = text.replace("runtime: apptainer", "runtime: podman-hpc")
    with pytest.raises(ConfigError) as err:
        parse_profile(text, "polaris.yaml")
    assert str(err.value) == (
        "polaris.yaml: container.gpu_flag: '--nv' is not a podman-hpc flag (use one of --gpu, none)"
    )


def test_apptainer_standin_is_strict(tmp_path):
    exe = str(STANDINS / "apptainer" / "apptainer")
    ok = subprocess.run([exe, "exec", "--nv", "docker://a/b:1", "true"])
    assert ok.returncode == 0
    for bad in (
        ["exec", "--privileged", "docker://a/b:1", "true"],
        ["exec", "--nv", "--rocm", "docker://a/b:1", "true"],
        ["exec", "--bind", str(tmp_path / "missing"), "docker://a/b:1", "true"],
        ["run", "docker://a/b:1"],
    ):
        r = subprocess.run([exe, *bad], capture_output=True)
        assert r.returncode == 255, bad


# ---------------------------------------------------------------- software environment
def test_spec_parsing(tmp_path):
    assert parse_spec("scipy, numpy=1.26").packages == ("numpy=1.26", "scipy")
    env_yml = tmp_path / "environment.yml"
    env_yml.write_text("dependencies: [numpy]\n")
    assert parse_spec(str(env_yml)).file == str(env_yml)
    with pytest.raises(ConfigError, match="no such environment file"):
        parse_spec(str(tmp_path / "missing.yml"))


def test_same_spec_same_prefix_any_order(tmp_path):
    a = plan_env("numpy,scipy", manager="venv", root=str(tmp_path))
    b = plan_env("scipy, numpy", manager="venv", root=str(tmp_path))
    c = plan_env("numpy", manager="venv", root=str(tmp_path))
    assert a.prefix == b.prefix != c.prefix


def test_micromamba_env_is_created_once(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{STANDINS / 'micromamba'}:{os.environ['PATH']}")
    log = tmp_path / "log"
    monkeypatch.setenv("STANDIN_LOG", str(log))
    assert find_manager("auto")[0] == "micromamba"
    env_yml = tmp_path / "environment.yml"
    env_yml.write_text("dependencies: [numpy]\n")
    plan = plan_env(str(env_yml), root=str(tmp_path / "envs"))
    assert plan.create == (
        (plan.executable, "create", "--yes", "--prefix", str(plan.prefix), "--file", str(env_yml)),
    )
    assert ensure_env(plan) is True
    assert ensure_env(plan_env(str(env_yml), root=str(tmp_path / "envs"))) is False
    assert len(log.read_text().splitlines()) == 1  # one solve only
    # a changed file is a different environment
    env_yml.write_text("dependencies: [numpy, scipy]\n")
    assert plan_env(str(env_yml), root=str(tmp_path / "envs")).prefix != plan.prefix


def test_half_created_env_is_redone(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{STANDINS / 'micromamba'}:{os.environ['PATH']}")
    plan = plan_env("numpy", root=str(tmp_path))
    (Path(plan.prefix) / "bin").mkdir(parents=True)  # a creation killed before its marker
    assert not plan.ready
    assert ensure_env(plan) is True and plan.ready


def test_failed_creation_is_a_setup_error_and_leaves_no_prefix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{STANDINS / 'micromamba'}:{os.environ['PATH']}")
    plan = plan_env("numpy", root=str(tmp_path))
    bad = plan.__class__(**{**plan.__dict__, "create": ((plan.executable, "create", "--bogus"),)})
    with pytest.raises(SiteAgentError, match="exited 1"):
        ensure_env(bad)
    assert not Path(plan.prefix).exists()


def test_conda_manager_that_is_missing_is_named(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CONDA_EXE", raising=False)
    with pytest.raises(ConfigError, match=r"environment\.conda\.manager: 'conda' not found"):
        find_manager("conda")
    assert find_manager("auto")[0] == "venv"


@pytest.mark.slow
def test_venv_is_created_for_real_then_reused(tmp_path):
    """No conda here: a real venv (with the system site packages) and a real pip, asked for
    pip itself, which every new venv has, so nothing is downloaded."""
    plan = plan_env("pip", manager="venv", root=str(tmp_path))
    assert plan.manager == "venv"
    assert plan.create[0][1:4] == ("-m", "venv", "--system-site-packages")
    assert ensure_env(plan) is True
    python = Path(plan.bin_dir) / "python"
    r = subprocess.run(
        [str(python), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True
    )
    assert r.stdout.strip() == str(plan.prefix)
    marker_time = (Path(plan.prefix) / MARKER).stat().st_mtime_ns
    python_time = python.lstat().st_mtime_ns
    again = plan_env("pip", manager="venv", root=str(tmp_path))
    assert again.ready and ensure_env(again) is False
    assert (Path(plan.prefix) / MARKER).stat().st_mtime_ns == marker_time
    assert python.lstat().st_mtime_ns == python_time
    assert again.activation() == {"VIRTUAL_ENV": str(plan.prefix)}


@pytest.mark.slow
def test_pilot_runs_its_payload_in_a_real_venv(tmp_path):
    site = make_site(tmp_path / "site", manager="venv")
    from .pilotsite import clean_env

    env = clean_env(site.env)
    args = [sys.executable, "-m", "siteagent", "pilot", "--site", str(site.profile)]
    args += ["--cvmfs", "none", "--conda-env", "pip", "--", "sh", "-c"]
    script = 'echo "$VIRTUAL_ENV $(command -v python)"'
    first = subprocess.run([*args, script], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    venv, python = first.stdout.split()
    assert venv.startswith(str(site.envs / "venv-")) and python == f"{venv}/bin/python"
    second = subprocess.run([*args, script], env=env, capture_output=True, text=True, timeout=60)
    assert second.stdout == first.stdout


# ---------------------------------------------------------------- the order layers plan in
def test_layers_are_planned_after_the_layers_they_read():
    from siteagent.pilot.layers import STACK, PilotLayer, planning_order

    order = [cls.name for cls in planning_order(STACK)]
    # stacked: container outside env; planned: env (and the payload's pilot.py) first
    assert [cls.name for cls in STACK] == [
        "gpu-binding", "proxy", "cvmfs", "container", "env", "credentials", "identity", "payload",
    ]  # fmt: skip
    assert order == [
        "gpu-binding", "proxy", "cvmfs", "env", "credentials", "identity", "payload", "container",
    ]  # fmt: skip

    class A(PilotLayer):
        name, after = "a", ("b",)

    class B(PilotLayer):
        name, after = "b", ("a",)

    with pytest.raises(RuntimeError, match="cycle"):
        planning_order((A, B))


# ---------------------------------------------------------------- credentials in the container
def test_the_container_binds_the_directories_of_the_credentials_there_are(tmp_path):
    from siteagent.pilot.layers.container import credential_dirs
    from siteagent.pilot.layers.credentials import Credentials

    proxy_dir, token_dir = tmp_path / "proxy", tmp_path / "tokens"
    for d in (proxy_dir, token_dir):
        d.mkdir()
    (proxy_dir / "x509up").write_text("p")
    (token_dir / "panda.tok").write_text("t")
    creds = Credentials(
        "any", str(proxy_dir / "x509up"), str(token_dir / "panda.tok"), "o", 0,
        token_key=str(token_dir / "missing.key"),
    )  # fmt: skip
    # the key file is not there: nothing to bind for it
    assert credential_dirs(creds) == [str(proxy_dir), str(token_dir)]
    nothing = Credentials("none", str(tmp_path / "no-proxy"), None, None, 0)
    assert credential_dirs(nothing) == []
    odd = tmp_path / "a dir"
    odd.mkdir()
    (odd / "x509up").write_text("p")
    with pytest.raises(ConfigError, match=r"^credentials: '.*/a dir' cannot be bound"):
        credential_dirs(Credentials("any", str(odd / "x509up"), None, None, 0))
