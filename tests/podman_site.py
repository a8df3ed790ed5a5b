"""A real podman-hpc (PyPI) over real podman (Debian), configured the way NERSC configures
it, with its own image store per test session and a small image built from the host's static
busybox (no registry is reachable; nothing is downloaded).

podman-hpc reads its site configuration from ``PODMANHPC_CONFIG_FILE`` (at NERSC
/etc/podman_hpc/podman_hpc.yaml) and its modules (``--gpu``, ``--cvmfs``) from the
``modules.d`` its wheel installs under ``sys.prefix/etc``; podman reads ``CONTAINERS_CONF``:
runc, cgroupfs and ulimits within this sandbox's hard limits (the image issue, #12). podman-hpc
insists on a ``fuse-overlayfs-wrap`` on PATH (NERSC's wrapper of fuse-overlayfs), which here is
fuse-overlayfs itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

IMAGE = "localhost/site-agent-test:busybox"
BUSYBOX = Path("/bin/busybox")
CONTAINERS_CONF = """\
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
"""


class PodmanUnavailable(Exception):
    """podman cannot run here at all (not installed, or no static busybox for the image)."""


@dataclass(frozen=True)
class PodmanSite:
    root: Path
    env: dict[str, str]  # what a compute node's job environment adds for podman-hpc
    image: str = IMAGE

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["podman-hpc", *args], env=os.environ | self.env, capture_output=True, text=True,
            timeout=120, check=check,
        )  # fmt: skip

    def containers(self) -> list[str]:
        """Names of every container in this store, running or not."""
        out = self.run("ps", "--all", "--format", "{{.Names}}").stdout
        return [line for line in out.splitlines() if line.strip()]


def _static_busybox() -> Path:
    if not BUSYBOX.is_file():
        raise PodmanUnavailable("no /bin/busybox (apt-get install busybox-static)")
    kind = subprocess.run(["ldd", str(BUSYBOX)], capture_output=True, text=True)
    if kind.returncode == 0 and "=>" in kind.stdout:
        raise PodmanUnavailable("/bin/busybox is not static (apt-get install busybox-static)")
    return BUSYBOX


def _rootfs(root: Path) -> Path:
    """busybox and its applets as /bin, the directories a container runtime expects."""
    fs = root / "rootfs"
    (fs / "bin").mkdir(parents=True)
    for d in ("tmp", "proc", "sys", "dev", "etc", "cvmfs"):
        (fs / d).mkdir()
    shutil.copy2(_static_busybox(), fs / "bin" / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for name in applets:
        if name != "busybox":
            (fs / "bin" / name).symlink_to("busybox")
    (fs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return fs


def start_podman_site(root: Path) -> PodmanSite:
    """The configuration files, the image store and the imported image."""
    for tool in ("podman", "runc", "fuse-overlayfs"):
        if shutil.which(tool) is None:
            raise PodmanUnavailable(f"{tool} is not installed (.ci/run installs it)")
    podman_hpc = shutil.which("podman-hpc", path=f"{Path(sys.executable).parent}:{os.defpath}")
    if podman_hpc is None:
        raise PodmanUnavailable("podman-hpc is not installed (pip install podman-hpc)")
    bindir = root / "bin"
    bindir.mkdir(parents=True)
    (bindir / "fuse-overlayfs-wrap").symlink_to(shutil.which("fuse-overlayfs") or "")
    (bindir / "podman-hpc").symlink_to(podman_hpc)
    (root / "containers.conf").write_text(CONTAINERS_CONF)
    hooks = root / "hooks.d"  # no OCI hooks: the modules' binds are NERSC's, not this host's
    hooks.mkdir()
    modules = Path(sys.prefix) / "etc" / "podman_hpc" / "modules.d"
    (root / "podman_hpc.yaml").write_text(
        f'podman_bin: "{shutil.which("podman")}"\n'
        f'modules_dir: "{modules}"\n'
        f'hooks_dir: "{hooks}"\n'
        f'graph_root_template: "{root}/storage"\n'
        f'run_root_template: "{root}/run"\n'
        f'config_home_template: "{root}/config"\n'
    )
    env = {
        "PODMANHPC_CONFIG_FILE": str(root / "podman_hpc.yaml"),
        "CONTAINERS_CONF": str(root / "containers.conf"),
        "SQUASH_DIR": str(root / "squash"),
        "PATH": f"{bindir}:{os.environ.get('PATH', os.defpath)}",
        "USER": os.environ.get("USER") or "root",  # podman-hpc needs it off a terminal
    }
    site = PodmanSite(root, env)
    tar = subprocess.Popen(["tar", "-C", str(_rootfs(root)), "-c", "."], stdout=subprocess.PIPE)
    done = subprocess.run(
        ["podman-hpc", "import", "-", IMAGE], stdin=tar.stdout, env=os.environ | env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    tar.wait()
    if done.returncode != 0:
        raise PodmanUnavailable(f"podman-hpc import failed: {done.stderr.strip()[-300:]}")
    probe = site.run("run", "--rm", IMAGE, "true", check=False)
    if probe.returncode != 0:
        raise PodmanUnavailable(f"podman cannot run a container here: {probe.stderr[-300:]}")
    return site


def stop_podman_site(site: PodmanSite) -> None:
    """Remove every container and the store (overlay mounts go with the containers)."""
    site.run("rm", "--all", "--force", "--time", "0", check=False)
    site.run("rmi", "--all", "--force", check=False)
    shutil.rmtree(site.root, ignore_errors=True)
