"""Which proxy a target goes through: the profile's, else http(s)_proxy, with no_proxy
read the way curl reads it."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from siteagent.errors import ConfigError


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


def proxy_settings(profile_proxy: dict | None, use_env: bool = True) -> ProxySettings:
    """The profile's proxy when it names one, else the environment's."""
    p = profile_proxy or {}
    if p.get("http") or p.get("https"):
        return ProxySettings(
            p.get("http"), p.get("https") or p.get("http"), tuple(p.get("no_proxy", ())), "profile"
        )
    if use_env and (_env("http_proxy") or _env("https_proxy")):
        raw = _env("no_proxy") or ""
        entries = tuple(e.strip() for e in raw.replace(" ", ",").split(",") if e.strip())
        return ProxySettings(_env("http_proxy"), _env("https_proxy"), entries, "environment")
    return ProxySettings(None, None, (), "none")


def bypasses_proxy(host: str, no_proxy: tuple[str, ...] | list[str]) -> bool:
    """True if ``host`` matches a no_proxy entry, as curl matches them: ``*`` matches all; a
    name matches itself and its subdomains (a leading dot is ignored); an IP matches itself;
    a CIDR range matches the addresses inside it. Case does not matter; ports are ignored."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        host_ip = ipaddress.ip_address(host)
    except ValueError:
        host_ip = None
    for raw in no_proxy:
        entry = raw.strip().lower()
        if entry == "*":
            return True
        if host_ip is not None:
            try:
                if host_ip in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
            except ValueError:
                pass
            continue
        # a name (empty, or an IPv6 entry, matches no name); its port is ignored
        name = entry.rsplit(":", 1)[0].strip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


@dataclass(frozen=True)
class ProxyURL:
    host: str
    port: int
    username: str | None
    password: str | None


def parse_proxy_url(url: str) -> ProxyURL:
    """Host, port and credentials of an ``http://[user:pass@]host[:port]`` proxy."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"proxy: {_mask(url)} is not an http://host:port URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 1080)  # curl's defaults
    except ValueError:
        raise ConfigError(f"proxy: {_mask(url)} has an invalid port") from None
    return ProxyURL(parts.hostname, port, parts.username, parts.password)


def _mask(url: str) -> str:
    from siteagent.secrets import mask_url

    return mask_url(url)
