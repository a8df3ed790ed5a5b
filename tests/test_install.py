"""`site-agent install` / `uninstall`: the endpoint directory of a site, idempotent, never
clobbering user edits, and removing exactly what it wrote."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from siteagent.errors import ConfigError
from siteagent.install import install, render_cvmfs_config
from siteagent.managed import MANIFEST
from siteagent.profiles import load_profile


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _lines(stdout: str) -> dict[str, str]:
    """``{relative path: status}`` from the per-file lines of `site-agent install`."""
    out = {}
    for line in stdout.splitlines():
        status, _, path = line.partition(" ")
        if status in ("created", "unchanged", "updated", "kept-edited"):
            out[Path(path.strip()).name] = status
    return out


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return {"HOME": str(h), "GLOBUS_COMPUTE_USER_DIR": ""}


def test_install_default_dir_modes_and_second_run_unchanged(run_cli, home):
    r = run_cli("install", "--site", "polaris", env=home)
    assert r.returncode == 0, r.stderr
    ep = Path(home["HOME"]) / ".globus_compute" / "polaris-panda"
    assert _lines(r.stdout) == {
        n: "created"
        for n in (
            "site-agent-exec",
            "config.yaml",
            "default.local",
            "user_config_schema.json",
            "user_config_template.yaml.j2",
            "user_environment.yaml",
        )
    }
    assert f"endpoint 'polaris-panda' installed in {ep}" in r.stdout
    assert "globus-compute-endpoint login" in r.stdout
    assert "globus-compute-endpoint start polaris-panda" in r.stdout
    # secrets owner-only, directories private, all the user's
    assert _mode(ep / "user_environment.yaml") == 0o600
    assert _mode(ep / "cvmfs" / "default.local") == 0o600
    assert _mode(ep / MANIFEST) == 0o600
    assert _mode(ep / "bin" / "site-agent-exec") == 0o755
    for d in (ep.parent, ep, ep / "bin", ep / "cvmfs"):
        assert _mode(d) == 0o700, d
    assert all(p.stat().st_uid == os.getuid() for p in ep.rglob("*"))
    manifest = json.loads((ep / MANIFEST).read_text())["files"]
    assert set(manifest) == {
        "bin/site-agent-exec",
        "config.yaml",
        "cvmfs/default.local",
        "user_config_schema.json",
        "user_config_template.yaml.j2",
        "user_environment.yaml",
    }
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in ep.rglob("*") if p.is_file()}
    r = run_cli("install", "--site", "polaris", env=home)
    assert r.returncode == 0, r.stderr
    assert set(_lines(r.stdout).values()) == {"unchanged"}
    assert f"endpoint 'polaris-panda' unchanged in {ep}" in r.stdout
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in ep.rglob("*") if p.is_file()}
    assert after == before


def test_edited_file_is_kept_then_force_replaces_with_backup(run_cli, tmp_path):
    ep = tmp_path / "ep"
    assert run_cli("install", "--site", "frontier", "--endpoint-dir", str(ep)).returncode == 0
    mine = (ep / "config.yaml").read_text() + "# my edit\n"
    (ep / "config.yaml").write_text(mine)
    r = run_cli("install", "--site", "frontier", "--endpoint-dir", str(ep))
    assert r.returncode == 0, r.stderr
    assert _lines(r.stdout)["config.yaml"] == "kept-edited"
    assert "--force" in r.stdout and (ep / "config.yaml").read_text() == mine
    r = run_cli("install", "--site", "frontier", "--endpoint-dir", str(ep), "--force")
    assert r.returncode == 0, r.stderr
    assert _lines(r.stdout)["config.yaml"] == "updated"
    backups = list((ep / ".site-agent-backup").glob("*/config.yaml"))
    assert len(backups) == 1 and backups[0].read_text() == mine
    assert "# my edit" not in (ep / "config.yaml").read_text()


def test_profile_change_updates_only_what_changed(run_cli, tmp_path):
    ep = tmp_path / "ep"
    text = (Path(__file__).parents[1] / "site-profiles" / "polaris.yaml").read_text()
    (tmp_path / "mysite.yaml").write_text(text)
    assert run_cli("install", "--site", "mysite.yaml", "--endpoint-dir", str(ep)).returncode == 0
    (tmp_path / "mysite.yaml").write_text(text.replace("cache_dir: /local/scratch/cvmfs", ""))
    r = run_cli("install", "--site", "mysite.yaml", "--endpoint-dir", str(ep))
    assert r.returncode == 0, r.stderr
    statuses = _lines(r.stdout)
    assert statuses.pop("default.local") == "updated"
    assert set(statuses.values()) == {"unchanged"}
    assert "CVMFS_CACHE_BASE" not in (ep / "cvmfs" / "default.local").read_text()


def test_cvmfs_config_from_profile():
    text = render_cvmfs_config(load_profile("polaris"))
    assert (
        "CVMFS_REPOSITORIES='atlas.cern.ch,atlas-condb.cern.ch,sft.cern.ch,unpacked.cern.ch'"
        in text
    )
    assert "CVMFS_HTTP_PROXY='http://proxy.alcf.anl.gov:3128'" in text
    assert "CVMFS_CACHE_BASE='/local/scratch/cvmfs'" in text
    assert "CVMFS_QUOTA_LIMIT='4000'" in text
    # native CVMFS (Perlmutter) or none (local): nothing to configure
    assert render_cvmfs_config(load_profile("perlmutter")) is None
    assert render_cvmfs_config(load_profile("local")) is None


def test_cvmfs_without_proxy_goes_direct(tmp_path):
    p = tmp_path / "np.yaml"
    p.write_text(
        "name: np\nscheduler: slurm\nlauncher: srun\nendpoint: {name: np}\n"
        "node: {cores: 4, gpus: 0}\ncvmfs: {mode: cvmfsexec, repositories: [sft.cern.ch]}\n"
    )
    text = render_cvmfs_config(load_profile(str(p)))
    assert "CVMFS_HTTP_PROXY='DIRECT'" in text and "CVMFS_CACHE_BASE" not in text
    p.write_text(p.read_text().replace("[sft.cern.ch]", "[]"))
    with pytest.raises(ConfigError, match=r"^cvmfs.repositories: "):
        render_cvmfs_config(load_profile(str(p)))


def test_uninstall_removes_exactly_what_install_wrote(run_cli, home):
    assert run_cli("install", "--site", "aurora", env=home).returncode == 0
    ep = Path(home["HOME"]) / ".globus_compute" / "aurora-panda"
    (ep / "endpoint.json").write_text('{"endpoint_id": "x"}')  # the endpoint's own file
    (ep / "bin" / "mine.sh").write_text("echo mine\n")
    r = run_cli("uninstall", env=home)  # finds the one site-agent endpoint by its manifest
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("removed ") == 6
    assert sorted(str(p.relative_to(ep)) for p in ep.rglob("*")) == [
        "bin",
        "bin/mine.sh",
        "endpoint.json",
    ]
    assert "left        " in r.stdout and "endpoint.json" in r.stdout
    r = run_cli("uninstall", "--site", "aurora", env=home)
    assert r.returncode == 0 and r.stdout.startswith("nothing to uninstall: no site-agent")


def test_uninstall_of_clean_install_removes_the_directory(run_cli, tmp_path):
    ep = tmp_path / "ep"
    assert run_cli("install", "--site", "local", "--endpoint-dir", str(ep)).returncode == 0
    r = run_cli("uninstall", "--endpoint-dir", str(ep))
    assert r.returncode == 0, r.stderr
    assert not ep.exists() and f"removed     {ep}/" in r.stdout


def test_uninstall_refuses_edited_files_and_running_endpoint(run_cli, tmp_path):
    ep = tmp_path / "ep"
    assert run_cli("install", "--site", "local", "--endpoint-dir", str(ep)).returncode == 0
    (ep / "config.yaml").write_text("# mine\n")
    r = run_cli("uninstall", "--endpoint-dir", str(ep))
    assert r.returncode == 1 and "config.yaml edited" in r.stderr
    assert (ep / "config.yaml").read_text() == "# mine\n"
    (ep / "daemon.pid").write_text(f"{os.getpid()}\n")  # a live process
    r = run_cli("uninstall", "--endpoint-dir", str(ep), "--force")
    assert r.returncode == 1
    assert "is running (pid" in r.stderr and "globus-compute-endpoint stop ep" in r.stderr
    (ep / "daemon.pid").unlink()
    r = run_cli("uninstall", "--endpoint-dir", str(ep), "--force")
    assert r.returncode == 0 and "backed up" in r.stdout, r.stderr
    # like install --force, the hand-edited file is kept in a backup; nothing else is left
    (backup,) = (ep / ".site-agent-backup").iterdir()
    assert (backup / "config.yaml").read_text() == "# mine\n"
    assert sorted(p.name for p in ep.rglob("*") if p.is_file()) == ["config.yaml"]


def test_uninstall_with_several_endpoints_asks_which(run_cli, home):
    for site in ("local", "frontier"):
        assert run_cli("install", "--site", site, env=home).returncode == 0
    r = run_cli("uninstall", env=home)
    assert r.returncode == 2
    assert "--endpoint-dir: several endpoints" in r.stderr
    assert "frontier-panda, site-agent-local" in r.stderr


def test_install_errors_are_one_line(run_cli, tmp_path):
    (tmp_path / "file").write_text("")
    r = run_cli("install", "--site", "nosuch")
    assert r.returncode == 2 and r.stderr.startswith("site-agent: error: unknown site profile")
    r = run_cli("install", "--site", "local", "--endpoint-dir", str(tmp_path / "file"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    r = run_cli("uninstall", env={"HOME": str(tmp_path), "GLOBUS_COMPUTE_USER_DIR": ""})
    assert r.returncode == 0 and r.stdout.startswith("nothing to uninstall: no endpoint installed")


def test_install_points_workers_at_pilot3(tmp_path):
    pilot3 = tmp_path / "pilot3"
    pilot3.mkdir()
    report = install(load_profile("local"), tmp_path / "ep")
    assert any(n.startswith("no PanDA pilot3 found") for n in report.notes)
    (pilot3 / "pilot.py").write_text("")
    report = install(load_profile("local"), tmp_path / "ep", pilot_dir=pilot3)
    assert ("user_config_template.yaml.j2", "updated") in report.files
    assert not any(n.startswith("no PanDA pilot3") for n in report.notes)
    rendered = (tmp_path / "ep" / "user_config_template.yaml.j2").read_text()
    assert f"export SITE_AGENT_PILOT_DIR={pilot3}\n" in rendered
    with pytest.raises(ConfigError, match=r"^--pilot-dir: no pilot\.py in "):
        install(load_profile("local"), tmp_path / "ep", pilot_dir=tmp_path)


# ---------------------------------------------------------------- cvmfsexec on the login node
@pytest.fixture
def cvmfsexec_upstream(tmp_path):
    """A git repository standing in for github.com/cvmfs/cvmfsexec (no download in tests):
    the strict cvmfsexec and makedist stand-ins, committed."""
    import shutil
    import subprocess

    repo = tmp_path / "upstream"
    repo.mkdir()
    standins = Path(__file__).parent / "standins" / "cvmfsexec"
    for tool in ("cvmfsexec", "makedist"):
        shutil.copy2(standins / tool, repo / tool)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "cvmfsexec"], check=True)
    return repo


def test_install_says_exactly_how_to_get_cvmfsexec_then_provisions_it(
    run_cli, home, tmp_path, cvmfsexec_upstream
):
    target = tmp_path / "cvmfsexec"
    env = home | {
        "SITE_AGENT_CVMFSEXEC_DIR": str(target),
        "SITE_AGENT_CVMFSEXEC_URL": str(cvmfsexec_upstream),
        "PATH": "/usr/bin:/bin",
    }
    r = run_cli("install", "--site", "polaris", env=env)
    assert r.returncode == 0, r.stderr
    assert (
        f"note: cvmfsexec is not ready in {target}: `site-agent install --site polaris "
        "--cvmfsexec` does it where this node reaches GitHub, or run: git clone --depth 1 "
        f"{cvmfsexec_upstream} {target} && {target}/makedist default"
    ) in r.stdout
    assert not target.exists()  # nothing fetched without --cvmfsexec
    r = run_cli("install", "--site", "polaris", "--cvmfsexec", env=env)
    assert r.returncode == 0, r.stderr
    assert f"ran         git clone --depth 1 {cvmfsexec_upstream} {target}" in r.stdout
    assert f"ran         {target}/makedist default" in r.stdout
    assert os.access(target / "cvmfsexec", os.X_OK) and (target / "dist" / "etc").is_dir()
    assert "cvmfsexec is not ready" not in r.stdout
    again = run_cli("install", "--site", "polaris", "--cvmfsexec", env=env)
    assert "ran " not in again.stdout  # there already: nothing is run


def test_install_cvmfsexec_failure_is_one_line_with_the_commands(run_cli, home, tmp_path):
    target = tmp_path / "cvmfsexec"
    env = home | {
        "SITE_AGENT_CVMFSEXEC_DIR": str(target),
        "SITE_AGENT_CVMFSEXEC_URL": str(tmp_path / "no-such-repo"),
    }
    r = run_cli("install", "--site", "frontier", "--cvmfsexec", env=env)
    assert r.returncode != 0
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"site-agent: error: cvmfsexec: git clone --depth 1 {tmp_path}")
    assert line.endswith(f"&& {target}/makedist default)")


def test_install_leaves_the_validated_profile_for_the_ranks(run_cli, home, tmp_path, monkeypatch):
    """The compute nodes' first ranks find the profile validated by install (a shared home)."""
    from siteagent import profilecache, profiles

    cache = tmp_path / "xdg-cache"
    r = run_cli("install", "--site", "polaris", env=home | {"XDG_CACHE_HOME": str(cache)})
    assert r.returncode == 0, r.stderr
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    _, key = profilecache.profile_key("polaris")
    assert (cache / "site-agent" / "profiles" / f"{key[:32]}.json").is_file()

    expected = load_profile("polaris").data

    def no_yaml(*args, **kwargs):
        raise AssertionError("a rank parsed the profile again")

    monkeypatch.setattr(profiles, "validated_data", no_yaml)
    assert profilecache.load_profile_cached("polaris").data == expected
