"""The plugins never start a Globus login: inside Harvester nobody answers a prompt, and a
retried submit would prompt again forever. No credentials is a permanent error that says, in
one line, what to run."""

from __future__ import annotations

from siteagent.errors import SiteAgentError

NO_LOGIN = (
    "no Globus login for this Harvester user: run `globus-compute-endpoint login` as this "
    "user, or set GLOBUS_COMPUTE_CLIENT_ID and GLOBUS_COMPUTE_CLIENT_SECRET"
)


class NoLoginError(SiteAgentError):
    """The SDK holds no usable tokens and no client identity is configured."""


def require_login() -> None:
    """Return when the SDK can authenticate without a person; else NoLoginError."""
    from siteagent.smoke.site import logged_in

    if not logged_in():
        raise NoLoginError(NO_LOGIN)
