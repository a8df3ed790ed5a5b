"""The site's HTTP proxy as variables and shell lines: one reading of the profile's ``proxy``
section for the endpoint's worker_init and user environment (login node) and the pilot's
proxy layer (compute nodes)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from siteagent.profiles import Profile
    from siteagent.sections import ProxySection

SCHEMES = ("http", "https")


def _variables(proxy: ProxySection) -> dict[str, str]:
    """Both spellings (as curl reads them) of each proxy variable the section sets; no_proxy
    only along with a proxy."""
    env: dict[str, str] = {}
    for scheme in SCHEMES:
        url = getattr(proxy, scheme)
        if url:
            env[f"{scheme}_proxy"] = env[f"{scheme.upper()}_PROXY"] = url
    if env and proxy.no_proxy:
        env["no_proxy"] = env["NO_PROXY"] = ",".join(proxy.no_proxy)
    return env


def proxy_exports(profile: Profile) -> list[str]:
    """Shell lines that give compute nodes the site proxy (both spellings, as curl reads them)."""
    env = _variables(profile.proxy)
    return [
        f"export {name}={env[name]} {name.upper()}={env[name]}" for name in env if name.islower()
    ]


def proxy_environment(profile: Profile, *, compute: bool = False) -> dict[str, str]:
    """Proxy variables for processes on the login node (none where only compute nodes use
    one), or with ``compute`` for processes on compute nodes (the pilot wrapper)."""
    if profile.proxy.scope == "compute" and not compute:
        return {}
    return _variables(profile.proxy)
