"""The ``snowflake`` data adapter: tables in a Snowflake database and schema.

Reads and queries come back as Arrow through the connector's ``fetch_arrow_all`` (Snowflake's
Arrow result format, no row-by-row conversion). Each read is recorded as a
:class:`~lamina.models.DataSnapshot` whose handle says how to repeat it with time travel::

    {"query_id": "01b2...", "at": "2026-11-30T02:19:44.779339+00:00", "version": "..."}

``SELECT ... FROM t AT(STATEMENT => '<query_id>')`` (or ``AT(TIMESTAMP => '<at>'::timestamp_tz)``)
reads the same rows again while the table's time-travel retention lasts. ``version`` identifies
the data: for a table, its ``LAST_ALTERED``, row count and bytes; for a query, the content
version of its result (:func:`lamina.data_tools.digest_table`, as the DuckDB adapter hashes
rows). Two reads with equal versions saw the same data.

Writes (``replace`` or ``append``) load the rows into a staging table first (a transient table
named ``_LAMINA_STAGE_...``, dropped afterwards and never listed; a crash mid-write may leave
one behind), then change the target in one statement (``CREATE OR REPLACE TABLE ... AS SELECT``
or ``INSERT ... SELECT``), so a failed load leaves the target as it was. Rows reach the staging
table through an internal stage (Parquet files, ``PUT`` + ``COPY INTO``) for large tables, or
through batched multi-row ``INSERT`` with bound parameters for small ones and for servers
without stages (``write_method`` chooses; ``auto`` falls back to inserts when staging fails).

Names: Snowflake folds unquoted identifiers to upper case. A lower-case name (``people``,
``score``) is written unquoted, so plain SQL finds it (``SELECT score FROM people``); any other
name is quoted and kept exactly. With ``lowercase_names`` (the default) upper-case simple names
come back lower-case, so a table written as ``people`` with column ``score`` reads back with the
names it was written with, as on every other stack.

Secrets never come from the profile: the password from ``SNOWFLAKE_PASSWORD``, an OAuth token
from ``SNOWFLAKE_TOKEN``, a private key's passphrase from ``SNOWFLAKE_PRIVATE_KEY_FILE_PWD``, or
everything from a named connection of the connector's own ``connections.toml``
(``connection_name``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from lamina.data_tools import (
    digest_table,
    query_result,
    quote_ident,
    read_result,
    table_to_write,
    write_snapshot,
)
from lamina.errors import DataError, LaminaError, TransientError
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import AdapterInfo, AdapterSettings, CheckResult, DataResult, DataSnapshot
from pydantic import ConfigDict, Field

if TYPE_CHECKING:
    import pyarrow as pa

ADAPTER_NAME = "snowflake"
STAGING_PREFIX = "_LAMINA_STAGE_"
_SIMPLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
_READING = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "VALUES", "TABLE", "LIST"})
_COMMENTS = re.compile(r"(--[^\n]*\n?)|(/\*.*?\*/)", re.S)
_MISSING_OBJECT = ("002003", "does not exist")
_PASSWORD_ENV = "SNOWFLAKE_PASSWORD"
_TOKEN_ENV = "SNOWFLAKE_TOKEN"
_KEY_PASSPHRASE_ENV = "SNOWFLAKE_PRIVATE_KEY_FILE_PWD"


class SnowflakeSettings(AdapterSettings):
    """Settings of the ``snowflake`` data adapter (the ``[data]`` table of a profile)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    account: str | None = Field(default=None, description="account identifier, e.g. 'myorg-myaccount'")
    user: str | None = None
    role: str | None = None
    warehouse: str | None = Field(default=None, description="the virtual warehouse queries run on")
    database: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    authenticator: str | None = Field(
        default=None, description="'snowflake' (password), 'externalbrowser', 'SNOWFLAKE_JWT', 'oauth'..."
    )
    connection_name: str | None = Field(
        default=None, description="a connection of the connector's connections.toml; holds the secrets"
    )
    private_key_file: str | None = Field(default=None, description="key-pair authentication: the key's path")
    host: str | None = Field(default=None, description="override the host (a private link, an emulator)")
    port: int | None = None
    protocol: Literal["https", "http"] | None = None
    login_timeout: int = Field(default=60, ge=1)
    network_timeout: int | None = Field(default=None, ge=1)
    query_tag: str = "lamina"
    write_method: Literal["auto", "stage", "insert"] = Field(
        default="auto", description="how rows reach Snowflake: PUT+COPY through a stage, or bound INSERTs"
    )
    stage_threshold_rows: int = Field(default=50_000, ge=0, description="'auto' stages tables this large")
    insert_batch_rows: int = Field(default=2_000, ge=1, description="rows per INSERT statement")
    lowercase_names: bool = Field(default=True, description="return upper-case simple names in lower case")



