"""Network probes: DNS, TCP connect, HTTP CONNECT (or a forward request) through a proxy,
TLS handshake with the certificate verified. Each probe has one deadline for all its steps."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from siteagent.checks.model import FAIL, PASS, CheckResult
from siteagent.checks.proxy import ProxySettings, ProxyURL, bypasses_proxy, parse_proxy_url
from siteagent.errors import ConfigError
from siteagent.secrets import mask_url

DEFAULT_PORTS = {"https": 443, "amqps": 5671, "http": 80, "tcp": None}
TLS_SCHEMES = ("https", "amqps")
# amqps and tcp go direct: the endpoint's AMQP client does not tunnel through HTTP proxies
PROXIED_SCHEMES = ("https", "http")

HINTS = {
    "dns": "check /etc/resolv.conf, or that this node may resolve outside names at all",
    "tcp": "outbound traffic is blocked or the service is down; on compute nodes set the site "
    "proxy (profile proxy.http/https, or http(s)_proxy)",
    "proxy": "the proxy refused or failed the request: ask the site whether it allows this "
    "host and port, and check proxy credentials",
    "tls": "certificate not trusted or wrong host: a TLS-intercepting firewall? set "
    "SSL_CERT_FILE or --ca-file to the site CA bundle",
}


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int

    @property
    def label(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_target(url: str) -> Target:
    """``https://host[:port]``, ``amqps://host[:port]``, ``http://...`` or ``tcp://host:port``."""
    try:
        parts = urlsplit(url)
    except ValueError as err:  # "Invalid IPv6 URL"
        raise ConfigError(f"--target: {mask_url(url)[:200]}: {err}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ConfigError(
            f"--target: {mask_url(url)}: scheme must be one of https, amqps, http, tcp"
        )
    port = _port(parts, url)
    if not parts.hostname or port is None:
        raise ConfigError(f"--target: {mask_url(url)}: needs a host and a port")
    if len(parts.hostname) > 253 or any(len(label) > 63 for label in parts.hostname.split(".")):
        raise ConfigError(f"--target: {mask_url(url)[:80]}...: the host name is too long")
    return Target(url, parts.scheme, parts.hostname, port)


def _port(parts: SplitResult, url: str) -> int | None:
    """The target's port, else its scheme's (None for tcp, which has none)."""
    try:
        return parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ConfigError(f"--target: {mask_url(url)}: invalid port") from None


class _StepFailed(Exception):
    def __init__(self, step: str, reason: str, hint: str = ""):
        super().__init__(reason)
        self.step, self.reason, self.hint = step, reason, hint  # hint: else the step's


def _remaining(deadline: float, step: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _StepFailed(step, "timed out")
    return left


def _resolve(host: str, port: int, deadline: float) -> list[tuple]:
    # getaddrinfo has no timeout of its own; the probe runs in a thread and the runner
    # stops waiting at the deadline, so a hung resolver costs one timeout, not more
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise _StepFailed("dns", f"cannot resolve {host}: {err.strerror}") from None
    except UnicodeError:  # a label IDNA cannot encode
        raise _StepFailed("dns", f"cannot resolve {host[:80]}: not a valid host name") from None
    _remaining(deadline, "dns")
    return infos


def _connect(host: str, port: int, deadline: float) -> socket.socket:
    last = "no address"
    for family, kind, proto, _, addr in _resolve(host, port, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline, "tcp"))
            sock.connect(addr)
            return sock
        except TimeoutError:
            sock.close()
            raise _StepFailed("tcp", f"connect to {host}:{port} timed out") from None
        except OSError as err:
            sock.close()
            last = err.strerror or str(err)
    raise _StepFailed("tcp", f"connect to {host}:{port}: {last}")


def _read_status(sock: socket.socket, deadline: float) -> tuple[int, str]:
    line = _read_head(sock, deadline).split(b"\r\n", 1)[0].decode("latin-1").strip()
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise _StepFailed("proxy", f"the proxy answered {line!r}, not HTTP")
    return int(parts[1]), line


