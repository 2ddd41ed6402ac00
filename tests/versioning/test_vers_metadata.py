"""The metadata store, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from lamina.errors import NotFound, StoreError
from lamina.models import ArtifactRef, DataSnapshot, ForeachFrame, Metric, TaskRecord
from lamina.versioning import schema
from lamina.versioning.metadata import MetadataStore, new_run_id
from sqlalchemy import text
from vers_helpers import run_python


@pytest.fixture
def meta(db_url):
    store = MetadataStore(db_url)
    yield store
    store.close()


def _run(meta: MetadataStore, flow: str = "TrainFlow", **kw) -> str:
    run_id = kw.pop("run_id", None) or new_run_id()
    meta.create_run(
        flow_name=flow,
        run_id=run_id,
        params=kw.pop("params", {"alpha": 0.5}),
        stack=kw.pop("stack", {"name": "local"}),
        code_key=kw.pop("code_key", "code/sha256/ab/cd.tar.gz"),
        user=kw.pop("user", "alice"),
        tags=kw.pop("tags", ["exp"]),
        python_version="3.11.7",
        packages={"numpy": "2.0"},
        **kw,
    )
    return run_id


def _record(
    run_id: str, step: str, task_id: str, attempt: int = 0, ok: bool = True, flow: str = "TrainFlow", **kw
):
    return TaskRecord(
        run_id=run_id,
        flow_name=flow,
        step=step,
        task_id=task_id,
        attempt=attempt,
        ok=ok,
        artifacts=kw.pop(
            "artifacts",
            {
                "x": ArtifactRef(
                    key=f"artifacts/sha256/00/{step}{task_id}",
                    serializer="pickle",
                    size=9,
                    type="builtins.int",
                )
            },
        ),
        metrics=kw.pop("metrics", [Metric(name="loss", value=0.5, step=1)]),
        data_reads=kw.pop(
            "data_reads",
            [DataSnapshot(adapter="duckdb", kind="table", target="iris", handle={"sha256": "ab"}, rows=150)],
        ),
        **kw,
    )


def test_run_ids_are_unique_and_sort_by_start_time():
    ids = [new_run_id() for _ in range(200)]
    assert len(set(ids)) == 200 and ids == sorted(ids)
    assert all("/" not in i and not i.startswith(".") for i in ids)


def test_a_run_records_what_it_ran_with(meta):
    run_id = _run(
        meta, stack={"versioning": {"adapter": "s3", "secret_access_key": "AKIA..."}}, origin_run_id="old"
    )
    run = meta.get_run(run_id)
    assert (run.flow, run.status, run.user, run.finished_at) == ("TrainFlow", "running", "alice", None)
    assert run.params == {"alpha": 0.5} and run.tags == ["exp"] and run.origin_run_id == "old"
    assert run.stack == {"versioning": {"adapter": "s3", "secret_access_key": "***"}}, (
        "secrets never reach the database"
    )
    assert run.code_key == "code/sha256/ab/cd.tar.gz" and run.python_version == "3.11.7"
    assert run.packages == {"numpy": "2.0"}
    assert run.started_at.tzinfo is not None
    meta.finish_run(run_id, ok=True)
    run = meta.get_run(run_id)
    assert run.status == "succeeded" and run.finished_at >= run.started_at


def test_run_ids_are_unique_across_flows(meta):
    run_id = _run(meta, "A")
    with pytest.raises(StoreError, match="already exists"):
        _run(meta, "B", run_id=run_id)


def test_a_task_s_record_lands_in_one_piece_and_re_recording_is_idempotent(meta):
    run_id = _run(meta)
    meta.record_task_started(run_id, "start", "1", 0, [], [])
    assert meta.task(run_id, "start", "1").status == "running"
    record = _record(run_id, "start", "1", stdout_key="k/stdout.log", foreach_count=3)
    for _ in range(2):
        meta.record_task(record, "runs/TrainFlow/x/start/1/0/record.json")
    task = meta.task(run_id, "start", "1")
    assert task.status == "succeeded" and task.record_key.endswith("record.json") and task.foreach_count == 3
    assert task.stdout_key == "k/stdout.log" and task.stderr_key is None
    assert meta.artifacts([task.pk])[task.pk] == record.artifacts
    assert meta.metrics([task.pk])[task.pk] == record.metrics
    assert meta.data_reads([task.pk])[task.pk] == record.data_reads


def test_recording_needs_the_run_to_exist(meta):
    with pytest.raises(NotFound, match="create_run"):
        meta.record_task(_record("nope", "start", "1"), "k")
    with pytest.raises(NotFound):
        meta.finish_run("nope", ok=False)


def test_task_records_give_each_task_s_latest_successful_attempt_for_resume(meta):
    run_id = _run(meta)
    frame = ForeachFrame(step="start", index=1, count=2)
    meta.record_task(_record(run_id, "start", "1", foreach_count=2), "k1")
    meta.record_task(_record(run_id, "train", "2", attempt=0, ok=False, error="OOM", traceback="tb"), "k2")
    meta.record_task(
        _record(run_id, "train", "2", attempt=1, input_paths=["start/1"], foreach_stack=[frame]), "k3"
    )
    meta.record_task(_record(run_id, "train", "3", attempt=0, ok=False, error="boom"), "k4")
    records = {(r.step, r.task_id): r for r in meta.task_records(run_id)}
    assert set(records) == {("start", "1"), ("train", "2")}, "failed tasks are re-run on resume"
    train = records[("train", "2")]
    assert train.attempt == 1 and train.input_paths == ["start/1"] and train.foreach_stack == [frame]
    assert train.artifacts["x"].key.endswith("train2") and train.flow_name == "TrainFlow"
    assert records[("start", "1")].foreach_count == 2
    failed = meta.task(run_id, "train", "3")
    assert (failed.status, failed.error) == ("failed", "boom")
    assert [t.attempt for t in meta.tasks(run_id, "train", all_attempts=True) if t.task_id == "2"] == [0, 1]
    assert meta.task(run_id, "train", "2", attempt=0).traceback == "tb"
    assert meta.steps(run_id) == ["start", "train"]


def test_runs_can_be_found_by_flow_tag_status_user_and_time(meta):
    t0 = dt.datetime.now(dt.UTC)
    a = _run(meta, "A", user="alice", tags=["prod", "v1"])
    b = _run(meta, "A", user="bob", tags=["v1"])
    c = _run(meta, "B", user="alice", tags=[])
    meta.finish_run(a, ok=True)
    meta.finish_run(b, ok=False)
    ids = lambda runs: [r.id for r in runs]  # noqa: E731
    assert ids(meta.runs("A")) == [b, a], "newest first"
    assert ids(meta.runs(tags=["v1"])) == [b, a] and ids(meta.runs(tags=["v1", "prod"])) == [a]
    assert ids(meta.runs(status="failed")) == [b] and ids(meta.runs(status="running")) == [c]
    assert ids(meta.runs(user="alice")) == [c, a]
    assert ids(meta.runs(since=t0)) == [c, b, a] and meta.runs(until=t0) == []
    assert ids(meta.runs(limit=1)) == [c]
    assert meta.latest_run_id("A") == b and meta.latest_run_id("A", status="succeeded") == a
    assert meta.latest_run_id("Nope") is None
    assert meta.flows() == ["A", "B"]


def test_runs_page_in_sql_and_count_with_the_same_filters(meta):
    made = [_run(meta, "A", user="alice" if i % 2 else "bob", tags=["t"] if i % 3 == 0 else []) for i in range(7)]
    newest_first = made[::-1]
    ids = lambda runs: [r.id for r in runs]  # noqa: E731
    assert ids(meta.runs("A", limit=3)) == newest_first[:3]
    assert ids(meta.runs("A", limit=3, offset=3)) == newest_first[3:6]
    assert ids(meta.runs("A", limit=3, offset=6)) == newest_first[6:]
    assert meta.runs("A", limit=3, offset=9) == []
    assert meta.count_runs() == 7 and meta.count_runs("B") == 0
    assert meta.count_runs(user="alice") == 3 and meta.count_runs(tags=["t"]) == 3
    assert meta.count_runs(status="running", tags=["t"], user="bob") == len(meta.runs(status="running", tags=["t"], user="bob"))


def test_tags_can_be_added_and_removed(meta):
    run_id = _run(meta, tags=["a"])
    meta.add_tag(run_id, "b")
    meta.add_tag(run_id, "b")
    meta.remove_tag(run_id, "a")
    meta.remove_tag(run_id, "never")
    assert meta.get_run(run_id).tags == ["b"]
    with pytest.raises(NotFound):
        meta.add_tag("nope", "x")


def test_unknown_runs_and_tasks_are_not_found_with_the_store_named(meta):
    with pytest.raises(NotFound, match="run 'nope' is not in the metadata store"):
        meta.get_run("nope")
    run_id = _run(meta)
    with pytest.raises(NotFound, match=f"{run_id}/start/1"):
        meta.task(run_id, "start", "1")


def test_migrations_run_once_and_reopening_is_idempotent(db_url):
    first = MetadataStore(db_url)
    run_id = _run(first)
    assert first.revision() == schema.HEAD
    first.close()
    second = MetadataStore(db_url)
    assert second.revision() == schema.HEAD and second.get_run(run_id).id == run_id
    with second.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    second.close()


def test_reopening_a_current_database_does_not_import_alembic(tmp_path):
    url = f"sqlite:///{tmp_path}/m.db"
    MetadataStore(url).close()
    result = run_python(
        f"""
        import json, sys
        from lamina.versioning.metadata import MetadataStore
        MetadataStore({url!r}).close()
        print(json.dumps({{"alembic": "alembic" in sys.modules}}))
        """
    )
    assert result == {"alembic": False}


def test_the_migrated_schema_matches_the_table_definitions(meta):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with meta.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    assert diff == [], "schema.py and migrations/versions/ disagree: add a migration"


def test_migrations_downgrade_and_upgrade_again(meta, db_url):
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(schema.__file__).replace("schema.py", "migrations"))
    with meta.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert meta.revision() is None
    meta.close()
    again = MetadataStore(db_url)
    assert again.revision() == schema.HEAD and again.flows() == []
    again.close()


def test_the_sqlite_database_uses_wal_under_the_given_directory(tmp_path):
    store = MetadataStore(f"sqlite:///{tmp_path}/deep/dir/metadata.db")
    assert (tmp_path / "deep" / "dir" / "metadata.db").exists()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


TASKS_PER_RUN = 25


def _write_one_run(
    url: str, flow: str, start: threading.Barrier | multiprocessing.synchronize.Barrier
) -> str:
    """A scheduler's whole sequence of writes for one run."""
    store = MetadataStore(url)  # opening a fresh database races on the migration too
    start.wait()
    run_id = _run(store, flow)
    for i in range(TASKS_PER_RUN):
        store.record_task_started(run_id, "train", str(i), 0, ["start/1"], [])
        store.record_task(
            _record(run_id, "train", str(i), flow=flow), f"runs/{flow}/{run_id}/train/{i}/0/record.json"
        )
        store.add_tag(run_id, f"t{i % 3}")
    store.finish_run(run_id, ok=True)
    store.close()
    return run_id