class SnowflakeTransient(DataError, TransientError):
    """Snowflake was briefly unreachable or busy; the layer facade retries."""


def _import_connector() -> Any:
    try:
        import snowflake.connector
    except ImportError as exc:
        raise LaminaError(
            f"the snowflake data adapter needs snowflake-connector-python ({exc}): pip install 'lamina[aws]'"
        ) from exc
    return snowflake.connector


def _first_keyword(sql: str) -> str:
    text = _COMMENTS.sub(" ", sql).lstrip(" \t\r\n(")
    match = re.match(r"[A-Za-z]+", text)
    return match.group(0).upper() if match else ""


def snowflake_type(field: pa.Field) -> str:
    """The Snowflake column type for an Arrow field; nested types are refused with a fix."""
    import pyarrow as pa
    import pyarrow.types as t

    typ = field.type
    if t.is_dictionary(typ):
        typ = typ.value_type
    if t.is_boolean(typ):
        return "BOOLEAN"
    if t.is_integer(typ):
        return "NUMBER(38,0)"
    if t.is_floating(typ):
        return "FLOAT"
    if t.is_decimal(typ):
        return f"NUMBER({min(typ.precision, 38)},{typ.scale})"
    if t.is_string(typ) or t.is_large_string(typ) or t.is_null(typ) or str(typ) == "string_view":
        return "VARCHAR"
    if t.is_binary(typ) or t.is_large_binary(typ) or t.is_fixed_size_binary(typ):
        return "BINARY"
    if t.is_date(typ):
        return "DATE"
    if t.is_timestamp(typ):
        digits = {"s": 0, "ms": 3, "us": 6, "ns": 9}[typ.unit]
        return f"TIMESTAMP_TZ({digits})" if typ.tz else f"TIMESTAMP_NTZ({digits})"
    if t.is_time(typ):
        return "TIME(9)"
    if isinstance(typ, pa.DataType):
        raise DataError(
            f"column {field.name!r} has the type {typ}, which data_write cannot store in Snowflake yet: "
            "convert it first (nested values to a JSON string column, durations to numbers)."
        )
    raise DataError(f"column {field.name!r}: unsupported type {typ}")


def _bindable(column: pa.ChunkedArray) -> list[Any]:
    """Python values to bind; dates, times and decimals as text, which Snowflake casts exactly to
    the column's type (emulators misread the connector's epoch dates and FIXED decimals)."""
    import pyarrow.types as t

    values = column.to_pylist()
    typ = column.type.value_type if t.is_dictionary(column.type) else column.type
    if t.is_temporal(typ) and not t.is_duration(typ):
        return [None if v is None else v.isoformat() for v in values]
    if t.is_decimal(typ):
        return [None if v is None else str(v) for v in values]
    return values


