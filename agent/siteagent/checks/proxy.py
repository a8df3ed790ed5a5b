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
    """True if curl would reach ``host`` directly under this no_proxy (curl's
    lib/noproxy.c ``Curl_check_noproxy``; the same in the curl 7.88 of Debian 12): only a
    no_proxy of ``*`` alone matches all; an entry matches a name that is itself or ends in
    ``.entry`` (one leading and one trailing dot of the entry ignored, any case); an address
    matches an entry that is the address or a CIDR range holding it. An entry is compared
    whole: ``example.com:443`` or ``[::1]`` matches nothing."""
    entries = [e.strip().lower() for e in no_proxy if e.strip()]
    if entries == ["*"]:
        return True
    host = host.strip("[]").lower()
    host_ip = _address(host)
    if host_ip is not None:
        return any(_ip_in(host_ip, entry) for entry in entries)
    name = host.removesuffix(".")
    return any(_name_in(name, entry) for entry in entries)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address, None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None  # a name


def _ip_in(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, entry: str) -> bool:
    """An address against an entry ``ADDRESS[/BITS]`` of its family. As curl (ranges since
    7.86): no bits (or an IPv4 /0) is the address itself, an IPv6 /0 is /128, and a length
    that is not a number or too long matches nothing."""
    address, slash, bits = entry.partition("/")
    if slash and not bits.isdigit():
        return False  # a length that is no number
    net = _address(address)
    if net is None or net.version != ip.version:
        return False  # a name, or the other family: never matches
    prefix = int(bits or 0) or net.max_prefixlen
    if prefix > net.max_prefixlen:
        return False  # longer than an address
    return ip in ipaddress.ip_network(f"{net}/{prefix}", strict=False)


def _name_in(name: str, entry: str) -> bool:
    """A host name against an entry: the name itself or a subdomain of it."""
    token = entry.removesuffix(".")
    token = token.removeprefix(".")
    return name == token or name.endswith("." + token)


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
