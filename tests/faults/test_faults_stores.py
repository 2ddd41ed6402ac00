"""The metadata store fails under a run: the PostgreSQL server drops its connections, or the
SQLite file is damaged. Results are never lost: the blob store holds them and `lamina sync`
re-indexes them with their true times."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_helpers import Driver, no_leftovers, wait_until

PG = "postgresql://127.0.0.1:5432/test"


@pytest.fixture
def pg_stack(lamina_project: Path) -> Iterator[str]:
    """A stack named ``pg``: local everything, metadata in a fresh PostgreSQL schema."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    schema = f"lamina_fault_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(PG, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sqlalchemy.exc.OperationalError as e:
        engine.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {PG}: {e}")
    stacks = lamina_project / ".lamina" / "stacks"
    stacks.mkdir(parents=True, exist_ok=True)
    (stacks / "pg.toml").write_text(
        '[data]\nadapter = "duckdb"\n[compute]\nadapter = "local"\n[orchestration]\nadapter = "local"\n'
        f'[versioning]\nadapter = "local"\nmetadata_url = "{PG}?options=-csearch_path%3D{schema}'
        f'&application_name={schema}"\n'
    )
    try:
        yield schema
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


def _terminate(schema: str) -> int:
    import sqlalchemy

    engine = sqlalchemy.create_engine(PG, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            killed = conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %(name)s AND pid <> pg_backend_pid()",
                {"name": schema},
            ).fetchall()
        return len(killed)
    finally:
        engine.dispose()


def _show(project: Path, run_id: str, stack: str | None = None) -> dict:
    shown = subprocess.run(
        [sys.executable, "-m", "lamina", "show", run_id, "--json", *(["--stack", stack] if stack else [])],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def test_the_postgresql_server_dropping_the_connection_mid_run_loses_nothing(
    lamina_project: Path, pg_stack: str
) -> None:
    driver = Driver(lamina_project, "waiting.py", "--stack", "pg", "--max-workers", "2", env={"HOLD": "2,3"})
    try:
        wait_until(lambda: driver.started("2") and driver.started("3"), what="the held tasks")
        wait_until(lambda: _terminate(pg_stack) > 0, 10, "the driver's connection to be terminated")
        driver.release()
        assert driver.wait(120) == 0, driver.output
        no_leftovers(driver)
        shown = _show(lamina_project, driver.run_id, "pg")
        assert shown["status"] == "succeeded"
        assert shown["steps"]["work"] == ["succeeded"] * 4 and shown["steps"]["end"] == ["succeeded"]
    finally:
        driver.kill_leftovers()


def test_a_damaged_metadata_database_stops_a_run_before_any_task_and_sync_rebuilds_it(
    lamina_project: Path,
) -> None:
    first = Driver(lamina_project, "waiting.py", "--width", "2")
    assert first.wait(120) == 0, first.output
    before = _show(lamina_project, first.run_id)
    database = lamina_project / ".lamina" / "metadata.db"
    for extra in lamina_project.glob(".lamina/metadata.db-*"):
        extra.unlink()
    database.write_bytes(os.urandom(64 << 10))

    second = Driver(lamina_project, "waiting.py", "--width", "2")
    assert second.wait(120) != 0, second.output
    no_leftovers(second)
    assert not second.started("0") and not second.started("start")  # nothing ran unrecorded

    database.unlink()
    synced = subprocess.run(
        [sys.executable, "-m", "lamina", "sync", "WaitingFlow"],
        cwd=lamina_project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert synced.returncode == 0, synced.stderr
    after = _show(lamina_project, first.run_id)
    assert after["status"] == "succeeded" and after["started_at"] == before["started_at"]
    assert after["steps"] == before["steps"]
