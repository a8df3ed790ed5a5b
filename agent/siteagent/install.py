"""``site-agent install`` / ``uninstall``: put a site's endpoint directory on this login node.

One directory holds everything: the four template-endpoint files and ``bin/site-agent-exec``
(endpoint/render.py) and, for cvmfsexec sites, ``cvmfs/default.local``. All of it goes through
managed.py, so the manifest lists exactly what we wrote, a second install changes nothing,
files edited by hand are kept (or, with ``force``, replaced after a backup), and uninstall removes
only what the manifest lists.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from siteagent.errors import ConfigError, SiteAgentError
from siteagent.fileio import sha256_file, sha256_text
from siteagent.managed import (
    MANIFEST,
    ManagedFile,
    WriteReport,
    edited_files,
    locked,
    remove_managed,
    write_managed,
)
from siteagent.names import LOCAL_PATH_RE
from siteagent.profiles import Profile
from siteagent.site_switch import check_same_site, remove_stale

if TYPE_CHECKING:
    from siteagent.image import WorkerImage

CVMFS_CONFIG = "cvmfs/default.local"
CREATED, UNCHANGED, UPDATED, KEPT_EDITED = "created", "unchanged", "updated", "kept-edited"
REMOVED = "removed"


@dataclass
class InstallReport:
    site: str
    endpoint_name: str
    directory: Path
    files: list[tuple[str, str]] = field(default_factory=list)  # (relative path, status)
    backup_dir: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(status in (CREATED, UPDATED, REMOVED) for _, status in self.files)

    def names(self, status: str) -> list[str]:
        return [name for name, s in self.files if s == status]


class NothingInstalled(SiteAgentError):
    """No site-agent endpoint where one was looked for (uninstall: nothing to do)."""


@dataclass
class UninstallReport:
    directory: Path
    removed: list[str]
    left: list[str]  # files in the directory that site-agent did not write
    directory_removed: bool
    backup_dir: Path | None = None  # --force: the edited files, kept here


def check_local_path(path: Path, option: str) -> Path:
    """``path`` when it is absolute and made of characters that worker_init, a shell and the
    endpoint's Jinja take literally (names.LOCAL_PATH); a one-line ConfigError otherwise."""
    text = str(path)
    if not LOCAL_PATH_RE.match(text):
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise ConfigError(
            f"{option}: {shown!r} has characters that are not allowed "
            "(letters, digits and _ . + @ % , = - /)"
        )
    if any(len(part) > 255 for part in Path(text).parts):
        raise ConfigError(f"{option}: a name in the path is longer than 255 characters")
    return path


def default_endpoint_dir(profile: Profile) -> Path:
    """``endpoint.dir`` of the profile, else ``~/.globus_compute/<endpoint.name>``."""
    from siteagent.checks.runner import endpoint_dir

    return endpoint_dir(profile).expanduser().absolute()


def render_cvmfs_config(profile: Profile) -> str | None:
    """``default.local`` for cvmfsexec from the profile's proxy and cvmfs sections
    (None where the site has native CVMFS or none); rendered by siteagent.cvmfs, which the
    pilot wrapper uses on compute nodes too."""
    from siteagent.cvmfs import render_default_local

    cvmfs = profile.cvmfs
    if cvmfs.mode != "cvmfsexec":
        return None
    if not cvmfs.repositories:
        raise ConfigError("cvmfs.repositories: cvmfsexec needs at least one repository")
    return render_default_local(profile, cvmfs.repositories, cvmfs.cache_dir)


def default_pilot_dir() -> Path | None:
    """PanDA pilot3 unpacked into this venv (``install-login-node.sh`` puts it there)."""
    candidate = Path(sys.prefix) / "pilot3"
    return candidate if (candidate / "pilot.py").is_file() else None


def install_files(
    profile: Profile,
    directory: Path,
    pilot_dir: Path | None = None,
    image: WorkerImage | None = None,
) -> dict[str, ManagedFile]:
    """Every file ``install`` writes into ``directory``, with its mode."""
    from siteagent.endpoint.render import managed_files, render_endpoint

    files = managed_files(render_endpoint(profile, directory, pilot_dir=pilot_dir, image=image))
    cvmfs = render_cvmfs_config(profile)
    if cvmfs is not None:
        # holds the proxy URL, which may carry credentials
        files[CVMFS_CONFIG] = ManagedFile(cvmfs, 0o600)
    return files


