"""The ``sqlalchemy`` data adapter: tables in any database SQLAlchemy speaks to.

Reads and writes go through :mod:`.readers` and :mod:`.writers` (columnar drivers and bulk
loads where the database has them). This module owns connections, names, versions and the
atomicity of writes:

* **Atomic writes.** Where DDL is transactional (PostgreSQL, SQL Server, SQLite...), a
  ``replace`` drops, re-creates and fills the table and records its version in one
  transaction: readers see the old table or the new one, and a failed or killed write rolls
  back. MySQL/MariaDB and Oracle commit DDL at once, so a ``replace`` fills a staging table
  (``_lamina_stage_<time>_<token>``, never listed) and swaps it in by an atomic ``RENAME TABLE``;
  a failed write drops the staging table, a killed one leaves it unlisted and the old table
  whole, and a later write drops it once it is a day old.
  ``append`` is a single transaction everywhere (``INSERT`` is transactional in InnoDB too).
* **Versions** are content hashes made with :mod:`lamina.data_tools`, so equal rows have equal
  versions here, in DuckDB and in SQLite. Each write records its table's version in
  ``_lamina_versions`` (``replace``: the rows' hash; ``append``: the previous version chained
  with the appended rows' hash), with a token of the table's generation (new with each
  ``replace``). A read takes the recorded
  version only if the record is the same before and after the rows were read and counts as
  many rows (on MySQL the token must also be the table's comment, which the rename carries);
  otherwise, as for tables written by other tools, it hashes the rows it read. A query's
  snapshot is the query with its time and the hash of its result.
* **Secrets.** The URL's password comes from the environment (``${PG_URL}`` or
  ``password_env``) and is never shown: messages render the URL with ``***``.

SQLAlchemy, pyarrow and the drivers are imported by the methods that need them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from lamina.data_tools import (
    RESERVED_PREFIX,
    chain_versions,
    check_table_name,
    digest_table,
    query_result,
    read_result,
    table_to_write,
    write_snapshot,
)
from lamina.errors import DataError, LaminaError
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import CheckResult, DataResult, DataSnapshot

from . import readers, writers
from .errors import ConnectionDropped, LoginRefused, translate, unknown_dialect
from .params import portable_placeholders
from .settings import SQLAlchemySettings
from .types import Declared, declared_from_reflection
from .versions import VersionRecords, table_token_comment

if TYPE_CHECKING:
    import pyarrow as pa
    import sqlalchemy as sa

ADAPTER_NAME = "sqlalchemy"
STAGE_PREFIX = "_lamina_stage_"
OLD_PREFIX = "_lamina_old_"
ABANDONED_AFTER = 24 * 3600
"""Seconds after which a staging table is taken for a killed write's leftover and dropped."""
NON_TRANSACTIONAL_DDL = frozenset({"mysql", "mariadb", "oracle"})
_READING = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "DESCRIBE", "DESC"})
_COMMENTS = re.compile(r"(--[^\n]*\n?)|(/\*.*?\*/)", re.S)
_UNDEFINED_TABLE = re.compile(
    r"does not exist|doesn't exist|no such table|invalid object name|unknown table", re.I
)


def _first_keyword(sql: str) -> str:
    match = re.match(r"[A-Za-z]+", _COMMENTS.sub(" ", sql).lstrip(" \t\r\n("))
    return match.group(0).upper() if match else ""


_DEFAULT_DRIVERS = {
    # dialect without +driver -> (SQLAlchemy's default driver module, the one lamina's extras install)
    "postgresql": ("psycopg2", "psycopg"),
    "mysql": ("MySQLdb", "pymysql"),
    "mariadb": ("mariadb", "pymysql"),
}


def _with_installed_driver(url: sa.URL) -> sa.URL:
    """``postgresql://`` and ``mysql://`` with the driver that ``lamina[postgres]`` / ``lamina[mysql]``
    install, when SQLAlchemy's default one (psycopg2, mysqlclient) is not installed."""
    import importlib.util

    defaults = _DEFAULT_DRIVERS.get(url.drivername)
    if defaults is None:
        return url
    default, ours = defaults
    if importlib.util.find_spec(default) is None and importlib.util.find_spec(ours) is not None:
        return url.set(drivername=f"{url.drivername}+{ours}")
    return url


def _search_path(schema: str) -> str:
    """A schema as PostgreSQL's ``search_path`` option takes it (quoted unless plain lower case)."""
    return schema if re.fullmatch(r"[a-z_][a-z0-9_$]*", schema) else '"' + schema.replace('"', '""') + '"'


