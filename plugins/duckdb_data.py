"""The ``local`` stack's data adapter: DuckDB over a project-local database file and data files.

Tables come from two places:

* the database file (``database``, by default ``.lamina/data/warehouse.duckdb`` in the project),
  which holds every table written through :meth:`DuckDBData.data_write`, and any table created
  there by other tools;
* ``*.parquet`` and ``*.csv`` files directly inside the ``data_dirs`` (by default ``data/``),
  exposed read-only as tables named by their file stem (``data/iris.csv`` -> ``iris``). When two
  files share a stem the one in the earlier directory wins (within a directory, ``.csv`` sorts
  before ``.parquet``); a database table of the same name hides a file table.

Concurrency: DuckDB lets one read-write process, or many read-only processes, open a database
file. Several task processes (a foreach) read and write at once, so every operation opens a
short-lived connection under an ``fcntl.flock`` on ``<database>.lock``: shared for reads (the
connection is ``read_only``), exclusive for writes. Nothing is held between operations, and the
lock is released however an operation ends. A process outside Lamina that holds the database
(a DuckDB shell) makes operations fail with :class:`DatabaseLocked`, which the layer facade
retries with backoff.

Data versions (for reproducibility) are content hashes, ``sha256:<hex>``, made with
:mod:`lamina.data_tools` as in every data adapter that uses it:

* a file's version is the sha256 of its bytes, cached by (path, size, mtime_ns) in
  ``.lamina/data/file-hashes.json`` so that a big file is not re-hashed on every read;
* a database table's version is recorded in ``_lamina_versions`` in the same transaction as
  each write: for ``replace`` the hash of the written rows (an Arrow IPC stream cut into fixed
  batches, so the chunking of the input does not matter), for ``append`` the hash of the
  previous version and the appended rows' hash;
* a table created outside Lamina, or whose row count no longer matches its record, is hashed
  from its content when read. A change made outside Lamina that keeps the row count (an
  ``UPDATE``) is not detected: write through Lamina to keep versions exact.

DuckDB and pyarrow are imported when the adapter first touches data, so importing this module
(at stack resolution) stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamina.data_tools import (
    DIGEST_ROWS,
    RESERVED_PREFIX,
    chain_versions,
    check_table_name,
    digest_batches,
    digest_table,
    query_result,
    quote_ident,
    read_result,
    table_to_write,
    write_snapshot,
)
from lamina.errors import DataError, TransientError
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import AdapterInfo, AdapterSettings, CheckResult, DataResult, DataSnapshot
from pydantic import Field

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

ADAPTER_NAME = "duckdb"
VERSIONS_TABLE = "_lamina_versions"
FILE_SUFFIXES = (".csv", ".parquet")
HASH_CACHE = Path(".lamina") / "data" / "file-hashes.json"

_READING_STATEMENTS = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL", "MULTI"})
"""Statement types ``data_query`` runs (``MULTI`` is how DuckDB parses ``PIVOT``)."""
_INCOMING = "_lamina_incoming"


class DuckDBSettings(AdapterSettings):
    """Settings of the ``duckdb`` data adapter (the ``[data]`` table of a stack profile)."""

    database: str = Field(
        default=".lamina/data/warehouse.duckdb",
        description="database file, relative to the project directory; created on the first write",
    )
    data_dirs: list[str] = Field(
        default_factory=lambda: ["data"],
        description="directories whose *.parquet and *.csv files are read-only tables; missing ones are skipped",
    )
    threads: int | None = Field(default=None, ge=1, description="DuckDB worker threads; default: all cores")
    lock_timeout: float = Field(
        default=300.0,
        gt=0,
        description="seconds to wait for another Lamina process's lock before raising DatabaseLocked",
    )


class DatabaseLocked(DataError, TransientError):
    """The database file is locked by another process; worth retrying."""


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _import_duckdb() -> Any:
    try:
        import duckdb
    except ImportError as exc:  # the adapter registry normally catches this earlier
        raise DataError("the duckdb data adapter needs the 'duckdb' package: pip install duckdb") from exc
    return duckdb


def _to_arrow(relation: Any) -> pa.Table:
    """A DuckDB relation's result as an Arrow table, without row-by-row conversion."""
    for method in ("to_arrow_table", "fetch_arrow_table", "arrow"):  # duckdb 2.x, then 1.x spellings
        fetch = getattr(relation, method, None)
        if fetch is not None:
            return fetch()
    raise DataError(f"this duckdb version ({_import_duckdb().__version__}) cannot return Arrow tables")