def _private_dirs(directory: Path, names: list[str]) -> list[Path]:
    """Create ``directory``, its missing parents and the files' subdirectories as 0700;
    the directories created, in the order they were."""
    missing = []
    d = directory
    while not d.exists():
        missing.append(d)
        d = d.parent
    created = []
    for d in [*reversed(missing), *sorted({(directory / n).parent for n in names})]:
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue  # there already, or made just now by another install
        created.append(d)
        d.chmod(0o700)  # mkdir's mode is filtered by the umask
    return created


def install(
    profile: Profile,
    directory: Path | None = None,
    force: bool = False,
    pilot_dir: Path | None = None,
    image: str | None = None,
) -> InstallReport:
    """Write the endpoint directory of ``profile``; see the module docstring.

    Run from the site-agent image, or with ``image`` (``--image``), the endpoint starts its
    worker pools inside that image (siteagent/image.py)."""
    directory = _target_directory(profile, directory)
    replaced = check_same_site(profile.name, directory, force)
    pilot_dir = _checked_pilot_dir(pilot_dir)
    workers = _worker_image(profile, directory, image)
    files = install_files(profile, directory, pilot_dir, workers)
    report = InstallReport(
        site=profile.name, endpoint_name=profile.endpoint.name, directory=directory
    )
    written, to_write, existed, stale = _write_files(directory, files, force)
    report.backup_dir = written.backup_dir
    report.files = [
        (name, _status(name, written.unchanged, to_write, existed)) for name in sorted(files)
    ]
    report.notes = _notes(pilot_dir, workers) + _cvmfsexec_notes(profile)
    _drop_stale(report, stale, replaced)
    return report


def _checked_pilot_dir(pilot_dir: Path | None) -> Path | None:
    """``--pilot-dir`` when it holds pilot.py, else the pilot3 of this venv (or None)."""
    if pilot_dir is not None and not (Path(pilot_dir) / "pilot.py").is_file():
        raise ConfigError(f"--pilot-dir: no pilot.py in {pilot_dir}")
    return pilot_dir or default_pilot_dir()


def _write_files(
    directory: Path, files: dict[str, ManagedFile], force: bool
) -> tuple[WriteReport, dict[str, ManagedFile], set[str], tuple[list[str], list[str]]]:
    """Write ``files`` under the install lock, leaving files edited by hand unless ``force``,
    and drop what an earlier install wrote that this one does not (another site's files):
    (what was written, the files meant to be written, the names there before, the stale
    files (removed, left because edited)). On an OSError what this install created is
    removed and nothing counts as installed."""
    created: list[Path] = []
    existed: set[str] = set()
    try:
        created = _private_dirs(directory, [])  # the lock is taken on the directory itself
        with locked(directory):  # two installs at once would mix their files
            # in the lock: another site's install may be removing its subdirectories
            created += _private_dirs(directory, list(files))
            existed = {name for name in files if (directory / name).exists()}
            unedited = _unedited(directory, files, existed)
            to_write = files if force else unedited
            written = write_managed(directory, to_write, force=force)
            stale = remove_stale(directory, set(files))  # in the lock: never a mix of two
    except OSError as err:  # read-only or full filesystem, a name too long
        _undo(directory, [n for n in files if n not in existed], created)
        where = err.filename or directory
        raise SiteAgentError(
            f"{where}: cannot write: {err.strerror or err}; nothing was installed"
        ) from None
    return written, to_write, existed, stale


def _drop_stale(
    report: InstallReport, stale: tuple[list[str], list[str]], replaced: str | None
) -> None:
    """Report the files of an earlier install this one no longer writes: removed (or left
    if edited)."""
    removed, left = stale
    report.files += [(name, REMOVED) for name in removed]
    if replaced:
        report.notes.append(f"replaced the endpoint of site '{replaced}' in {report.directory}")
    if left:
        report.notes.append(f"left {', '.join(left)} (edited by hand; no longer site-agent's)")


def _worker_image(profile: Profile, directory: Path, image: str | None) -> WorkerImage | None:
    """Where the workers start: the image named or the one site-agent runs from, else None
    (this venv, put on PATH by worker_init)."""
    from siteagent.image import detect, worker_image

    running = detect()
    return worker_image(profile, directory, image, running) if image or running else None


