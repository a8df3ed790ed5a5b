"""Exceptions whose message is the one line shown to the user."""


class SiteAgentError(Exception):
    """A problem the user can fix; ``str(err)`` is a complete one-line message."""

    exit_code = 1


class ConfigError(SiteAgentError):
    """Bad input: a profile, a user_endpoint_config or a CLI value (exit code 2)."""

    exit_code = 2
