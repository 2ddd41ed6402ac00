"""Conformance tests for compute adapters (the ``ComputeSpec`` layer), in fsspec's style.

A compute adapter is tested the way users meet it: real flows run through ``lamina.run_flow``
on a stack whose compute is the adapter. Subclass :class:`ComputeSuite` and provide a
``compute_stack`` fixture that returns the name of such a stack (profile), usable in the
``lamina_project`` fixture's project (a built-in profile, one your plugin ships, or one the
fixture writes to ``.lamina/stacks/NAME.toml``); the other layers are whatever your test
environment offers (the built-in ``local`` ones are fine)::

    from lamina.testing import ComputeSuite

    class TestMyCluster(ComputeSuite):
        @pytest.fixture
        def compute_stack(self, lamina_project, my_cluster):
            (lamina_project / ".lamina" / "stacks").mkdir(exist_ok=True)
            (lamina_project / ".lamina" / "stacks" / "mine.toml").write_text(
                '[compute]\\nadapter = "my-cluster"\\n' f'address = "{my_cluster.address}"\\n'
                '[data]\\nadapter = "duckdb"\\n[orchestration]\\nadapter = "local"\\n'
                '[versioning]\\nadapter = "local"\\n'
            )
            return "mine"

What it holds every adapter to: the same results as the ``local`` stack (linear steps, a
foreach and its join), a failing task fails the run at that step with its traceback stored, a
task that kills its own process fails the run cleanly (no hang), an interrupted run stops its
running task's process, and resources no worker offers are refused before anything is
submitted (from ``compute_validate`` and from a run).

The suite's flows (``lamina/testing/flows/``) write marker files into a directory they are
given as a parameter, so the tasks' processes must run on this machine, as they do on every
local stand-in of a cloud or cluster. Class attributes tune it:

* ``stop_within``: seconds a cancelled task's process may take to stop (default 60);
* ``unsatisfiable``: the resources no worker offers (default ``cpu=10_000``; matches
  ``flows/greedy.py``).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
from lamina.errors import ResourceUnsatisfiable, RunInterrupted
from lamina.models import CheckResult, Resources

from .suite_tools import client_on, flow_file, process_alive, run_results, wait_until


def _run(flow: str, params: dict[str, Any] | None, stack: str) -> Any:
    from lamina import run_flow

    return run_flow(flow_file(flow), params, stack=stack, echo=False)


class ComputeSuite:
    """The behaviour every compute adapter promises. Subclass it and provide ``compute_stack``."""

    stop_within: ClassVar[float] = 60.0
    """Seconds an interrupted run's task process may take to stop."""

    unsatisfiable: ClassVar[Resources] = Resources(cpu=10_000)
    """What no worker offers (``flows/greedy.py`` asks for the same in its ``train`` step)."""

    @pytest.fixture
    def compute_stack(self) -> str:
        """The name of a stack whose compute is the adapter under test; subclasses override it."""
        pytest.fail(f"{type(self).__name__} must provide a 'compute_stack' fixture")

    @pytest.fixture
    def marker_dir(self, lamina_project: Path) -> Path:
        """A directory the suite's flows write marker files into."""
        folder = lamina_project / "markers"
        folder.mkdir()
        return folder

    # -- results ----------------------------------------------------------------------------

    def test_a_flow_gives_the_same_results_as_on_local(
        self, compute_stack: str, lamina_project: Path
    ) -> None:
        local = _run("fan_out", {"count": 3}, "local")
        assert local.ok, local.message
        outcome = _run("fan_out", {"count": 3}, compute_stack)
        assert outcome.ok, outcome.message
        expected = run_results(local.run_id, "local")
        got = run_results(outcome.run_id, compute_stack)
        assert expected["tasks"]["end/0"]["artifacts"]["total"] == 14  # 1 + 4 + 9: the corpus ran
        assert got == expected

    # -- failures ---------------------------------------------------------------------------

    def test_a_failing_task_fails_the_run_at_its_step(self, compute_stack: str, lamina_project: Path) -> None:
        outcome = _run("failing", None, compute_stack)
        assert not outcome.ok
        assert outcome.failed_step == "boom"
        assert "boom" in outcome.message
        with client_on(compute_stack) as client:
            run = client.Run(outcome.run_id)
            assert run.status == "failed"
            task = run["boom"].task
            assert task.error == "ValueError: broken on purpose"
            assert "broken on purpose" in task.traceback
            assert "in boom" in task.traceback, "the traceback shows the step's own frame"
            assert "end" not in run

    @pytest.mark.parametrize("how", ["exit", "kill"])
    def test_a_task_that_kills_its_process_fails_the_run_cleanly(
        self, compute_stack: str, lamina_project: Path, how: str
    ) -> None:
        outcome = _run("crashing", {"how": how}, compute_stack)
        assert not outcome.ok
        assert outcome.failed_step == "work"
        with client_on(compute_stack) as client:
            run = client.Run(outcome.run_id)
            assert run.status == "failed"
            crashed = run["work"]["1"]
            assert not crashed.successful
            assert crashed.error, "a crashed task's record says what happened"
            assert "end" not in run

    def test_an_interrupted_run_stops_its_running_task(
        self, compute_stack: str, lamina_project: Path, marker_dir: Path
    ) -> None:
        """Ctrl-C during a run cancels the running task: its process stops, the run is recorded
        ``interrupted`` and ``run_flow`` raises ``RunInterrupted`` (a ``KeyboardInterrupt``)."""
        pid_file = marker_dir / "task.pid"
        finished = threading.Event()

        def interrupt_once_the_task_runs() -> None:
            while not finished.is_set():
                if pid_file.exists():
                    os.kill(os.getpid(), signal.SIGINT)  # KeyboardInterrupt in the main thread
                    return
                finished.wait(0.05)

        interrupter = threading.Thread(target=interrupt_once_the_task_runs, daemon=True)
        interrupter.start()
        try:
            with pytest.raises(RunInterrupted):
                _run("sleepy", {"marker_dir": str(marker_dir)}, compute_stack)
        finally:
            finished.set()
            interrupter.join()
        pid = int(pid_file.read_text())
        wait_until(
            lambda: not process_alive(pid), f"the cancelled task's process {pid} to stop", self.stop_within
        )
        with client_on(compute_stack) as client:
            run = client.Flow("SleepyFlow").latest_run
            assert run is not None and run.status == "interrupted", "an interrupted run is recorded so"

    # -- resources --------------------------------------------------------------------------

    def test_resources_no_worker_offers_are_refused_by_validate(
        self, compute_stack: str, lamina_project: Path
    ) -> None:
        from lamina import resolve_stack

        with resolve_stack(compute_stack) as stack:
            with pytest.raises(ResourceUnsatisfiable) as refused:
                stack.compute.validate("train", self.unsatisfiable)
            assert "train" in str(refused.value), "the refusal names the step"
            offered = stack.compute.validate("train", Resources(cpu=1))
            assert isinstance(offered, str) and offered, "a request that fits is described"

    def test_resources_no_worker_offers_fail_the_run_before_any_task(
        self, compute_stack: str, lamina_project: Path, marker_dir: Path
    ) -> None:
        with pytest.raises(ResourceUnsatisfiable, match="train"):
            _run("greedy", {"marker_dir": str(marker_dir)}, compute_stack)
        assert not (marker_dir / "started").exists(), (
            "no task may run before every step's resources are checked"
        )

    # -- health -----------------------------------------------------------------------------

    def test_check_reports_ok(self, compute_stack: str, lamina_project: Path) -> None:
        from lamina import resolve_stack

        with resolve_stack(compute_stack) as stack:
            result = stack.compute.check()
        assert isinstance(result, CheckResult)
        assert result.layer == "compute"
        assert result.ok, f"{result.message} (fix: {result.fix})"
