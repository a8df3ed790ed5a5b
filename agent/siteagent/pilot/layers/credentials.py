"""Credentials layer: the X509 proxy and the PanDA token reach pilot3 as Harvester delivers
them to its workers (files named by variables, never their contents in argv or logs), and are
checked for presence, file mode and lifetime before the pilot starts.

pilot3 reads, in its own code:

- the proxy from ``$X509_USER_PROXY`` (its ``--cacert`` default and curl's ``--cert``:
  pilot/util/https.py ``get_curl_command``); without one it exits 68 (NOPROXY,
  pilot/util/auxiliary.py ``get_error_code_translation_dictionary``);
- the token as the file name ``$PANDA_AUTH_TOKEN`` in ``dirname($PANDA_AUTH_DIR)`` with the
  origin string ``$PANDA_AUTH_ORIGIN``, used only when both are set (pilot/util/https.py
  ``get_curl_command`` and ``locate_token``: the dirname is why the directory ends in ``/``);
- 3.11 also renews the token with the key file ``$PANDA_AUTH_TOKEN_KEY`` (pilot/util/https.py
  ``refresh_oidc_token``, read through ``locate_token``; Harvester's submit templates export it).
"""

from __future__ import annotations

import json
import os
import stat
import time

from siteagent import pathstr
from siteagent.errors import SiteAgentError
from siteagent.fileio import read_text
from siteagent.pilot.layers.base import Layer, PilotLayer, PlanContext
from siteagent.records import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from siteagent.sections import CredentialsSection


@record(frozen=True)
class Credentials:
    """Where the credentials are (paths only) and what the pilot needs of them."""

    require: str  # any, proxy, token, both, none
    proxy: str  # the path looked at (it may not exist)
    token: str | None
    origin: str | None
    min_lifetime: int
    token_key: str | None = None