def _begin(connection: sa.Connection) -> Any:
    """A new transaction, after ending the one SQLAlchemy began on its own (autobegin) for a read."""
    if connection.in_transaction():
        connection.rollback()
    return connection.begin()


class SQLAlchemyData:
    """Data-layer plugin over one database (and schema) through SQLAlchemy; see the module docstring."""

    def __init__(self, settings: SQLAlchemySettings, context: AdapterContext) -> None:
        self.settings = settings
        self.schema = settings.schema_
        self.records = VersionRecords(self.schema)
        self._engine: sa.Engine | None = None
        self._columnar: readers.ColumnarReader | None = None
        self._pid = 0
        self._lock = threading.RLock()

    # -- connections -----------------------------------------------------------------------

    def url(self) -> sa.URL:
        """The URL to connect with: its password from ``password_env`` when one is named, and
        the schema as the session's default (PostgreSQL's ``search_path``, MySQL's database), so
        that queries name tables without a schema, as on every other stack."""
        import sqlalchemy as sa

        try:
            url = sa.make_url(self.settings.url)
        except (sa.exc.ArgumentError, ValueError) as exc:
            raise DataError(
                f"data.url is not a valid SQLAlchemy URL ({exc}): write dialect[+driver]://user@host:port/database"
            ) from exc
        try:
            password = self.settings.password()
        except ValueError as exc:
            raise DataError(str(exc)) from None
        if password is not None:
            url = url.set(password=password)
        url = _with_installed_driver(url)
        if self.schema and url.get_backend_name() in ("mysql", "mariadb"):
            url = url.set(database=self.schema)
        elif self.schema and url.get_backend_name() == "postgresql" and "options" not in url.query:
            url = url.update_query_dict({"options": f"-csearch_path={_search_path(self.schema)}"})
        return url

    def _password(self) -> str | None:
        try:
            return self.url().password or None
        except DataError:
            return None

    @property
    def where(self) -> str:
        """The database as messages show it: the URL with its password hidden."""
        try:
            return self.url().render_as_string(hide_password=True)
        except DataError:
            return "the database of data.url"

    @property
    def engine(self) -> sa.Engine:
        """The engine of this process (a forked task makes its own: connections are not shared)."""
        with self._lock:
            if self._engine is None or self._pid != os.getpid():
                if self._engine is not None:
                    self._engine.dispose(close=False)  # the parent's connections stay the parent's
                self._engine = self._create_engine()
                self._pid = os.getpid()
            return self._engine

    def _create_engine(self) -> sa.Engine:
        import sqlalchemy as sa

        url = self.url()
        backend = url.get_backend_name()
        connect_args: dict[str, Any] = {}
        if backend in ("postgresql", "mysql", "mariadb"):
            connect_args["connect_timeout"] = self.settings.connect_timeout
        if backend in ("mysql", "mariadb") and url.get_driver_name() in ("pymysql", "mysqldb"):
            # MySQL rounds AVG and division to 4 decimals by default; 30 keeps a float's digits
            connect_args["init_command"] = "SET SESSION div_precision_increment = 30"
        try:
            return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        except (sa.exc.NoSuchModuleError, ImportError) as exc:
            raise unknown_dialect(url, exc) from exc
        except sa.exc.ArgumentError as exc:
            raise DataError(f"data.url {self.where} is not usable: {exc}") from exc

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def _connection(self, doing: str, sql: str = "") -> Iterator[sa.Connection]:
        """A pooled connection; driver errors become Lamina's (see :func:`.errors.translate`)."""
        import sqlalchemy as sa

        try:
            with self.engine.connect() as connection:
                yield connection
        except LaminaError:
            raise
        except (sa.exc.DBAPIError, sa.exc.SQLAlchemyError) as exc:
            raise translate(exc, doing, self.where, sql, self._password()) from exc

    def _columnar_reader(self) -> readers.ColumnarReader | None:
        reader = readers.choose_reader(self.settings.reader, self.engine.url.get_backend_name())
        if reader == "dbapi":
            return None
        if self._columnar is None:
            self._columnar = readers.ColumnarReader(reader, readers.columnar_uri(self.url(), reader))
        return self._columnar

    # -- names -----------------------------------------------------------------------------

    def qualified(self, name: str) -> str:
        preparer = self.engine.dialect.identifier_preparer
        return (f"{preparer.quote_schema(self.schema)}." if self.schema else "") + preparer.quote(name)

    def _catalog(self, connection: sa.Connection) -> dict[str, str]:
        """Readable tables and views: lower-case name -> stored name (Lamina's own left out)."""
        import sqlalchemy as sa

        inspector = sa.inspect(connection)
        names = [
            *inspector.get_table_names(schema=self.schema),
            *inspector.get_view_names(schema=self.schema),
        ]
        return {n.lower(): n for n in names if not n.lower().startswith(RESERVED_PREFIX)}

    def _available(self, connection: sa.Connection) -> str:
        names = sorted(self._catalog(connection).values(), key=str.lower)
        place = f"schema {self.schema}" if self.schema else self.where
        return f"Tables in {place}: " + (", ".join(names) if names else "none yet") + "."

    # -- reading ---------------------------------------------------------------------------

    def _fetch(
        self,
        connection: sa.Connection,
        sql: str,
        parameters: list[Any] | None,
        declared: list[Declared] | None,
    ) -> pa.Table:
        """Rows of ``sql``: through the columnar driver when there is one, else the DB-API cursor."""
        if parameters:
            sql = portable_placeholders(sql, connection.dialect.paramstyle)
        reader = self._columnar_reader()
        if reader is not None:
            bound = readers.bind(connection, sql, parameters) if parameters else sql
            if bound is not None and declared is None and self.backend in ("mysql", "mariadb"):
                declared = readers.mysql_description(connection, bound)
                if any(d.scale for d in declared or ()):
                    # connectorx keeps 10 decimals of a computed DECIMAL (AVG); the driver keeps all
                    bound, declared = None, None
            if bound is not None:
                return readers.fetch_columnar(reader, bound, declared)
        inside = connection.in_transaction()  # an append's transaction is the caller's to end
        try:
            return readers.fetch_dbapi(connection, sql, parameters, declared, self.settings.batch_rows)
        finally:
            if not inside and connection.in_transaction():
                connection.rollback()

    def _failed(
        self, exc: BaseException, connection: sa.Connection | None, doing: str, sql: str
    ) -> LaminaError:
        error = translate(exc, doing, self.where, sql, self._password())
        if type(error) is DataError and connection is not None and _UNDEFINED_TABLE.search(str(error)):
            with contextlib.suppress(Exception):
                return DataError(f"{error}\n{self._available(connection)}")
        return error

    @hookimpl
    def data_query(self, sql: str, parameters: list[Any] | None) -> DataResult:
        """Run reading SQL (``SELECT``, ``WITH``, ``SHOW``...) in the database's dialect.

        Parameters bind to the driver's placeholders (``%s`` for psycopg and PyMySQL) or to
        ``?``, which every Lamina data adapter takes. The snapshot's handle is the query's time
        and the content version of its result: ``{"at": ..., "version": "sha256:..."}``.

        :raises DataError: a writing statement, bad SQL (with the database's message), an
            unknown table (listing the tables there).
        """
        keyword = _first_keyword(sql)
        if keyword not in _READING:
            raise DataError(
                f"data_query only reads, but this SQL starts with {keyword or 'nothing'}: {sql!r}. "
                "Write tables with data_write (current.data.write)."
            )
        at = dt.datetime.now(dt.UTC).isoformat()
        with self._connection("running a query", sql) as connection:
            try:
                table = self._fetch(connection, sql, parameters, None)
            except LaminaError:
                raise
            except Exception as exc:  # noqa: BLE001 - every driver has its own error types
                raise self._failed(exc, connection, "the query", sql) from exc
        return query_result(ADAPTER_NAME, sql, table, {"at": at, "version": digest_table(table)}, parameters)

    @hookimpl
    def data_read(self, name: str) -> DataResult:
        """Read a whole table or view (names are matched case-insensitively).

        :raises DataError: no such table (the message lists the tables there).
        """

        with self._connection(f"reading table {name!r}") as connection:
            catalog = self._catalog(connection)
            stored = catalog.get(name.lower()) if isinstance(name, str) else None
            if stored is None:
                raise DataError(
                    f"no table named {name!r} in the sqlalchemy data layer ({self.where}). "
                    f"{self._available(connection)} Write it first with data_write (current.data.write)."
                )
            declared = self._declared(connection, stored)
            connection.rollback()
            before = self.records.read(connection, stored)
            sql = f"SELECT * FROM {self.qualified(stored)}"
            try:
                table = self._fetch(connection, sql, None, declared)
            except LaminaError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise self._failed(exc, connection, f"reading table {stored!r}", sql) from exc
            after = self.records.read(connection, stored)
        version = VersionRecords.trusted(self.backend, before, after, table.num_rows) or digest_table(table)
        return read_result(ADAPTER_NAME, stored, table, {"tables": {stored: version}})

    # -- writing ---------------------------------------------------------------------------

    @hookimpl
    def data_write(self, name: str, table: pa.Table, mode: str) -> DataSnapshot:
        """Write ``table``: ``replace`` (create or replace) or ``append`` (creates a missing table,
        matches columns by name). Atomic for readers; a failed write leaves the table as it was.

        :return: the snapshot after the write; its version is what a later read reports.
        :raises DataError: bad name, mode or column type, or the database refused the rows.
        """
        table = table_to_write(name, table, mode, check_name=check_table_name)
        from .types import sql_type

        for field in table.schema:
            sql_type(field)  # refuse unstorable columns before touching the database
        incoming = digest_table(table)
        with self._connection("creating the table of versions") as connection:
            self.records.ensure(connection)
        doing = f"writing table {name!r} ({mode})"
        with self._connection(doing) as connection:
            stored = self._catalog(connection).get(name.lower())
            connection.rollback()
            try:
                if mode == "replace" or stored is None:
                    stored = stored or name
                    if self.backend in NON_TRANSACTIONAL_DDL:
                        rows = self._swap_in(connection, stored, table, incoming)
                    else:
                        rows = self._replace_in_transaction(connection, stored, table, incoming)
                    version = incoming
                else:
                    version, rows = self._append(connection, stored, table, incoming)
            except LaminaError:
                raise
            except Exception as exc:  # noqa: BLE001
                error = translate(exc, doing, self.where, secret=self._password())
                columns = ", ".join(f"{f.name} {f.type}" for f in table.schema)
                raise type(error)(
                    f"{error}; the table was not changed (incoming columns: {columns})"
                ) from exc
        return write_snapshot(ADAPTER_NAME, stored, {"tables": {stored: version}}, rows)

    def _replace_in_transaction(
        self, connection: sa.Connection, stored: str, table: pa.Table, version: str
    ) -> int:
        with _begin(connection):
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {self.qualified(stored)}")
            writers.create_table(connection, stored, self.schema, table)
            writers.load_rows(connection, stored, self.schema, table, self.settings.batch_rows)
            self.records.write(connection, stored, version, table.num_rows, uuid.uuid4().hex)
        return table.num_rows

    def _swap_in(self, connection: sa.Connection, stored: str, table: pa.Table, version: str) -> int:
        """Fill a staging table, then ``RENAME`` it over the target in one statement."""
        import sqlalchemy as sa

        token = uuid.uuid4().hex
        self._drop_abandoned_stages(connection)
        stamp = f"{int(time.time())}_{token[:8]}"
        stage, old = f"{STAGE_PREFIX}{stamp}", f"{OLD_PREFIX}{stamp}"
        comment = table_token_comment(token) if self.backend in ("mysql", "mariadb") else None
        try:
            writers.create_table(connection, stage, self.schema, table, comment=comment)
            connection.commit()
            with _begin(connection):
                writers.load_rows(connection, stage, self.schema, table, self.settings.batch_rows)
            exists = sa.inspect(connection).has_table(stored, schema=self.schema)
            connection.rollback()
            if self.backend in ("mysql", "mariadb"):
                renames = f"{self.qualified(stage)} TO {self.qualified(stored)}"
                if exists:
                    renames = f"{self.qualified(stored)} TO {self.qualified(old)}, " + renames
                connection.exec_driver_sql(f"RENAME TABLE {renames}")
            else:  # Oracle renames one table at a time: the target is missing for an instant
                if exists:
                    connection.exec_driver_sql(f"ALTER TABLE {self.qualified(stored)} RENAME TO {old}")
                connection.exec_driver_sql(f"ALTER TABLE {self.qualified(stage)} RENAME TO {stored}")
            connection.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                connection.rollback()
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {self.qualified(stage)}")
                connection.commit()
            raise
        with _begin(connection):
            self.records.write(connection, stored, version, table.num_rows, token)
        with contextlib.suppress(Exception):
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {self.qualified(old)}")
            connection.commit()
        return table.num_rows

    def _drop_abandoned_stages(self, connection: sa.Connection) -> None:
        """Drop staging tables of writes killed more than a day ago (their names carry the time)."""
        import sqlalchemy as sa

        cutoff = time.time() - ABANDONED_AFTER
        for name in sa.inspect(connection).get_table_names(schema=self.schema):
            match = re.fullmatch(rf"(?:{STAGE_PREFIX}|{OLD_PREFIX})(\d+)_[0-9a-f]+", name)
            if match and int(match.group(1)) < cutoff:
                with contextlib.suppress(Exception):
                    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {self.qualified(name)}")
        connection.commit()

    def _append(
        self, connection: sa.Connection, stored: str, table: pa.Table, incoming: str
    ) -> tuple[str, int]:
        import sqlalchemy as sa

        existing = {
            c["name"].lower(): c["name"]
            for c in sa.inspect(connection).get_columns(stored, schema=self.schema)
        }
        connection.rollback()
        unknown = [f.name for f in table.schema if f.name.lower() not in existing]
        if unknown:
            raise DataError(
                f"cannot append to table {stored!r}: it has no column(s) {', '.join(map(repr, unknown))}. "
                f"Its columns: {', '.join(existing.values())}. Write with mode='replace' to change its columns."
            )
        table = table.rename_columns([existing[n.lower()] for n in table.column_names])
        target = self.qualified(stored)
        token = uuid.uuid4().hex
        if self.backend in ("mysql", "mariadb"):
            current = self.records.read(connection, stored)
            if current is None or current.comment != table_token_comment(current.token):
                # a table Lamina did not write: give it a token first (DDL commits at once on MySQL)
                connection.exec_driver_sql(f"ALTER TABLE {target} COMMENT = '{table_token_comment(token)}'")
                connection.commit()
        with _begin(connection):
            record = self.records.read_locked(connection, stored)  # appends to one table queue here
            before = int(connection.exec_driver_sql(f"SELECT COUNT(*) FROM {target}").scalar_one())
            if record is not None and record.rows == before:
                previous = record.version
            else:  # written by another tool, or changed outside Lamina: hash what is there
                previous = digest_table(
                    self._fetch(
                        connection, f"SELECT * FROM {target}", None, self._declared(connection, stored)
                    )
                )
            writers.load_rows(connection, stored, self.schema, table, self.settings.batch_rows)
            rows = before + table.num_rows
            version = chain_versions(previous, incoming)
            token = record.token if record is not None else token
            self.records.write(connection, stored, version, rows, token)
        return version, rows

    def _declared(self, connection: sa.Connection, stored: str) -> list[Declared]:
        import sqlalchemy as sa

        columns = sa.inspect(connection).get_columns(stored, schema=self.schema)
        return [declared_from_reflection(self.backend, c["type"], c.get("comment")) for c in columns]

    # -- catalogue, health -----------------------------------------------------------------

    @hookimpl
    def data_tables(self) -> list[str]:
        """Tables and views of the schema (Lamina's own left out), sorted case-insensitively."""
        with self._connection("listing tables") as connection:
            return sorted(self._catalog(connection).values(), key=str.lower)

    @hookimpl
    def data_check(self) -> CheckResult:
        """Connect, run ``SELECT 1``, list the schema's tables and name the reader. Never raises."""

        def verdict(ok: bool, message: str, fix: str = "") -> CheckResult:
            return CheckResult(layer="data", adapter=ADAPTER_NAME, ok=ok, message=message, fix=fix)

        try:
            import sqlalchemy as sa

            engine = self.engine
            with self._connection("checking the connection") as connection:
                connection.exec_driver_sql("SELECT 1").scalar()
                if self.schema and not sa.inspect(connection).has_schema(self.schema):
                    return verdict(
                        False,
                        f"connected to {self.where}, but the schema {self.schema!r} does not exist",
                        f"create it (CREATE SCHEMA {self.schema}) or fix data.schema in the stack profile",
                    )
                count = len(self._catalog(connection))
                version = ".".join(str(p) for p in (connection.dialect.server_version_info or ()))
            reader = readers.choose_reader(self.settings.reader, engine.url.get_backend_name())
        except LoginRefused as exc:
            return verdict(
                False, str(exc), "fix the user, the database or the password variable (data.password_env)"
            )
        except ConnectionDropped as exc:
            return verdict(False, str(exc), "start the database or fix host and port in data.url")
        except LaminaError as exc:
            return verdict(
                False, str(exc), "fix data.url in the stack profile, or install the driver named above"
            )
        except Exception as exc:  # noqa: BLE001 - a check reports, it never raises
            return verdict(False, f"cannot use {self.where}: {exc}", "fix data.url in the stack profile")
        place = f", schema {self.schema}" if self.schema else ""
        return verdict(
            True,
            f"{engine.dialect.name} {version} at {self.where}{place}: {count} tables; "
            f"reads through {reader}, SQLAlchemy {sa.__version__}",
        )

    @hookimpl
    def data_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Dropped or refused connections and servers restarting, raised as :class:`ConnectionDropped`."""
        return (ConnectionDropped,)

    @hookimpl
    def data_close(self) -> None:
        """Close the columnar connection and the engine's pool."""
        with self._lock:
            if self._columnar is not None:
                self._columnar.close()
                self._columnar = None
            if self._engine is not None and self._pid == os.getpid():
                self._engine.dispose()
            self._engine = None
