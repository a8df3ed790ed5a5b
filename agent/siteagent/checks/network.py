"""Network probes: DNS, TCP connect, HTTP CONNECT (or a forward request) through a proxy,
TLS handshake with the certificate verified. Each probe has one deadline for all its steps."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

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
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ConfigError(f"--target: {mask_url(url)}: invalid port") from None
    if not parts.hostname or port is None:
        raise ConfigError(f"--target: {mask_url(url)}: needs a host and a port")
    if len(parts.hostname) > 253 or any(len(label) > 63 for label in parts.hostname.split(".")):
        raise ConfigError(f"--target: {mask_url(url)[:80]}...: the host name is too long")
    return Target(url, parts.scheme, parts.hostname, port)


class _StepFailed(Exception):
    def __init__(self, step: str, reason: str):
        super().__init__(reason)
        self.step, self.reason = step, reason


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
    line = data.split(b"\r\n", 1)[0].decode("latin-1").strip()
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise _StepFailed("proxy", f"the proxy answered {line!r}, not HTTP")
    return int(parts[1]), line


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
    deadline = start + timeout
    proxy_url = proxies.for_scheme(target.scheme) if target.scheme in PROXIED_SCHEMES else None
    if proxy_url and bypasses_proxy(target.host, proxies.no_proxy):
        proxy_url = None
    via = mask_url(proxy_url) if proxy_url else "direct"
    result = CheckResult(
        name="connectivity", status=PASS, seconds=0.0, reason="", target=target.label, via=via
    )
    try:
        if proxy_url:
            sock = _through_proxy(target, parse_proxy_url(proxy_url), via, deadline)
        else:
            sock = _connect(target.host, target.port, deadline)
        result.reason = f"connected via {via}"
        if target.scheme in TLS_SCHEMES:
            result.reason = f"{_tls_version(sock, target, ca_file, deadline)} via {via}"
        else:
            sock.close()
    except _StepFailed as failed:
        result.status, result.step = FAIL, failed.step
        result.reason, result.hint = mask_url(failed.reason), HINTS[failed.step]
    except ConfigError as err:
        result.status, result.step = FAIL, "proxy"
        result.reason, result.hint = str(err), "fix the proxy URL"
    result.seconds = time.monotonic() - start
    return result


def _through_proxy(target: Target, proxy: ProxyURL, via: str, deadline: float) -> socket.socket:
    """A socket to ``target`` through the proxy: HEAD for http, CONNECT for the rest."""
    try:
        sock = _connect(proxy.host, proxy.port, deadline)
    except _StepFailed as failed:
        raise _StepFailed("proxy", f"cannot reach proxy {via}: {failed.reason}") from None
    auth = _auth_header(proxy.username, proxy.password)
    if target.scheme == "http":
        request = (
            f"HEAD http://{target.host}:{target.port}/ HTTP/1.1\r\n"
            f"Host: {target.host}:{target.port}\r\n{auth}Connection: close\r\n\r\n"
        )
    else:
        request = (
            f"CONNECT {target.host}:{target.port} HTTP/1.1\r\n"
            f"Host: {target.host}:{target.port}\r\n{auth}\r\n"
        )
    sock.sendall(request.encode())
    code, line = _read_status(sock, deadline)
    refused = code in (403, 407, 502, 503, 504) if target.scheme == "http" else code != 200
    if refused:
        sock.close()
        raise _StepFailed("proxy", f"proxy {via} answered {line!r}")
    return sock


_CONTEXTS: dict[tuple, ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """One verifying client context per CA bundle, shared by every probe (and thread):
    loading a bundle costs tens of milliseconds of CPU, and 50 probes at once would each
    load it while they all wait on the same two cores. A bundle edited since, or another
    SSL_CERT_FILE/SSL_CERT_DIR, makes a new one."""
    import os

    bundle = ca_file or os.environ.get("SSL_CERT_FILE")
    try:
        st = os.stat(bundle) if bundle else None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino) if st else None
    except OSError:
        stamp = None
    key = (ca_file, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"), stamp)
    with _CONTEXTS_LOCK:
        context = _CONTEXTS.get(key)
        if context is None:
            context = _CONTEXTS[key] = ssl.create_default_context(cafile=ca_file)
        return context


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
        raise _StepFailed("tls", f"handshake failed: {err}") from None
