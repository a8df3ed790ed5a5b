"""Issue #15: what a site admin sees in the first hour (errors, hints, output forms)."""

from __future__ import annotations

import json
import shlex

import pytest

from siteagent.profiles import load_profile
from siteagent.userconfig import canonicalize


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return {"HOME": str(h), "GLOBUS_COMPUTE_USER_DIR": ""}


# ---- item 4: endpoint validate without --config names the required fields
@pytest.mark.parametrize("site", ["polaris", "perlmutter"])
def test_validate_without_config_names_required_fields(run_cli, tmp_path, site):
    ep = tmp_path / "ep"
    assert run_cli("endpoint", "render", "--site", site, "--out", str(ep)).returncode == 0
    r = run_cli("endpoint", "validate", str(ep))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "account: is required; required: account (e.g. --config " in r.stderr
    example = shlex.split(r.stderr.split("--config ", 1)[1].rstrip(")\n"))[0]
    canonicalize(load_profile(site), json.loads(example))
    r = run_cli("endpoint", "validate", str(ep), "--config", example)
    assert r.returncode == 0, r.stderr
    help_text = run_cli("endpoint", "validate", "--help").stdout
    assert "require at least account" in " ".join(help_text.split())
