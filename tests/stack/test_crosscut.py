"""Cross-cutting concerns work over any adapter: tracing (a pluggy wrapper), the query cache (a
``tryfirst`` implementation) and retry with backoff (in the layer facade), each proved over two
different data adapters through a resolved stack, and tracing over the local compute adapter.

To cover another data adapter, add its name to ``DATA_ADAPTERS``: everything here learns the
adapter's class and its declared transient errors from the registry.
"""

from __future__ import annotations

import functools
import importlib.util
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from lamina.discovery import get_registry
from lamina.errors import DataError
from lamina.hookspecs import hookimpl
from lamina.stack import Stack, resolve_stack
from stack_helpers import profile_text, write_profile

DATA_ADAPTERS = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param(
        "sqlite",
        id="sqlite",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("lamina_sqlite") is None, reason="contrib lamina-sqlite is not installed"
        ),
    ),
]


def adapter_class(name: str) -> type:
    info = get_registry().adapter("data", name)
    assert info is not None, f"no data adapter {name!r} installed"
    return info.factory


class Spy:
    """Wraps one hook method of an adapter class: counts the calls that reach the adapter and can
    make the first ``fail_times`` of them raise ``error``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cls: type, hook: str) -> None:
        self.calls = 0
        self.fail_times = 0
        self.error: Callable[[], BaseException] | None = None
        original = getattr(cls, hook)

        @functools.wraps(original)  # keeps the @hookimpl marker and the signature pluggy checks
        def spy(adapter: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.error is not None and self.calls <= self.fail_times:
                raise self.error()
            return original(adapter, *args, **kwargs)

        monkeypatch.setattr(cls, hook, spy)

    def fail(self, times: int, error: Callable[[], BaseException]) -> Spy:
        self.fail_times, self.error = times, error
        return self


@pytest.fixture(params=DATA_ADAPTERS)
def data_adapter(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_stack(lamina_project: Path, data_adapter: str) -> Iterator[Callable[..., Stack]]:
    """A stack of the project with the adapter under test for data and the given ``[options]``."""
    stacks: list[Stack] = []

    def make(**options: Any) -> Stack:
        lines = "\n".join(f"{key} = {str(value).lower()}" for key, value in options.items())
        path = write_profile(
            lamina_project / ".lamina" / "stacks",
            "under-test",
            profile_text(data=f'adapter = "{data_adapter}"\n', head=f"[options]\n{lines}\n"),
        )
        assert path.is_file()
        stack = resolve_stack("under-test")
        assert stack.data.name == data_adapter
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.close()


PEOPLE = pa.table({"id": [1, 2, 3], "name": ["ada", "grace", "edsger"]})
COUNT = "SELECT count(*) AS n FROM people"


def count(table: pa.Table) -> int:
    return table.column(0).to_pylist()[0]


# -- tracing ------------------------------------------------------------------------------------------


def test_tracing_records_every_data_hook_call_with_its_timing(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(trace=True)
    stack.data.write("people", PEOPLE)
    assert count(stack.data.query(COUNT)) == 3
    assert stack.data.read("people").num_rows == 3
    assert "people" in stack.data.tables()
    with pytest.raises(DataError):
        stack.data.read("nobody")
    stack.data.check()

    hooks = [(r.hook, r.ok) for r in stack.trace.records if r.layer == "data"]
    for call in (
        ("data_write", True),
        ("data_query", True),
        ("data_read", True),
        ("data_tables", True),
        ("data_read", False),  # a call that raised is recorded too, as failed
        ("data_check", True),
    ):
        assert call in hooks
    assert [h for h, _ in hooks if h != "data_transient_errors"] == [
        "data_write",
        "data_query",
        "data_read",
        "data_tables",
        "data_read",
        "data_check",
    ]
    assert all(isinstance(r.seconds, float) and r.seconds >= 0 for r in stack.trace.records)


def test_without_the_option_nothing_is_traced(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(trace=False)
    stack.data.write("people", PEOPLE)
    stack.data.query(COUNT)
    assert stack.trace.records == []


def test_a_third_party_wrapper_sees_every_call_of_any_adapter(make_stack: Callable[..., Stack]) -> None:
    """Cross-cutting plugins are ordinary pluggy plugins registered beside the adapter."""
    audit: list[str] = []

    class Audit:
        @hookimpl(wrapper=True)
        def data_write(self, name: str) -> Any:
            audit.append(f"write {name}")
            return (yield)

        @hookimpl(wrapper=True)
        def data_query(self, sql: str) -> Any:
            result = yield
            audit.append(f"query -> {result.table.num_rows} row(s)")
            return result

    stack = make_stack()
    stack.add_plugin("data", Audit())
    stack.data.write("people", PEOPLE)
    stack.data.query("SELECT name FROM people WHERE id > 1")
    assert audit == ["write people", "query -> 2 row(s)"]


# -- the query cache ---------------------------------------------------------------------------------


def test_the_query_cache_answers_a_repeated_query_without_the_adapter(
    make_stack: Callable[..., Stack], data_adapter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = Spy(monkeypatch, adapter_class(data_adapter), "data_query")
    stack = make_stack(query_cache=True, trace=True)
    stack.data.write("people", PEOPLE)

    first = stack.data.query(COUNT)
    second = stack.data.query(COUNT)
    assert count(first) == count(second) == 3
    assert queries.calls == 1
    assert stack.query_cache is not None and stack.query_cache.hits == 1
    # a cached answer is still a traced call, and still recorded as a read of the run
    assert [r.hook for r in stack.trace.records].count("data_query") == 2
    assert len([s for s in stack.data.reads if s.kind == "query"]) == 2

    # other parameters are another query
    by_id = "SELECT name FROM people WHERE id = ?"
    assert stack.data.query(by_id, [1]).column(0).to_pylist() == ["ada"]
    assert stack.data.query(by_id, [2]).column(0).to_pylist() == ["grace"]
    assert queries.calls == 3


def test_a_write_invalidates_the_query_cache(
    make_stack: Callable[..., Stack], data_adapter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = Spy(monkeypatch, adapter_class(data_adapter), "data_query")
    stack = make_stack(query_cache=True)
    stack.data.write("people", PEOPLE)
    assert count(stack.data.query(COUNT)) == 3
    stack.data.write("people", pa.table({"id": [4], "name": ["barbara"]}), mode="append")
    assert count(stack.data.query(COUNT)) == 4
    assert queries.calls == 2
    assert count(stack.data.query(COUNT)) == 4
    assert queries.calls == 2


def test_without_the_cache_every_query_reaches_the_adapter(
    make_stack: Callable[..., Stack], data_adapter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = Spy(monkeypatch, adapter_class(data_adapter), "data_query")
    stack = make_stack(query_cache=False)
    stack.data.write("people", PEOPLE)
    stack.data.query(COUNT)
    stack.data.query(COUNT)
    assert queries.calls == 2 and stack.query_cache is None


# -- retry with backoff ------------------------------------------------------------------------------


def declared_transient(stack: Stack) -> type[BaseException]:
    """The first exception type the adapter itself declares transient."""
    declared = stack.data.adapter.data_transient_errors()
    assert declared, f"the {stack.data.name} adapter declares no transient errors"
    return declared[0]


def test_the_facade_retries_an_error_the_adapter_declares_transient(
    make_stack: Callable[..., Stack], data_adapter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = make_stack(retry_backoff=0, trace=True)
    stack.data.write("people", PEOPLE)
    transient = declared_transient(stack)
    queries = Spy(monkeypatch, adapter_class(data_adapter), "data_query").fail(
        3, lambda: transient("simulated: the database is locked")
    )
    stack = make_stack(retry_backoff=0, trace=True)  # rebuilt, so the spy is what gets registered
    assert count(stack.data.query(COUNT)) == 3
    assert queries.calls == 4
    assert stack.data.retries == 3
    assert [r.ok for r in stack.trace.records if r.hook == "data_query"] == [False, False, False, True]


def test_the_facade_retries_errors_declared_through_the_hook_only(
    make_stack: Callable[..., Stack], data_adapter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SDK's own exception type, unrelated to Lamina's errors, is retried once declared."""

    class Throttled(Exception):
        pass

    cls = adapter_class(data_adapter)
    original = cls.data_transient_errors

    @functools.wraps(original)
    def declare(adapter: Any) -> tuple[type[BaseException], ...]:
        return (*original(adapter), Throttled)

    monkeypatch.setattr(cls, "data_transient_errors", declare)
    reads = Spy(monkeypatch, cls, "data_read").fail(2, lambda: Throttled("slow down"))
    stack = make_stack(retry_backoff=0)
    stack.data.write("people", PEOPLE)
    assert stack.data.read("people").num_rows == 3
    assert reads.calls == 3 and stack.data.retries == 2


