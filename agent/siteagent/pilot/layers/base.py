"""The interface of a pilot layer, and the order layers are planned in.

A layer plans from the profile, the caller's options, the environment and what the layers it
names in ``after`` decided, and returns a ``Layer`` record: what it shows (``--dry-run``),
what it puts in front of the payload, the variables it sets or unsets, the commands its setup
may run, and its own typed decision (``detail``) for later layers and for its ``setup`` step.
Layers are stacked (and shown, reported, set up) in ``STACK`` order; they are planned in an
order that puts every layer after those it reads (``planning_order``).
"""

from __future__ import annotations

from siteagent.records import field, record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any, ClassVar

    from siteagent.pilot.plan import PilotOptions
    from siteagent.profiles import Profile


@record(frozen=True)
class Layer:
    """One planned layer, as ``--dry-run`` shows it and the report names it."""

    name: str
    summary: str
    command: tuple[str, ...] = ()  # what this layer puts in front of the payload (or is)
    setup: tuple[tuple[str, ...], ...] = ()  # run once before the payload starts
    env: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    detail: Any = field(default=None, compare=False, repr=False)  # the layer's own decision

    def to_dict(self) -> dict[str, Any]:
        """The record without ``detail`` (the ``layers`` entries of ``--dry-run --json``)."""
        return {
            "name": self.name,
            "summary": self.summary,
            "command": list(self.command),
            "setup": [list(cmd) for cmd in self.setup],
            "env": dict(self.env),
            "unset": list(self.unset),
        }


@record(frozen=True)
class PlanContext:
    """What a layer plans from; ``earlier`` holds only the layers it names in ``after``."""

    profile: Profile
    opts: PilotOptions
    environ: Mapping[str, str]
    pilot_id: str
    local_rank: int
    workdir: str
    earlier: Mapping[str, Layer] = field(default_factory=dict)

    def seeing(self, done: Mapping[str, Layer], names: Iterable[str]) -> PlanContext:
        """This context with the decisions of ``names`` (all planned already) visible."""
        from siteagent.records import replace

        return replace(self, earlier={name: done[name] for name in names})

    def detail(self, name: str) -> Any:
        """What the earlier layer ``name`` decided (it must be in the asking layer's ``after``)."""
        return self.earlier[name].detail

    def choice(self, option: str | None, var: str) -> str | None:
        """The caller's option, else the environment variable ``var`` (None: neither)."""
        return option if option is not None else self.environ.get(var)


class PilotLayer:
    """A layer of the pilot's command. Subclasses set ``name`` and implement ``plan``."""

    name: ClassVar[str]
    after: ClassVar[tuple[str, ...]] = ()  # layers whose decisions ``plan`` reads

    def plan(self, ctx: PlanContext) -> Layer:
        """Decide this layer, without side effects; raises ConfigError on bad input."""
        raise NotImplementedError

    def setup(self, layer: Layer, env: dict[str, str]) -> list[str]:
        """Make the planned ``layer`` real before the payload starts; returns what it did
        (for the report). Raises SiteAgentError when it cannot."""
        return []

    def teardown(self, layer: Layer, env: dict[str, str]) -> list[str]:
        """Undo what outlives the payload's processes (a container a SIGKILL left behind),
        after the payload ended, however it ended; returns what it did. Never raises."""
        return []


def planning_order(stack: Iterable[type[PilotLayer]]) -> list[type[PilotLayer]]:
    """``stack`` reordered so that every layer comes after the layers in its ``after``,
    otherwise in stack order."""
    pending = list(stack)
    order: list[type[PilotLayer]] = []
    while pending:
        done = {cls.name for cls in order}
        ready = next((cls for cls in pending if set(cls.after) <= done), None)
        if ready is None:
            raise RuntimeError(f"pilot layers: 'after' has a cycle among {pending}")
        order.append(ready)
        pending.remove(ready)
    return order
