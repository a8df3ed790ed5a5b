"""Atomic file writes, so nothing is ever left half-written; reads and hashes. Without
pathlib (its import pulls urllib.parse, ipaddress, fnmatch: milliseconds on every rank)."""

from __future__ import annotations

import os

from siteagent.pathstr import clean


def read_text(path: str | os.PathLike[str]) -> str:
    """The text of the file at ``path``, in the locale's encoding as ``Path.read_text``."""
    with open(path) as fh:
        return fh.read()


def sha256_text(text: str) -> str:
    """The SHA-256 of ``text`` (UTF-8), in hex."""
    try:  # CPython's own SHA-256: hashlib would load OpenSSL (3 ms), on every rank's cache key
        from _sha256 import sha256  # type: ignore[import-not-found]
    except ImportError:  # Python 3.12+ (_sha2), or another implementation
        from hashlib import sha256
    return sha256(text.encode()).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file at ``path``, in hex."""
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def atomic_write(
    path: str | os.PathLike[str], text: str, mode: int = 0o644, *, durable: bool = True
) -> None:
    """Write ``text`` to ``path`` through a temp file in the same directory and a rename.

    A reader sees the old file or the new one, never half of one. ``durable`` also fsyncs
    the data before the rename, so the new text survives a crash of the node; without it a
    crash may leave the old file (never a torn one)."""
    path = clean(os.fspath(path))  # as Path(path) named it: no trailing "/"
    directory, name = os.path.split(path)
    directory = directory or "."
    os.makedirs(directory, exist_ok=True)
    # a name no other writer uses (pid + a random suffix), created exclusively: what
    # tempfile.mkstemp does, without importing tempfile (and random, hashlib) per rank
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        import contextlib  # only on failure

        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