def _process_writer(url: str, flow: str, start, results) -> None:
    results.put(_write_one_run(url, flow, start))


@pytest.mark.parametrize("how", ["threads", "processes"])
def test_two_runs_of_two_flows_writing_at_once_both_end_complete(db_url, how):
    if how == "threads":
        start = threading.Barrier(2, timeout=120)  # a writer that fails breaks it instead of hanging
        with ThreadPoolExecutor(2) as pool:
            ids = list(pool.map(lambda flow: _write_one_run(db_url, flow, start), ["A", "B"]))
    else:
        ctx = multiprocessing.get_context("fork")
        start, results = ctx.Barrier(2, timeout=120), ctx.Queue()
        procs = [ctx.Process(target=_process_writer, args=(db_url, f, start, results)) for f in ("A", "B")]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=180)
            assert p.exitcode == 0, "a writer process failed; its traceback is in the captured stderr"
        ids = [results.get(timeout=10) for _ in procs]
    assert len(ids) == 2
    meta = MetadataStore(db_url)
    for run_id in ids:
        run = meta.get_run(run_id)
        assert run.status == "succeeded" and run.tags == ["exp", "t0", "t1", "t2"]
        tasks = meta.tasks(run_id)
        assert len(tasks) == TASKS_PER_RUN and all(t.status == "succeeded" for t in tasks)
        pks = [t.pk for t in tasks]
        assert all(len(v) == 1 for v in meta.artifacts(pks).values())
        assert all(len(v) == 1 for v in meta.metrics(pks).values())
        assert all(len(v) == 1 for v in meta.data_reads(pks).values())
    assert sorted(r.flow for r in meta.runs()) == ["A", "B"]
    meta.close()


