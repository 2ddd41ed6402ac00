"""An index on runs (started_at, id): listing runs newest first, a page at a time, reads the
index instead of sorting every run (lamina ui's runs page with thousands of runs).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_started", "runs", ["started_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_started", table_name="runs")