def test_retries_stop_after_the_profiles_attempts(
    make_stack: Callable[..., Stack], data_adapter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = make_stack(retry_backoff=0)
    transient = declared_transient(stack)
    queries = Spy(monkeypatch, adapter_class(data_adapter), "data_query").fail(
        100, lambda: transient("locked")
    )
    stack = make_stack(retry_backoff=0, retry_attempts=3)
    with pytest.raises(transient):
        stack.data.query("SELECT 1")
    assert queries.calls == 3 and stack.data.retries == 2


def test_an_error_not_declared_transient_is_not_retried(
    make_stack: Callable[..., Stack], data_adapter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = Spy(monkeypatch, adapter_class(data_adapter), "data_query")
    stack = make_stack(retry_backoff=0)
    with pytest.raises(DataError):
        stack.data.query("SELECT * FROM no_such_table")
    assert queries.calls == 1 and stack.data.retries == 0
    queries.calls = 0
    queries.fail(1, lambda: ValueError("a bug, not a hiccup"))
    with pytest.raises(ValueError):
        stack.data.query("SELECT 1")
    assert queries.calls == 1 and stack.data.retries == 0


def test_append_is_not_retried_but_replace_is(
    make_stack: Callable[..., Stack], data_adapter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = make_stack(retry_backoff=0)
    transient = declared_transient(stack)
    writes = Spy(monkeypatch, adapter_class(data_adapter), "data_write").fail(1, lambda: transient("locked"))
    stack = make_stack(retry_backoff=0)
    # append is not idempotent: a retry after a lost reply could add the rows twice
    with pytest.raises(transient):
        stack.data.write("people", PEOPLE, mode="append")
    assert writes.calls == 1 and stack.data.retries == 0

    writes.calls = 0
    writes.fail(1, lambda: transient("locked"))
    stack.data.write("people", PEOPLE, mode="replace")
    assert writes.calls == 2 and stack.data.retries == 1
    assert stack.data.read("people").num_rows == 3


# -- compute ------------------------------------------------------------------------------------------

FLOW = textwrap.dedent(
    """
    from lamina import FlowSpec, step


    class FanFlow(FlowSpec):
        @step
        def start(self):
            self.items = [1, 2, 3]
            self.next(self.square, foreach="items")

        @step
        def square(self):
            self.value = self.input * self.input
            self.next(self.join)

        @step
        def join(self, inputs):
            self.total = sum(i.value for i in inputs)
            self.next(self.end)

        @step
        def end(self):
            pass
    """
)


def test_tracing_over_the_local_compute_adapter_during_a_run(lamina_project: Path, run_flow: Any) -> None:
    write_profile(
        lamina_project / ".lamina" / "stacks", "traced", profile_text(head="[options]\ntrace = true\n")
    )
    flow = lamina_project / "fan_flow.py"
    flow.write_text(FLOW)
    with resolve_stack("traced") as stack:
        outcome = run_flow(flow, stack=stack, max_workers=2)
        assert outcome.ok, outcome.message
        compute = [r.hook for r in stack.trace.records if r.layer == "compute"]
    assert compute.count("compute_start") == 1
    assert compute.count("compute_submit") == 6  # start, 3 x square, join, end
    assert "compute_wait" in compute
    versioning = {r.hook for r in stack.trace.records if r.layer == "versioning"}
    assert {"versioning_put", "versioning_get"} <= versioning
