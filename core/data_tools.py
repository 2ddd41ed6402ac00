"""The toolkit of data adapters: content versions, table names, write input and snapshots.

Lamina's own data adapters use it, and so may any other (``lamina.data_tools`` is public and
meant for plugins in other distributions), so that every adapter versions, names and records
data the same way:

* **Content versions** are ``sha256:<hex>`` strings. :func:`digest_table` (and
  :func:`digest_batches` for a stream) hashes rows as an Arrow IPC stream cut into batches of
  :data:`DIGEST_ROWS` rows, so the version does not depend on how the input is chunked, and
  leaves schema metadata (such as pandas' index description) out. Equal rows give equal
  versions in every adapter that uses it. :func:`chain_versions` is the version of a table after
  an ``append``: the previous version chained with the appended rows' version, so appending
  never re-reads the table.
* **Table names**: :func:`check_table_name` accepts plain SQL identifiers
  (:data:`IDENTIFIER_RULE`) outside reserved prefixes (``_lamina`` by default, for the version
  records an adapter keeps); :func:`quote_ident` quotes a name for SQL.
* **Write input**: :func:`table_to_write` checks what ``data_write`` was given (the mode, an
  Arrow table with columns) with the messages users see from every adapter.
* **Snapshots**: :func:`query_result`, :func:`read_result` and :func:`write_snapshot` build what
  the ``data_query``, ``data_read`` and ``data_write`` hooks return; a query's parameters are
  recorded in its handle as JSON (:func:`jsonable_parameters`).

Importing this module is cheap: pyarrow is imported by the functions that touch rows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import DataError
from .models import DataResult, DataSnapshot

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "DIGEST_ROWS",
    "IDENTIFIER",
    "IDENTIFIER_RULE",
    "RESERVED_PREFIX",
    "WRITE_MODES",
    "HashSink",
    "chain_versions",
    "check_table_name",
    "digest_batches",
    "digest_table",
    "jsonable_parameters",
    "query_result",
    "quote_ident",
    "read_result",
    "table_to_write",
    "write_snapshot",
]

DIGEST_ROWS = 65_536
"""Rows per batch of the Arrow IPC stream that :func:`digest_batches` hashes."""

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
"""A table name every SQL engine takes unquoted (``fullmatch`` it); see :data:`IDENTIFIER_RULE`."""
IDENTIFIER_RULE = (
    "letters, digits and underscores, starting with a letter or underscore, at most 63 characters"
)
RESERVED_PREFIX = "_lamina"
"""Names starting with this (in any case) are Lamina's, e.g. an adapter's ``_lamina_versions``."""

WRITE_MODES = ("replace", "append")


# -- content versions ----------------------------------------------------------------------------


class HashSink:
    """A write-only file object that hashes what is written into it (an Arrow IPC writer's bytes)."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        self.hash.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def version(self) -> str:
        """What was written so far, as a content version: ``sha256:<hex>``."""
        return "sha256:" + self.hash.hexdigest()


def digest_batches(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> str:
    """``sha256:<hex>`` of rows as an Arrow IPC stream, independent of how they are chunked.

    Rows are re-cut into batches of :data:`DIGEST_ROWS` (slices, so a contiguous table is not
    copied) and schema metadata (such as pandas' index description) is left out. ``batches``
    is consumed once, so a reader streaming a large table is never held in memory whole.
    """
    import pyarrow as pa

    schema = schema.remove_metadata()
    sink = HashSink()
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    with pa.ipc.new_stream(sink, schema) as writer:

        def emit(table: pa.Table) -> None:
            for batch in table.combine_chunks().to_batches():
                writer.write_batch(batch)

        for batch in batches:
            pending.append(batch.replace_schema_metadata(None))
            pending_rows += batch.num_rows
            while pending_rows >= DIGEST_ROWS:
                window = pa.Table.from_batches(pending, schema)
                emit(window.slice(0, DIGEST_ROWS))
                pending = window.slice(DIGEST_ROWS).to_batches()
                pending_rows -= DIGEST_ROWS
        if pending_rows:
            emit(pa.Table.from_batches(pending, schema))
    return sink.version()


def digest_table(table: pa.Table) -> str:
    """The content version of an Arrow table (see :func:`digest_batches`)."""
    return digest_batches(table.schema, table.to_batches())


def chain_versions(previous: str, appended: str) -> str:
    """The version of a table after rows of version ``appended`` were added to it at ``previous``."""
    return "sha256:" + hashlib.sha256(f"{previous}+{appended}".encode()).hexdigest()


# -- table names ---------------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (``"a""b"`` for ``a"b``), taken exactly as written."""
    return '"' + name.replace('"', '""') + '"'


def check_table_name(
    name: str, *, reserved: Sequence[str] = (RESERVED_PREFIX,), reserved_note: str = "Lamina's"
) -> None:
    """Refuse a table name that is not a plain identifier or starts with a reserved prefix.

    :param reserved: lower-case prefixes no table name may start with, in any case.
    :param reserved_note: ends the message: names starting with the prefixes are *this*
        (``"Lamina's"``, ``"reserved for Lamina and SQLite"``).
    :raises DataError: saying what a name may be, or which prefixes are taken.
    """
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise DataError(f"table name {name!r} is not allowed: use {IDENTIFIER_RULE} (e.g. 'iris_clean')")
    if name.lower().startswith(tuple(reserved)):
        raise DataError(
            f"table name {name!r} is not allowed: names starting with "
            f"{' or '.join(map(repr, reserved))} are {reserved_note}"
        )


# -- write input ---------------------------------------------------------------------------------


def table_to_write(
    name: str, table: Any, mode: str, *, check_name: Callable[[str], object] | None = None
) -> pa.Table:
    """What ``data_write(name, table, mode)`` was given, checked: the rows as a ``pyarrow.Table``.

    In order: the mode is one of :data:`WRITE_MODES`; a ``RecordBatch`` becomes a table and
    anything else that is not a table is refused; ``check_name(name)`` runs when given (e.g.
    :func:`check_table_name`); the table has at least one column.

    :raises DataError: naming the table and saying what to pass instead.
    """
    import pyarrow as pa

    if mode not in WRITE_MODES:
        raise DataError(f"unknown write mode {mode!r} for table {name!r}: use 'replace' or 'append'")
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise DataError(
            f"data_write({name!r}) takes a pyarrow.Table, got {type(table).__module__}.{type(table).__name__}; "
            "convert it first (pyarrow.Table.from_pandas), or use stack.data.write / current.data.write, "
            "which convert pandas and dicts."
        )
    if check_name is not None:
        check_name(name)
    if table.num_columns == 0:
        raise DataError(f"cannot write table {name!r}: it has no columns")
    return table


# -- snapshots -----------------------------------------------------------------------------------


def jsonable_parameters(parameters: Iterable[Any]) -> list[Any]:
    """Query parameters as a snapshot handle records them: JSON scalars as they are, others as ``repr``."""
    return [p if isinstance(p, str | int | float | bool | None) else repr(p) for p in parameters]


def query_result(
    adapter: str, sql: str, table: pa.Table, handle: dict[str, Any], parameters: Sequence[Any] | None
) -> DataResult:
    """What ``data_query`` returns: the rows, and a ``query`` snapshot of ``sql``.

    The snapshot's handle is ``handle`` plus, when the query had any, its ``parameters``
    (see :func:`jsonable_parameters`).
    """
    if parameters:
        handle = {**handle, "parameters": jsonable_parameters(parameters)}
    snapshot = DataSnapshot(adapter=adapter, kind="query", target=sql, handle=handle, rows=table.num_rows)
    return DataResult(table=table, snapshot=snapshot)


def read_result(adapter: str, name: str, table: pa.Table, handle: dict[str, Any]) -> DataResult:
    """What ``data_read`` returns: the rows, and a ``table`` snapshot of the table ``name``."""
    snapshot = DataSnapshot(adapter=adapter, kind="table", target=name, handle=handle, rows=table.num_rows)
    return DataResult(table=table, snapshot=snapshot)


def write_snapshot(adapter: str, name: str, handle: dict[str, Any], rows: int) -> DataSnapshot:
    """What ``data_write`` returns: a ``write`` snapshot of the table ``name`` after the write."""
    return DataSnapshot(adapter=adapter, kind="write", target=name, handle=handle, rows=rows)
