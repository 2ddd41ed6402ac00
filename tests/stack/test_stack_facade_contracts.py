"""The facades follow the contract table: they retry exactly the hooks declared retryable, and
the compute layer is shut down exactly once per run."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from lamina.errors import TransientError
from lamina.hookspecs import hookimpl
from lamina.models import Resources
from lamina.runtime.api import run_flow
from lamina.stack import resolve_stack

FLOWS = Path(__file__).resolve().parents[1] / "runtime" / "flows"


class Flaky:
    """Answers a hook before the adapter does (tryfirst), failing transiently each time."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def _fail(self, hook: str) -> None:
        self.calls[hook] = self.calls.get(hook, 0) + 1
        raise TransientError(f"{hook}: try again")

    @hookimpl(tryfirst=True)
    def data_query(self, sql, parameters):  # type: ignore[no-untyped-def]
        self._fail("data_query")

    @hookimpl(tryfirst=True)
    def data_write(self, name, table, mode):  # type: ignore[no-untyped-def]
        self._fail(f"data_write:{mode}")


class FlakyCompute:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def _fail(self, hook: str) -> None:
        self.calls[hook] = self.calls.get(hook, 0) + 1
        raise TransientError(f"{hook}: try again")

    @hookimpl(tryfirst=True)
    def compute_wait(self, handles, timeout):  # type: ignore[no-untyped-def]
        self._fail("compute_wait")

    @hookimpl(tryfirst=True)
    def compute_validate(self, step, resources):  # type: ignore[no-untyped-def]
        self._fail("compute_validate")


def test_the_facade_retries_only_the_hooks_declared_retryable(lamina_project: Path) -> None:
    with resolve_stack("local") as stack:
        flaky, compute = Flaky(), FlakyCompute()
        stack.add_plugin("data", flaky)
        stack.add_plugin("compute", compute)
        attempts = stack.profile.options.retry_attempts
        table = pa.table({"x": [1]})
        for call in (
            lambda: stack.data.query("SELECT 1"),
            lambda: stack.data.write("t", table, mode="replace"),
            lambda: stack.data.write("t", table, mode="append"),
            lambda: stack.compute.wait(["h"], 0.0),
            lambda: stack.compute.validate("s", Resources(cpu=1)),
        ):
            with pytest.raises(TransientError):
                call()
    assert flaky.calls == {"data_query": attempts, "data_write:replace": attempts, "data_write:append": 1}
    assert compute.calls == {"compute_wait": 1, "compute_validate": attempts}


class CountShutdowns:
    def __init__(self) -> None:
        self.count = 0

    @hookimpl(wrapper=True)
    def compute_shutdown(self):  # type: ignore[no-untyped-def]
        self.count += 1
        return (yield)


def test_compute_shutdown_runs_once_per_run(lamina_project: Path) -> None:
    counter = CountShutdowns()
    stack = resolve_stack("local")
    stack.add_plugin("compute", counter)
    try:
        outcome = run_flow(str(FLOWS / "branches.py"), stack=stack, echo=False)
        assert outcome.ok
    finally:
        stack.close()
    assert counter.count == 1
