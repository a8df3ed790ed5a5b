"""Paths as plain strings on the rank's path (no pathlib there): the strings are the ones
``str(Path(...))`` gave, and the file helpers take ``str`` and ``Path`` alike."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from siteagent.errors import ConfigError
from siteagent.fileio import atomic_write, read_text, sha256_file, sha256_text
from siteagent.profile_path import find_profile, list_profiles, read_profile_text, search_path


def test_the_file_helpers_import_no_pathlib():
    """What a rank imports of them (the rank's own test covers the whole rank)."""
    modules = (
        "siteagent.fileio", "siteagent.profile_path", "siteagent.profilecache",
        "siteagent.pilot.logs", "siteagent.pilot.report", "siteagent.pilot.run",
    )  # fmt: skip
    code = f"import sys; import {', '.join(modules)}; print('pathlib' in sys.modules)"
    agent = str(Path(__file__).resolve().parents[1] / "agent")
    r = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {agent!r}); {code}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert r.stdout == "False\n"


@pytest.mark.parametrize("kind", [str, Path])
def test_atomic_write_takes_str_and_path(kind, tmp_path):
    target = tmp_path / "new" / "dir" / "f.txt"  # its directories are made
    atomic_write(kind(target), "one\n", 0o640)
    atomic_write(kind(target), "two\n", 0o640, durable=False)
    assert target.read_text() == "two\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert os.listdir(target.parent) == ["f.txt"]  # no temporary file left
    assert sha256_file(kind(target)) == hashlib.sha256(b"two\n").hexdigest()


def test_atomic_write_names_the_file_as_path_did(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    atomic_write("plain", "x")  # no directory part: the current one
    atomic_write("sub//./f.txt/", "y")  # as Path("sub//./f.txt/"): sub/f.txt
    assert sorted(os.listdir(tmp_path)) == ["plain", "sub"]
    assert (tmp_path / "plain").read_text() == "x"
    assert os.listdir(tmp_path / "sub") == ["f.txt"]


def test_a_failed_atomic_write_leaves_no_temporary_file(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write(str(tmp_path / "d"), "x")  # the rename onto a directory fails
    assert os.listdir(tmp_path) == ["d"] and os.listdir(tmp_path / "d") == []


GOOD = "name: mine\nscheduler: local\nlauncher: none\nendpoint: {name: m}\n"


def test_profiles_are_found_under_the_names_path_gave_them(tmp_path, monkeypatch):
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "mine.yaml").write_text(GOOD)
    (tmp_path / "dir" / ".yaml").write_text(GOOD)  # hidden, no suffix: not a profile
    (tmp_path / "dir" / "notes.txt").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SITE_AGENT_PROFILE_PATH", "./dir//:/nosuch/./x/")
    monkeypatch.setenv("XDG_CONFIG_HOME", "cfg//")
    dirs = search_path()
    assert dirs[:4] == ["dir", "/nosuch/x", "cfg/site-agent/profiles", "/etc/site-agent/profiles"]
    assert all(isinstance(d, str) for d in dirs)
    assert dict(list_profiles())["mine"] == "dir/mine.yaml"
    assert find_profile("mine") == "dir/mine.yaml"
    assert find_profile("./dir/mine.yaml/") == "dir/mine.yaml"
    assert read_profile_text(find_profile("mine")) == GOOD
    assert read_profile_text(Path("dir/mine.yaml")) == GOOD
    with pytest.raises(ConfigError, match=r"^site profile file not found: dir/none\.yaml$"):
        find_profile("dir/none.yaml")


@pytest.mark.parametrize("kind", [str, Path])
def test_read_text_and_sha256_text(kind, tmp_path):
    text = "größe: 1\n"
    (tmp_path / "f").write_text(text)
    assert read_text(kind(tmp_path / "f")) == text
    assert sha256_text(text) == hashlib.sha256(text.encode()).hexdigest()


def test_sha256_text_without_cpythons_own_module(monkeypatch):
    """Python 3.12 renamed _sha256 (to _sha2): hashlib's SHA-256 gives the same key."""
    monkeypatch.setitem(sys.modules, "_sha256", None)  # its import now raises ImportError
    assert sha256_text("key") == hashlib.sha256(b"key").hexdigest()


def test_atomic_write_default_mode_ignores_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        atomic_write(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644


def test_the_temporary_file_is_hidden_owner_only_and_fully_synced(tmp_path, monkeypatch):
    """While written, the text sits in ``.NAME.PID.RANDOM.tmp`` next to the target: hidden
    from listings, named for its target and writer, created owner-only (a 0o600 secret is
    never readable by others, not even half written), and all of it is on disk before the
    fsync that makes it durable."""
    seen: dict[str, object] = {}
    real_chmod, real_fsync = os.chmod, os.fsync

    def chmod(path, mode):
        seen["tmp"], seen["mode"] = path, stat.S_IMODE(os.stat(path).st_mode)
        real_chmod(path, mode)

    def fsync(fd):
        seen["synced"] = os.fstat(fd).st_size
        real_fsync(fd)

    monkeypatch.setattr(os, "chmod", chmod)
    monkeypatch.setattr(os, "fsync", fsync)
    old = os.umask(0)
    try:
        atomic_write(tmp_path / "r.json", "x" * 100, 0o600)
    finally:
        os.umask(old)
    tmp = seen["tmp"]
    assert os.path.dirname(tmp) == str(tmp_path)
    assert re.fullmatch(rf"\.r\.json\.{os.getpid()}\.[0-9a-f]+\.tmp", os.path.basename(tmp))
    assert seen["mode"] == 0o600 and seen["synced"] == 100
    assert os.listdir(tmp_path) == ["r.json"]