def _arrow_reader(relation: Any, batch_rows: int) -> pa.RecordBatchReader:
    """A DuckDB relation's result as a stream of Arrow batches."""
    for method in ("to_arrow_reader", "fetch_arrow_reader", "record_batch"):
        fetch = getattr(relation, method, None)
        if fetch is not None:
            return fetch(batch_rows)
    raise DataError(f"this duckdb version ({_import_duckdb().__version__}) cannot stream Arrow batches")


def _same_file(entry: dict[str, Any] | None, stat: os.stat_result) -> bool:
    return (
        entry is not None and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns
    )


class FileHashCache:
    """sha256 of files, remembered by (path, size, mtime_ns) in a JSON file.

    Several processes may share the cache file: it is replaced atomically, and a lost update
    only costs a re-hash. The cache is an optimisation, so a cache file that cannot be read or
    written is ignored.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, dict[str, Any]] | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def version(self, file: Path) -> str:
        stat = file.stat()
        key = str(file)
        if self._entries is None:
            self._entries = self._load()
        hit = self._entries.get(key)
        if not _same_file(hit, stat):
            hit = self._load().get(key)  # another process may have hashed it meanwhile
        if _same_file(hit, stat):
            assert hit is not None
            self._entries[key] = hit
            return str(hit["version"])
        with file.open("rb") as handle:
            version = "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()
        self._entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "version": version}
        self._save()
        return version

    def _save(self) -> None:
        assert self._entries is not None
        merged = {**self._load(), **self._entries}
        merged = {path: entry for path, entry in merged.items() if os.path.exists(path)}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        except OSError:
            return
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(merged, out, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


@contextlib.contextmanager
def file_lock(path: Path, *, exclusive: bool, timeout: float) -> Iterator[None]:
    """Hold ``flock`` on ``path`` (created if missing): shared or exclusive, released on exit.

    :raises DatabaseLocked: the lock was not granted within ``timeout`` seconds.
    """
    import fcntl  # POSIX only; imported here so that the module imports everywhere

    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        operation = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    kind = "exclusive" if exclusive else "shared"
                    raise DatabaseLocked(
                        f"waited {timeout:g}s for a {kind} lock on {path}: another Lamina process is "
                        "still using the DuckDB database. It is retried; if it persists, look for a "
                        "hung task, or raise data.lock_timeout in the stack profile."
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@dataclass(frozen=True)
class FileTable:
    name: str
    path: Path

    def view_sql(self) -> str:
        reader = "read_parquet" if self.path.suffix.lower() == ".parquet" else "read_csv_auto"
        return (
            f"CREATE OR REPLACE TEMP VIEW {quote_ident(self.name)} AS "
            f"SELECT * FROM {reader}({_quote_literal(str(self.path))})"
        )


@dataclass
class Catalog:
    """What one connection can read. Keys are lower-case: DuckDB names are case-insensitive."""

    db: dict[str, str] = field(default_factory=dict)
    files: dict[str, FileTable] = field(default_factory=dict)
    shadowed: list[FileTable] = field(default_factory=list)
    recorded: dict[str, tuple[str, int]] = field(default_factory=dict)
    """``_lamina_versions``: lower-case name -> (version, rows)."""

    def names(self) -> list[str]:
        return sorted([*self.db.values(), *(f.name for f in self.files.values())], key=str.lower)


class DuckDBData:
    """Data-layer plugin: every hook of :class:`lamina.hookspecs.DataSpec`, over DuckDB."""

    def __init__(self, settings: DuckDBSettings, context: AdapterContext) -> None:
        self.settings = settings
        self.project_dir = Path(context.project_dir).resolve()
        self.database = self._in_project(settings.database)
        self.lock_path = self.database.with_name(self.database.name + ".lock")
        self.data_dirs = [self._in_project(d) for d in settings.data_dirs]
        self.hashes = FileHashCache(self.project_dir / HASH_CACHE)
        self._config: dict[str, Any] = {} if settings.threads is None else {"threads": settings.threads}

    def _in_project(self, path: str) -> Path:
        return (self.project_dir / Path(path).expanduser()).resolve()

    def _shown(self, path: Path) -> str:
        """A path as the user wrote it: relative to the project when inside it."""
        try:
            return str(path.relative_to(self.project_dir))
        except ValueError:
            return str(path)

    # -- connections ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, *, write: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection under the database lock; closed, then unlocked, on exit.

        Reads of a database that does not exist yet get an in-memory connection (file tables
        only) rather than creating the file; the first write creates it.
        """
        duckdb = _import_duckdb()
        if write:
            try:
                self.database.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DataError(
                    f"cannot create {self.database.parent} for the DuckDB database: {exc}. "
                    "Set data.database in the stack profile to a writable path."
                ) from exc
        if write or self.database.exists():
            target = str(self.database)
            lock: contextlib.AbstractContextManager[None] = file_lock(
                self.lock_path, exclusive=write, timeout=self.settings.lock_timeout
            )
        else:  # no database yet: the file tables are all there is, and nothing to lock
            target, lock = ":memory:", contextlib.nullcontext()
        with lock:
            try:
                con = duckdb.connect(
                    target, read_only=target != ":memory:" and not write, config=self._config
                )
            except duckdb.Error as exc:
                if "lock" in str(exc).lower():
                    raise DatabaseLocked(
                        f"the DuckDB database {self.database} is held by a process outside Lamina "
                        f"({exc}). Close it (a DuckDB shell or notebook) and retry."
                    ) from exc
                raise DataError(f"cannot open the DuckDB database {self.database}: {exc}") from exc
            try:
                yield con
            finally:
                con.close()

    def _file_tables(self) -> dict[str, FileTable]:
        found: dict[str, FileTable] = {}
        for directory in self.data_dirs:
            if not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                if path.suffix.lower() in FILE_SUFFIXES and path.is_file():
                    found.setdefault(path.stem.lower(), FileTable(path.stem, path))
        return found

    def _catalog(self, con: duckdb.DuckDBPyConnection) -> Catalog:
        rows = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND NOT internal AND NOT temporary "
            "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND NOT internal AND NOT temporary"
        ).fetchall()
        catalog = Catalog()
        for (name,) in rows:
            if not name.lower().startswith(RESERVED_PREFIX):
                catalog.db[name.lower()] = name
            elif name.lower() == VERSIONS_TABLE:
                recorded = con.execute(f"SELECT name, version, rows FROM {VERSIONS_TABLE}").fetchall()
                catalog.recorded = {key: (version, count) for key, version, count in recorded}
        for key, file_table in self._file_tables().items():
            if key in catalog.db:
                catalog.shadowed.append(file_table)
            else:
                catalog.files[key] = file_table
        return catalog

    def _install_views(self, con: duckdb.DuckDBPyConnection, tables: Iterable[FileTable]) -> None:
        duckdb = _import_duckdb()
        for file_table in tables:
            try:
                con.execute(file_table.view_sql())
            except duckdb.Error as exc:
                raise DataError(
                    f"cannot read {file_table.path} as table {file_table.name!r}: {exc}. "
                    "Fix or remove the file."
                ) from exc

    # -- versions ------------------------------------------------------------------------

    def _version(
        self, con: duckdb.DuckDBPyConnection, catalog: Catalog, key: str, content: pa.Table | None = None
    ) -> str:
        """The content version of a readable table (lower-case ``key``), as seen by ``con``."""
        if key in catalog.files:
            return self.hashes.version(catalog.files[key].path)
        name = quote_ident(catalog.db[key])
        recorded = catalog.recorded.get(key)
        if recorded is not None:
            if content is not None:
                rows = content.num_rows
            else:
                rows = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
            if rows == recorded[1]:
                return recorded[0]
        if content is not None:
            return digest_table(content)
        reader = _arrow_reader(con.sql(f"SELECT * FROM {name}"), DIGEST_ROWS)
        return digest_batches(reader.schema, reader)

    def _handle(
        self,
        con: duckdb.DuckDBPyConnection,
        catalog: Catalog,
        keys: Iterable[str],
        content: pa.Table | None = None,
    ) -> dict[str, Any]:
        """A snapshot handle: the versions of the tables ``keys``.

        :param content: the rows already read, when ``keys`` is that one database table.
        """
        tables: dict[str, str] = {}
        files: dict[str, str] = {}
        for key in sorted(keys):
            if key in catalog.files:
                files[catalog.files[key].name] = self._shown(catalog.files[key].path)
                tables[catalog.files[key].name] = self._version(con, catalog, key)
            else:
                tables[catalog.db[key]] = self._version(con, catalog, key, content)
        handle: dict[str, Any] = {"tables": tables}
        if files:
            handle["files"] = files
        return handle

    def _referenced(self, con: duckdb.DuckDBPyConnection, sql: str, catalog: Catalog) -> set[str]:
        """Lower-case names of the readable tables ``sql`` mentions.

        DuckDB's parser is asked first (no binding, so it works before file views exist); when
        it cannot say, every readable table is assumed, which over-reports but never misses.
        """
        duckdb = _import_duckdb()
        known = set(catalog.db) | set(catalog.files)
        names: set[str] | None = None
        try:
            tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
            if not tree.get("error"):
                names = {name.lower() for name in _base_tables(tree)}
        except (duckdb.Error, ValueError):
            pass
        if names is None:
            try:
                names = {name.lower() for name in duckdb.get_table_names(sql, connection=con)}
            except (duckdb.Error, TypeError):  # TypeError: duckdb 1.x has no connection argument
                names = known
        return names & known

    # -- errors --------------------------------------------------------------------------

    def _where(self) -> str:
        dirs = (
            ", ".join(self._shown(d) + ("" if d.is_dir() else " (missing)") for d in self.data_dirs)
            or "(none)"
        )
        return (
            f"Tables are looked for in the DuckDB database {self._shown(self.database)} (written with "
            f"data_write) and in *.parquet / *.csv files in the data directories: {dirs}."
        )

    def _available(self, catalog: Catalog) -> str:
        names = catalog.names()
        return "Available tables: " + (", ".join(names) if names else "none yet") + "."

    def _unknown_table(self, name: str, catalog: Catalog) -> DataError:
        return DataError(
            f"no table named {name!r} in the duckdb data layer. {self._available(catalog)} {self._where()} "
            f"Write it first, or put {name}.parquet or {name}.csv in a data directory."
        )

    # -- hooks ---------------------------------------------------------------------------

    @hookimpl
    def data_query(self, sql: str, parameters: list[Any] | None) -> DataResult:
        """Run reading SQL (``SELECT``, ``PIVOT``, ``EXPLAIN``...) over the database and files.

        Parameters bind to ``?`` or ``$1`` placeholders. The snapshot's handle has a version for
        every table the query reads: ``{"tables": {name: "sha256:..."}, "files": {name: path}}``.

        :raises DataError: bad SQL, a writing statement, or an unknown table (the message lists
            the available tables).
        """
        duckdb = _import_duckdb()
        import pyarrow as pa

        with self._connect(write=False) as con:
            catalog = self._catalog(con)
            try:
                kinds = [statement.type.name for statement in con.extract_statements(sql)]
            except duckdb.Error as exc:
                raise DataError(f"bad SQL for the duckdb data layer: {exc}\n  sql: {sql}") from exc
            writing = sorted(set(kinds) - _READING_STATEMENTS)
            if writing:
                raise DataError(
                    f"data_query only reads, but this SQL has a {'/'.join(writing)} statement: {sql!r}. "
                    "Write tables with data_write (stack.data.write / current.data.write)."
                )
            keys = self._referenced(con, sql, catalog)
            self._install_views(con, (catalog.files[key] for key in keys if key in catalog.files))
            try:
                relation = con.sql(sql, params=parameters or None)
                table = _to_arrow(relation) if relation is not None else pa.table({})
            except duckdb.CatalogException as exc:
                raise DataError(
                    f"the duckdb query failed: {exc}\n  sql: {sql}\n{self._available(catalog)} {self._where()}"
                ) from exc
            except duckdb.Error as exc:
                raise DataError(f"the duckdb query failed: {exc}\n  sql: {sql}") from exc
            handle = self._handle(con, catalog, keys)
        return query_result(ADAPTER_NAME, sql, table, handle, parameters)

    @hookimpl
    def data_read(self, name: str) -> DataResult:
        """Read a whole table (database table, else file table; names are case-insensitive).

        :raises DataError: no such table; the message lists the available ones and where they
            are looked for.
        """
        duckdb = _import_duckdb()
        with self._connect(write=False) as con:
            catalog = self._catalog(con)
            key = name.lower()
            if key in catalog.files:
                self._install_views(con, [catalog.files[key]])
                canonical = catalog.files[key].name
            elif key in catalog.db:
                canonical = catalog.db[key]
            else:
                raise self._unknown_table(name, catalog)
            try:
                table = _to_arrow(con.sql(f"SELECT * FROM {quote_ident(canonical)}"))
            except duckdb.Error as exc:
                raise DataError(f"reading table {canonical!r} failed: {exc}") from exc
            handle = self._handle(con, catalog, [key], content=table)
        return read_result(ADAPTER_NAME, canonical, table, handle)

    @hookimpl
    def data_write(self, name: str, table: pa.Table, mode: str) -> DataSnapshot:
        """Write ``table`` into the database: ``replace`` (create or replace) or ``append``.

        ``append`` creates a missing table and matches columns by name. The table and its
        version record change in one transaction: a failed write changes nothing.

        :param name: a SQL identifier (letters, digits, underscores; not starting with a digit
            or ``_lamina``), not the name of a file table.
        :return: the snapshot after the write: ``rows`` is the table's row count and ``handle``
            its version, as a later ``data_read`` reports it.
        :raises DataError: bad name, mode or input type, or DuckDB refused the rows.
        """
        duckdb = _import_duckdb()
        table = table_to_write(name, table, mode, check_name=check_table_name)
        file_table = self._file_tables().get(name.lower())
        if file_table is not None:
            raise DataError(
                f"table {name!r} is the read-only file {self._shown(file_table.path)}; "
                "write under another name, or remove the file."
            )
        batch_version = digest_table(table)
        with self._connect(write=True) as con:
            con.begin()
            try:
                stored, version, rows = self._write_rows(con, name, table, mode, batch_version)
                con.commit()
            except duckdb.Error as exc:
                with contextlib.suppress(duckdb.Error):
                    con.rollback()
                columns = con.execute(
                    "SELECT column_name || ' ' || data_type FROM duckdb_columns() WHERE database_name = "
                    "current_database() AND schema_name = 'main' AND lower(table_name) = ?",
                    [name.lower()],
                ).fetchall()
                existing = f"\n  table columns: {', '.join(c for (c,) in columns)}" if columns else ""
                incoming = ", ".join(f"{f.name} {f.type}" for f in table.schema)
                raise DataError(
                    f"writing table {name!r} ({mode}) to {self._shown(self.database)} failed, nothing was "
                    f"changed: {exc}{existing}\n  incoming columns: {incoming}"
                ) from exc
        return write_snapshot(ADAPTER_NAME, stored, {"tables": {stored: version}}, rows)

    def _write_rows(
        self, con: duckdb.DuckDBPyConnection, name: str, table: pa.Table, mode: str, batch_version: str
    ) -> tuple[str, str, int]:
        """Write inside the caller's transaction. :return: (stored name, new version, rows)."""
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {VERSIONS_TABLE} (name VARCHAR PRIMARY KEY, "
            "version VARCHAR NOT NULL, rows BIGINT NOT NULL, written_at TIMESTAMPTZ NOT NULL)"
        )
        catalog = self._catalog(con)
        key = name.lower()
        stored = catalog.db.get(key, name)
        target = quote_ident(stored)
        con.register(_INCOMING, table)
        if mode == "replace" or key not in catalog.db:
            con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {_INCOMING}")
            version = batch_version
        else:
            previous = self._version(con, catalog, key)
            con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {_INCOMING}")
            version = chain_versions(previous, batch_version)
        rows = con.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0]
        con.execute(f"INSERT OR REPLACE INTO {VERSIONS_TABLE} VALUES (?, ?, ?, now())", [key, version, rows])
        return stored, version, rows

    @hookimpl
    def data_tables(self) -> list[str]:
        """Names of the readable tables (database tables and views, then files), sorted."""
        with self._connect(write=False) as con:
            return self._catalog(con).names()

    @hookimpl
    def data_check(self) -> CheckResult:
        """Open the database (creating it if missing) and list the data directories. Never raises."""

        def verdict(ok: bool, message: str, fix: str = "") -> CheckResult:
            return CheckResult(layer="data", adapter=ADAPTER_NAME, ok=ok, message=message, fix=fix)

        try:
            duckdb = _import_duckdb()
        except DataError as exc:
            return verdict(False, str(exc), "pip install duckdb pyarrow")
        created = not self.database.exists()
        try:
            if created:
                with self._connect(write=True):
                    pass
            with self._connect(write=False) as con:
                catalog = self._catalog(con)
        except DatabaseLocked as exc:
            return verdict(False, str(exc), "close other programs using the database, then retry")
        except (DataError, OSError, duckdb.Error) as exc:
            return verdict(
                False,
                f"cannot open or create the DuckDB database {self.database}: {exc}",
                "make its directory writable, or set data.database in the stack profile to a writable path",
            )
        dirs = []
        for directory in self.data_dirs:
            try:
                count = sum(p.suffix.lower() in FILE_SUFFIXES and p.is_file() for p in directory.iterdir())
                dirs.append(f"{self._shown(directory)} ({count} files)")
            except FileNotFoundError:
                dirs.append(f"{self._shown(directory)} (missing)")
            except OSError as exc:
                return verdict(
                    False, f"cannot list the data directory {directory}: {exc}", "fix its permissions"
                )
        message = (
            f"DuckDB {duckdb.__version__}, database {self._shown(self.database)}"
            f"{' (created)' if created else ''}, tables: {len(catalog.db)}; "
            f"data dirs: {', '.join(dirs) or 'none'}; file tables: {len(catalog.files)}"
        )
        if catalog.shadowed:
            hidden = ", ".join(f"{self._shown(f.path)}" for f in catalog.shadowed)
            message += f"; hidden by database tables of the same name: {hidden}"
        return verdict(True, message)

    @hookimpl
    def data_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Lock conflicts: another process holds the database longer than ``lock_timeout``."""
        return (DatabaseLocked,)

    @hookimpl
    def data_close(self) -> None:
        """Nothing to release: connections and locks live only as long as one operation."""


def _base_tables(tree: Any) -> Iterator[str]:
    """Table names in a ``json_serialize_sql`` parse tree, from the ``main`` schema or unqualified."""
    if isinstance(tree, dict):
        if tree.get("type") == "BASE_TABLE" and tree.get("schema_name", "") in ("", "main"):
            yield tree.get("table_name", "")
        for value in tree.values():
            yield from _base_tables(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _base_tables(value)


ADAPTER = AdapterInfo(
    layer="data",
    name=ADAPTER_NAME,
    settings=DuckDBSettings,
    factory=DuckDBData,
    requires=("duckdb", "pyarrow"),
    description="DuckDB over a project-local database file and Parquet/CSV files",
)
