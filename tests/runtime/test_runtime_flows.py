"""Flows run on the local stack, and everything they assign comes back through the client."""

from __future__ import annotations

from pathlib import Path

import pytest
from lamina import Flow, Run
from lamina.errors import ParameterError
from runtime_helpers import FLOWS, read_counts


def test_quickstart_example_runs_and_its_results_are_found_again(run_flow) -> None:
    example = Path(__file__).parents[2] / "examples" / "quickstart" / "flow.py"
    outcome = run_flow(example, {"count": 3})
    assert outcome.ok, outcome.message
    run = Flow("QuickstartFlow").latest_run
    assert run.id == outcome.run_id and run.successful
    assert run.data.squares == [1, 4, 9]
    assert run.data.messages == ["Hello, branch A", "Hello, branch B"]
    assert run.params == {"greeting": "Hello", "count": 3}
    assert [t.id for t in run["square"].tasks] == ["0", "1", "2"]
    assert run["square"].tasks[2].data.result == 9
    assert run["square"].tasks[1].metrics["square"][0].value == 4.0


def test_parameters_defaults_types_and_current(run_flow) -> None:
    outcome = run_flow(FLOWS / "linear_params.py", {"n": 4, "alpha": 2, "flag": "yes", "config": '{"k": 2}'})
    assert outcome.ok, outcome.message
    run = Run(outcome.run_id)
    assert run["start"].task.data.seen == {
        "alpha": 2.0,
        "n": 4,
        "name": "x",
        "flag": True,
        "config": {"k": 2},
    }
    ctx = run["start"].task.data.ctx
    assert ctx == {"run_id": outcome.run_id, "step": "start", "task": "0", "stack": "local"}
    assert run.data.total == 9
    assert "hello from start" in run["start"].task.stdout


def test_required_and_mistyped_parameters_are_refused(run_flow) -> None:
    with pytest.raises(ParameterError, match="--n"):
        run_flow(FLOWS / "linear_params.py", {})
    with pytest.raises(ParameterError, match="n.*int"):
        run_flow(FLOWS / "linear_params.py", {"n": "four"})
    with pytest.raises(ParameterError, match="no parameter 'bogus'"):
        run_flow(FLOWS / "linear_params.py", {"n": 1, "bogus": 2})


def test_static_branches_join_by_step_name_and_merge_equal_artifacts(run_flow) -> None:
    outcome = run_flow(FLOWS / "branches.py")
    assert outcome.ok, outcome.message
    run = Run(outcome.run_id)
    assert run["join"].task.data.sides == ("L", "R")
    assert run.data.shared == "same"
    assert "side" not in run.data


def test_nested_foreach_joins_in_order_with_path_task_ids(run_flow) -> None:
    outcome = run_flow(FLOWS / "nested.py")
    assert outcome.ok, outcome.message
    run = Run(outcome.run_id)
    assert run["join_outer"].task.data.all == ["a1", "a2", "a3", "b1", "b2", "b3"]
    assert sorted(t.id for t in run["leaf"].tasks) == ["0.0", "0.1", "0.2", "1.0", "1.1", "1.2"]
    assert sorted(t.data.letter for t in run["join_inner"].tasks) == ["a", "b"]


def test_retry_catch_and_timeout(run_flow, counts: Path) -> None:
    outcome = run_flow(FLOWS / "decorated.py")
    assert outcome.ok, outcome.message
    assert read_counts(counts)["start"] == 2  # failed once, retried once
    run = Run(outcome.run_id)
    assert run["risky"].task.data.problem == "ValueError: always broken"


def test_timeout_fails_the_step_with_a_clear_error(
    run_flow, counts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAKE_SLOW", "1")
    monkeypatch.setenv("TIMEOUT_S", "1")
    outcome = run_flow(FLOWS / "decorated.py")
    assert not outcome.ok
    assert outcome.failed_step == "slow"
    task = Run(outcome.run_id)["slow"].task
    assert "ran longer than its @timeout of 1 s" in task.error


def test_data_layer_reads_and_writes_are_recorded_with_their_versions(run_flow) -> None:
    outcome = run_flow(FLOWS / "data_io.py")
    assert outcome.ok, outcome.message
    run = Run(outcome.run_id)
    assert run.data.top == [2, 3]
    assert run.data.table.column("score").to_pylist() == [0.5, 0.7, 0.9]
    reads = run.data_reads
    kinds = {(r.step, r.snapshot.kind, r.snapshot.target.split()[0]) for r in reads}
    assert ("end", "table", "scores") in kinds and ("start", "write", "scores") in kinds
    versions = {r.snapshot.handle["tables"]["scores"] for r in reads if r.snapshot.kind in ("table", "write")}
    assert len(versions) == 1  # the read saw exactly the version the write produced


def test_tasks_are_isolated_from_each_others_module_state(run_flow) -> None:
    outcome = run_flow(FLOWS / "isolation.py", max_workers=1)
    assert outcome.ok, outcome.message
    assert Run(outcome.run_id)["join"].task.data.seen == [None, None, None, None]


def test_a_task_that_crashes_the_interpreter_fails_the_run_cleanly(run_flow) -> None:
    outcome = run_flow(FLOWS / "isolation.py", {"crash": True}, max_workers=1)
    assert not outcome.ok
    assert outcome.failed_step == "work"
    run = Run(outcome.run_id)
    assert run.status == "failed"
    crashed = run["work"]["2"]
    assert "died" in crashed.error and "signal 11" in crashed.error
    survivors = [t.data.seen_before for t in run["work"].tasks if t.successful]
    assert survivors[:2] == [None, None] and set(survivors) == {None}  # each task saw fresh module state


def test_process_per_task_mode_gives_the_same_results(run_flow, lamina_project: Path) -> None:
    stacks = lamina_project / ".lamina" / "stacks"
    stacks.mkdir(parents=True)
    (stacks / "spawned.toml").write_text(
        '[data]\nadapter = "duckdb"\n[compute]\nadapter = "local"\nmode = "process"\n'
        '[orchestration]\nadapter = "local"\n[versioning]\nadapter = "local"\n'
    )
    outcome = run_flow(FLOWS / "nested.py", stack="spawned")
    assert outcome.ok, outcome.message
    assert Run(outcome.run_id)["join_outer"].task.data.all == ["a1", "a2", "a3", "b1", "b2", "b3"]
