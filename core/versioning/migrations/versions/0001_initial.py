"""The initial metadata schema: flows, runs, steps, tasks, artifacts, data reads, metrics, tags.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "flows",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("flow", sa.String(255), sa.ForeignKey("flows.name"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("stack", sa.JSON, nullable=False),
        sa.Column("code_key", sa.String(255)),
        sa.Column("python_version", sa.String(64), nullable=False),
        sa.Column("packages", sa.JSON, nullable=False),
        sa.Column("origin_run_id", sa.String(128)),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
    )
    op.create_index("ix_runs_flow_started", "runs", ["flow", "started_at"])
    op.create_index("ix_runs_username", "runs", ["username"])
    op.create_table(
        "steps",
        sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.String(255), nullable=False),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input_paths", sa.JSON, nullable=False),
        sa.Column("foreach_stack", sa.JSON, nullable=False),
        sa.Column("foreach_count", sa.Integer),
        sa.Column("record_key", sa.Text),
        sa.Column("stdout_key", sa.Text),
        sa.Column("stderr_key", sa.Text),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("error", sa.Text),
        sa.Column("traceback", sa.Text),
        sa.UniqueConstraint("run_id", "step", "task_id", "attempt", name="uq_tasks_attempt"),
    )
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task", sa.Integer, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("serializer", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.UniqueConstraint("task", "name", name="uq_artifacts_task_name"),
    )
    op.create_index("ix_artifacts_key", "artifacts", ["key"])
    op.create_table(
        "data_reads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task", sa.Integer, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("adapter", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("handle", sa.JSON, nullable=False),
        sa.Column("rows", sa.BigInteger),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_data_reads_task", "data_reads", ["task"])
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task", sa.Integer, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("step", sa.Integer),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_metrics_task", "metrics", ["task"])
    op.create_table(
        "tags",
        sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag", sa.String(255), primary_key=True),
    )
    op.create_index("ix_tags_tag", "tags", ["tag"])


def downgrade() -> None:
    for table in ("tags", "metrics", "data_reads", "artifacts", "tasks", "steps", "runs", "flows"):
        op.drop_table(table)
