"""The PanDA probe: asks the profile's PanDA server about its queue the way pilot3 would, so
"the pilot cannot fetch jobs" is diagnosed before a pilot runs.

Steps, in pilot3's order; the first failing one is reported (``step``):

- ``tcp``: the server (``pilot.server_url``/``server_port``) is reachable
- ``tls``: its certificate is trusted by the CA directory pilot3 uses (``X509_CERT_DIR``, or
  ``--ca-file``, else the system's) and ``/server/panda/isAlive`` answers
- ``certificate``: the client certificate pilot3 sends (``X509_USER_PROXY``) is accepted and
  its DN may fetch production jobs (``/api/v1/system/get_user_attributes``)
- ``queue``: the queue's queuedata (pilot3's ``queuedata_url``, read from
  ``$HARVESTER_PILOT_CONFIG`` when set) says ``state: ACTIVE``; pilot3 exits at start otherwise
- ``jobs``: activated jobs for the queue and resource type (``/api/v1/statistics``); none is a
  warning: pilots would start and end without work

Requests go straight to the server (no proxy): this runs on the login node, where pilot3's
server traffic is not proxied for loopback or site-local servers.
"""

from __future__ import annotations

import configparser
import json
import os
import ssl
import time
import urllib.parse
from http.client import HTTPConnection, HTTPResponse, HTTPSConnection
from typing import Any

from siteagent.checks.model import FAIL, PASS, WARN, CheckResult
from siteagent.sections import PilotSection

# pilot3's default.cfg: queuedata comes from the server's cache port over plain HTTP
DEFAULT_QUEUEDATA = "http://{host}:25085/cache/schedconfig/{pandaqueue}.all.json"
STATS_WINDOW_MIN = 720

HINTS = {
    "tcp": "is the PanDA server up, and are pilot.server_url/server_port right? outbound "
    "traffic may be blocked on this node",
    "tls": "set X509_CERT_DIR to the CA directory pilot3 uses (or --ca-file to a CA bundle)",
    "certificate": "set X509_USER_PROXY to a valid proxy or certificate+key file; ask the PanDA "
    "admins to allow its DN for pilots (production_dns / pilot_owners)",
    "queue": "pilots exit at start for a queue that is not ACTIVE: ask the queue's admins",
    "jobs": "pilots would start and end without work: no job is waiting for this queue and "
    "resource type",
}


class ProbeError(Exception):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason


def _context(ca_file: str | None, environ: dict[str, str]) -> ssl.SSLContext:
    # --ca-file, else pilot3's CA directory, else (neither given) the system's
    capath = environ.get("X509_CERT_DIR") or None
    ctx = ssl.create_default_context(cafile=ca_file, capath=None if ca_file else capath)
    proxy = environ.get("X509_USER_PROXY")
    if proxy:
        _load_proxy(ctx, proxy)
    return ctx


def _load_proxy(ctx: ssl.SSLContext, proxy: str) -> None:
    """The client certificate pilot3 sends (certificate and key in one file)."""
    try:
        ctx.load_cert_chain(proxy)
    except (OSError, ssl.SSLError) as err:
        raise ProbeError("certificate", f"X509_USER_PROXY {proxy}: cannot load it: {err}") from None


def _connection(
    parts: urllib.parse.SplitResult, ctx: ssl.SSLContext, timeout: float
) -> HTTPConnection:
    host = parts.hostname or ""
    if parts.scheme == "https":
        return HTTPSConnection(host, parts.port or 443, timeout=timeout, context=ctx)
    return HTTPConnection(host, parts.port or 80, timeout=timeout)


def _get(url: str, ctx: ssl.SSLContext, deadline: float, step: str) -> tuple[int, bytes]:
    """GET with what is left of the probe's one deadline (``time.monotonic()`` based)."""
    timeout = deadline - time.monotonic()
    if timeout <= 0:
        raise ProbeError(step, "no time left for this step (raise --timeout)")
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port
    conn = _connection(parts, ctx, timeout)
    path = urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))  # path?query
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        resp: HTTPResponse = conn.getresponse()
        return resp.status, resp.read()
    except OSError as err:  # TLS errors and timeouts are OSErrors too
        raise _transport_error(err, step, f"{host}:{port}") from None
    finally:
        conn.close()


def _transport_error(err: OSError, step: str, where: str) -> ProbeError:
    """The step a failed request names: tls for the certificate or handshake, this step for
    a timeout, tcp for the rest."""
    if isinstance(err, ssl.SSLError):
        return ProbeError("tls", f"{where}: {_tls_failure(err)}")
    if isinstance(err, TimeoutError):
        return ProbeError(step, f"{where}: no answer in time")
    return ProbeError("tcp", f"{where}: unreachable: {err.strerror or err}")


def _tls_failure(err: ssl.SSLError) -> str:
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"server certificate not trusted: {err.verify_message}"
    return f"TLS failed: {err.reason or err}"