def test_an_unreachable_database_is_a_clear_error():
    with pytest.raises(
        StoreError, match=r"(?s)cannot open the metadata store postgresql\+psycopg:.*metadata_url"
    ):
        MetadataStore("postgresql://nobody@127.0.0.1:1/none")


def test_an_in_memory_sqlite_store_works_across_threads():
    store = MetadataStore("sqlite://")
    run_id = _run(store)
    seen: list[str] = []
    thread = threading.Thread(target=lambda: seen.append(store.get_run(run_id).id))
    thread.start()
    thread.join()
    assert seen == [run_id]
    store.close()


def _open_and_report(url: str, start: threading.Barrier) -> str | None:
    start.wait()
    store = MetadataStore(url)
    try:
        return store.revision()
    finally:
        store.close()


def test_many_writers_opening_a_fresh_sqlite_database_at_once_all_succeed(tmp_path):
    """Opening switches the file to WAL, which takes a lock without the busy timeout."""
    for attempt in range(5):
        url = f"sqlite:///{tmp_path}/fresh{attempt}/metadata.db"
        start = threading.Barrier(8, timeout=60)
        with ThreadPoolExecutor(8) as pool:
            revisions = list(pool.map(_open_and_report, [url] * 8, [start] * 8))
        assert revisions == [schema.HEAD] * 8


