"""Rows into Arrow: a columnar driver where the database has one, else a server-side DB-API cursor.

* PostgreSQL: ADBC (``adbc-driver-postgresql``: binary ``COPY`` straight into Arrow buffers),
  else connectorx. Measured on 1,000,000 rows x 5 columns here: ADBC 0.76 s, connectorx 1.04 s.
* MySQL / MariaDB: connectorx (0.24 s for 300,000 rows, against 2.6 s through PyMySQL rows).
* Every other dialect, and whenever the columnar driver is not installed: the dialect's DB-API
  driver through SQLAlchemy with ``stream_results`` (a server-side cursor), fetched
  ``batch_rows`` at a time and converted a batch at a time, so a large read never holds all its
  Python rows at once.

Query parameters are bound by the dialect's own DB-API driver (``%s`` for psycopg and PyMySQL,
``?`` for SQLite and pyodbc); for a columnar driver, the driver renders them into the SQL with
its own quoting (``mogrify``), so values are escaped exactly as the database expects.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import TYPE_CHECKING, Any

from .types import Declared, conform, declared_from_description, rows_to_arrow

if TYPE_CHECKING:
    import pyarrow as pa
    import sqlalchemy as sa

COLUMNAR: dict[str, tuple[str, ...]] = {
    "postgresql": ("adbc", "connectorx"),
    "mysql": ("connectorx",),
    "mariadb": ("connectorx",),
}
_MODULES = {"adbc": "adbc_driver_postgresql", "connectorx": "connectorx"}


def choose_reader(setting: str, backend: str) -> str:
    """The reader for a dialect: the setting if it names one that serves it, else the fastest installed."""
    offered = COLUMNAR.get(backend, ())
    if setting == "dbapi":
        return "dbapi"
    if setting != "auto":
        if setting not in offered:
            from lamina.errors import DataError

            raise DataError(
                f"data.reader = {setting!r} does not serve the {backend} dialect"
                + (f"; it offers: {', '.join(offered)}, dbapi" if offered else "; use 'auto' or 'dbapi'")
            )
        if importlib.util.find_spec(_MODULES[setting]) is None:
            from lamina.errors import DataError

            extra = "postgres" if backend == "postgresql" else "mysql"
            raise DataError(
                f"data.reader = {setting!r} needs the {_MODULES[setting]} package: pip install 'lamina[{extra}]'"
            )
        return setting
    for reader in offered:
        if importlib.util.find_spec(_MODULES[reader]) is not None:
            return reader
    return "dbapi"


def columnar_uri(url: sa.URL, reader: str) -> str:
    """The URL a columnar driver takes: the SQLAlchemy URL without its ``+driver`` and its query
    options, except PostgreSQL's ``options`` (the schema's ``search_path``)."""
    backend = url.get_backend_name()
    scheme = "postgresql" if backend == "postgresql" else "mysql"
    options = {"options": url.query["options"]} if "options" in url.query and scheme == "postgresql" else {}
    plain = url.set(drivername=scheme, query=options)
    if reader == "connectorx" and scheme == "postgresql" and not plain.username:
        import getpass

        plain = plain.set(username=getpass.getuser())  # connectorx needs a user; libpq's default
    return plain.render_as_string(hide_password=False)


def bind(connection: sa.Connection, sql: str, parameters: list[Any]) -> str | None:
    """``sql`` with ``parameters`` rendered in by the DB-API driver's own quoting, or ``None``
    when the driver cannot render (then the DB-API path binds them)."""
    raw: Any = connection.connection.dbapi_connection  # the driver's own connection object
    module = type(raw).__module__.split(".")[0]
    if module == "psycopg":
        import psycopg

        return psycopg.ClientCursor(raw).mogrify(sql, parameters)
    if module == "pymysql":
        with raw.cursor() as cursor:
            return str(cursor.mogrify(sql, parameters))
    return None


_INHERITED: list[Any] = []
"""ADBC connections a forked process inherited: kept referenced, never closed, because closing
one would end the parent's session on the socket they share."""


class ColumnarReader:
    """One columnar driver for one database URL; ADBC keeps one autocommit connection per process."""

    def __init__(self, reader: str, uri: str) -> None:
        self.reader = reader
        self.uri = uri
        self._adbc: Any = None
        self._pid = os.getpid()
        self._lock = threading.Lock()  # one ADBC connection serves one statement at a time

    def fetch(self, sql: str) -> pa.Table:
        if self.reader == "adbc":
            with self._lock:
                return self._fetch_adbc(sql)
        import connectorx

        return connectorx.read_sql(self.uri, sql, return_type="arrow")

    def _fetch_adbc(self, sql: str) -> pa.Table:
        if self._pid != os.getpid():
            _INHERITED.append(self._adbc)
            self._adbc, self._pid = None, os.getpid()
        if self._adbc is None:
            import adbc_driver_postgresql.dbapi as adbc

            # autocommit: an open transaction would hold locks that block writers' DROP TABLE
            self._adbc = adbc.connect(self.uri, autocommit=True)
        try:
            with self._adbc.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetch_arrow_table()
        except Exception:
            self.close()  # a broken connection is not reused
            raise

    def close(self) -> None:
        if self._pid != os.getpid():
            _INHERITED.append(self._adbc)
            self._adbc = None
        if self._adbc is not None:
            try:
                self._adbc.close()
            except Exception:  # closing a broken connection is a courtesy
                pass
            self._adbc = None


def literal_percent(connection: sa.Connection, sql: str) -> str:
    """SQL to run without parameters: SQLAlchemy still hands the driver an empty parameter set,
    and ``format`` drivers (psycopg, PyMySQL) then read every ``%`` as a placeholder."""
    return sql.replace("%", "%%") if connection.dialect.paramstyle in ("format", "pyformat") else sql


def mysql_description(connection: sa.Connection, sql: str) -> list[Declared] | None:
    """The declared result columns of a MySQL query (booleans hide as ``TINYINT(1)``), asked with
    ``LIMIT 0``; ``None`` when the statement cannot be wrapped (``SHOW``, ``DESCRIBE``)."""
    try:
        result = connection.exec_driver_sql(
            f"SELECT * FROM ({sql.rstrip().rstrip(';')}) AS _lamina_q LIMIT 0"
        )
    except Exception:  # noqa: BLE001 - not wrappable: fall back to the types the driver gave
        connection.rollback()
        return None
    description = result.cursor.description if result.cursor is not None else None
    result.close()
    return declared_from_description(connection.dialect.name, description)


def fetch_dbapi(
    connection: sa.Connection,
    sql: str,
    parameters: list[Any] | None,
    declared: list[Declared] | None,
    batch_rows: int,
) -> pa.Table:
    """Rows through the dialect's DB-API driver, with a server-side cursor, a batch at a time."""
    # options for this statement only: Connection.execution_options() would change the connection
    streaming = {"stream_results": True, "max_row_buffer": batch_rows}
    if parameters:
        result = connection.exec_driver_sql(sql, tuple(parameters), execution_options=streaming)
    else:
        result = connection.exec_driver_sql(literal_percent(connection, sql), execution_options=streaming)
    try:
        names = list(result.keys())
        description = result.cursor.description if result.cursor is not None else None
        known = declared or declared_from_description(connection.dialect.name, description)
        if len(known) != len(names):
            known = [Declared() for _ in names]
        return rows_to_arrow(names, result.partitions(batch_rows), known)
    finally:
        result.close()


def fetch_columnar(reader: ColumnarReader, sql: str, declared: list[Declared] | None) -> pa.Table:
    return conform(reader.fetch(sql), declared)
