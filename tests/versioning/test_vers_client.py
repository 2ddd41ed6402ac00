"""The client API, over stores populated the way the scheduler and tasks populate them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from lamina import client
from lamina.client import Flow, Run, Task, compare_runs, namespace
from lamina.errors import ArtifactNotFound, NotFound
from lamina.models import DataSnapshot, ForeachFrame, Metric, TaskRecord
from lamina.versioning.artifacts import ArtifactStore
from lamina.versioning.codepkg import store_code
from lamina.versioning.metadata import MetadataStore, new_run_id
from lamina.versioning.runstore import RunStore
from vers_helpers import make_blobs


@pytest.fixture
def stores(store, project, monkeypatch):
    monkeypatch.setenv("LAMINA_USER", "alice")
    meta = MetadataStore(f"sqlite:///{project}/.lamina/metadata.db")
    client.use_store(store, meta)
    monkeypatch.setattr(client, "_namespace", client._UNSET)
    yield store, meta
    client.use_store(None, None)
    meta.close()


def make_run(
    stores,
    *,
    flow: str = "TrainFlow",
    user: str = "alice",
    alpha: float = 0.5,
    tags: tuple[str, ...] = (),
    code_dir: Path | None = None,
    reach_end: bool = True,
    weights: np.ndarray | None = None,
) -> str:
    """What a scheduler records for start -> train (foreach x3) -> join -> end."""
    store, meta = stores
    run_id = new_run_id()
    code_key = store_code(store, code_dir) if code_dir else None
    meta.create_run(flow, run_id, {"alpha": alpha}, {"name": "local"}, code_key, user, list(tags), "3.11", {})

    def task(step, task_id, artifacts, inputs=(), frame=None, metrics=(), reads=(), out=""):
        meta.record_task_started(run_id, step, task_id, 0, list(inputs), [frame] if frame else [])
        record = TaskRecord(
            run_id=run_id,
            flow_name=flow,
            step=step,
            task_id=task_id,
            attempt=0,
            ok=True,
            artifacts={name: store.save(value, name) for name, value in artifacts.items()},
            input_paths=list(inputs),
            foreach_stack=[frame] if frame else [],
            foreach_count=3 if step == "start" else None,
            metrics=list(metrics),
            data_reads=list(reads),
            stdout_key=RunStore(store.blobs).save_log(flow, run_id, step, task_id, 0, "stdout", out) if out else None,
        )
        meta.record_task(record, RunStore(store.blobs).save_record(record))

    read = DataSnapshot(adapter="duckdb", kind="table", target="iris", handle={"sha256": "ab"}, rows=150)
    task("start", "1", {"alpha": alpha, "data": np.arange(100_000.0)}, reads=[read], out="loaded 150 rows\n")
    for i in range(3):
        losses = [Metric(name="loss", value=1.0 / (epoch + 1) + i, step=epoch) for epoch in range(3)]
        frame = ForeachFrame(step="start", index=i, count=3)
        task("train", str(2 + i), {"score": alpha * i}, ["start/1"], frame, losses, out=f"shard {i}\n")
    task("join", "5", {"best": alpha * 2}, ["train/2/0", "train/3/0", "train/4"])  # with or without attempt
    if reach_end:
        model = {"w": weights if weights is not None else np.ones(10)}
        task(
            "end",
            "6",
            {"model": model, "accuracy": 0.9 + alpha / 10},
            ["join/5"],
            metrics=[Metric(name="acc", value=alpha)],
        )
        meta.finish_run(run_id, ok=True)
    else:
        meta.finish_run(run_id, ok=False)
    return run_id


def test_the_design_s_example_path_reads_an_artifact(stores):
    make_run(stores, weights=np.full(10, 3.0))
    model = Flow("TrainFlow").latest_run["end"].task.data.model
    assert model["w"].tolist() == [3.0] * 10
    assert Flow("TrainFlow").latest_run.data.accuracy == pytest.approx(0.95)


def test_flows_list_runs_newest_first_with_filters(stores):
    t0 = dt.datetime.now(dt.UTC)
    first = make_run(stores, tags=("prod",))
    failed = make_run(stores, reach_end=False)
    flow = Flow("TrainFlow")
    assert [r.id for r in flow.runs()] == [failed, first]
    assert flow.latest_run.id == failed and flow.latest_successful_run.id == first
    assert [r.id for r in flow.runs(tag="prod")] == [first]
    assert [r.id for r in flow.runs(status="failed")] == [failed]
    assert [r.id for r in flow.runs(since=t0)] == [failed, first] and flow.runs(until=t0) == []
    assert [r.id for r in flow] == [failed, first]


def test_an_unknown_flow_lists_the_known_ones(stores):
    make_run(stores)
    with pytest.raises(NotFound, match="no flow named 'TrianFlow'.*TrainFlow"):
        Flow("TrianFlow")


def test_a_run_by_id_or_flow_pathspec_exposes_what_it_ran_with(stores, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "flow.py").write_text("# the flow\n")
    run_id = make_run(stores, code_dir=code)
    run = Run(run_id)
    assert Run(f"TrainFlow/{run_id}").id == run_id and run.pathspec == f"TrainFlow/{run_id}"
    assert run.params == {"alpha": 0.5} and run.stack == {"name": "local"} and run.user == "alice"
    assert (run.status, run.successful, run.finished) == ("succeeded", True, True)
    assert [s.name for s in run.steps] == ["start", "train", "join", "end"]
    assert "train" in run and "nope" not in run
    restored = run.code.restore(tmp_path / "restored")
    assert (restored / "flow.py").read_text() == "# the flow\n"
    assert run.data_reads == [client.DataRead("start", "1", run.data_reads[0].snapshot)]
    assert run.data_reads[0].snapshot.target == "iris"
    with pytest.raises(NotFound, match="belongs to flow 'TrainFlow', not 'Other'"):
        Run(f"Other/{run_id}")
    with pytest.raises(NotFound, match="no step 'tain'; its steps: start, train, join, end"):
        run["tain"]


def test_steps_and_tasks_walk_the_graph(stores):
    run = Run(make_run(stores))
    train = run["train"]
    assert len(train) == 3 and [t.index for t in train.tasks] == [0, 1, 2]
    with pytest.raises(NotFound, match="3 tasks, not one"):
        _ = train.task
    start = run["start"].task
    assert [t.pathspec for t in start.child_tasks] == [t.pathspec for t in train.tasks]
    assert [t.id for t in run["join"].task.parent_tasks] == ["2", "3", "4"]
    assert train["3"].data.score == 0.5
    assert Task(f"TrainFlow/{run.id}/train/4").data.score == 1.0
    assert Task(f"{run.id}/start/1").parent_tasks == []


def test_task_data_is_lazy_and_large_arrays_are_memory_mapped(stores):
    run = Run(make_run(stores))
    task = run["start"].task
    assert sorted(task.data) == ["alpha", "data"] and "data" in task.data
    assert task.artifacts["data"].serializer == "numpy"
    data = task.data.data
    assert isinstance(data, np.memmap), "a large array in a local store is mapped, not read"
    np.testing.assert_array_equal(data, np.arange(100_000.0))
    with pytest.raises(
        ArtifactNotFound, match=r"task TrainFlow/.*/start/1 has no artifact 'dta'; its artifacts: alpha, data"
    ):
        _ = task.data.dta


def test_task_logs_metrics_and_status(stores):
    run = Run(make_run(stores))
    task = run["train"]["3"]
    assert task.stdout == "shard 1\n" and task.stderr == ""
    assert task.successful and task.finished and task.attempt == 0 and task.error is None
    losses = task.metrics["loss"]
    assert [(p.step, p.value) for p in losses] == [(0, 2.0), (1, 1.5), (2, pytest.approx(1 + 1 / 3))]
    assert run["start"].task.data_reads[0].rows == 150
    assert set(run.metrics) == {"loss", "acc"} and len(run.metrics["loss"]) == 9


def test_run_data_is_the_end_task_and_a_run_without_end_says_where_to_look(stores):
    failed = Run(make_run(stores, reach_end=False))
    assert not failed.successful and failed.finished
    with pytest.raises(NotFound, match=r"has no 'end' step.*run\['join'\]\.task\.data"):
        _ = failed.data
    assert failed["join"].task.data.best == 1.0


def test_tags_added_through_the_client_persist(stores):
    run = Run(make_run(stores, tags=("a",)))
    run.add_tag("b")
    run.remove_tag("a")
    assert run.tags == ["b"] and Run(run.id).tags == ["b"]
    assert [r.id for r in Flow("TrainFlow").runs(tag="b")] == [run.id]


def test_by_default_you_see_only_your_own_runs(stores, monkeypatch):
    mine = make_run(stores, user="alice")
    bobs = make_run(stores, user="bob", tags=("team:vision",))
    assert namespace() == "user:alice"
    assert [r.id for r in Flow("TrainFlow").runs()] == [mine]
    with pytest.raises(NotFound, match="outside the current namespace 'user:alice'.*namespace\\(None\\)"):
        Run(bobs)
    namespace(None)
    assert [r.id for r in Flow("TrainFlow").runs()] == [bobs, mine] and Run(bobs).user == "bob"
    namespace("user:bob")
    assert [r.id for r in Flow("TrainFlow").runs()] == [bobs]
    namespace("team:vision")
    assert [r.id for r in Flow("TrainFlow").runs()] == [bobs]
    monkeypatch.setattr(client, "_namespace", client._UNSET)
    monkeypatch.setenv("LAMINA_USER", "bob")
    assert Flow("TrainFlow").latest_run.id == bobs


def test_compare_runs_reports_only_what_differs(stores):
    a = make_run(stores, alpha=0.5, weights=np.ones(10))
    b = make_run(stores, alpha=0.7, weights=np.ones(10))
    c = make_run(stores, alpha=0.5, weights=np.zeros(10))
    diff = compare_runs(a, b)
    assert diff["params"] == {"alpha": (0.5, 0.7)}
    assert diff["metrics"] == {"acc": (0.5, 0.7)}, "loss ends equal in both runs"
    assert diff["artifacts"] == {"accuracy": (pytest.approx(0.95), pytest.approx(0.97))}, (
        "equal models share one key"
    )
    model_diff = compare_runs(Run(a), Run(c))["artifacts"]
    assert set(model_diff) == {"model"} and all(
        k.startswith("artifacts/sha256/") for k in model_diff["model"]
    )
    assert compare_runs(a, a) == {"params": {}, "metrics": {}, "artifacts": {}}


def test_without_injected_stores_the_client_opens_the_project_stack(project, monkeypatch):
    blobs = make_blobs(project)
    fake_stack = SimpleNamespace(versioning=blobs, project_dir=project)
    monkeypatch.setattr(client, "_open_stack", lambda: fake_stack)
    monkeypatch.setattr(client, "_namespace", None)
    client.use_store(None, None)
    try:
        store = ArtifactStore(blobs, cache_dir=project / ".lamina" / "cache")
        meta = MetadataStore(blobs.metadata_url())
        run_id = make_run((store, meta))
        meta.close()
        assert Run(run_id).data.accuracy == pytest.approx(0.95)
        assert client._get_stores()[0].cache_dir == project / ".lamina" / "cache"
    finally:
        if client._stores is not None:
            client._stores[1].close()
        client.use_store(None, None)


def test_the_default_hook_resolves_the_real_local_stack(project, monkeypatch, tmp_path):
    (project / ".lamina").mkdir(exist_ok=True)
    monkeypatch.setenv("LAMINA_PROJECT_DIR", str(project))
    monkeypatch.setenv("LAMINA_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("LAMINA_STACK", raising=False)
    monkeypatch.setattr(client, "_namespace", None)
    stack = client._open_stack()
    assert Path(stack.project_dir) == project
    assert stack.versioning.metadata_url() == f"sqlite:///{project}/.lamina/metadata.db"
    client.use_store(None, None)
    try:
        meta = MetadataStore(stack.versioning.metadata_url())
        run_id = make_run((ArtifactStore(stack.versioning, cache_dir=tmp_path / "c"), meta))
        meta.close()
        assert Flow("TrainFlow").latest_run.id == run_id
        assert Run(run_id)["end"].task.data.model["w"].sum() == 10
    finally:
        if client._stores is not None:
            client._stores[1].close()
        client.use_store(None, None)


def test_use_store_takes_both_stores_or_neither(store):
    with pytest.raises(ValueError, match="both stores"):
        client.use_store(store, None)