def _json(body: bytes, what: str, step: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise ProbeError(step, f"{what}: not JSON: {body[:80]!r}") from None


def _api_data(url: str, ctx: ssl.SSLContext, deadline: float, step: str, failure: str) -> Any:
    """``data`` of the server's API answer (``{"success", "message", "data"}``); ProbeError
    ``failure: why`` unless it succeeded."""
    status, body = _get(url, ctx, deadline, step)
    what = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    answer = _json(body, what, step) if status == 200 else {}
    if not answer.get("success"):
        raise ProbeError(step, f"{failure}: {answer.get('message') or f'HTTP {status}'}")
    return answer.get("data") or {}


def queuedata_url(server_host: str, queue: str, environ: dict[str, str]) -> str:
    """pilot3's queuedata URL for ``queue``: from its configuration file when Harvester gives
    one (``HARVESTER_PILOT_CONFIG``), else pilot3's default on the server's host."""
    template = DEFAULT_QUEUEDATA.replace("{host}", server_host)
    cfg = environ.get("HARVESTER_PILOT_CONFIG")
    if cfg and os.path.isfile(cfg):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(cfg)
            template = parser.get("Information", "queuedata_url", fallback=template)
        except configparser.Error:
            pass
    return template.replace("{pandaqueue}", queue)


def _steps(
    server: str, queue: str, resource_type: str, ctx: ssl.SSLContext, deadline: float,
    environ: dict[str, str],
) -> tuple[str, str, str]:  # fmt: skip
    """Run the steps in the order pilot3 meets them; (status, step, reason) of the last one."""
    status, body = _get(f"{server}/server/panda/isAlive", ctx, deadline, "tcp")
    if status != 200 or b"alive=yes" not in body:
        raise ProbeError("tls", f"isAlive answered HTTP {status}: {body[:80]!r}")
    dn = _accepted_dn(server, ctx, deadline, environ)
    _queue_active(server, queue, ctx, deadline, environ)
    waiting = _jobs_waiting(server, queue, resource_type, ctx, deadline)
    where = f"queue {queue} ACTIVE, DN {dn} accepted;"
    if not waiting:
        return WARN, "jobs", f"{where} no job waiting for {resource_type}"
    return PASS, "jobs", f"{where} {waiting} job(s) waiting for {resource_type}"


def _accepted_dn(server: str, ctx: ssl.SSLContext, deadline: float, environ: dict[str, str]) -> str:
    """The certificate's DN, when the server accepts it for production jobs."""
    if not environ.get("X509_USER_PROXY"):
        raise ProbeError("certificate", "X509_USER_PROXY is not set: pilot3 authenticates with it")
    data = _api_data(
        f"{server}/api/v1/system/get_user_attributes", ctx, deadline,
        "certificate", "the server did not accept the certificate",
    )  # fmt: skip
    dn = str(data.get("user_dn_raw", "?"))
    if not data.get("is_production_user"):
        raise ProbeError("certificate", f"DN {dn} may not fetch production jobs on this server")
    return dn


def _queue_active(
    server: str, queue: str, ctx: ssl.SSLContext, deadline: float, environ: dict[str, str]
) -> None:
    """The queue's queuedata, where pilot3 reads it, must say ACTIVE."""
    url = queuedata_url(urllib.parse.urlsplit(server).hostname or "", queue, environ)
    state = _queue_state(_queuedata(url, queue, ctx, deadline), queue)
    if state != "ACTIVE":
        raise ProbeError("queue", f"queue {queue} is {state}, not ACTIVE: pilots exit at start")


def _queuedata(url: str, queue: str, ctx: ssl.SSLContext, deadline: float) -> Any:
    """The queue's queuedata document at ``url``."""
    status, body = _get(url, ctx, deadline, "queue")
    if status == 404:
        raise ProbeError("queue", f"queue {queue} is unknown to the server ({url}: HTTP 404)")
    if status != 200:
        raise ProbeError("queue", f"{url}: HTTP {status}")
    return _json(body, url, "queue")


def _queue_state(queuedata: Any, queue: str) -> str:
    """``state`` of the queuedata, flat or in CRIC's shape ``{queue: {...}}``; ``?`` if none."""
    if isinstance(queuedata, dict) and queue in queuedata and "state" not in queuedata:
        queuedata = queuedata[queue]
    return str(queuedata.get("state", "?")) if isinstance(queuedata, dict) else "?"


def _jobs_waiting(
    server: str, queue: str, resource_type: str, ctx: ssl.SSLContext, deadline: float
) -> int:
    """Activated jobs of the queue for the resource type, by the server's statistics."""
    stats = _api_data(
        f"{server}/api/v1/statistics/job_stats_by_site_and_resource_type?time_window={STATS_WINDOW_MIN}",
        ctx, deadline, "jobs", "job statistics unavailable",
    )  # fmt: skip
    per_queue = stats.get(queue) or {}
    return int((per_queue.get(resource_type) or {}).get("activated") or 0)


def _outcome(
    server: str, queue: str, resource_type: str, ca_file: str | None, deadline: float,
    environ: dict[str, str],
) -> tuple[str, str, str]:  # fmt: skip
    """(status, step, reason) of the steps; the failing one's as FAIL."""
    try:
        ctx = _context(ca_file, environ)
        return _steps(server, queue, resource_type, ctx, deadline, environ)
    except ProbeError as err:
        return FAIL, err.step, err.reason


def probe_panda(
    pilot: PilotSection,
    timeout: float = 5.0,
    ca_file: str | None = None,
    environ: dict[str, str] | None = None,
) -> CheckResult:
    """One ``panda`` check for the profile's pilot section (``panda_queue``, ``server_url``,
    ``server_port``, ``resource_type``); all steps share one ``timeout``."""
    environ = dict(os.environ if environ is None else environ)
    if not pilot.panda_queue:
        raise ValueError("probe_panda: the pilot section names no panda_queue")
    queue = pilot.panda_queue
    resource_type = pilot.resource_type or "SCORE"
    server = f"{pilot.server_url.rstrip('/')}:{pilot.server_port}"
    target = f"{server} {queue}/{resource_type}"
    t0 = time.monotonic()
    status, step, reason = _outcome(server, queue, resource_type, ca_file, t0 + timeout, environ)
    return CheckResult(
        name="panda",
        status=status,
        seconds=time.monotonic() - t0,
        reason=reason,
        hint="" if status == PASS else HINTS[step],
        target=target,
        step=step,
    )
