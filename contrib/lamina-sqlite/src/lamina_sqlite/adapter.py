"""The ``sqlite`` data adapter: tables in one SQLite database file, with the stdlib ``sqlite3``.

Every operation opens a short-lived connection and closes it before returning, so nothing is
held between calls and forked or spawned task processes never share a connection. Reads run in
one transaction, so the rows and the versions recorded for them are seen at the same instant.
Queries are read-only twice over: an authorizer refuses any statement that would change the
database (naming what it would do), and the connection is ``PRAGMA query_only``.

Concurrency is SQLite's own: several processes may read and write one file; a writer waits up
to ``timeout`` seconds for another's lock, then :class:`DatabaseLocked` is raised, which the
layer facade retries with backoff. The file keeps its journal mode: the adapter never switches
a user's database to WAL.

Data versions (for reproducibility) are content hashes, ``sha256:<hex>``, made with Lamina's
toolkit for data adapters (:mod:`lamina.data_tools`), so equal rows have equal versions here and
in the DuckDB adapter that ships with Lamina:

* each write records its table's version in ``_lamina_versions`` in the same transaction: for
  ``replace`` the hash of the written rows as an Arrow IPC stream (cut into fixed batches, so
  the chunking of the input does not matter), for ``append`` the hash of the previous version
  and the appended rows' hash;
* a table written by another tool, or whose row count no longer matches its record, is hashed
  from its stored values when read. A change made outside Lamina that keeps the row count (an
  ``UPDATE``) is not detected: write through Lamina to keep versions exact.

pyarrow is imported when the adapter first touches data, so loading the plugin stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamina.data_tools import (
    RESERVED_PREFIX,
    chain_versions,
    check_table_name,
    digest_table,
    query_result,
    quote_ident,
    read_result,
    table_to_write,
    write_snapshot,
)
from lamina.errors import DataError, TransientError
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import AdapterSettings, CheckResult, DataResult, DataSnapshot
from pydantic import Field

from .types import MixedTypes, arrow_type_for, infer_array, plan_columns, tagged_array, typed_array

if TYPE_CHECKING:
    import pyarrow as pa

ADAPTER_NAME = "sqlite"
VERSIONS_TABLE = "_lamina_versions"
RESERVED_PREFIXES = (RESERVED_PREFIX, "sqlite_")
_check_name = functools.partial(
    check_table_name, reserved=RESERVED_PREFIXES, reserved_note="reserved for Lamina and SQLite"
)
_WRITE_BATCH_ROWS = 50_000

# Authorizer actions a query may take; any other one would change the database.
_READING_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_PRAGMA, 33}
)  # 33 is SQLITE_RECURSIVE (WITH RECURSIVE), which Python 3.11's sqlite3 does not name
_ACTION_NAMES = {
    value: name[len("SQLITE_") :].replace("_", " ")
    for name, value in vars(sqlite3).items()
    if name.startswith(("SQLITE_CREATE", "SQLITE_DROP"))
    or name
    in (
        "SQLITE_INSERT",
        "SQLITE_UPDATE",
        "SQLITE_DELETE",
        "SQLITE_ALTER_TABLE",
        "SQLITE_ATTACH",
        "SQLITE_DETACH",
        "SQLITE_TRANSACTION",
        "SQLITE_SAVEPOINT",
        "SQLITE_REINDEX",
        "SQLITE_ANALYZE",
    )
}


def _describe(action: int, arg: str | None) -> str:
    """What a refused authorizer action would do, for an error message."""
    if action == sqlite3.SQLITE_TRANSACTION:
        return f"run {arg}"
    if (arg or "").lower() in ("sqlite_master", "sqlite_temp_master"):
        return "change the database schema"  # CREATE, DROP and ALTER write it first
    what = _ACTION_NAMES.get(action, f"take the authorizer action {action}")
    return f"{what} ({arg})" if arg else what


class SQLiteSettings(AdapterSettings):
    """Settings of the ``sqlite`` data adapter (the ``[data]`` table of a stack profile)."""

    path: str = Field(
        default=".lamina/data/sqlite.db",
        description="database file, relative to the project directory; created on the first write",
    )
    timeout: float = Field(
        default=30.0,
        ge=0,
        description="seconds to wait for another process's lock before raising DatabaseLocked",
    )


class DatabaseLocked(DataError, TransientError):
    """Another connection holds the database (SQLite's "database is locked"); worth retrying."""


def _is_lock_error(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc).lower()


class _Catalog:
    """What one connection can read: tables and views by lower-case name, and version records."""

    def __init__(self, con: sqlite3.Connection) -> None:
        rows = con.execute("SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view')").fetchall()
        self.names: dict[str, str] = {}
        self.views: set[str] = set()
        self.recorded: dict[str, tuple[str, int]] = {}
        for name, kind in rows:
            key = name.lower()
            if key == VERSIONS_TABLE:
                records = con.execute(f"SELECT name, version, rows FROM {VERSIONS_TABLE}").fetchall()
                self.recorded = {n: (v, r) for n, v, r in records}
            elif not key.startswith(RESERVED_PREFIXES):
                self.names[key] = name
                if kind == "view":
                    self.views.add(key)

    def listing(self) -> list[str]:
        return sorted(self.names.values(), key=str.lower)


class SQLiteData:
    """Data-layer plugin: every hook of :class:`lamina.hookspecs.DataSpec`, over SQLite."""

    def __init__(self, settings: SQLiteSettings, context: AdapterContext) -> None:
        self.settings = settings
        self.project_dir = Path(context.project_dir).resolve()
        self.path = (self.project_dir / Path(settings.path).expanduser()).resolve()

    def _shown(self) -> str:
        """The database path as the user wrote it: relative to the project when inside it."""
        try:
            return str(self.path.relative_to(self.project_dir))
        except ValueError:
            return str(self.path)

    # -- connections ---------------------------------------------------------------------

    def _locked(self, exc: sqlite3.Error, doing: str) -> DatabaseLocked:
        return DatabaseLocked(
            f"the SQLite database {self._shown()} is locked by another connection ({exc}) while "
            f"{doing}. It is retried; if it persists, close other programs using the file or raise "
            "data.timeout in the stack profile."
        )

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn ``sqlite3`` errors into Lamina's: locks are transient, the rest ``DataError``."""
        try:
            yield
        except sqlite3.Error as exc:
            if _is_lock_error(exc):
                raise self._locked(exc, doing) from exc
            raise DataError(f"{doing} failed in the SQLite database {self._shown()}: {exc}") from exc

    @contextlib.contextmanager
    def _connect(self, doing: str, *, write: bool) -> Iterator[sqlite3.Connection]:
        """A connection inside one transaction, committed on success and always closed.

        ``sqlite3`` errors the caller lets through become :class:`DataError` (or
        :class:`DatabaseLocked`) saying the operation was ``doing``.

        Writes take the write lock up front (``BEGIN IMMEDIATE``) and create the file. Reads
        of a database that does not exist yet get an empty in-memory database rather than
        creating the file.
        """
        if write:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DataError(
                    f"cannot create {self.path.parent} for the SQLite database: {exc}. "
                    "Set data.path in the stack profile to a writable place."
                ) from exc
            target = str(self.path)
        elif self.path.exists():
            target = self.path.as_uri() + "?mode=rw"
        else:
            target = ":memory:"
        with self._errors("opening the database"):
            con = sqlite3.connect(
                target, timeout=self.settings.timeout, isolation_level=None, uri=target.startswith("file:")
            )
        try:
            with self._errors("starting a transaction"):
                if not write:
                    con.execute("PRAGMA query_only = ON")
                con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            with self._errors(doing):
                yield con
                con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                if con.in_transaction:
                    con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    # -- reading rows --------------------------------------------------------------------

    @staticmethod
    def _columns(cursor: sqlite3.Cursor) -> tuple[list[str], list[Sequence[Any]]]:
        """Column names and values of a finished statement, transposed a column at a time."""
        names = [d[0] for d in cursor.description or ()]
        rows = cursor.fetchall()
        columns: list[Sequence[Any]] = (
            [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in names]
        )
        return names, columns

    @staticmethod
    def _declared(con: sqlite3.Connection, name: str) -> list[str]:
        return [row[2] or "" for row in con.execute(f"PRAGMA table_info({quote_ident(name)})")]

    def _raw_version(self, con: sqlite3.Connection, name: str) -> str:
        """Hash of a table's stored values, whatever their types (tables Lamina did not write)."""
        import pyarrow as pa

        names, columns = self._columns(con.execute(f"SELECT * FROM {quote_ident(name)}"))
        arrays = []
        for values in columns:
            try:
                arrays.append(infer_array(values))
            except MixedTypes:
                arrays.append(tagged_array(values))
        return digest_table(pa.Table.from_arrays(arrays, names=names))

    def _version(self, con: sqlite3.Connection, catalog: _Catalog, key: str) -> str:
        """The content version of the table ``key`` (lower-case), as ``con`` sees it."""
        name = catalog.names[key]
        recorded = catalog.recorded.get(key)
        if recorded is not None:
            (rows,) = con.execute(f"SELECT count(*) FROM {quote_ident(name)}").fetchone()
            if rows == recorded[1]:
                return recorded[0]
        return self._raw_version(con, name)

    def _handle(self, con: sqlite3.Connection, catalog: _Catalog, keys: Iterable[str]) -> dict[str, Any]:
        tables = {
            catalog.names[key]: self._version(con, catalog, key)
            for key in sorted(keys)
            if key in catalog.names and key not in catalog.views
        }
        return {"tables": tables}

    def _run_reading(
        self, con: sqlite3.Connection, sql: str, parameters: Sequence[Any] | dict[str, Any]
    ) -> tuple[sqlite3.Cursor, set[str]]:
        """Run one statement under an authorizer that refuses writes and notes what is read.

        :return: the cursor, and the lower-case names of the ``main`` tables the statement reads
            (through views too).
        """
        read: set[str] = set()
        refused: list[str] = []

        def authorize(action: int, arg1: str | None, arg2: str | None, db: str | None, _: str | None) -> int:
            if action in _READING_ACTIONS:
                # count(*) reads a table without naming a column or a database
                if action == sqlite3.SQLITE_READ and arg1 and db in ("main", None):
                    read.add(arg1.lower())
                return sqlite3.SQLITE_OK
            refused.append(_describe(action, arg1))
            return sqlite3.SQLITE_DENY

        con.set_authorizer(authorize)
        try:
            cursor = con.execute(sql, parameters)
        except sqlite3.DatabaseError as exc:
            if refused:
                raise DataError(
                    f"data_query only reads, but this SQL would {refused[0]}: {sql!r}. "
                    "Write tables with data_write (stack.data.write / current.data.write)."
                ) from exc
            raise
        finally:
            con.set_authorizer(None)
        return cursor, read

    # -- errors --------------------------------------------------------------------------

    def _available(self, catalog: _Catalog) -> str:
        names = catalog.listing()
        return (
            f"Available tables in the SQLite database {self._shown()}: "
            + (", ".join(names) if names else "none yet")
            + "."
        )

    # -- hooks ---------------------------------------------------------------------------

    @hookimpl
    def data_query(self, sql: str, parameters: list[Any] | None) -> DataResult:
        """Run one reading SQL statement (``SELECT``, ``WITH``, ``VALUES``, a read-only ``PRAGMA``).

        Parameters bind to ``?`` placeholders. Result columns carry no declared type in SQLite,
        so their types are inferred from the values (a boolean column reads as 0 / 1 integers,
        dates and times as ISO text); ``data_read`` restores written types. The snapshot's
        handle has a version for every table the query reads, through views too.

        :raises DataError: bad SQL, more than one statement, a writing statement, an unknown
            table (the message lists the available ones), or a column of mixed value types.
        """
        import pyarrow as pa

        with self._connect("running a query", write=False) as con:
            catalog = _Catalog(con)
            try:
                cursor, read = self._run_reading(con, sql, parameters or ())
                names, columns = self._columns(cursor)
            except sqlite3.ProgrammingError as exc:
                raise DataError(f"bad SQL for the sqlite data layer: {exc}\n  sql: {sql}") from exc
            except sqlite3.Error as exc:
                if _is_lock_error(exc):
                    raise self._locked(exc, "running a query") from exc
                hint = f"\n{self._available(catalog)}" if "no such" in str(exc) else ""
                raise DataError(f"the sqlite query failed: {exc}\n  sql: {sql}{hint}") from exc
            arrays = [
                typed_array(name, "", values, None) for name, values in zip(names, columns, strict=True)
            ]
            table = pa.Table.from_arrays(arrays, names=names)
            handle = self._handle(con, catalog, read)
        return query_result(ADAPTER_NAME, sql, table, handle, parameters)

    @hookimpl
    def data_read(self, name: str) -> DataResult:
        """Read a whole table or view (names are case-insensitive), with its declared types.

        :raises DataError: no such table (the message lists the available ones), or a column
            holding values its declared type cannot read (SQLite allows that; Arrow does not).
        """
        import pyarrow as pa

        with self._connect(f"reading table {name!r}", write=False) as con:
            catalog = _Catalog(con)
            key = name.lower() if isinstance(name, str) else ""
            if key not in catalog.names:
                raise DataError(
                    f"no table named {name!r} in the sqlite data layer. {self._available(catalog)} "
                    "Write it first with data_write (current.data.write)."
                )
            canonical = catalog.names[key]
            declared = self._declared(con, canonical)
            cursor, read = self._run_reading(con, f"SELECT * FROM {quote_ident(canonical)}", ())
            names, columns = self._columns(cursor)
            arrays = [
                typed_array(column, decl, values, arrow_type_for(decl))
                for column, decl, values in zip(names, declared, columns, strict=True)
            ]
            table = pa.Table.from_arrays(arrays, names=names)
            handle = self._handle(con, catalog, read)
        return read_result(ADAPTER_NAME, canonical, table, handle)

    @hookimpl
    def data_write(self, name: str, table: pa.Table, mode: str) -> DataSnapshot:
        """Write ``table``: ``replace`` (create or replace) or ``append`` (columns by name).

        ``append`` creates a missing table; columns it omits get NULL, and its values are cast
        (safely) to the existing columns' types. The rows and the version record change in one
        transaction: a failed write changes nothing.

        :param name: a SQL identifier (letters, digits, underscores; not starting with a digit,
            ``_lamina`` or ``sqlite_``).
        :return: the snapshot after the write: ``rows`` is the table's row count and ``handle``
            its version, as a later ``data_read`` reports it.
        :raises DataError: bad name, mode or input type, a column SQLite cannot store, or
            SQLite refused the rows.
        """
        table = table_to_write(name, table, mode, check_name=_check_name)
        plan_columns(table.schema)  # refuse unstorable columns before touching the file
        incoming = digest_table(table)
        with self._connect(f"writing table {name!r}", write=True) as con:
            try:
                stored, version, rows = self._write_rows(con, name, table, mode, incoming)
            except sqlite3.Error as exc:
                if _is_lock_error(exc):
                    raise self._locked(exc, f"writing table {name!r}") from exc
                columns = ", ".join(f"{f.name} {f.type}" for f in table.schema)
                raise DataError(
                    f"writing table {name!r} ({mode}) to the SQLite database {self._shown()} failed, "
                    f"nothing was changed: {exc}\n  incoming columns: {columns}"
                ) from exc
        return write_snapshot(ADAPTER_NAME, stored, {"tables": {stored: version}}, rows)

    def _write_rows(
        self, con: sqlite3.Connection, name: str, table: pa.Table, mode: str, incoming: str
    ) -> tuple[str, str, int]:
        """Write inside the caller's transaction. :return: (stored name, new version, rows)."""
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {VERSIONS_TABLE} (name TEXT PRIMARY KEY, "
            "version TEXT NOT NULL, rows INTEGER NOT NULL, written_at TEXT NOT NULL)"
        )
        catalog = _Catalog(con)
        key = name.lower()
        if key in catalog.views:
            raise DataError(f"{catalog.names[key]!r} is a view in {self._shown()}; write under another name.")
        stored = catalog.names.get(key, name)
        target = quote_ident(stored)
        if mode == "replace" or key not in catalog.names:
            con.execute(f"DROP TABLE IF EXISTS {target}")
            columns = ", ".join(
                f"{quote_ident(plan.name)} {plan.declared}".rstrip() for plan in plan_columns(table.schema)
            )
            con.execute(f"CREATE TABLE {target} ({columns})")
            version = incoming
        else:
            previous = self._version(con, catalog, key)
            table = self._conform(con, stored, table)
            version = chain_versions(previous, incoming)
        self._insert(con, target, table)
        (rows,) = con.execute(f"SELECT count(*) FROM {target}").fetchone()
        con.execute(
            f"INSERT OR REPLACE INTO {VERSIONS_TABLE} VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ'))",
            (key, version, rows),
        )
        return stored, version, rows

    def _conform(self, con: sqlite3.Connection, stored: str, table: pa.Table) -> pa.Table:
        """Match appended columns to the table's by name and cast them to its declared types."""
        info = con.execute(f"PRAGMA table_info({quote_ident(stored)})").fetchall()
        existing = {row[1].lower(): (row[1], row[2] or "") for row in info}
        unknown = [f.name for f in table.schema if f.name.lower() not in existing]
        if unknown:
            raise DataError(
                f"cannot append to table {stored!r}: it has no column(s) {', '.join(map(repr, unknown))}. "
                f"Its columns: {', '.join(n for n, _ in existing.values())}. Write with mode='replace' "
                "to change its columns."
            )
        arrays, names = [], []
        for field, column in zip(table.schema, table.columns, strict=True):
            column_name, declared = existing[field.name.lower()]
            target_type = arrow_type_for(declared)
            if target_type is not None and target_type != field.type:
                try:
                    column = column.cast(target_type, safe=True)
                except Exception as exc:  # pyarrow's cast errors have several types
                    raise DataError(
                        f"cannot append column {field.name!r} ({field.type}) to table {stored!r}, whose "
                        f"column is {declared} ({target_type}): {exc}"
                    ) from exc
            arrays.append(column)
            names.append(column_name)
        import pyarrow as pa

        return pa.Table.from_arrays(arrays, names=names)

    @staticmethod
    def _insert(con: sqlite3.Connection, target: str, table: pa.Table) -> None:
        plans = plan_columns(table.schema)
        columns = ", ".join(quote_ident(plan.name) for plan in plans)
        marks = ", ".join("?" for _ in plans)
        sql = f"INSERT INTO {target} ({columns}) VALUES ({marks})"
        for offset in range(0, table.num_rows, _WRITE_BATCH_ROWS):
            chunk = table.slice(offset, _WRITE_BATCH_ROWS)
            values = [plan.values(column) for plan, column in zip(plans, chunk.columns, strict=True)]
            try:
                con.executemany(sql, zip(*values, strict=True))
            except OverflowError as exc:  # an integer beyond SQLite's signed 64 bits
                raise sqlite3.DataError(f"{exc} (SQLite integers are signed 64-bit)") from exc

    @hookimpl
    def data_tables(self) -> list[str]:
        """Names of the readable tables and views, sorted case-insensitively."""
        with self._connect("listing tables", write=False) as con:
            return _Catalog(con).listing()

    @hookimpl
    def data_check(self) -> CheckResult:
        """Open the database (creating it if missing) and count its tables. Never raises."""

        def verdict(ok: bool, message: str, fix: str = "") -> CheckResult:
            return CheckResult(layer="data", adapter=ADAPTER_NAME, ok=ok, message=message, fix=fix)

        created = not self.path.exists()
        try:
            with self._connect("creating the database", write=created):
                pass
            with self._connect("checking the database", write=False) as con:
                catalog = _Catalog(con)
        except DatabaseLocked as exc:
            return verdict(False, str(exc), "close other programs using the database, then retry")
        except (DataError, OSError, sqlite3.Error) as exc:
            return verdict(
                False,
                f"cannot open or create the SQLite database {self.path}: {exc}",
                "make its directory writable, or set data.path in the stack profile to a writable file",
            )
        return verdict(
            True,
            f"SQLite {sqlite3.sqlite_version}, database {self._shown()}"
            f"{' (created)' if created else ''}, tables: {len(catalog.names)}",
        )

    @hookimpl
    def data_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Lock conflicts (SQLite's "database is locked"), raised as :class:`DatabaseLocked`."""
        return (DatabaseLocked,)

    @hookimpl
    def data_close(self) -> None:
        """Nothing to release: connections live only as long as one operation."""
