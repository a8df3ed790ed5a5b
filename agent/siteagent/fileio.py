"""Atomic file writes, so nothing is ever left half-written."""

from __future__ import annotations

import os
from pathlib import Path


def sha256_text(text: str) -> str:
    """The SHA-256 of ``text`` (UTF-8), in hex."""
    try:  # CPython's own SHA-256: hashlib would load OpenSSL (3 ms), on every rank's cache key
        from _sha256 import sha256  # type: ignore[import-not-found]
    except ImportError:  # Python 3.12+ (_sha2), or another implementation
        from hashlib import sha256
    return sha256(text.encode()).hexdigest()


def sha256_file(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def atomic_write(path: Path, text: str, mode: int = 0o644, *, durable: bool = True) -> None:
    """Write ``text`` to ``path`` through a temp file in the same directory and a rename.

    A reader sees the old file or the new one, never half of one. ``durable`` also fsyncs
    the data before the rename, so the new text survives a crash of the node; without it a
    crash may leave the old file (never a torn one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name no other writer uses (pid + a random suffix), created exclusively: what
    # tempfile.mkstemp does, without importing tempfile (and random, hashlib) per rank
    tmp = path.parent / f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
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
        tmp.unlink(missing_ok=True)
        raise
