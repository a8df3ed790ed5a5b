"""The site's HTTP proxy as variables and shell lines: one reading of the profile's ``proxy``
section for the endpoint's worker_init and user environment (login node) and the pilot's
proxy layer (compute nodes)."""

from __future__ import annotations

from siteagent.profiles import Profile

SCHEMES = ("http", "https")


def proxy_exports(profile: Profile) -> list[str]:
    """Shell lines that give compute nodes the site proxy (both spellings, as curl reads them)."""
    proxy = profile.section("proxy")
    lines = []
    for scheme in SCHEMES:
        if proxy.get(scheme):
            lines.append(
                f"export {scheme}_proxy={proxy[scheme]} {scheme.upper()}_PROXY={proxy[scheme]}"
            )
    if lines and proxy.get("no_proxy"):
        joined = ",".join(proxy["no_proxy"])
        lines.append(f"export no_proxy={joined} NO_PROXY={joined}")
    return lines


def proxy_environment(profile: Profile, *, compute: bool = False) -> dict[str, str]:
    """Proxy variables for processes on the login node (none where only compute nodes use
    one), or with ``compute`` for processes on compute nodes (the pilot wrapper)."""
    proxy = profile.section("proxy")
    if proxy.get("scope") == "compute" and not compute:
        return {}
    env = {}
    for scheme in SCHEMES:
        if proxy.get(scheme):
            env[f"{scheme}_proxy"] = env[f"{scheme.upper()}_PROXY"] = proxy[scheme]
    if env and proxy.get("no_proxy"):
        env["no_proxy"] = env["NO_PROXY"] = ",".join(proxy["no_proxy"])
    return env