def _read_head(sock: socket.socket, deadline: float) -> bytes:
    """The proxy's answer up to the end of its headers (at most 64 KiB, or until it closes)."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        sock.settimeout(_remaining(deadline, "proxy"))
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            raise _StepFailed("proxy", "no answer from the proxy") from None
        if not chunk:
            break
        data += chunk
    return data


def _auth_header(username: str | None, password: str | None) -> str:
    if not username:
        return ""
    token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
    return f"Proxy-Authorization: Basic {token}\r\n"


def probe(
    target: Target, proxies: ProxySettings, timeout: float, ca_file: str | None = None
) -> CheckResult:
    """Probe one target; every failure names the step, the reason and a hint."""
    start = time.monotonic()
    proxy_url = _proxy_for(target, proxies)
    via = mask_url(proxy_url) if proxy_url else "direct"
    result = CheckResult(
        name="connectivity", status=PASS, seconds=0.0, reason="", target=target.label, via=via
    )
    try:
        result.reason = _reach(target, proxy_url, via, ca_file, start + timeout)
    except _StepFailed as failed:
        result.status, result.step = FAIL, failed.step
        result.reason, result.hint = mask_url(failed.reason), failed.hint or HINTS[failed.step]
    except ConfigError as err:
        result.status, result.step = FAIL, "proxy"
        result.reason, result.hint = str(err), "fix the proxy URL"
    result.seconds = time.monotonic() - start
    return result


def _proxy_for(target: Target, proxies: ProxySettings) -> str | None:
    """The proxy URL ``target`` is reached through; None: directly."""
    if target.scheme not in PROXIED_SCHEMES or bypasses_proxy(target.host, proxies.no_proxy):
        return None
    return proxies.for_scheme(target.scheme)


def _reach(
    target: Target, proxy_url: str | None, via: str, ca_file: str | None, deadline: float
) -> str:
    """Connect to ``target`` (and shake hands, for a TLS scheme); the result's reason."""
    if proxy_url:
        sock = _through_proxy(target, parse_proxy_url(proxy_url), via, deadline)
    else:
        sock = _connect(target.host, target.port, deadline)
    if target.scheme not in TLS_SCHEMES:
        sock.close()
        return f"connected via {via}"
    return f"{_tls_version(sock, target, ca_file, deadline)} via {via}"


def _through_proxy(target: Target, proxy: ProxyURL, via: str, deadline: float) -> socket.socket:
    """A socket to ``target`` through the proxy: HEAD for http, CONNECT for the rest."""
    try:
        sock = _connect(proxy.host, proxy.port, deadline)
    except _StepFailed as failed:
        raise _StepFailed(
            "proxy", f"cannot reach proxy {via}: {failed.reason}", _unreachable_proxy_hint(failed)
        ) from None
    sock.sendall(_proxy_request(target, _auth_header(proxy.username, proxy.password)).encode())
    code, line = _read_status(sock, deadline)
    refused = code in (403, 407, 502, 503, 504) if target.scheme == "http" else code != 200
    if refused:
        sock.close()
        raise _StepFailed("proxy", f"proxy {via} answered {line!r}")
    return sock


def _proxy_request(target: Target, auth: str) -> str:
    """What the proxy is asked: HEAD of an http target, CONNECT to any other."""
    where = f"{target.host}:{target.port}"
    if target.scheme == "http":
        return f"HEAD http://{where}/ HTTP/1.1\r\nHost: {where}\r\n{auth}Connection: close\r\n\r\n"
    return f"CONNECT {where} HTTP/1.1\r\nHost: {where}\r\n{auth}\r\n"


_CONTEXTS: dict[tuple, ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """One verifying client context per CA bundle, shared by every probe (and thread):
    loading a bundle costs tens of milliseconds of CPU, and 50 probes at once would each
    load it while they all wait on the same two cores. A bundle edited since, or another
    SSL_CERT_FILE/SSL_CERT_DIR, makes a new one."""
    import os

    stamp = _file_stamp(ca_file or os.environ.get("SSL_CERT_FILE"))
    key = (ca_file, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"), stamp)
    with _CONTEXTS_LOCK:
        context = _CONTEXTS.get(key)
        if context is None:
            context = _CONTEXTS[key] = ssl.create_default_context(cafile=ca_file)
        return context


def _file_stamp(path: str | None) -> tuple[int, int, int] | None:
    """What changes when the file at ``path`` is edited or replaced; None if there is none."""
    import os

    try:
        st = os.stat(path) if path else None
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino) if st else None


def _tls_version(sock: socket.socket, target: Target, ca_file: str | None, deadline: float) -> str:
    """The TLS version the target speaks over ``sock`` (closed afterwards)."""
    context = tls_context(ca_file)
    try:
        sock.settimeout(_remaining(deadline, "tls"))
        with context.wrap_socket(sock, server_hostname=target.host) as tls:
            return str(tls.version())
    except ssl.SSLCertVerificationError as err:
        raise _StepFailed("tls", f"certificate not accepted: {err.verify_message}") from None
    except TimeoutError:
        raise _StepFailed("tls", "no TLS answer (the port accepts but never speaks)") from None
    except (ssl.SSLError, OSError) as err:
        raise _StepFailed("tls", f"handshake failed: {err}", _handshake_hint(err)) from None


def _unreachable_proxy_hint(failed: _StepFailed) -> str:
    """The proxy itself cannot be reached: about the proxy URL, not what it allows."""
    if failed.step == "dns":
        return (
            "the proxy's host name does not resolve: check the proxy URL (profile "
            "proxy.http/https, or http(s)_proxy) and this node's DNS"
        )
    return (
        "nothing accepts connections at the proxy's host and port: check the proxy URL "
        "(profile proxy.http/https, or http(s)_proxy), or whether the proxy runs"
    )


def _handshake_hint(err: Exception) -> str:
    """A handshake that failed before any certificate: say what the port spoke instead."""
    if getattr(err, "reason", "") in (
        "WRONG_VERSION_NUMBER",
        "HTTP_REQUEST",
        "RECORD_LAYER_FAILURE",
    ):
        return (
            "the port answered without TLS (plain HTTP?): probe it as http://, or use the "
            "service's TLS port"
        )
    return ""  # the step's hint
