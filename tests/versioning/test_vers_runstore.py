"""The run store: task records, logs, parameters, manifests and pointers, from blobs alone."""

from __future__ import annotations

import pytest
from lamina.errors import NotFound, StoreError
from lamina.models import ArtifactRef, Metric, TaskRecord
from lamina.versioning import layout
from lamina.versioning.runstore import RunStore


@pytest.fixture
def runs(blobs):
    return RunStore(blobs)


def _record(
    run_id: str, artifacts: dict[str, ArtifactRef] | None = None, attempt: int = 0, **kw
) -> TaskRecord:
    return TaskRecord(
        run_id=run_id,
        flow_name="F",
        step=kw.pop("step", "train"),
        task_id=kw.pop("task_id", "1"),
        attempt=attempt,
        ok=kw.pop("ok", True),
        artifacts=artifacts or {},
        **kw,
    )


def test_task_records_round_trip_and_the_latest_attempt_wins(runs):
    assert runs.record("F", "r1", "train", "1", 0) is None
    assert runs.latest_record("F", "r1", "train", "1") is None
    first = _record("r1", ok=False, error="boom")
    key = runs.save_record(first)
    assert key == layout.task_record_key("F", "r1", "train", "1", 0)
    assert runs.record("F", "r1", "train", "1", 0) == first
    for attempt in (1, 2, 10):
        runs.save_record(_record("r1", attempt=attempt, metrics=[Metric(name="loss", value=attempt)]))
    latest = runs.latest_record("F", "r1", "train", "1")
    assert latest is not None and latest.attempt == 10 and latest.metrics[0].value == 10


def test_run_records_lists_every_task_s_latest_record_from_blobs_alone(runs):
    runs.save_record(_record("r1", step="start", task_id="1"))
    runs.save_record(_record("r1", step="train", task_id="2", attempt=0, ok=False))
    runs.save_record(_record("r1", step="train", task_id="2", attempt=1))
    runs.save_record(_record("r12", step="start", task_id="1"))  # another run sharing a prefix
    found = runs.records("F", "r1")
    assert [(r.step, r.task_id, r.attempt) for _, r in found] == [("start", "1", 0), ("train", "2", 1)]
    assert all(key == layout.task_record_key("F", "r1", r.step, r.task_id, r.attempt) for key, r in found)


def test_a_corrupt_record_is_an_error_naming_its_key(runs, blobs):
    key = layout.task_record_key("F", "r1", "train", "1", 0)
    blobs.put(key, data=b"{not json", overwrite=True)
    with pytest.raises(StoreError, match="record.json"):
        runs.record("F", "r1", "train", "1", 0)


def test_logs_and_params_are_stored_as_text(runs, tmp_path):
    key = runs.save_log("F", "r1", "train", "1", 0, "stdout", "epoch 1\n")
    assert key.endswith("/0/stdout.log") and runs.text(key) == "epoch 1\n"
    runs.save_log("F", "r1", "train", "1", 0, "stdout", "epoch 1\nepoch 2\n")  # progressive upload
    assert runs.text(key) == "epoch 1\nepoch 2\n"
    logfile = tmp_path / "stderr.txt"
    logfile.write_bytes(b"warn \xff\n")
    key = runs.save_log("F", "r1", "train", "1", 0, "stderr", path=str(logfile))
    assert runs.text(key) == "warn \ufffd\n"
    with pytest.raises(NotFound, match="nothing is stored"):
        runs.text("runs/F/r1/none.log")
    runs.save_params("F", "r1", {"alpha": 0.5, "name": "x"})
    assert runs.load_params("F", "r1") == {"alpha": 0.5, "name": "x"}


def test_manifests_pointers_and_run_ids(runs):
    assert runs.load_manifest("F", "r1") is None and runs.latest_run("F", "ana") is None
    runs.save_manifest("F", "r1", {"params": {"a": 1}, "user": "ana"})
    runs.save_record(_record("r2", step="start", task_id="0"))
    runs.set_latest_run("F", "ana", "r2")
    assert runs.load_manifest("F", "r1") == {"params": {"a": 1}, "user": "ana"}
    assert runs.latest_run("F", "ana") == "r2" and runs.latest_run("F", "bo") is None
    assert runs.run_ids("F") == ["r1", "r2"] and runs.run_exists("F", "r2") and not runs.run_exists("F", "r3")


def test_an_input_without_an_attempt_is_its_latest_record(runs):
    runs.save_record(_record("r1", step="train", task_id="3", attempt=0, ok=False))
    runs.save_record(_record("r1", step="train", task_id="3", attempt=2))
    assert runs.input_record("F", "r1", "train/3").attempt == 2
    assert runs.input_record("F", "r1", "train/3/0").ok is False
    with pytest.raises(StoreError, match="train/4 stored no completion record"):
        runs.input_record("F", "r1", "train/4")


def test_key_templates_name_the_keys_the_store_uses(runs):
    record = runs.key_template("record", "F", "train")
    assert record.format(run_id="r1", task_id="3.1", attempt=2) == runs.record_key("F", "r1", "train", "3.1", 2)
    log = runs.key_template("log", "F", "train")
    assert log.format(run_id="r1", task_id="0", attempt=0, stream="stderr") == runs.log_key(
        "F", "r1", "train", "0", 0, "stderr"
    )
    runs.save_params("F", "r9", {"x": 1})
    assert runs.blobs.get(runs.key_template("params", "F").format(run_id="r9"))
