"""Write a set of files into a directory we manage, without ever clobbering user edits.

A manifest (``.site-agent-manifest.json``) records the hash of each file as we wrote it. On
the next write a file is replaced only if it still has that hash; a file the user edited
(or one we did not write) stops the write unless ``force`` is set, and then it is first
copied to ``.site-agent-backup/<timestamp>/``. All files are written atomically, and the
manifest last, so an interrupted write is redone on the next run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from siteagent.errors import SiteAgentError
from siteagent.fileio import atomic_write, sha256_file, sha256_text

MANIFEST = ".site-agent-manifest.json"
BACKUP_DIR = ".site-agent-backup"


@dataclass(frozen=True)
class ManagedFile:
    text: str
    mode: int = 0o644


@dataclass
class WriteReport:
    directory: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    backed_up: list[str] = field(default_factory=list)
    backup_dir: Path | None = None

    @property
    def changed(self) -> bool:
        return bool(self.written)


class UserEditedError(SiteAgentError):
    """A managed file was changed by hand; nothing was written."""


class ManifestError(SiteAgentError):
    """The manifest names a path outside the directory; nothing was removed."""


def confined(directory: Path, name: str) -> None:
    """A one-line ManifestError unless ``directory / name`` is inside ``directory`` with every
    symlink and ``..`` resolved as the kernel would (an absolute ``name`` replaces the
    directory): a manifest is data anyone with write access can edit."""
    base = directory.resolve()
    path = (base / name).resolve()
    if path == base or not path.is_relative_to(base):
        raise ManifestError(
            f"{directory / MANIFEST}: entry {name!r} is outside {directory}; nothing was removed"
        )


@contextlib.contextmanager
def locked(directory: Path, timeout: float = 60.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` (install and uninstall take it, so two at
    once cannot mix files); waits up to ``timeout`` seconds, then one line."""
    import fcntl

    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SiteAgentError(
                        f"{directory}: another site-agent install or uninstall holds it "
                        f"(waited {timeout:.0f} s); try again"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def read_manifest(directory: Path) -> dict[str, str]:
    path = directory / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(k): str(v) for k, v in data.get("files", {}).items()}
    except (ValueError, AttributeError):
        return {}


def edited_files(directory: Path, names: list[str] | None = None) -> list[str]:
    """Files present in ``directory`` whose content is not what we last wrote."""
    manifest = read_manifest(directory)
    out = []
    for name in names if names is not None else sorted(manifest):
        p = directory / name
        if p.is_file() and manifest.get(name) != sha256_file(p):
            out.append(name)
    return out


def write_managed(
    directory: Path,
    files: dict[str, ManagedFile],
    *,
    force: bool = False,
) -> WriteReport:
    """Write ``files`` (relative path -> content) into ``directory``; see module docstring."""
    report = WriteReport(directory=directory)
    manifest = read_manifest(directory)
    wanted = {name: sha256_text(f.text) for name, f in files.items()}

    todo, conflicts = _plan(directory, files, wanted, manifest, report)
    if conflicts and not force:
        raise _edited_error(directory, conflicts)
    if conflicts:
        _back_up(directory, conflicts, report)

    # owner-only: what we manage holds configs and secrets
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in todo:
        atomic_write(directory / name, files[name].text, files[name].mode)
        report.written.append(name)
    merged = manifest | wanted
    if merged != manifest or not (directory / MANIFEST).is_file():
        _write_manifest(directory, merged)
    return report


def _edited_error(directory: Path, conflicts: list[str]) -> UserEditedError:
    """The refusal to replace files edited by hand without ``--force``."""
    return UserEditedError(
        f"{directory}: {', '.join(conflicts)} edited since site-agent wrote "
        f"{'it' if len(conflicts) == 1 else 'them'}; nothing was written "
        "(use --force to replace, a backup is kept)"
    )


def _write_manifest(directory: Path, entries: dict[str, str]) -> None:
    """The manifest: each managed file (relative path) and the digest written."""
    atomic_write(
        directory / MANIFEST,
        json.dumps({"files": dict(sorted(entries.items()))}, indent=1) + "\n",
        0o600,
    )


def _plan(
    directory: Path,
    files: dict[str, ManagedFile],
    wanted: dict[str, str],
    manifest: dict[str, str],
    report: WriteReport,
) -> tuple[list[str], list[str]]:
    """(files to write, those edited by hand); unchanged files only get their mode fixed."""
    todo, conflicts = [], []
    for name, f in files.items():
        p = directory / name
        if p.is_file():
            current = sha256_file(p)
            if current == wanted[name]:
                report.unchanged.append(name)
                if (p.stat().st_mode & 0o7777) != f.mode:
                    p.chmod(f.mode)
                continue
            if manifest.get(name) != current:
                conflicts.append(name)
        todo.append(name)
    return todo, conflicts


def _back_up(directory: Path, names: list[str], report: WriteReport) -> None:
    report.backup_dir = directory / BACKUP_DIR / time.strftime("%Y%m%dT%H%M%S")
    for name in names:
        dest = report.backup_dir / name
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # a symlinked file is backed up as the link, not as what it points to
        shutil.copy2(directory / name, dest, follow_symlinks=False)
        report.backed_up.append(name)


def remove_managed(directory: Path, *, force: bool = False) -> WriteReport:
    """Remove exactly the files the manifest lists (refusing edited ones unless ``force``,
    and then backing them up first); every entry must be inside ``directory``."""
    manifest = read_manifest(directory)
    for name in manifest:  # all checked before anything is removed
        confined(directory, name)
    edited = edited_files(directory)
    if edited and not force:
        raise UserEditedError(
            f"{directory}: {', '.join(edited)} edited since site-agent wrote them; "
            "nothing was removed (use --force, a backup is kept)"
        )
    report = WriteReport(directory=directory)
    if edited:
        _back_up(directory, edited, report)
    for name in sorted(manifest):
        p = directory / name
        if p.is_file() or p.is_symlink():
            p.unlink()
            report.written.append(name)
    (directory / MANIFEST).unlink(missing_ok=True)
    _remove_empty_parents(directory, manifest)
    return report


def _remove_empty_parents(directory: Path, names: Iterable[str]) -> None:
    """Remove the sub-directories of ``directory`` that held ``names`` and are empty now,
    deepest first (the endpoint directory itself stays)."""
    parents = {directory / p for n in names for p in Path(n).parents if p.parts}
    for d in sorted(parents, key=lambda x: -len(x.parts)):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def _inside(directory: Path, name: str) -> bool:
    """Whether manifest entry ``name`` stays inside ``directory`` (``confined``)."""
    try:
        confined(directory, name)
    except ManifestError:
        return False
    return True


def forget_managed(directory: Path, names: Iterable[str]) -> tuple[list[str], list[str]]:
    """Take ``names`` off the manifest: remove each file still as we wrote it, leave the ones
    edited by hand. Returns (removed, left)."""
    manifest = read_manifest(directory)
    # an entry outside the directory is never touched; it stays for uninstall to refuse
    names = sorted(n for n in set(names) & set(manifest) if _inside(directory, n))
    if not names:
        return [], []
    edited = set(edited_files(directory, names))
    removed, left = [], []
    for name in names:
        p = directory / name
        if name in edited:
            left.append(name)
        elif p.is_file():
            p.unlink()
            removed.append(name)
    _write_manifest(directory, {k: v for k, v in manifest.items() if k not in names})
    _remove_empty_parents(directory, removed)
    return removed, left
