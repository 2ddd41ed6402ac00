"""Rows into a table, in bulk, inside the caller's transaction.

* PostgreSQL with psycopg (3) or psycopg2: ``COPY ... FROM STDIN (FORMAT csv)``, the CSV written
  by Arrow's C++ writer a batch at a time (no Python rows). Arrow writes a null as an empty
  field and an empty string as ``""``, which is exactly how ``COPY`` tells them apart.
* Every other dialect (and tables with binary columns): batched multi-row ``INSERT``s with bound
  parameters, through SQLAlchemy's ``executemany`` (PyMySQL sends one multi-row statement per
  batch).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from .types import column_comment, for_storage, sql_type

if TYPE_CHECKING:
    import pyarrow as pa
    import sqlalchemy as sa


def create_table(
    connection: sa.Connection, name: str, schema: str | None, table: pa.Table, comment: str | None = None
) -> None:
    """``CREATE TABLE`` with a column per Arrow field, in each dialect's own types."""
    import sqlalchemy as sa

    columns = [
        sa.Column(field.name, sql_type(field), nullable=True, comment=column_comment(field))
        for field in table.schema
    ]
    sa.Table(name, sa.MetaData(), *columns, schema=schema, comment=comment).create(connection)


def _copy_target(connection: sa.Connection, qualified: str, columns: list[str]) -> str:
    preparer = connection.dialect.identifier_preparer
    names = ", ".join(preparer.quote(c) for c in columns)
    return f"COPY {qualified} ({names}) FROM STDIN (FORMAT csv)"


def _csv_ready(table: pa.Table) -> pa.Table:
    """Columns as the CSV writer takes them: dictionaries decoded."""
    import pyarrow as pa
    import pyarrow.types as t

    columns = [c.cast(c.type.value_type) if t.is_dictionary(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(columns, names=table.column_names)


def _copy_supported(connection: sa.Connection, table: pa.Table) -> bool:
    import pyarrow.types as t

    if connection.dialect.name != "postgresql":
        return False
    if connection.dialect.driver not in ("psycopg", "psycopg2"):
        return False
    return not any(
        t.is_binary(f.type)
        or t.is_large_binary(f.type)
        or t.is_fixed_size_binary(f.type)
        or t.is_time(f.type)
        for f in table.schema
    )


def load_rows(
    connection: sa.Connection, name: str, schema: str | None, table: pa.Table, batch_rows: int
) -> None:
    """Insert every row of ``table`` into the existing table ``name`` (columns matched by name)."""
    if table.num_rows == 0:
        return
    table = for_storage(connection.dialect.name, table)
    preparer = connection.dialect.identifier_preparer
    qualified = (f"{preparer.quote_schema(schema)}." if schema else "") + preparer.quote(name)
    if _copy_supported(connection, table):
        _copy_csv(connection, qualified, table, batch_rows)
    else:
        _insert_batches(connection, name, schema, table, batch_rows)


def _copy_csv(connection: sa.Connection, qualified: str, table: pa.Table, batch_rows: int) -> None:
    import pyarrow.csv as csv

    statement = _copy_target(connection, qualified, table.column_names)
    raw: Any = connection.connection.dbapi_connection  # psycopg's or psycopg2's connection
    options = csv.WriteOptions(include_header=False, quoting_style="needed", batch_size=batch_rows)
    ready = _csv_ready(table)
    with raw.cursor() as cursor:
        if connection.dialect.driver == "psycopg":
            with cursor.copy(statement) as copy:
                for start in range(0, ready.num_rows, batch_rows):
                    buffer = io.BytesIO()
                    csv.write_csv(ready.slice(start, batch_rows), buffer, options)
                    copy.write(buffer.getbuffer())
        else:  # psycopg2 reads the whole file object
            buffer = io.BytesIO()
            csv.write_csv(ready, buffer, options)
            buffer.seek(0)
            cursor.copy_expert(statement, buffer)


def _insert_batches(
    connection: sa.Connection, name: str, schema: str | None, table: pa.Table, batch_rows: int
) -> None:
    import sqlalchemy as sa

    target = sa.table(name, *[sa.column(c) for c in table.column_names], schema=schema)
    statement = sa.insert(target)
    # a statement holds at most ~65k bound values on several servers
    step = max(1, min(batch_rows, 60_000 // max(1, table.num_columns)))
    for start in range(0, table.num_rows, step):
        rows: list[dict[str, Any]] = table.slice(start, step).to_pylist()
        connection.execute(statement, rows)
