"""The metadata store: runs, tasks, artifacts, data reads, metrics and tags in SQL.

``MetadataStore(url)`` works on SQLite (the ``local`` stack's ``.lamina/metadata.db``) and on
PostgreSQL (a team's shared database; choose a schema with
``?options=-csearch_path%3Dlamina``). Opening a store brings the schema to the newest Alembic
revision; when it already is there, that costs one query and Alembic is never imported.

Concurrency: every write is one short transaction. On SQLite writers take the lock up front
(``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for it, in WAL mode so readers never block;
on PostgreSQL rows that several runs may insert (a flow, a step) are ``ON CONFLICT DO NOTHING``.
Two runs of two flows writing at once therefore both end complete.

What the scheduler calls, in order: :func:`new_run_id`, :meth:`MetadataStore.create_run`,
then per task :meth:`~MetadataStore.record_task_started` and :meth:`~MetadataStore.record_task`,
and finally :meth:`~MetadataStore.finish_run`. ``resume`` reads :meth:`~MetadataStore.task_records`.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DatabaseError, DBAPIError, IntegrityError
from sqlalchemy.pool import StaticPool

from ..errors import NotFound, StoreError
from ..models import (
    RUN_STATUSES,
    ArtifactRef,
    DataSnapshot,
    ForeachFrame,
    Metric,
    RunStatusName,
    TaskRecord,
    utcnow,
)
from ..redaction import redact_mapping
from . import schema as s
from .layout import new_run_id  # noqa: F401 - re-exported, part of this module's API

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_PG_LOCK = 0x4C414D494E41  # "LAMINA": serializes concurrent migrations on PostgreSQL

RunStatus = RunStatusName  # the one definition: lamina.models.RUN_STATUSES

HEARTBEAT_INTERVAL = float(os.environ.get("LAMINA_HEARTBEAT_INTERVAL", "5"))
"""Seconds between a driver's heartbeats."""
HEARTBEAT_STALE = 30.0
"""A ``running`` run whose driver's heartbeat is older than this is shown ``killed``: the driver
died without recording the end (SIGKILL, power loss). Runs without a heartbeat (deployed runs,
whose status comes from their orchestrator or ``lamina sync``) are shown as recorded. Both can
be set by environment variable (tests shorten them): ``LAMINA_HEARTBEAT_INTERVAL``,
``LAMINA_HEARTBEAT_STALE``."""


def _stale_before() -> dt.datetime:
    seconds = float(os.environ.get("LAMINA_HEARTBEAT_STALE", HEARTBEAT_STALE))
    return utcnow() - dt.timedelta(seconds=seconds)


def redact(value: Any) -> Any:
    """``value`` with every entry whose key is a secret name replaced by ``"***"`` and secrets in
    string values (a URL's password...) masked: the one rule of :mod:`lamina.redaction`."""
    return redact_mapping(value)


class RunInfo(BaseModel):
    """One row of ``runs``, with its tags."""

    model_config = ConfigDict(frozen=True)

    id: str
    flow: str
    status: RunStatus
    user: str
    tags: list[str]
    params: dict[str, Any]
    stack: dict[str, Any]
    code_key: str | None
    python_version: str
    packages: dict[str, str]
    origin_run_id: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    heartbeat_at: dt.datetime | None = None
    host: str | None = None
    pid: int | None = None


class TaskInfo(BaseModel):
    """One attempt of one task (a row of ``tasks``); ``pk`` finds its artifacts and metrics."""

    model_config = ConfigDict(frozen=True)

    pk: int
    run_id: str
    step: str
    task_id: str
    attempt: int
    status: str
    input_paths: list[str]
    foreach_stack: list[ForeachFrame] = Field(default_factory=list)
    foreach_count: int | None
    record_key: str | None
    stdout_key: str | None
    stderr_key: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    error: str | None
    traceback: str | None


