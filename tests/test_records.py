"""`siteagent.records`: records behave as the dataclasses they are to mypy, side by side with
the real ``dataclasses`` on the same class bodies."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from siteagent import records


def _both(frozen: bool = True):
    """The same class body as a record and as a dataclass."""

    def body(deco, fld):
        @deco(frozen=frozen)
        class Point:
            kind: ClassVar[str] = "point"  # not a field
            x: int
            y: int = 2
            tags: list[str] = fld(default_factory=list)
            note: str | None = fld(default=None, compare=False, repr=False)
            meta: int = fld(default=0, metadata={"section": int})

        return Point

    return body(records.record, records.field), body(dataclasses.dataclass, dataclasses.field)


@pytest.mark.parametrize("frozen", [True, False])
def test_a_record_is_built_compared_and_shown_as_the_dataclass(frozen):
    rec, dc = _both(frozen)
    for args, kwargs in [((1,), {}), ((1, 3), {"tags": ["a"]}), ((), {"x": 1, "note": "n"})]:
        r, d = rec(*args, **kwargs), dc(*args, **kwargs)
        assert repr(r).replace("test_a_record", "") == repr(d).replace("test_a_record", "")
        assert vars(r) == vars(d)
    assert rec(1, note="a") == rec(1, note="b")  # note is not compared
    assert rec(1) != rec(2) and rec(1) != dc(1)
    assert rec(1).tags is not rec(1).tags  # a fresh list each time
    assert rec.__match_args__ == dc.__match_args__ == ("x", "y", "tags", "note", "meta")
    assert [f.name for f in records.fields(rec)] == [f.name for f in dataclasses.fields(dc)]
    assert records.fields(rec)[4].metadata["section"] is int
    assert rec.kind == "point" and rec.y == 2
    if frozen:
        assert hash(rec(1, tags=(), note="a")) == hash(rec(1, tags=(), note="b"))
        assert hash(rec(1, tags=())) == hash(dc(1, tags=()))  # the same tuple of fields
        with pytest.raises(dataclasses.FrozenInstanceError):
            rec(1).x = 5
        with pytest.raises(dataclasses.FrozenInstanceError):
            del rec(1).x
    else:
        assert rec.__hash__ is None
        r = rec(1)
        r.x = 5
        assert r.x == 5


def test_bad_calls_fail_as_the_dataclass_does():
    rec, dc = _both()
    for args, kwargs in [
        ((), {}),
        ((1, 2, [], None, 0, 9), {}),
        ((1,), {"x": 2}),
        ((1,), {"z": 1}),
    ]:
        with pytest.raises(TypeError):
            dc(*args, **kwargs)
        with pytest.raises(TypeError):
            rec(*args, **kwargs)
    with pytest.raises(ValueError, match="mutable default"):

        @records.record
        class Bad:
            items: list[int] = []

    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):

        @records.record
        class Order:
            a: int = 1
            b: int


def test_post_init_replace_and_asdict():
    @records.record(frozen=True)
    class Inner:
        v: int

    @records.record(frozen=True)
    class Outer:
        inner: Inner
        items: tuple[Inner, ...] = ()
        extra: dict[str, list[int]] = records.field(default_factory=dict)
        doubled: int = 0

        def __post_init__(self) -> None:
            object.__setattr__(self, "doubled", self.inner.v * 2)

    o = Outer(Inner(1), (Inner(2),), {"k": [1]})
    assert o.doubled == 2
    d = records.asdict(o)
    assert d == {"inner": {"v": 1}, "items": ({"v": 2},), "extra": {"k": [1]}, "doubled": 2}
    assert d["extra"]["k"] is not o.extra["k"]  # copied, as dataclasses.asdict does
    o2 = records.replace(o, inner=Inner(5))
    assert (o2.inner, o2.items, o2.doubled) == (Inner(5), o.items, 10)
    # the dataclasses functions take records too (tests and tools use them)
    assert dataclasses.is_dataclass(o) and dataclasses.asdict(o) == d
    assert dataclasses.replace(o, inner=Inner(7)).doubled == 14
    assert [f.name for f in dataclasses.fields(Outer)] == ["inner", "items", "extra", "doubled"]
    assert records.is_record(o) and not records.is_record(Inner(1).v)
    with pytest.raises(TypeError):
        records.asdict(Outer)


def test_a_subclass_record_adds_its_fields_after_the_base_ones():
    @records.record(frozen=True)
    class Base:
        a: int

    @records.record(frozen=True)
    class Child(Base):
        b: int = 0

    c = Child(1, 2)
    assert (c.a, c.b) == (1, 2) and repr(c).endswith("Child(a=1, b=2)")
    assert [f.name for f in records.fields(c)] == ["a", "b"]
