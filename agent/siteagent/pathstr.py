"""Path strings as ``pathlib`` spells them, without importing it: a rank of a batch job must
not pay for pathlib's imports (urllib.parse, ipaddress, fnmatch, ntpath), yet paths it prints,
exports or hashes stay the strings ``str(Path(...))`` gave."""

from __future__ import annotations

import os


def clean(path: str) -> str:
    """``str(PurePosixPath(path))``: no empty or ``.`` parts and no trailing ``/``; unlike
    ``os.path.normpath``, ``..`` is kept (it is not a parent through a symlink)."""
    # POSIX keeps a leading "//" (implementation-defined), and so does pathlib; "///" is "/"
    root = "//" if path[:2] == "//" and path[2:3] != "/" else "/" if path[:1] == "/" else ""
    return root + "/".join(p for p in path.split("/") if p and p != ".") or "."


def absolute(path: str) -> str:
    """``str(Path(path).absolute())``: relative to the working directory, spelt by ``clean``
    (``..`` kept: unlike ``os.path.abspath``)."""
    return clean(path if path.startswith("/") else os.path.join(os.getcwd(), path))


def name(path: str) -> str:
    """``PurePosixPath(path).name``: the last part ('' for a root or '.')."""
    last = clean(path).rpartition("/")[2]
    return "" if last == "." else last


def parent(path: str) -> str:
    """``str(PurePosixPath(path).parent)``: a root is its own parent, a lone name's is '.'."""
    path = clean(path)
    head, sep, _ = path.rpartition("/")
    if not sep:
        return "."
    return head if head.strip("/") else path[: len(head) + 1]


def suffix(path: str) -> str:
    """``PurePosixPath(path).suffix``: '.yml' of 'environment.yml'; '' for '.bashrc' or 'a.'."""
    last = name(path)
    i = last.rfind(".")
    return last[i:] if 0 < i < len(last) - 1 else ""
