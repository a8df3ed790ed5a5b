"""EngineExecutor against the real Globus Compute engine: what a submitter relies on when
functions are serialized once per function object."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    from siteagent.endpoint.engine import EngineExecutor
    from siteagent.endpoint.render import render_endpoint, write_endpoint
    from siteagent.endpoint.validate import validate_endpoint
    from siteagent.profiles import load_profile
    from siteagent.userconfig import canonicalize

    base = tmp_path_factory.mktemp("engine")
    profile = load_profile("local")
    write_endpoint(render_endpoint(profile, base / "ep"), base / "ep", force=True)
    loaded = validate_endpoint(base / "ep", canonicalize(profile, {})).config
    ex = EngineExecutor(loaded.engine, base / "run")
    yield ex
    ex.shutdown()


def _adder(n):
    def add(x):
        return x + n

    return add


class Unhashable:
    """A callable that defines __eq__ without __hash__, as some task wrappers do."""

    __name__ = "unhashable"  # the worker names the task after its function

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Unhashable) and other.value == self.value

    def __call__(self):
        return self.value


def test_closures_with_the_same_code_keep_their_own_values(executor):
    # same code object and name, different captured n: a cache keyed on anything but the
    # function object would give every task the first closure's n
    futures = [executor.submit(_adder(n), 1) for n in (10, 20, 30)]
    assert [f.result(120) for f in futures] == [11, 21, 31]


def test_one_function_many_arguments(executor):
    add = _adder(100)
    futures = [executor.submit(add, i) for i in range(20)]
    assert [f.result(120) for f in futures] == [100 + i for i in range(20)]


def test_keyword_arguments_reach_the_function(executor):
    assert executor.submit(dict, a=1, b="x").result(120) == {"a": 1, "b": "x"}
    assert executor.submit(dict).result(120) == {}


def test_unhashable_callables_are_serialized_each_time(executor):
    assert executor.submit(Unhashable(7)).result(120) == 7
    assert executor.submit(Unhashable(8)).result(120) == 8


def test_the_cache_is_bounded(executor):
    from siteagent.endpoint import engine

    futures = [executor.submit(_adder(n), 0) for n in range(engine.FN_CACHE_SIZE + 5)]
    assert [f.result(120) for f in futures] == list(range(engine.FN_CACHE_SIZE + 5))
    assert len(executor._fn_cache) <= engine.FN_CACHE_SIZE
