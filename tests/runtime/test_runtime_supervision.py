"""A task's output is kept, and its @timeout enforced, by the process that started it."""

from __future__ import annotations

from pathlib import Path

import pytest
from lamina.client import Run
from runtime_helpers import FLOWS


@pytest.mark.parametrize(
    "how, says",
    [("segfault", "SIGSEGV"), ("exit", "exit status 3"), ("kill", "SIGKILL")],
)
def test_output_of_a_task_that_dies_without_warning_is_stored(
    run_flow, monkeypatch: pytest.MonkeyPatch, how: str, says: str
) -> None:
    monkeypatch.setenv("HOW", how)
    outcome = run_flow(FLOWS / "dying.py", max_workers=2)
    assert not outcome.ok and outcome.failed_step == "work"
    dead = Run(outcome.run_id)["work"]["1"]
    assert not dead.successful
    assert "died" in dead.error and says in dead.error
    assert "line before the end of task 1\nhalf a line without newline" in dead.stdout
    alive = Run(outcome.run_id)["work"]["0"]
    assert alive.successful and "line before the end of task 0" in alive.stdout


def test_a_step_that_swallows_its_timeout_is_killed(run_flow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOW", "swallow")
    outcome = run_flow(FLOWS / "dying.py", max_workers=2)
    assert not outcome.ok and outcome.failed_step == "work"
    task = Run(outcome.run_id)["work"]["1"]
    assert "StepTimeout" in task.error and "@timeout of 1 s" in task.error
    assert "line before the end of task 1" in task.stdout


def test_a_step_that_catches_its_timeout_and_returns_still_fails(
    run_flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOW", "swallow-and-return")
    outcome = run_flow(FLOWS / "dying.py", max_workers=2)
    assert not outcome.ok and outcome.failed_step == "work"
    task = Run(outcome.run_id)["work"]["1"]
    assert "StepTimeout" in task.error and "caught the timeout and carried on" in task.error


def test_process_mode_tasks_are_supervised_too(
    run_flow, lamina_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stacks = lamina_project / ".lamina" / "stacks"
    stacks.mkdir(parents=True)
    (stacks / "spawned.toml").write_text(
        '[data]\nadapter = "duckdb"\n[compute]\nadapter = "local"\nmode = "process"\n'
        '[orchestration]\nadapter = "local"\n[versioning]\nadapter = "local"\n'
    )
    monkeypatch.setenv("HOW", "segfault")
    outcome = run_flow(FLOWS / "dying.py", stack="spawned", max_workers=2)
    assert not outcome.ok
    dead = Run(outcome.run_id)["work"]["1"]
    assert "SIGSEGV" in dead.error
    assert "line before the end of task 1" in dead.stdout