def find_credentials(section: CredentialsSection, environ: Mapping[str, str]) -> Credentials:
    """The profile's paths, else the environment's (``X509_USER_PROXY``; ``PANDA_AUTH_DIR`` +
    ``PANDA_AUTH_TOKEN``; ``PANDA_AUTH_ORIGIN``), else voms-proxy-init's default proxy."""
    proxy = (
        _setting(section.x509_proxy, environ, "X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}"
    )
    token = section.panda_token if section.panda_token is not None else _environ_token(environ)
    return Credentials(
        section.require,
        _expand(proxy),
        _expanded(token),
        _setting(section.panda_origin, environ, "PANDA_AUTH_ORIGIN"),
        section.min_lifetime,
        _expanded(_setting(section.panda_token_key, environ, "PANDA_AUTH_TOKEN_KEY")),
    )


def _setting(value: str | None, environ: Mapping[str, str], var: str) -> str | None:
    """The profile's ``value``, else ``$var``; None when neither is set (or both are empty)."""
    return value or environ.get(var) or None


def _environ_token(environ: Mapping[str, str]) -> str | None:
    """Harvester's token path, ``$PANDA_AUTH_DIR/$PANDA_AUTH_TOKEN`` (None without a name)."""
    name = environ.get("PANDA_AUTH_TOKEN")
    return pathstr.clean(os.path.join(environ.get("PANDA_AUTH_DIR") or ".", name)) if name else None


def _expand(path: str) -> str:
    """``path`` with ``~`` expanded, spelt as pathlib does (no trailing '/', no '//')."""
    return pathstr.clean(os.path.expanduser(path))


def _expanded(path: str | None) -> str | None:
    return _expand(path) if path else None


def _private_file(path: str, what: str) -> str | None:
    """Why ``path`` cannot serve as the ``what`` (None: it is a private regular file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"{what} {path} is missing"
    except OSError as err:
        return f"{what} {path}: {err.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return f"{what} {path} is not a file"
    if st.st_mode & 0o077:
        return f"{what} {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must be 0400 or 0600"
    return None


def proxy_expiry(path: str) -> float:
    """When the proxy's own certificate (the first in the file) stops being valid (epoch)."""
    from cryptography import x509

    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return cert.not_valid_after_utc.timestamp()


def token_expiry(path: str) -> float | None:
    """A JWT's ``exp`` claim (epoch); None for a token that is not a JWT or has none."""
    parts = read_text(path).strip().split(".")
    if len(parts) != 3:
        return None
    exp = _claims(parts[1]).get("exp")
    return float(exp) if isinstance(exp, int | float) else None


def _claims(payload: str) -> dict[str, Any]:
    """A JWT's claims from its base64url payload ({} when they are not a JSON object)."""
    import base64  # only where a token is given: not imported by every rank

    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _lifetime(what: str, path: str, expiry: float | None, creds: Credentials, now: float) -> str:
    """The credential's state in words; raises ValueError with the problem when it expires."""
    if expiry is None:
        return f"{what} {path}: lifetime unknown"
    left = expiry - now
    if left <= 0:
        raise ValueError(f"{what} {path} expired {time.strftime('%FT%TZ', time.gmtime(expiry))}")
    if left < creds.min_lifetime:
        raise ValueError(
            f"{what} {path} expires in {left / 60:.0f} min, less than the "
            f"{creds.min_lifetime}s credentials.min_lifetime"
        )
    return f"{what} {path}: valid for {left / 3600:.1f} h"


def _require_private(path: str, what: str) -> None:
    """Raise ValueError with the reason ``path`` cannot serve as the ``what``."""
    problem = _private_file(path, what)
    if problem:
        raise ValueError(problem)


def _assess_proxy(creds: Credentials, now: float) -> str:
    _require_private(creds.proxy, "X509 proxy")
    try:
        expiry = proxy_expiry(creds.proxy)
    except (ValueError, OSError) as err:
        raise ValueError(f"X509 proxy {creds.proxy} is not a PEM certificate: {err}") from None
    return _lifetime("X509 proxy", creds.proxy, expiry, creds, now)


def _assess_token(creds: Credentials, now: float) -> str:
    if creds.token is None:
        raise ValueError("no PanDA token (credentials.panda_token or $PANDA_AUTH_TOKEN)")
    _require_private(creds.token, "PanDA token")
    if creds.token_key:
        _require_private(creds.token_key, "PanDA token key")
    if not creds.origin:
        raise ValueError(
            f"PanDA token {creds.token} has no origin (credentials.panda_origin or "
            "$PANDA_AUTH_ORIGIN): pilot3 ignores a token without one"
        )
    return _lifetime("PanDA token", creds.token, token_expiry(creds.token), creds, now)


# the credentials each ``require`` cannot do without ("any": see _needed)
_NEEDED = {"proxy": ("proxy",), "token": ("token",), "both": ("proxy", "token")}


def assess(creds: Credentials, now: float | None = None) -> tuple[dict[str, str], list[str]]:
    """``({credential: state}, [problems])``; a problem that ``require`` cannot do without
    makes the list of problems the error (see ``check``)."""
    good, bad = _states(creds, time.time() if now is None else now)
    return good, [bad[name] for name in _needed(creds.require, good) if name in bad]


def _states(creds: Credentials, now: float) -> tuple[dict[str, str], dict[str, str]]:
    """Each credential's state in words (the good ones) or its problem (the bad ones)."""
    good: dict[str, str] = {}
    bad: dict[str, str] = {}
    for name, fn in (("proxy", _assess_proxy), ("token", _assess_token)):
        try:
            good[name] = fn(creds, now)
        except ValueError as err:
            bad[name] = str(err)
    return good, bad


def _needed(require: str, good: Mapping[str, str]) -> tuple[str, ...]:
    """The credentials ``require`` cannot do without; for ``any``, both when neither is good."""
    if require == "any":
        return () if good else ("proxy", "token")
    return _NEEDED.get(require, ())


def check(creds: Credentials, now: float | None = None) -> list[str]:
    """What the pilot will use, in words; raises SiteAgentError naming what is missing or
    expiring when ``creds.require`` is not met."""
    good, problems = assess(creds, now)
    if problems:
        raise SiteAgentError(f"credentials ({creds.require} required): " + "; ".join(problems))
    return list(good.values())


def credential_env(creds: Credentials, good: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables pilot3 reads the credentials from (paths and the origin: no secrets)."""
    env = {"X509_USER_PROXY": creds.proxy}
    if creds.token and creds.origin:
        env |= {
            # pilot3 takes its dirname (locate_token)
            "PANDA_AUTH_DIR": f"{pathstr.parent(creds.token)}/",
            "PANDA_AUTH_TOKEN": pathstr.name(creds.token),
            "PANDA_AUTH_ORIGIN": creds.origin,
        }
        if creds.token_key:  # an absolute path: os.path.join(dir, it) in locate_token is it
            env["PANDA_AUTH_TOKEN_KEY"] = creds.token_key
    return env


class CredentialsLayer(PilotLayer):
    name = "credentials"

    def plan(self, ctx: PlanContext) -> Layer:
        creds = find_credentials(ctx.profile.credentials, ctx.environ)
        if ctx.opts.payload:  # a command of the admin's own, not the PanDA pilot
            from siteagent.records import replace

            creds = replace(creds, require="none")
        what = [f"proxy {creds.proxy}"] + ([f"token {creds.token}"] if creds.token else [])
        summary = f"{', '.join(what)} ({creds.require} required)"
        return Layer(self.name, summary, env=credential_env(creds), detail=creds)

    def setup(self, layer: Layer, env: dict[str, str]) -> list[str]:
        return check(layer.detail)