# -- run statuses: heartbeats, interrupted and killed runs --------------------------------------


def test_a_run_whose_driver_stopped_beating_is_shown_killed_and_filtered_as_such(meta) -> None:
    import datetime as dt

    from lamina.versioning import schema
    from lamina.versioning.metadata import HEARTBEAT_STALE
    from sqlalchemy import update

    began = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    alive = _run(meta, host="laptop", pid=123, started_at=began)
    dead = _run(meta, host="laptop", pid=456)
    meta.record_task_started(dead, "start", "0", 0, [], [])
    deployed = _run(meta)  # no driver of ours: its status is whatever was recorded
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=HEARTBEAT_STALE + 60)
    with meta.engine.begin() as conn:
        conn.execute(update(schema.runs).where(schema.runs.c.id == dead).values(heartbeat_at=old))
    meta.heartbeat(alive)
    info = meta.get_run(alive)
    assert (info.status, info.started_at, info.host, info.pid) == ("running", began, "laptop", 123)
    assert meta.get_run(dead).status == "killed"
    assert [t.status for t in meta.tasks(dead)] == ["killed"]  # not running for ever
    assert meta.get_run(deployed).status == "running"
    assert {r.id for r in meta.runs(status="killed")} == {dead}
    assert {r.id for r in meta.runs(status="running")} == {alive, deployed}


def test_an_interrupted_run_takes_its_running_tasks_with_it(meta) -> None:
    run_id = _run(meta, host="laptop", pid=1)
    meta.record_task_started(run_id, "start", "0", 0, [], [])
    meta.record_task(_record(run_id, "start", "0"), "k0")
    meta.record_task_started(run_id, "work", "0", 0, ["start/0"], [])
    meta.finish_run(run_id, status="interrupted")
    assert meta.get_run(run_id).status == "interrupted"
    assert {t.step: t.status for t in meta.tasks(run_id)} == {"start": "succeeded", "work": "interrupted"}
    assert meta.runs(status="interrupted")[0].id == run_id
    with pytest.raises(ValueError, match="cannot end as 'running'"):
        meta.finish_run(run_id, status="running")
