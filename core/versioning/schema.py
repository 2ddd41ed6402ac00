"""The metadata tables, as SQLAlchemy Core objects, and the schema revision they match.

Queries in :mod:`.metadata` use these objects; the database itself is created and upgraded only
by the Alembic migrations in ``migrations/versions/``, which are frozen snapshots. A test
compares the migrated database with these definitions, so the two cannot drift apart.

Changing the schema: edit the tables here, add a migration ``NNNN_<what>.py`` whose
``down_revision`` is the previous head, and set :data:`HEAD` to its revision.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

HEAD = "0003"
"""The newest migration's revision: a database at this revision needs no Alembic import."""


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive, as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        # naive values are taken as UTC (what datetime.utcnow() and SQLite give)
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


metadata = MetaData()

NAME = 255
RUN_ID = 128

flows = Table(
    "flows",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(RUN_ID), primary_key=True),
    Column("flow", String(NAME), ForeignKey("flows.name"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("username", String(NAME), nullable=False),
    Column("params", JSON, nullable=False),
    Column("stack", JSON, nullable=False),
    Column("code_key", String(NAME)),
    Column("python_version", String(64), nullable=False),
    Column("packages", JSON, nullable=False),
    Column("origin_run_id", String(RUN_ID)),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    # the local scheduler's driver: it refreshes heartbeat_at while it runs (see metadata.py)
    Column("heartbeat_at", UTCDateTime),
    Column("host", String(NAME)),
    Column("pid", Integer),
    Index("ix_runs_flow_started", "flow", "started_at"),
    Index("ix_runs_started", "started_at", "id"),
    Index("ix_runs_username", "username"),
)

steps = Table(
    "steps",
    metadata,
    Column("run_id", String(RUN_ID), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(NAME), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(RUN_ID), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("step", String(NAME), nullable=False),
    Column("task_id", String(NAME), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("input_paths", JSON, nullable=False),
    Column("foreach_stack", JSON, nullable=False),
    Column("foreach_count", Integer),
    Column("record_key", Text),
    Column("stdout_key", Text),
    Column("stderr_key", Text),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("error", Text),
    Column("traceback", Text),
    UniqueConstraint("run_id", "step", "task_id", "attempt", name="uq_tasks_attempt"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task", Integer, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(NAME), nullable=False),
    Column("key", String(NAME), nullable=False),
    Column("serializer", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("type", String(NAME), nullable=False),
    Column("meta", JSON, nullable=False),
    UniqueConstraint("task", "name", name="uq_artifacts_task_name"),
    Index("ix_artifacts_key", "key"),
)

data_reads = Table(
    "data_reads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task", Integer, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("adapter", String(NAME), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("target", Text, nullable=False),
    Column("handle", JSON, nullable=False),
    Column("rows", BigInteger),
    Column("at", UTCDateTime, nullable=False),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task", Integer, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(NAME), nullable=False),
    Column("value", Float, nullable=False),
    Column("step", Integer),
    Column("at", UTCDateTime, nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(RUN_ID), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(NAME), primary_key=True),
    Index("ix_tags_tag", "tag"),
)
