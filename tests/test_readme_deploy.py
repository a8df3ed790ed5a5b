"""README "Deploy": one block per site whose commands match the code (profile, endpoint name,
script options, a smoke-test config the site accepts)."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from siteagent.profiles import load_profile
from siteagent.userconfig import canonicalize

from .conftest import REPO

SITES = ("perlmutter", "polaris", "aurora", "frontier")


def deploy_blocks() -> dict[str, list[str]]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Deploy\n", 1)[1].split("\n## ", 1)[0]
    blocks = {}
    for m in re.finditer(r"\*\*(\w+) \([A-Z]+\)\*\*.*?```bash\n(.*?)```", section, re.S):
        blocks[m[1].lower()] = [ln for ln in m[2].splitlines() if ln and not ln.startswith("#")]
    return blocks


def test_readme_first_commands_unchanged():
    text = (REPO / "README.md").read_text()
    assert (
        "```bash\npython3 -m venv .venv && .venv/bin/pip install -e . && "
        ".venv/bin/site-agent smoke-test\n```" in text
    )
    assert "```bash\nbash .ci/run " in text


@pytest.mark.parametrize("site", SITES)
def test_each_site_has_exact_deploy_commands(site):
    lines = deploy_blocks()[site]
    endpoint = load_profile(site).endpoint.name
    install = next(shlex.split(ln) for ln in lines if "install-login-node.sh" in ln)
    assert install[0] == "scripts/install-login-node.sh"
    assert install[install.index("--site") + 1] == site
    script = (REPO / "scripts" / "install-login-node.sh").read_text()
    assert all(opt in script for opt in install[1:] if opt.startswith("--"))
    assert "globus-compute-endpoint login" in lines
    assert f"globus-compute-endpoint start {endpoint}" in lines
    smoke = next(shlex.split(ln) for ln in lines if ln.startswith("site-agent smoke-test"))
    assert smoke[smoke.index("--site") + 1] == site
    config = json.loads(smoke[smoke.index("--config") + 1])
    canonicalize(load_profile(site), config)  # the site accepts it (account, queue, ...)
