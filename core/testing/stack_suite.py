"""A whole stack runs the corpus of flow shapes and gives the same results as ``local``.

The promise Lamina makes users is that a flow runs unchanged on any stack. :class:`StackSuite`
checks it for one stack: subclass it and provide a ``stack_name`` fixture naming the stack
(usable in the ``lamina_project`` fixture's project, with whatever environment it needs)::

    from lamina.testing import StackSuite

    class TestMyStack(StackSuite):
        @pytest.fixture
        def stack_name(self, my_emulator_env):
            return "my-cloud"

Each corpus flow (``lamina/testing/flows/``) runs on the stack and on ``local`` (once per test
session; the local results are plain values), and every result is compared: each task's artifacts and what it printed, read back
through the client API, with run ids normalised (:func:`lamina.testing.suite_tools.run_results`).
The local results are also checked against known values, so a corpus that silently stopped
doing its work cannot pass. The shapes: linear steps with parameters, a static branch joined
with ``merge_artifacts``, a nested foreach, ``@retry`` (a step that fails on its first attempt
only) with ``@catch``, a 50 MiB NumPy array, and a table written, read and queried through
``current.data``.

A subclass may skip cases its stack cannot run by overriding :attr:`StackSuite.skipped`
(``{"table_io": "why"}``); say why, since users will read it as a limitation of the stack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from .suite_tools import RUN_PLACEHOLDER, flow_file, run_results


@dataclass(frozen=True)
class Case:
    """One corpus flow: its file, its parameters, and what its local run must have produced."""

    flow: str
    params: dict[str, Any] = field(default_factory=dict)
    expect: Callable[[dict[str, Any]], None] = lambda results: None

    def __str__(self) -> str:
        return self.flow


def _artifacts(results: dict[str, Any], task: str) -> dict[str, Any]:
    return results["tasks"][task]["artifacts"]


def _linear(results: dict[str, Any]) -> None:
    start = _artifacts(results, "start/0")
    assert start["seen"] == {"alpha": 0.25, "n": 4, "name": "suite", "flag": True, "config": {"k": [1, 2]}}
    assert start["where"] == {"run_id": RUN_PLACEHOLDER, "step": "start", "task": "0"}
    assert _artifacts(results, "end/0")["total"] == 9
    assert results["tasks"]["start/0"]["stdout"] == f"run {RUN_PLACEHOLDER} starts with n=4\n"


def _branch(results: dict[str, Any]) -> None:
    end = _artifacts(results, "end/0")
    assert (end["sides"], end["shared"], end["weight"]) == (("L", "R"), "same", 1)
    assert "side" not in end


def _nested(results: dict[str, Any]) -> None:
    end = _artifacts(results, "end/0")
    assert end["all"] == ["a1", "a2", "b1", "b2"] and end["letters"] == ["a", "b"]
    assert len([t for t in results["tasks"] if t.startswith("leaf/")]) == 4


def _retry_catch(results: dict[str, Any]) -> None:
    end = _artifacts(results, "end/0")
    assert end["attempt"] == 1 and end["problem"] == "ValueError: always broken"
    assert results["tasks"]["start/0"]["stdout"] == "flaky, attempt 1\n"


def _large_array(results: dict[str, Any]) -> None:
    check = _artifacts(results, "end/0")
    assert check["is_array"] is True and check["total"] == 0.5 * 6_553_599 * 6_553_600 / 2
    assert check["array"][:3] == ("ndarray", "float64", (6_553_600,))


def _table_io(results: dict[str, Any]) -> None:
    end = _artifacts(results, "end/0")
    assert end["top"] == [2, 3, 4]
    assert [r["id"] for r in end["rows"]] == [1, 2, 3, 4]


CORPUS: tuple[Case, ...] = (
    Case(
        "linear_params",
        {"alpha": 0.25, "n": 4, "name": "suite", "flag": True, "config": {"k": [1, 2]}},
        _linear,
    ),
    Case("branch_merge", expect=_branch),
    Case("nested_foreach", expect=_nested),
    Case("retry_catch", expect=_retry_catch),
    Case("large_array", expect=_large_array),
    Case("table_io", expect=_table_io),
)

_LOCAL_RESULTS: dict[str, dict[str, Any]] = {}
"""Each corpus flow's local results, computed once per test session: they are plain values, and
``StackSuite`` on ``local`` itself shows that they do not change from run to run."""


class StackSuite:
    """Every flow shape gives the same results on the stack as on ``local``. Provide ``stack_name``."""

    skipped: ClassVar[dict[str, str]] = {}
    """Corpus flows this stack cannot run, with the reason: ``{"table_io": "no data layer"}``."""

    @pytest.fixture
    def stack_name(self) -> str:
        """The name of the stack under test; subclasses must override this fixture."""
        pytest.fail(f"{type(self).__name__} must provide a 'stack_name' fixture")

    @pytest.mark.parametrize("case", CORPUS, ids=str)
    def test_the_flow_gives_the_same_results_as_on_local(
        self, case: Case, stack_name: str, lamina_project: Path
    ) -> None:
        from lamina import run_flow

        if case.flow in self.skipped:
            pytest.skip(f"{stack_name}: {self.skipped[case.flow]}")
        path = flow_file(case.flow)
        expected = _LOCAL_RESULTS.get(case.flow)
        if expected is None:
            local = run_flow(path, case.params, stack="local", echo=False)
            assert local.ok, local.message
            expected = run_results(local.run_id, "local")
            assert expected["status"] == "succeeded"
            case.expect(expected)
            _LOCAL_RESULTS[case.flow] = expected
        outcome = run_flow(path, case.params, stack=stack_name, echo=False)
        assert outcome.ok, outcome.message
        got = run_results(outcome.run_id, stack_name)
        assert got.keys() == expected.keys()
        assert sorted(got["tasks"]) == sorted(expected["tasks"]), "the stack ran other tasks than local"
        for task, result in expected["tasks"].items():
            assert got["tasks"][task] == result, f"task {task} differs from the local run's"
        assert got == expected
