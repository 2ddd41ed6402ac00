"""The databases the ``sqlalchemy`` data adapter is tested on, each in a place of its own.

PostgreSQL (``LAMINA_TEST_PG``, default the local server's ``test`` database) gets a fresh
schema per test session; MariaDB (``LAMINA_TEST_MYSQL``, default ``root`` on the local server)
a fresh database. Both are dropped when the session ends, so runs never see each other's tables.
A server that is not reachable skips its tests, except in CI (``CI=true``), where it fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PG_URL = os.environ.get("LAMINA_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("LAMINA_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")
DATABASES = ("postgresql", "mariadb")


@dataclass(frozen=True)
class Database:
    kind: str
    url: str
    """The URL the adapter is given (on MariaDB it names the session's own database)."""
    schema: str | None
    admin_url: str
    """The server's URL, for the tests' own statements."""

    def settings(self, **overrides: Any) -> Any:
        from lamina.plugins.sqlalchemy_data import SQLAlchemySettings

        values: dict[str, Any] = {"url": self.url}
        if self.schema:
            values["schema"] = self.schema
        return SQLAlchemySettings.model_validate({**values, **overrides})

    def adapter(self, project: Path | None = None, **overrides: Any) -> Any:
        from lamina.hookspecs import AdapterContext
        from lamina.plugins.sqlalchemy_data import SQLAlchemyData

        context = AdapterContext(
            project_dir=project or Path.cwd(), stack_name="test", adapter_name="sqlalchemy"
        )
        return SQLAlchemyData(self.settings(**overrides), context)

    def profile_table(self) -> str:
        """The ``[data]`` table of a stack profile over this database."""
        lines = ["[data]", 'adapter = "sqlalchemy"', f'url = "{self.url}"']
        if self.schema:
            lines.append(f'schema = "{self.schema}"')
        return "\n".join(lines) + "\n"

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one statement as the server's admin, committed; return its rows (if any)."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.admin_url if self.kind == "postgresql" else self.url)
        try:
            with engine.begin() as connection:
                result = connection.exec_driver_sql(sql)
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def qualified(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name


def _reachable(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means the server is not usable here
        if os.environ.get("CI") == "true":
            pytest.fail(f"the test database {url} is not reachable in CI: {exc}")
        pytest.skip(f"the test database {url} is not reachable: {exc}")
    finally:
        engine.dispose()


def open_database(kind: str) -> Iterator[Database]:
    """A session's own place on one server: a schema (PostgreSQL) or a database (MariaDB)."""
    import sqlalchemy as sa

    pytest.importorskip("psycopg" if kind == "postgresql" else "pymysql")
    token = uuid.uuid4().hex[:8]
    if kind == "postgresql":
        _reachable(PG_URL)
        schema = f"lamina_test_{token}"
        database = Database(kind, PG_URL, schema, PG_URL)
        database.execute(f"CREATE SCHEMA {schema}")
        try:
            yield database
        finally:
            database.execute(f"DROP SCHEMA {schema} CASCADE")
        return
    _reachable(MYSQL_URL)
    name = f"lamina_test_{token}"
    server = sa.make_url(MYSQL_URL)
    database = Database(
        kind, server.set(database=name).render_as_string(hide_password=False), None, MYSQL_URL
    )
    admin = Database(kind, MYSQL_URL, None, MYSQL_URL)
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield database
    finally:
        admin.execute(f"DROP DATABASE {name}")