def _cvmfsexec_notes(profile: Profile) -> list[str]:
    """On a cvmfsexec site without cvmfsexec where the pilot looks: exactly what to run."""
    from siteagent.cvmfsexec import provision_commands, shell_text, status

    if profile.cvmfs.mode != "cvmfsexec":
        return []
    found = status(profile)
    if found.ready:
        return []
    commands = provision_commands(profile, found.directory)[(1 if found.present else 0) :]
    return [
        f"cvmfsexec is not ready in {found.directory}: `site-agent install --site "
        f"{profile.name} --cvmfsexec` does it where this node reaches GitHub, or run: "
        f"{shell_text(commands)}"
    ]


def _undo(directory: Path, new_files: list[str], created: list[Path]) -> None:
    """Remove what a failed install added: files a manifest does not list are partial."""
    from siteagent.managed import read_manifest

    listed = read_manifest(directory) if directory.is_dir() else {}
    for name in new_files:
        if name not in listed:
            (directory / name).unlink(missing_ok=True)
    for d in reversed(created):
        with contextlib.suppress(OSError):
            d.rmdir()  # only when empty


def _target_directory(profile: Profile, directory: Path | None) -> Path:
    directory = Path(directory).expanduser().absolute() if directory else None
    directory = directory or default_endpoint_dir(profile)
    check_local_path(directory, "--endpoint-dir")
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--endpoint-dir: {directory} exists and is not a directory")
    return directory


def _unedited(
    directory: Path, files: dict[str, ManagedFile], existed: set[str]
) -> dict[str, ManagedFile]:
    """The ``files`` site-agent may replace: not those it wrote that were edited by hand
    since, and differ from what it would write."""
    edited = {
        name
        for name in edited_files(directory, sorted(existed))
        if sha256_file(directory / name) != sha256_text(files[name].text)
    }
    return {n: f for n, f in files.items() if n not in edited}


def _status(
    name: str, unchanged: list[str], to_write: dict[str, ManagedFile], existed: set[str]
) -> str:
    if name in unchanged:
        return UNCHANGED
    if name not in to_write:
        return KEPT_EDITED
    return UPDATED if name in existed else CREATED


def _notes(pilot_dir: Path | None, workers: WorkerImage | None) -> list[str]:
    """What the user should know after an install."""
    notes = []
    if pilot_dir is None:
        notes.append(
            "no PanDA pilot3 found: `site-agent pilot` runs only explicit payloads until you "
            "install again with --pilot-dir DIR (an unpacked pilot3 release, see "
            "scripts/get-panda-pilot.sh)"
        )
    if workers is not None:
        notes.append(
            f"workers start in the image: {workers.container_type} {workers.container_uri}"
        )
    return notes


def _running_pid(directory: Path) -> int | None:
    """PID of a live endpoint daemon for ``directory`` (globus-compute-endpoint's pid file)."""
    try:
        pid = int((directory / "daemon.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def find_installed(base: Path | None = None) -> Path:
    """The one endpoint directory under the Globus Compute directory that site-agent manages."""
    from globus_compute_sdk.sdk.compute_dir import get_compute_dir

    base = base or get_compute_dir()
    found = sorted(p.parent for p in base.glob(f"*/{MANIFEST}"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise NothingInstalled(
            f"nothing to uninstall: no endpoint installed by site-agent under {base}"
        )
    names = ", ".join(p.name for p in found)
    raise ConfigError(f"--endpoint-dir: several endpoints under {base} ({names}); name one")


def uninstall(directory: Path, force: bool = False) -> UninstallReport:
    """Remove exactly the files the manifest lists; user files stay."""
    directory = Path(directory).expanduser().absolute()
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise NothingInstalled(f"nothing to uninstall: no site-agent endpoint in {directory}")
    try:
        json.loads(manifest_path.read_text())
    except ValueError:
        raise SiteAgentError(f"{manifest_path}: not valid JSON; remove the files by hand") from None
    pid = _running_pid(directory)
    if pid:
        from siteagent.next_steps import gce_command

        # even with force: its files are in use
        raise SiteAgentError(
            f"the endpoint in {directory} is running (pid {pid}): stop it first with "
            f"`{gce_command(directory, 'stop')}`"
        )
    with locked(directory):
        done = remove_managed(directory, force=force)
        left = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
        gone = False
        if not any(directory.iterdir()):
            directory.rmdir()
            gone = True
    return UninstallReport(
        directory=directory,
        removed=done.written,
        left=left,
        directory_removed=gone,
        backup_dir=done.backup_dir,
    )
