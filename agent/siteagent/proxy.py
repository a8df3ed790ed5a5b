"""The site's HTTP proxy as variables and shell lines: one reading of the profile's ``proxy``
section for the endpoint's worker_init and user environment (login node) and the pilot's
proxy layer (compute nodes)."""

from __future__ import annotations

from siteagent.profiles import Profile

SCHEMES = ("http", "https")


def _variables(proxy: dict) -> dict[str, str]:
    """Both spellings (as curl reads them) of each proxy variable the section sets; no_proxy
    only along with a proxy."""
    env = {}
    for scheme in SCHEMES:
        if proxy.get(scheme):
            env[f"{scheme}_proxy"] = env[f"{scheme.upper()}_PROXY"] = proxy[scheme]
    if env and proxy.get("no_proxy"):
        env["no_proxy"] = env["NO_PROXY"] = ",".join(proxy["no_proxy"])
    return env


def proxy_exports(profile: Profile) -> list[str]:
    """Shell lines that give compute nodes the site proxy (both spellings, as curl reads them)."""
    env = _variables(profile.section("proxy"))
    return [
        f"export {name}={env[name]} {name.upper()}={env[name]}" for name in env if name.islower()
    ]


def proxy_environment(profile: Profile, *, compute: bool = False) -> dict[str, str]:
    """Proxy variables for processes on the login node (none where only compute nodes use
    one), or with ``compute`` for processes on compute nodes (the pilot wrapper)."""
    proxy = profile.section("proxy")
    if proxy.get("scope") == "compute" and not compute:
        return {}
    return _variables(proxy)
