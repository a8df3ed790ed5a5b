"""What every scheduler is: the user-config options it takes, its batch directives, how a
batch job is named, cancelled and probed, which launchers go with it, and the provider block
of the user endpoint template (in the manner of Parsl's ``parsl/providers``)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from siteagent.names import WORD, string_schema

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from siteagent.profiles import Profile


class Scheduler(ABC):
    """One batch system. Subclasses set the class attributes and write ``directives``."""

    name: ClassVar[str]  # the profile's ``scheduler:`` value
    # user_endpoint_config options that become directives, in the order they are shown
    fields: ClassVar[tuple[str, ...]] = ()
    # patterns of those options other than WORD
    field_patterns: ClassVar[dict[str, str]] = {}
    launchers: ClassVar[frozenset[str]]  # the profile launchers that go with it
    directive_prefix: ClassVar[str] = ""  # "#SBATCH"
    # the directives every batch script ends with (written by the header and the template)
    closing_directives: ClassVar[tuple[str, ...]] = ()
    job_id_var: ClassVar[str | None] = None  # set in the batch job's environment
    cancel_command: ClassVar[str | None] = None  # CANCEL JOB_ID
    probe_command: ClassVar[tuple[str, ...] | None] = None  # answers when the scheduler is up
    provider_template: ClassVar[str]  # fragment in schedulers/templates/ (the provider block)
    parsl_launcher: ClassVar[str] = "SimpleLauncher"  # the user endpoint's launcher type
    has_walltime: ClassVar[bool] = True  # batch jobs end at a walltime

    def schema_properties(self, profile: Profile) -> dict[str, Any]:
        """JSON-schema properties of this scheduler's options in user_endpoint_config."""
        # a length cap whatever the pattern ("a+(:a+)*" alone admits a megabyte)
        return {
            name: string_schema(self.field_patterns.get(name, WORD), maxLength=256)
            for name in self.fields
        }

    def required_fields(self, profile: Profile) -> list[str]:
        """Options a worker config must name: the account, unless the profile has one."""
        if "account" in self.fields and not profile.directives.account:
            return ["account"]
        return []

    def canonicalize(self, config: dict[str, Any]) -> dict[str, Any]:
        """Drop or normalise options of a completed config (a hook; nothing by default)."""
        return config

    def check_request(self, profile: Profile, request: dict[str, Any]) -> None:
        """Refuse, with a one-line ConfigError, options that contradict each other (a hook;
        nothing by default)."""
        return None  # a statement, so the hook is not an empty method of an ABC (ruff B027)

    def launcher_of(self, profile: Profile) -> str:
        """The launcher that starts ranks in this scheduler's jobs: the profile's."""
        return profile.launcher

    def check_launcher(self, launcher: str, source: str) -> None:
        """A one-line ConfigError when ``launcher`` does not go with this scheduler."""
        from siteagent.errors import ConfigError

        if launcher not in self.launchers:
            raise ConfigError(
                f"{source}: launcher: '{launcher}' does not go with scheduler "
                f"'{self.name}' (use one of {', '.join(sorted(self.launchers))})"
            )

    def template_context(self, profile: Profile) -> dict[str, Any]:
        """Extra values the provider template fragment uses (none by default)."""
        return {}

    @abstractmethod
    def directives(self, profile: Profile, request: dict[str, Any], job_name: str) -> list[str]:
        """The directive arguments of a canonical request, without ``closing_directives``."""

    def batch_header(self, profile: Profile, request: dict[str, Any], job_name: str) -> str:
        """``#!/bin/bash`` and one directive line per argument for a canonical request."""
        lines = [*self.directives(profile, request, job_name), *self.closing_directives]
        return "#!/bin/bash\n" + "".join(f"{self.directive_prefix} {arg}\n" for arg in lines)
