"""siteagent.pathstr spells paths exactly as pathlib does (the rank path imports no pathlib,
yet the paths it prints, exports and hashes must not change)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from siteagent import pathstr

PATHS = [
    "", ".", "./", "..", "/", "//", "///", "////a", "a", "a/", "a//b", "a/./b/.", "./a", "../x",
    "/a/../b/", "//a/b", "//a", "///a/b//", "/a", "a/b/c", "~/x509up", ".bashrc", "a.", "a..yml",
    "env.tar.gz", "dir/.yml", "/x/environment.yml/", "/x/req.txt", "a/b/..", "/tmp/tok",
    "x/./y", "/a/./b/../c/", ".hidden/./", "a/.", "/./", "//x//", "/x/a.yml", "..yml",
]  # fmt: skip


@pytest.mark.parametrize("path", PATHS)
def test_pathstr_is_what_pathlib_gives(path):
    p = PurePosixPath(path)
    assert pathstr.clean(path) == str(p)
    assert pathstr.name(path) == p.name
    assert pathstr.parent(path) == str(p.parent)
    assert pathstr.suffix(path) == p.suffix


@pytest.mark.parametrize("path", PATHS)
def test_absolute_is_what_pathlib_gives(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert pathstr.absolute(path) == str(Path(path).absolute())


def test_the_layers_spell_odd_paths_as_pathlib_did(tmp_path, monkeypatch):
    """Paths a profile or Harvester gives with '//', '/./', a trailing '/' or '..': the
    credentials' variables, the environment's prefix and the machine features directory are
    the strings the pathlib code gave (they reach pilot3's environment and the reports)."""
    from pathlib import Path

    from siteagent.pilot.layers.credentials import credential_env, find_credentials
    from siteagent.pilot.layers.env import env_root, parse_spec
    from siteagent.pilot.layers.payload import Payload, with_shutdowntime
    from siteagent.sections import CredentialsSection

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    environ = {"PANDA_AUTH_DIR": "tokens//./", "PANDA_AUTH_TOKEN": "tok", "PANDA_AUTH_ORIGIN": "o"}
    c = find_credentials(CredentialsSection(x509_proxy="~//x509/./up/"), environ)
    assert c.proxy == str(Path("~//x509/./up/").expanduser()) == f"{tmp_path}/x509/up"
    assert credential_env(c) == {
        "X509_USER_PROXY": c.proxy, "PANDA_AUTH_DIR": "tokens/", "PANDA_AUTH_TOKEN": "tok",
        "PANDA_AUTH_ORIGIN": "o",
    }  # fmt: skip
    c = find_credentials(CredentialsSection(), environ | {"PANDA_AUTH_DIR": ""})
    assert credential_env(c)["PANDA_AUTH_DIR"] == "./"  # Path("tok").parent is "."

    for root in ("~/envs//a/", "rel/../envs/.", "/x//y/"):
        assert env_root(root) == str(Path(root).expanduser().absolute())
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "environment.yml").write_text("dependencies: [numpy]\n")
    for given in ("d//environment.yml", "./d/../d/environment.yml", "~/d/./environment.yml"):
        assert parse_spec(given).file == str(Path(given).expanduser().absolute())

    payload = Payload("p", ("true",), None, 3600)
    for workdir in ("/tmp//w/", "/tmp/./w", "w/../v"):
        mf = with_shutdowntime(payload, workdir, 0.0).machinefeatures
        assert mf == str(Path(workdir) / "machinefeatures")