class SnowflakeData:
    """Data-layer plugin over one Snowflake database and schema; see the module docstring."""

    def __init__(self, settings: SnowflakeSettings, context: AdapterContext) -> None:
        self.settings = settings
        self.context = context
        self._conn: Any = None
        self._where: tuple[str, str] | None = None
        self._lock = threading.RLock()
        self._staging_works = settings.write_method != "insert"

    # -- connection ------------------------------------------------------------------------

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments for ``snowflake.connector.connect``: settings, then secrets from the environment.

        :raises DataError: nothing says how to authenticate (the message says what to set).
        """
        s = self.settings
        args: dict[str, Any] = {
            "application": "lamina",
            "paramstyle": "qmark",
            "login_timeout": s.login_timeout,
            "session_parameters": {"QUERY_TAG": s.query_tag, "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        }
        if s.connection_name:
            args["connection_name"] = s.connection_name
        for key, value in (
            ("account", s.account),
            ("user", s.user),
            ("role", s.role),
            ("warehouse", s.warehouse),
            ("database", s.database),
            ("schema", s.schema_),
            ("authenticator", s.authenticator),
            ("private_key_file", s.private_key_file),
            ("host", s.host),
            ("port", s.port),
            ("protocol", s.protocol),
            ("network_timeout", s.network_timeout),
        ):
            if value is not None:
                args[key] = value
        auth = (s.authenticator or "snowflake").lower()
        if os.environ.get(_PASSWORD_ENV):
            args["password"] = os.environ[_PASSWORD_ENV]
        if os.environ.get(_TOKEN_ENV):
            args["token"] = os.environ[_TOKEN_ENV]
        if s.private_key_file and os.environ.get(_KEY_PASSPHRASE_ENV):
            args["private_key_file_pwd"] = os.environ[_KEY_PASSPHRASE_ENV]
        if not s.connection_name:
            if not s.account:
                raise DataError(
                    "the snowflake data adapter has no account: set `account` in the profile's [data] table "
                    "(SNOWFLAKE_ACCOUNT for the built-in aws-sagemaker profile), or `connection_name`."
                )
            if auth == "snowflake" and not s.private_key_file and "password" not in args:
                raise DataError(
                    f"no Snowflake password for user {s.user!r}: export {_PASSWORD_ENV} (profiles hold no "
                    "secrets), use key-pair auth (`private_key_file`, authenticator = 'SNOWFLAKE_JWT'), "
                    "or name a connection of ~/.snowflake/connections.toml with `connection_name`."
                )
        return args

    def _connect(self) -> Any:
        connector = _import_connector()
        args = self.connect_args()
        where = args.get("host") or f"{args.get('account')}.snowflakecomputing.com"
        try:
            return connector.connect(**args)
        except (connector.errors.OperationalError, connector.errors.InterfaceError) as exc:
            raise SnowflakeTransient(f"cannot reach Snowflake at {where}: {exc}") from exc
        except connector.errors.Error as exc:  # a refused login: retrying will not help
            raise DataError(
                f"cannot log in to Snowflake at {where} as {args.get('user')!r}: {exc}. Check the account, "
                f"user and {_PASSWORD_ENV} (or the authenticator), then run `lamina stack check`."
            ) from exc

    @property
    def conn(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            self._conn = self._connect()
            self._where = None
        return self._conn

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        with self._lock:
            cursor = self.conn.cursor()
            try:
                yield cursor
            finally:
                cursor.close()

    def _error(self, exc: BaseException, what: str, sql: str = "") -> LaminaError:
        connector = _import_connector()
        errors = connector.errors
        if isinstance(exc, errors.OperationalError | errors.InterfaceError | errors.ServiceUnavailableError):
            broken, self._conn = self._conn, None  # reconnect on the retry
            if broken is not None:
                try:
                    broken.close()
                except Exception:  # it is broken already; closing is a courtesy
                    pass
            return SnowflakeTransient(f"{what}: Snowflake was unreachable ({exc}); retrying may help")
        shown = f"\n  sql: {sql}" if sql else ""
        return DataError(f"{what}: {exc}{shown}")

    # -- names -----------------------------------------------------------------------------

    def ident(self, name: str) -> str:
        """A name as SQL: lower-case simple names unquoted (folded to upper case), others quoted."""
        if not isinstance(name, str) or not name:
            raise DataError(f"table name {name!r} is not allowed: pass a non-empty string")
        parts = name.split(".") if all(_SIMPLE.match(p) for p in name.split(".")) else [name]
        out = []
        for part in parts:
            if _SIMPLE.match(part) and (
                part == part.upper() or (self.settings.lowercase_names and part == part.lower())
            ):
                out.append(part)
            else:
                out.append(quote_ident(part))
        return ".".join(out)

    def stored_name(self, name: str) -> str:
        """How Snowflake stores one unqualified name (upper case for unquoted ones)."""
        ident = self.ident(name)
        return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident.upper()

    def shown_name(self, stored: str) -> str:
        if self.settings.lowercase_names and _SIMPLE.match(stored) and stored == stored.upper():
            return stored.lower()
        return stored

    def _shown_columns(self, table: pa.Table) -> pa.Table:
        names = [self.shown_name(n) for n in table.column_names]
        return table.rename_columns(names) if names != table.column_names else table

    # -- reading ---------------------------------------------------------------------------

    def _fetch(self, cursor: Any) -> pa.Table:
        """The cursor's result as Arrow: the Arrow result format, or (SHOW, DESCRIBE) its JSON rows."""
        import pyarrow as pa

        connector = _import_connector()
        try:
            table = cursor.fetch_arrow_all(force_return_table=True)
        except connector.errors.NotSupportedError:
            names = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
            table = pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})
        return self._shown_columns(table)

    def _run(self, sql: str, parameters: list[Any] | None, what: str) -> tuple[pa.Table, str]:
        connector = _import_connector()
        with self._cursor() as cur:
            try:
                cur.execute(sql, parameters or None)
                table = self._fetch(cur)
            except connector.errors.Error as exc:
                raise self._error(exc, what, sql) from exc
            return table, str(cur.sfqid or "")

    def _scalar_rows(self, sql: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]:
        connector = _import_connector()
        with self._cursor() as cur:
            try:
                cur.execute(sql, parameters or None)
                return list(cur.fetchall())
            except connector.errors.Error as exc:
                raise self._error(exc, "a Snowflake catalogue query failed", sql) from exc

    def _location(self) -> tuple[str, str]:
        """The current database and schema, as Snowflake stores them (asked once per connection)."""
        _ = self.conn  # (re)connecting forgets the cached location
        if self._where is not None:
            return self._where
        row = self._scalar_rows("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()")[0]
        if not row[0] or not row[1]:
            raise DataError(
                "the Snowflake session has no current database or schema: set `database` and `schema` in "
                "the profile's [data] table (SNOWFLAKE_DATABASE / SNOWFLAKE_SCHEMA)."
            )
        self._where = (str(row[0]), str(row[1]))
        return self._where

    def _table_state(self, stored: str) -> tuple[str, int] | None:
        """``(version, rows)`` of a table from INFORMATION_SCHEMA, or ``None`` when it does not exist."""
        database, schema = self._location()
        rows = self._scalar_rows(
            f"SELECT ROW_COUNT, LAST_ALTERED, BYTES FROM {self.ident(database)}.INFORMATION_SCHEMA.TABLES "
            "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            [schema, stored],
        )
        if not rows:
            return None
        count, altered, size = rows[0]
        altered_text = altered.isoformat() if isinstance(altered, dt.datetime) else str(altered)
        return f"{altered_text}|rows={count}|bytes={size}", int(count or 0)

    def _stored_tables(self) -> list[str]:
        database, schema = self._location()
        rows = self._scalar_rows(
            f"SELECT TABLE_NAME FROM {self.ident(database)}.INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? "
            "ORDER BY TABLE_NAME",
            [schema],
        )
        return [str(r[0]) for r in rows if not str(r[0]).upper().startswith(STAGING_PREFIX)]

    @staticmethod
    def _now() -> str:
        return dt.datetime.now(dt.UTC).isoformat()

    @hookimpl
    def data_query(self, sql: str, parameters: list[Any] | None) -> DataResult:
        """Run reading SQL (``SELECT``, ``WITH``, ``SHOW``, ``DESCRIBE``...); ``?`` binds ``parameters``.

        :raises DataError: a writing statement, bad SQL or an unknown table (Snowflake's message).
        """
        keyword = _first_keyword(sql)
        if keyword not in _READING:
            raise DataError(
                f"data_query only reads, but this SQL starts with {keyword or 'nothing'}: {sql!r}. "
                "Write tables with data_write (current.data.write)."
            )
        at = self._now()
        table, query_id = self._run(sql, parameters, "the Snowflake query failed")
        handle = {"query_id": query_id, "at": at, "version": digest_table(table)}
        return query_result(ADAPTER_NAME, sql, table, handle, parameters)

    @hookimpl
    def data_read(self, name: str) -> DataResult:
        """Read a whole table. :raises DataError: no such table (the message lists the schema's tables)."""
        connector = _import_connector()
        ident = self.ident(name)
        at = self._now()
        with self._cursor() as cur:
            try:
                cur.execute(f"SELECT * FROM {ident}")
                table = self._fetch(cur)
                query_id = str(cur.sfqid or "")
            except connector.errors.ProgrammingError as exc:
                if any(marker in str(exc) for marker in _MISSING_OBJECT):
                    raise self._unknown_table(name) from exc
                raise self._error(exc, f"reading table {name!r} failed") from exc
            except connector.errors.Error as exc:
                raise self._error(exc, f"reading table {name!r} failed") from exc
        state = self._table_state(self.stored_name(name)) if "." not in ident else None
        handle: dict[str, Any] = {"query_id": query_id, "at": at}
        handle["version"] = state[0] if state else digest_table(table)
        return read_result(ADAPTER_NAME, name, table, handle)

    def _unknown_table(self, name: str) -> DataError:
        try:
            database, schema = self._location()
            tables = ", ".join(self.shown_name(t) for t in self._stored_tables()) or "none"
            where = f"{database}.{schema}"
        except LaminaError:
            tables, where = "(could not list them)", "the current schema"
        return DataError(
            f"Snowflake has no table {name!r} in {where}. Tables there: {tables}. Write it first with "
            "data_write, or check `database`/`schema` in the profile's [data] table."
        )

    # -- writing ---------------------------------------------------------------------------

    @hookimpl
    def data_write(self, name: str, table: pa.Table, mode: str) -> DataSnapshot:
        """Write ``table``: ``replace`` (create or replace) or ``append`` (creates a missing table,
        matches columns by name). The target changes in one statement; a failed write changes nothing.

        :return: the snapshot after the write (its ``version`` equals what a later read reports).
        :raises DataError: bad mode, name or column type, or Snowflake refused the rows.
        """
        table = table_to_write(name, table, mode)
        if "." in name or self.stored_name(name).upper().startswith(STAGING_PREFIX):
            raise DataError(
                f"table name {name!r} is not allowed: write unqualified names (the profile chooses database "
                f"and schema), not starting with {STAGING_PREFIX.lower()}"
            )
        columns = [(self.ident(f.name), snowflake_type(f)) for f in table.schema]
        target = self.ident(name)
        stored = self.stored_name(name)
        staging = f"{STAGING_PREFIX}{uuid.uuid4().hex[:12].upper()}"
        connector = _import_connector()
        with self._lock:
            try:
                self._execute(
                    f"CREATE TRANSIENT TABLE {staging} ({', '.join(f'{c} {t}' for c, t in columns)})"
                )
                self._load(staging, table, [c for c, _ in columns])
                names = ", ".join(c for c, _ in columns)
                exists = self._table_state(stored) is not None
                if mode == "replace" or not exists:
                    query_id = self._execute(
                        f"CREATE OR REPLACE TABLE {target} AS SELECT {names} FROM {staging}"
                    )
                else:
                    query_id = self._execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM {staging}")
            except connector.errors.Error as exc:
                incoming = ", ".join(f"{c} {t}" for c, t in columns)
                raise self._error(
                    exc,
                    f"writing table {name!r} ({mode}) failed, the table was not changed (columns: {incoming})",
                ) from exc
            finally:
                try:
                    self._execute(f"DROP TABLE IF EXISTS {staging}")
                except Exception:  # the write's outcome stands; a stray staging table is never listed
                    pass
            state = self._table_state(stored)
        version, rows = state if state else ("", table.num_rows)
        handle = {"query_id": query_id, "at": self._now(), "version": version}
        return write_snapshot(ADAPTER_NAME, name, handle, rows)

    def _execute(self, sql: str, parameters: Any = None) -> str:
        with self._cursor() as cur:
            cur.execute(sql, parameters)
            return str(cur.sfqid or "")

    def _load(self, staging: str, table: pa.Table, columns: list[str]) -> None:
        """Put the rows into the staging table: through a stage when large, else bound inserts."""
        connector = _import_connector()
        method = self.settings.write_method
        use_stage = method == "stage" or (
            method == "auto" and self._staging_works and table.num_rows >= self.settings.stage_threshold_rows
        )
        if use_stage:
            try:
                self._load_staged(staging, table, columns)
                return
            except connector.errors.Error:
                if method == "stage":
                    raise
                self._staging_works = False  # no stages here (an emulator): inserts from now on
                self._execute(f"DELETE FROM {staging}")
        self._load_inserts(staging, table, columns)

    def _load_inserts(self, staging: str, table: pa.Table, columns: list[str]) -> None:
        """Multi-row ``INSERT ... VALUES (?, ...), (?, ...)`` statements with bound parameters.

        One statement per batch rather than ``executemany``: Snowflake runs either as one
        statement, but emulators run an array binding row by row.
        """
        head = f"INSERT INTO {staging} ({', '.join(columns)}) VALUES "
        row = "(" + ", ".join("?" for _ in columns) + ")"
        step = max(1, min(self.settings.insert_batch_rows, 16_384, 100_000 // max(1, len(columns))))
        for start in range(0, table.num_rows, step):
            chunk = table.slice(start, step)
            values = [_bindable(column) for column in chunk.columns]
            params = [value for record in zip(*values, strict=True) for value in record]
            self._execute(head + ", ".join(row for _ in range(chunk.num_rows)), params)

    def _load_staged(self, staging: str, table: pa.Table, columns: list[str]) -> None:
        import pyarrow.parquet as pq

        stage = f"{STAGING_PREFIX}S{uuid.uuid4().hex[:12].upper()}"
        with tempfile.TemporaryDirectory(prefix="lamina-snowflake-") as tmp:
            path = os.path.join(tmp, "rows.parquet")
            pq.write_table(table, path, compression="snappy")
            self._execute(f"CREATE TEMPORARY STAGE {stage}")
            try:
                self._execute(f"PUT 'file://{path}' @{stage} AUTO_COMPRESS=FALSE PARALLEL=4 OVERWRITE=TRUE")
                self._execute(
                    f"COPY INTO {staging} FROM @{stage} FILE_FORMAT=(TYPE=PARQUET USE_LOGICAL_TYPE=TRUE) "
                    "MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE PURGE=TRUE ON_ERROR=ABORT_STATEMENT"
                )
            finally:
                try:
                    self._execute(f"DROP STAGE IF EXISTS {stage}")
                except Exception:
                    pass
        state = self._scalar_rows(f"SELECT COUNT(*) FROM {staging}")
        if not state or int(state[0][0]) != table.num_rows:
            raise _import_connector().errors.ProgrammingError(
                f"the stage load put {state[0][0] if state else 0} of {table.num_rows} rows into {staging}"
            )

    # -- catalogue, health -----------------------------------------------------------------

    @hookimpl
    def data_tables(self) -> list[str]:
        """Tables and views of the current database and schema, sorted."""
        return sorted((self.shown_name(t) for t in self._stored_tables()), key=str.lower)

    @hookimpl
    def data_check(self) -> CheckResult:
        """Log in, then ``USE WAREHOUSE`` and confirm it exists, then the database and schema. Never raises."""

        def verdict(ok: bool, message: str, fix: str = "") -> CheckResult:
            return CheckResult(layer="data", adapter=ADAPTER_NAME, ok=ok, message=message, fix=fix)

        s = self.settings
        try:
            connector = _import_connector()
        except LaminaError as exc:
            return verdict(False, str(exc), "pip install 'lamina[aws]'")
        try:
            self.connect_args()
        except DataError as exc:
            return verdict(
                False, str(exc), f"export {_PASSWORD_ENV}, or set authenticator/connection_name in [data]"
            )
        try:
            conn = self.conn
        except LaminaError as exc:
            return verdict(
                False,
                f"login failed: {exc}",
                f"check account {s.account!r}, user {s.user!r} and {_PASSWORD_ENV} (or the authenticator)",
            )
        who = f"{s.user or '?'}@{s.account or s.connection_name or '?'}"
        if not s.warehouse:
            return verdict(
                False,
                f"logged in as {who}, but no warehouse is configured, so queries cannot run",
                "set `warehouse` in the profile's [data] table (SNOWFLAKE_WAREHOUSE)",
            )
        try:
            self._execute(f"USE WAREHOUSE {self.ident(s.warehouse)}")
            rows = self._scalar_rows(f"SHOW WAREHOUSES LIKE '{s.warehouse.replace(chr(39), '')}'")
            visible = [str(r[0]) for r in rows]
        except connector.errors.Error as exc:
            visible, error = [], str(exc)
        else:
            error = ""
        if self.stored_name(s.warehouse) not in visible and s.warehouse not in visible:
            seen = ", ".join(visible) or "none"
            return verdict(
                False,
                f"the warehouse {s.warehouse!r} does not exist or role {s.role or '(default)'} may not use it"
                + (f" ({error})" if error else f"; warehouses visible: {seen}"),
                "set `warehouse` in [data] (SNOWFLAKE_WAREHOUSE) to an existing warehouse, or grant USAGE on it to the role",
            )
        try:
            database, schema = self._location()
            count = len(self._stored_tables())
        except LaminaError as exc:
            return verdict(
                False,
                f"the database/schema {s.database}.{s.schema_} cannot be used: {exc}",
                "create them, or set `database` and `schema` in [data] (SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA)",
            )
        conn_host = getattr(conn, "host", "") or ""
        return verdict(
            True,
            f"logged in as {who} ({conn_host}); warehouse {s.warehouse}; {database}.{schema} has {count} tables",
        )

    @hookimpl
    def data_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Dropped connections and Snowflake's retryable HTTP answers (503, 504, 429...)."""
        try:
            errors = _import_connector().errors
        except LaminaError:
            return (SnowflakeTransient,)
        return (
            SnowflakeTransient,
            errors.OperationalError,
            errors.ServiceUnavailableError,
            errors.GatewayTimeoutError,
            errors.BadGatewayError,
            errors.RequestTimeoutError,
            errors.TooManyRequests,
            errors.OtherHTTPRetryableError,
        )

    @hookimpl
    def data_close(self) -> None:
        """Close the connection (temporary stages go with the session)."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None


ADAPTER = AdapterInfo(
    layer="data",
    name=ADAPTER_NAME,
    settings=SnowflakeSettings,
    factory=SnowflakeData,
    extra="aws",
    requires=("snowflake.connector", "pyarrow"),
    description="Snowflake tables: Arrow reads, staged or bound writes, time-travel snapshots",
)
