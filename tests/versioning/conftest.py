"""Fixtures of the versioning tests: a local blob store behind a real pluggy manager."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from vers_helpers import PG_URL, Blobs, make_blobs, run_python  # noqa: F401 - re-exported for tests


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "proj").mkdir()
    return tmp_path / "proj"


@pytest.fixture
def blobs(project: Path) -> Blobs:
    return make_blobs(project)


@pytest.fixture
def store(blobs: Blobs, project: Path):
    from lamina.versioning.artifacts import ArtifactStore

    return ArtifactStore(blobs, cache_dir=project / ".lamina" / "cache")


@pytest.fixture
def pg_url():
    """A PostgreSQL URL confined to a fresh schema, dropped afterwards."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg")
    schema = f"lamina_test_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sqlalchemy.exc.OperationalError as e:
        engine.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}: {e}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """Each metadata test runs on SQLite (a file) and on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/lamina/metadata.db"
    return request.getfixturevalue("pg_url")
