"""Which proxy a target goes through: the profile's, else http(s)_proxy, with no_proxy
read the way curl reads it."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

from siteagent.errors import ConfigError

if TYPE_CHECKING:
    from siteagent.sections import ProxySection


@dataclass(frozen=True)
class ProxySettings:
    http: str | None
    https: str | None
    no_proxy: tuple[str, ...]
    source: str  # "profile", "environment" or "none"

    def for_scheme(self, scheme: str) -> str | None:
        """The proxy URL for a target scheme (https and amqps tunnel with CONNECT)."""
        return self.http if scheme == "http" else self.https


def _env(name: str) -> str | None:
    # curl reads the lower-case names first; http_proxy only in lower case (httpoxy)
    value = os.environ.get(name.lower())
    if value is None and name.lower() != "http_proxy":
        value = os.environ.get(name.upper())
    return value or None


def proxy_settings(
    profile_proxy: ProxySection | Mapping[str, Any] | None, use_env: bool = True
) -> ProxySettings:
    """The profile's proxy (its section, or the section's mapping) when it names one, else
    the environment's."""
    p = _section(profile_proxy)
    if p.http or p.https:
        return ProxySettings(p.http, p.https or p.http, tuple(p.no_proxy), "profile")
    if use_env and (_env("http_proxy") or _env("https_proxy")):
        return _environment_settings()
    return ProxySettings(None, None, (), "none")


def _section(profile_proxy: ProxySection | Mapping[str, Any] | None) -> ProxySection:
    """The profile's proxy section, built from its mapping if given as one."""
    from siteagent.sections import ProxySection, build_section

    if isinstance(profile_proxy, ProxySection):
        return profile_proxy
    return build_section(ProxySection, dict(profile_proxy or {}))


def _environment_settings() -> ProxySettings:
    """The proxy this process's environment names, as curl reads it."""
    raw = _env("no_proxy") or ""
    entries = tuple(e.strip() for e in raw.replace(" ", ",").split(",") if e.strip())
    return ProxySettings(_env("http_proxy"), _env("https_proxy"), entries, "environment")


def bypasses_proxy(host: str, no_proxy: tuple[str, ...] | list[str]) -> bool:
    """True if ``host`` matches a no_proxy entry, as curl matches them: ``*`` matches all; a
    name matches itself and its subdomains (a leading dot is ignored); an IP matches itself;
    a CIDR range matches the addresses inside it. Case does not matter; ports are ignored."""
    host = host.strip("[]").lower().rstrip(".")
    host_ip = _address(host)
    entries = (raw.strip().lower() for raw in no_proxy)
    return any(_entry_matches(host, host_ip, entry) for entry in entries if entry)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address, None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None  # a name


def _entry_matches(
    host: str, host_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, entry: str
) -> bool:
    """One no_proxy entry against the host (``host_ip``: the host as an address, if it is one)."""
    if entry == "*":
        return True
    return _ip_in(host_ip, entry) if host_ip is not None else _name_in(host, entry)


def _ip_in(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, entry: str) -> bool:
    """An IP against a no_proxy entry: the address itself or a CIDR range holding it."""
    try:
        return ip in ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        return False  # a name: never matches an address


def _name_in(host: str, entry: str) -> bool:
    """A host name against a no_proxy entry: itself or a subdomain, the entry's port ignored."""
    name = entry.rsplit(":", 1)[0].strip(".")  # an IPv6 entry matches no name either way
    return host == name or host.endswith("." + name)


@dataclass(frozen=True)
class ProxyURL:
    host: str
    port: int
    username: str | None
    password: str | None


def parse_proxy_url(url: str) -> ProxyURL:
    """Host, port and credentials of an ``http://[user:pass@]host[:port]`` proxy."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
    except ValueError:  # "Invalid IPv6 URL"
        raise ConfigError(f"proxy: {_mask(url)} is not an http://host:port URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"proxy: {_mask(url)} is not an http://host:port URL")
    return ProxyURL(parts.hostname, _port(parts, url), parts.username, parts.password)


def _port(parts: SplitResult, url: str) -> int:
    """The proxy URL's port, else curl's default for its scheme."""
    try:
        return parts.port or (443 if parts.scheme == "https" else 1080)
    except ValueError:
        raise ConfigError(f"proxy: {_mask(url)} has an invalid port") from None


def _mask(url: str) -> str:
    from siteagent.secrets import mask_url

    return mask_url(url)