class MetadataStore:
    """Runs' metadata in a SQLAlchemy database; see the module docstring.

    :param url: a SQLAlchemy URL without a password (drivers find it: ``PGPASSWORD``, ``.pgpass``).
    :param busy_timeout: seconds a SQLite writer waits for the lock before failing.
    """

    def __init__(self, url: str, *, busy_timeout: float = 30.0) -> None:
        self.url = _with_installed_driver(make_url(url))
        self.engine = self._make_engine(busy_timeout)
        try:
            self._migrate()
        except DatabaseError as e:
            self.engine.dispose()
            if self._is_damaged(e):
                raise StoreError(self._damaged_message(e)) from None
            raise StoreError(
                f"cannot open {self._where()}: {e.orig}. Check `metadata_url` in the stack's [versioning] "
                "table, that the server runs and the credentials (PGPASSWORD, ~/.pgpass) are set"
            ) from None
        except ImportError as e:
            self.engine.dispose()
            raise StoreError(
                f"cannot open {self._where()}: {e}. Check `metadata_url` in the stack's [versioning] "
                "table, that the server runs and the credentials (PGPASSWORD, ~/.pgpass) are set"
            ) from e

    # ------------------------------------------------------------------------ engine, schema

    def _make_engine(self, busy_timeout: float) -> Engine:
        if self.url.get_backend_name() != "sqlite":
            return create_engine(self.url, pool_pre_ping=True)
        database = self.url.database or ""
        memory = database in ("", ":memory:")
        if not memory and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        connect_args: dict[str, Any] = {"timeout": busy_timeout}
        if memory:  # one shared connection, or every checkout would see a different empty database
            connect_args["check_same_thread"] = False
        engine = create_engine(
            self.url, connect_args=connect_args, **({"poolclass": StaticPool} if memory else {})
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _begin)
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            if not memory:
                _enable_wal(cur, busy_timeout)
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # Writers lock at BEGIN, so they queue on busy_timeout instead of failing mid-way
            immediate = conn.get_execution_options().get("lamina_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(lamina_write=True)
                with conn.begin():
                    yield conn
        except DatabaseError as e:
            if self._is_damaged(e):
                raise StoreError(self._damaged_message(e)) from None
            raise

    def _is_damaged(self, e: DatabaseError) -> bool:
        """A SQLite file that is not (or no longer) a database, as opposed to a busy or missing one."""
        text_ = str(e.orig).lower()
        return self.url.get_backend_name() == "sqlite" and (
            "not a database" in text_ or "malformed" in text_ or "file is encrypted" in text_
        )

    def _damaged_message(self, e: DatabaseError) -> str:
        path = Path(self.url.database or "")
        flows = sorted(p.name for p in (path.parent / "blobs" / "runs").glob("*") if p.is_dir())
        each = (
            " ".join(f"`lamina sync {f}`" for f in flows[:5]) + (" ..." if len(flows) > 5 else "")
            if flows
            else "`lamina sync FLOW` for each flow"
        )
        return (
            f"{path} is not a Lamina metadata database (SQLite: {e.orig}): it is damaged or was "
            "overwritten. The runs themselves are safe in the blob store; this file only indexes them. "
            f"To rebuild it, move it aside (`mv {path} {path}.damaged`, with any -wal/-shm beside it), "
            f"then run {each}."
        )

    def revision(self) -> str | None:
        """The schema revision of the database, or ``None`` before the first migration."""
        with self.engine.connect() as conn:
            return _revision(conn)

    def _migrate(self) -> None:
        if self.revision() == s.HEAD:
            return
        from alembic import command
        from alembic.config import Config

        with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
            if _revision(conn) == s.HEAD:  # another process migrated while we waited
                return
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------------- writes

    def create_run(
        self,
        flow_name: str,
        run_id: str,
        params: dict[str, Any],
        stack: dict[str, Any],
        code_key: str | None,
        user: str,
        tags: Sequence[str],
        python_version: str,
        packages: dict[str, str],
        origin_run_id: str | None = None,
        *,
        started_at: dt.datetime | None = None,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        """Record a new run as ``running``. Secrets-looking keys of ``stack`` are redacted.

        :param started_at: when the run really started (default now).
        :param host: with ``pid``, the driver that walks the run and keeps its heartbeat
            (:meth:`heartbeat`); a run created with them is shown ``killed`` once the heartbeat
            is :data:`HEARTBEAT_STALE`.
        :raises StoreError: ``run_id`` already exists (run ids are unique across flows).
        """
        now = utcnow()
        started_at = started_at or now
        try:
            with self._tx() as conn:
                _insert_ignore(conn, s.flows, {"name": flow_name, "created_at": now}, ["name"])
                conn.execute(
                    insert(s.runs).values(
                        id=run_id,
                        flow=flow_name,
                        status="running",
                        username=user,
                        params=_jsonable(params),
                        stack=_jsonable(redact(stack)),
                        code_key=code_key,
                        python_version=python_version,
                        packages=_jsonable(packages),
                        origin_run_id=origin_run_id,
                        started_at=started_at,
                        heartbeat_at=now if host else None,
                        host=host,
                        pid=pid,
                    )
                )
                if tags:
                    conn.execute(insert(s.tags), [{"run_id": run_id, "tag": t} for t in sorted(set(tags))])
        except IntegrityError as e:
            raise StoreError(f"run id {run_id!r} already exists in {self._where()}; use new_run_id()") from e

    def record_task_started(
        self,
        run_id: str,
        step: str,
        task_id: str,
        attempt: int,
        input_paths: Sequence[str],
        foreach_stack: Sequence[ForeachFrame | dict[str, Any]],
    ) -> None:
        """Record that an attempt of a task started (status ``running``). Idempotent.

        :param input_paths: the parents, ``step/task_id`` (optionally ``/attempt``).
        :param foreach_stack: ``ForeachFrame`` models or their ``model_dump()``.
        """
        with self._tx() as conn:
            self._started_in(conn, run_id, step, task_id, attempt, input_paths, foreach_stack)

    def _started_in(
        self,
        conn: Connection,
        run_id: str,
        step: str,
        task_id: str,
        attempt: int,
        input_paths: Sequence[str],
        foreach_stack: Sequence[ForeachFrame | dict[str, Any]],
    ) -> None:
        values = {
            "status": "running",
            "input_paths": list(input_paths),
            "foreach_stack": _jsonable(list(foreach_stack)),
            "started_at": utcnow(),
        }
        self._require_run(conn, run_id)
        _insert_ignore(
            conn, s.steps, {"run_id": run_id, "name": step, "created_at": utcnow()}, ["run_id", "name"]
        )
        _upsert_task(conn, run_id, step, task_id, attempt, values)

    def record_task(self, record: TaskRecord, record_key: str) -> None:
        """Record a finished attempt from its completion record, in one transaction.

        Sets the task's status, keys and error, and replaces its artifacts, data reads and
        metrics, so recording the same record twice (``lamina sync``) changes nothing.

        :raises NotFound: the run was never created in this store.
        """
        with self._tx() as conn:
            self._task_in(conn, record, record_key)

    def record_batch(self, ops: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
        """Apply many ``("started", args)`` / ``("finished", (record, key))`` writes in one
        transaction: the scheduler's writer thread batches them so that a wide foreach pays for
        one commit per batch rather than two per task."""
        if not ops:
            return
        with self._tx() as conn:
            for kind, args in ops:
                if kind == "started":
                    self._started_in(conn, *args)
                elif kind == "finished":
                    self._task_in(conn, *args)
                else:
                    raise ValueError(f"unknown metadata operation {kind!r}")

    def _task_in(self, conn: Connection, record: TaskRecord, record_key: str) -> None:
        r = record
        values = {
            "status": "succeeded" if r.ok else "failed",
            "input_paths": list(r.input_paths),
            "foreach_stack": _jsonable(r.foreach_stack),
            "foreach_count": r.foreach_count,
            "record_key": record_key,
            "stdout_key": r.stdout_key,
            "stderr_key": r.stderr_key,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "error": r.error,
            "traceback": r.traceback,
        }
        self._require_run(conn, r.run_id)
        _insert_ignore(
            conn,
            s.steps,
            {"run_id": r.run_id, "name": r.step, "created_at": r.started_at},
            ["run_id", "name"],
        )
        pk = _upsert_task(conn, r.run_id, r.step, r.task_id, r.attempt, values)
        for table in (s.artifacts, s.data_reads, s.metrics):
            conn.execute(delete(table).where(table.c.task == pk))
        if r.artifacts:
            conn.execute(
                insert(s.artifacts),
                [{"task": pk, "name": n, **a.model_dump(mode="json")} for n, a in r.artifacts.items()],
            )
        if r.data_reads:
            conn.execute(insert(s.data_reads), [{"task": pk, **_snapshot_row(d)} for d in r.data_reads])
        if r.metrics:
            conn.execute(insert(s.metrics), [{"task": pk, **m.model_dump()} for m in r.metrics])

    def heartbeat(self, run_id: str) -> None:
        """The driver of a running run is alive (called every :data:`HEARTBEAT_INTERVAL`)."""
        with self._tx() as conn:
            conn.execute(
                update(s.runs)
                .where(s.runs.c.id == run_id, s.runs.c.status == "running")
                .values(heartbeat_at=utcnow())
            )

    def finish_run(
        self,
        run_id: str,
        ok: bool | None = None,
        *,
        status: RunStatusName | None = None,
        finished_at: dt.datetime | None = None,
    ) -> None:
        """Mark a run as ended: ``status`` (one of ``RUN_STATUSES`` but ``running``), or
        ``succeeded``/``failed`` by ``ok``. Attempts still ``running`` in a run that did not
        succeed take the run's status: their process is gone, so no view shows them as running.

        :param finished_at: when it really ended (``lamina sync`` passes the latest record's
            time); default now.
        :raises NotFound: no such run.
        """
        final: RunStatusName = status or ("succeeded" if ok else "failed")
        if final not in RUN_STATUSES or final == "running":
            raise ValueError(f"a run cannot end as {final!r}; one of {', '.join(RUN_STATUSES[1:])}")
        with self._tx() as conn:
            done = conn.execute(
                update(s.runs)
                .where(s.runs.c.id == run_id)
                .values(status=final, finished_at=finished_at or utcnow())
            )
            if done.rowcount == 0:
                raise NotFound(f"run {run_id!r} is not in {self._where()}")
            if final != "succeeded":
                conn.execute(
                    update(s.tasks)
                    .where(s.tasks.c.run_id == run_id, s.tasks.c.status == "running")
                    .values(status=final)
                )

    def add_tag(self, run_id: str, tag: str) -> None:
        """Tag a run (no-op if already tagged). :raises NotFound: no such run."""
        with self._tx() as conn:
            self._require_run(conn, run_id)
            _insert_ignore(conn, s.tags, {"run_id": run_id, "tag": tag}, ["run_id", "tag"])

    def remove_tag(self, run_id: str, tag: str) -> None:
        """Remove a tag from a run (no-op if absent)."""
        with self._tx() as conn:
            conn.execute(delete(s.tags).where(s.tags.c.run_id == run_id, s.tags.c.tag == tag))

    # ------------------------------------------------------------------------------- queries

    def flows(self) -> list[str]:
        """Names of all flows with at least one run, sorted."""
        with self._tx(write=False) as conn:
            return list(conn.scalars(select(s.flows.c.name).order_by(s.flows.c.name)))

    def get_run(self, run_id: str) -> RunInfo:
        """One run. :raises NotFound: no such run."""
        found = self.runs(run_ids=[run_id])
        if not found:
            raise NotFound(f"run {run_id!r} is not in {self._where()}")
        return found[0]

    def runs(
        self,
        flow: str | None = None,
        *,
        tags: Sequence[str] = (),
        status: str | None = None,
        user: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        run_ids: Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RunInfo]:
        """Runs matching every given filter (``tags``: all of them), newest first.

        ``limit`` and ``offset`` page through them in SQL (a page of thousands of runs reads only
        its own rows).
        """
        newest_first = (s.runs.c.started_at.desc(), s.runs.c.id.desc())
        q = select(s.runs)
        if limit is not None or offset:
            # Sort and skip over the narrow (started_at, id) pairs, then read only the page's full
            # rows: sorting whole rows would carry every run's parameters and package list along.
            page = _run_filters(select(s.runs.c.id), flow, tags, status, user, since, until, run_ids)
            page = page.order_by(*newest_first).limit(limit).offset(offset or None)
            q = q.where(s.runs.c.id.in_(page.scalar_subquery()))
        else:
            q = _run_filters(q, flow, tags, status, user, since, until, run_ids)
        q = q.order_by(*newest_first)
        with self._tx(write=False) as conn:
            rows = conn.execute(q).mappings().all()
            tag_map: dict[str, list[str]] = {}
            ids = [r["id"] for r in rows]
            for i in range(0, len(ids), 500):
                for run_id, tag in conn.execute(
                    select(s.tags.c.run_id, s.tags.c.tag).where(s.tags.c.run_id.in_(ids[i : i + 500]))
                ):
                    tag_map.setdefault(run_id, []).append(tag)
        stale = _stale_before()
        return [
            RunInfo(
                user=r["username"],
                tags=sorted(tag_map.get(r["id"], [])),
                status=_shown_status(r["status"], r["heartbeat_at"], stale),
                **_without(r, "username", "status"),
            )
            for r in rows
        ]

    def count_runs(
        self,
        flow: str | None = None,
        *,
        tags: Sequence[str] = (),
        status: str | None = None,
        user: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> int:
        """How many runs :meth:`runs` would return with the same filters and no limit."""
        q = _run_filters(
            select(func.count()).select_from(s.runs), flow, tags, status, user, since, until, None
        )
        with self._tx(write=False) as conn:
            return int(conn.scalar(q) or 0)

    def latest_run_id(self, flow: str, *, status: str | None = None, user: str | None = None) -> str | None:
        """The id of the flow's newest run (optionally with that status or user), or ``None``."""
        found = self.runs(flow, status=status, user=user, limit=1)
        return found[0].id if found else None

    def steps(self, run_id: str) -> list[str]:
        """Step names of a run, in the order they first started."""
        with self._tx(write=False) as conn:
            q = (
                select(s.steps.c.name)
                .where(s.steps.c.run_id == run_id)
                .order_by(s.steps.c.created_at, s.steps.c.name)
            )
            return list(conn.scalars(q))

    def tasks(self, run_id: str, step: str | None = None, *, all_attempts: bool = False) -> list[TaskInfo]:
        """Tasks of a run (or of one step): the latest attempt of each unless ``all_attempts``."""
        q = select(s.tasks).where(s.tasks.c.run_id == run_id)
        if step is not None:
            q = q.where(s.tasks.c.step == step)
        q = q.order_by(s.tasks.c.started_at, s.tasks.c.task_id, s.tasks.c.attempt)
        with self._tx(write=False) as conn:
            found = [TaskInfo(pk=r["id"], **_without(r, "id")) for r in conn.execute(q).mappings()]
            if any(t.status == "running" for t in found):
                # attempts left running by a run that ended (its driver killed) take its status:
                # every view (client, show, ui) reads tasks here, so they all agree
                row = conn.execute(
                    select(s.runs.c.status, s.runs.c.heartbeat_at).where(s.runs.c.id == run_id)
                ).first()
                shown = _shown_status(row[0], row[1], _stale_before()) if row else "running"
                if shown != "running":
                    found = [
                        t.model_copy(update={"status": shown}) if t.status == "running" else t for t in found
                    ]
        if all_attempts:
            return found
        latest: dict[tuple[str, str], TaskInfo] = {}
        for t in found:
            if (t.step, t.task_id) not in latest or t.attempt > latest[(t.step, t.task_id)].attempt:
                latest[(t.step, t.task_id)] = t
        return sorted(latest.values(), key=lambda t: (t.started_at, t.task_id))

    def task(self, run_id: str, step: str, task_id: str, attempt: int | None = None) -> TaskInfo:
        """One task's attempt (the latest by default). :raises NotFound: no such task."""
        for t in self.tasks(run_id, step, all_attempts=True)[::-1]:
            if t.task_id == task_id and (attempt is None or t.attempt == attempt):
                return t
        raise NotFound(f"task {run_id}/{step}/{task_id} (attempt {attempt}) is not in {self._where()}")

    def artifacts(self, task_pks: Sequence[int]) -> dict[int, dict[str, ArtifactRef]]:
        """Artifact references of the given task attempts, by task ``pk`` then name."""
        out: dict[int, dict[str, ArtifactRef]] = {pk: {} for pk in task_pks}
        for r in self._rows_of(s.artifacts, task_pks):
            out[r["task"]][r["name"]] = ArtifactRef(**_without(r, "id", "task", "name"))
        return out

    def metrics(self, task_pks: Sequence[int]) -> dict[int, list[Metric]]:
        """Metrics logged by the given task attempts, in logging order."""
        out: dict[int, list[Metric]] = {pk: [] for pk in task_pks}
        for r in self._rows_of(s.metrics, task_pks):
            out[r["task"]].append(Metric(**_without(r, "id", "task")))
        return out

    def data_reads(self, task_pks: Sequence[int]) -> dict[int, list[DataSnapshot]]:
        """Data reads of the given task attempts, in order."""
        out: dict[int, list[DataSnapshot]] = {pk: [] for pk in task_pks}
        for r in self._rows_of(s.data_reads, task_pks):
            out[r["task"]].append(DataSnapshot(**_without(r, "id", "task")))
        return out

    def task_records(self, run_id: str) -> list[TaskRecord]:
        """The latest successful attempt of every task of a run, as records (for ``resume``)."""
        run = self.get_run(run_id)
        done: dict[tuple[str, str], TaskInfo] = {}
        for t in self.tasks(run_id, all_attempts=True):
            if t.status == "succeeded" and (
                (t.step, t.task_id) not in done or t.attempt > done[(t.step, t.task_id)].attempt
            ):
                done[(t.step, t.task_id)] = t
        pks = [t.pk for t in done.values()]
        arts, mets, reads = self.artifacts(pks), self.metrics(pks), self.data_reads(pks)
        return [
            TaskRecord(
                run_id=run_id,
                flow_name=run.flow,
                step=t.step,
                task_id=t.task_id,
                attempt=t.attempt,
                ok=True,
                artifacts=arts[t.pk],
                foreach_count=t.foreach_count,
                input_paths=t.input_paths,
                foreach_stack=t.foreach_stack,
                data_reads=reads[t.pk],
                metrics=mets[t.pk],
                stdout_key=t.stdout_key,
                stderr_key=t.stderr_key,
                started_at=t.started_at,
                finished_at=t.finished_at or t.started_at,
            )
            for t in sorted(done.values(), key=lambda t: (t.started_at, t.task_id))
        ]

    # ------------------------------------------------------------------------------- helpers

    def _rows_of(self, table: Table, task_pks: Sequence[int]) -> list[Any]:
        rows: list[Any] = []
        with self._tx(write=False) as conn:
            for i in range(0, len(task_pks), 500):
                q = select(table).where(table.c.task.in_(list(task_pks[i : i + 500]))).order_by(table.c.id)
                rows += conn.execute(q).mappings().all()
        return rows

    def _require_run(self, conn: Connection, run_id: str) -> None:
        if conn.scalar(select(func.count()).select_from(s.runs).where(s.runs.c.id == run_id)) == 0:
            raise NotFound(f"run {run_id!r} is not in {self._where()}; create_run() must come first")

    def _where(self) -> str:
        return f"the metadata store {self.url.render_as_string(hide_password=True)}"


def _shown_status(recorded: str, heartbeat_at: dt.datetime | None, stale: dt.datetime) -> RunStatusName:
    """A run recorded ``running`` whose driver's heartbeat stopped is ``killed``."""
    if recorded == "running" and heartbeat_at is not None:
        beat = heartbeat_at if heartbeat_at.tzinfo else heartbeat_at.replace(tzinfo=dt.UTC)
        if beat < stale:
            return "killed"
    return recorded  # type: ignore[return-value]


def _status_is(status: str, stale: dt.datetime) -> Any:
    """The SQL filter for runs *shown* with ``status`` (see :func:`_shown_status`)."""
    from sqlalchemy import and_, or_

    c = s.runs.c
    if status not in RUN_STATUSES:
        raise ValueError(f"unknown run status {status!r}; one of {', '.join(RUN_STATUSES)}")
    dead = and_(c.status == "running", c.heartbeat_at.is_not(None), c.heartbeat_at < stale)
    if status == "running":
        return and_(c.status == "running", or_(c.heartbeat_at.is_(None), c.heartbeat_at >= stale))
    if status == "killed":
        return or_(c.status == "killed", dead)
    return c.status == status


def _run_filters(
    q: Any,
    flow: str | None,
    tags: Sequence[str],
    status: str | None,
    user: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    run_ids: Sequence[str] | None,
) -> Any:
    """``q`` restricted to the runs matching every given filter (shared by listing and counting)."""
    if flow is not None:
        q = q.where(s.runs.c.flow == flow)
    if status is not None:
        q = q.where(_status_is(status, _stale_before()))
    if user is not None:
        q = q.where(s.runs.c.username == user)
    if since is not None:
        q = q.where(s.runs.c.started_at >= since)
    if until is not None:
        q = q.where(s.runs.c.started_at < until)
    if run_ids is not None:
        q = q.where(s.runs.c.id.in_(list(run_ids)))
    for tag in tags:
        q = q.where(s.runs.c.id.in_(select(s.tags.c.run_id).where(s.tags.c.tag == tag)))
    return q


def _enable_wal(cur: Any, timeout: float) -> None:
    """Switch a SQLite file to WAL. Switching takes an exclusive lock without consulting the
    busy timeout, so processes opening a new database at once retry here until it is done."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _with_installed_driver(url: URL) -> URL:
    """``postgresql://`` means psycopg2 to SQLAlchemy; use psycopg (3) when only it is installed."""
    if url.drivername == "postgresql":
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
            return url.set(drivername="postgresql+psycopg")
    return url


def _revision(conn: Connection) -> str | None:
    try:
        with conn.begin_nested() if conn.in_transaction() else conn.begin():
            return conn.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError:
        return None


def _insert_ignore(conn: Connection, table: Table, values: dict[str, Any], keys: list[str]) -> None:
    """Insert a row unless one with the same ``keys`` exists (concurrency-safe)."""
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        conn.execute(sqlite.insert(table).values(values).on_conflict_do_nothing(index_elements=keys))
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        conn.execute(postgresql.insert(table).values(values).on_conflict_do_nothing(index_elements=keys))
        return
    try:
        with conn.begin_nested():
            conn.execute(insert(table).values(values))
    except IntegrityError:
        pass


def _upsert_task(
    conn: Connection, run_id: str, step: str, task_id: str, attempt: int, values: dict[str, Any]
) -> int:
    """Update the attempt's row, or insert it; return its ``pk``."""
    t = s.tasks
    where = (t.c.run_id == run_id, t.c.step == step, t.c.task_id == task_id, t.c.attempt == attempt)
    pk = conn.scalar(select(t.c.id).where(*where))
    if pk is not None:
        conn.execute(update(t).where(t.c.id == pk).values(values))
        return int(pk)
    row = {"run_id": run_id, "step": step, "task_id": task_id, "attempt": attempt, **values}
    inserted = conn.execute(insert(t).values(row)).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


def _snapshot_row(d: DataSnapshot) -> dict[str, Any]:
    return {
        "adapter": d.adapter,
        "kind": d.kind,
        "target": d.target,
        "handle": _jsonable(d.handle),
        "rows": d.rows,
        "at": d.at,
    }


def _jsonable(value: Any) -> Any:
    return to_jsonable_python(value, fallback=str)


def _without(row: Any, *names: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in names}
