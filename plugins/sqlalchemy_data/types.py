"""How columns map between Arrow and SQL, in both directions.

Writing, an Arrow field becomes a SQLAlchemy type, which each dialect renders in its own DDL
(``BIGINT``, ``DOUBLE PRECISION`` / ``DOUBLE``, ``BOOLEAN`` / ``TINYINT(1)`` / ``BIT``...).

Reading, the rows arrive as Arrow from a columnar driver or are built from DB-API rows; then
:func:`conform` gives every dialect the same portable Arrow types (see
``lamina.testing.data_suite``):

* ``NUMERIC`` / ``DECIMAL`` with a declared precision and scale read from a table are exact
  ``decimal128(p, s)``. Decimals a query computes are as DuckDB's: whole numbers (``SUM`` of
  integers, scale 0) are ``decimal128(38, 0)``, the rest (``AVG``, arithmetic) ``float64``;
  PostgreSQL's unconstrained ``NUMERIC`` carries its scale with each value (``SUM`` of
  ``BIGINT`` has scale 0, ``AVG`` at least 16), MySQL's result metadata gives it;
* MySQL/MariaDB booleans (``TINYINT(1)``) are Arrow ``bool``;
* integers are ``int64`` unless declared smaller, text is ``string``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lamina.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa


def sql_type(field: pa.Field) -> Any:
    """The SQLAlchemy column type that stores an Arrow field; nested types are refused with a fix."""
    import pyarrow.types as t
    import sqlalchemy as sa

    typ = field.type
    if t.is_dictionary(typ):
        typ = typ.value_type
    if t.is_boolean(typ):
        return sa.Boolean(create_constraint=False)
    if t.is_int8(typ) or t.is_int16(typ) or t.is_uint8(typ):
        return sa.SmallInteger()
    if t.is_int32(typ) or t.is_uint16(typ):
        return sa.Integer()
    if t.is_int64(typ) or t.is_uint32(typ):
        return sa.BigInteger()
    if t.is_uint64(typ):
        return sa.Numeric(20, 0)
    if t.is_floating(typ):
        return sa.Double() if t.is_float64(typ) else sa.Float(24)
    if t.is_decimal(typ):
        return sa.Numeric(min(typ.precision, 38), typ.scale)
    if t.is_string(typ) or t.is_large_string(typ) or t.is_null(typ) or str(typ) == "string_view":
        return sa.UnicodeText()
    if t.is_binary(typ) or t.is_large_binary(typ) or t.is_fixed_size_binary(typ):
        return sa.LargeBinary()
    if t.is_date(typ):
        return sa.Date()
    if t.is_timestamp(typ):
        from sqlalchemy.dialects import mysql

        # MySQL's DATETIME keeps whole seconds unless asked for microseconds
        return sa.DateTime(timezone=typ.tz is not None).with_variant(
            mysql.DATETIME(fsp=6), "mysql", "mariadb"
        )
    if t.is_time(typ):
        from sqlalchemy.dialects import mysql

        return sa.Time().with_variant(mysql.TIME(fsp=6), "mysql", "mariadb")
    raise DataError(
        f"column {field.name!r} has the type {typ}, which the sqlalchemy data adapter cannot store: "
        "convert it first (nested values to a JSON string column, durations to numbers)."
    )


@dataclass(frozen=True)
class Declared:
    """What a result column is known to be, beyond what the driver's Arrow type says."""

    boolean: bool = False
    decimal: tuple[int, int] | None = None
    """Exact ``(precision, scale)``: keep the values as ``decimal128``."""
    scale: int | None = None
    """The scale a query's decimal result column has (MySQL's metadata), when the values lost it."""
    timestamp: tuple[str, str | None] | None = None
    """The Arrow unit and time zone a timestamp column was written with (from its column comment)."""


TIMESTAMP_COMMENT = "lamina:timestamp="


def column_comment(field: pa.Field) -> str | None:
    """A column comment that lets ``data_read`` restore what SQL types lose: a timestamp's unit
    (databases keep microseconds) and time zone (MySQL's ``DATETIME`` has none)."""
    import pyarrow.types as t

    typ = field.type
    if t.is_timestamp(typ) and (typ.unit == "ns" or typ.tz is not None):
        return f"{TIMESTAMP_COMMENT}{typ.unit};{typ.tz or ''}"
    return None


def for_storage(dialect: str, table: pa.Table) -> pa.Table:
    """Columns as the database stores them: on MySQL, zoned timestamps as UTC wall-clock time."""
    import pyarrow as pa
    import pyarrow.types as t

    if dialect not in ("mysql", "mariadb"):
        return table
    columns = [
        c.cast(pa.timestamp(c.type.unit)) if t.is_timestamp(c.type) and c.type.tz else c
        for c in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


def declared_from_reflection(dialect: str, column_type: Any, comment: str | None = None) -> Declared:
    """A reflected column (``Inspector.get_columns``: its type and comment) as :class:`Declared`."""
    import sqlalchemy as sa

    if comment and comment.startswith(TIMESTAMP_COMMENT) and isinstance(column_type, sa.DateTime):
        unit, _, zone = comment[len(TIMESTAMP_COMMENT) :].partition(";")
        if unit in ("s", "ms", "us", "ns"):
            return Declared(timestamp=(unit, zone or None))
    if isinstance(column_type, sa.Boolean):
        return Declared(boolean=True)
    if dialect in ("mysql", "mariadb"):
        name = type(column_type).__name__.upper()
        if name == "TINYINT" and getattr(column_type, "display_width", None) == 1:
            return Declared(boolean=True)
    if isinstance(column_type, sa.Numeric) and not isinstance(column_type, sa.Float):
        precision, scale = column_type.precision, column_type.scale
        if precision is not None and scale is not None and precision <= 38:
            return Declared(decimal=(precision, scale))
    return Declared()


MYSQL_TINY = 1
"""``FIELD_TYPE.TINY`` in a MySQL cursor description: with display size 1, a ``BOOLEAN``."""
MYSQL_DECIMALS = (0, 246)
"""``FIELD_TYPE.DECIMAL`` and ``NEWDECIMAL``."""


def declared_from_description(dialect: str, description: Any) -> list[Declared]:
    """What a DB-API cursor description tells beyond Arrow's guess: MySQL booleans (``TINYINT(1)``)."""
    out = []
    for column in description or ():
        type_code, internal_size = column[1], column[3]
        mysql = dialect in ("mysql", "mariadb")
        boolean = mysql and type_code == MYSQL_TINY and internal_size == 1
        scale = column[5] if mysql and type_code in MYSQL_DECIMALS and isinstance(column[5], int) else None
        out.append(Declared(boolean=boolean, scale=scale))
    return out


def _numeric_storage(column: pa.ChunkedArray) -> tuple[pa.DataType, pa.ChunkedArray]:
    """A column's type and values, with a PostgreSQL ``numeric`` opaque extension (ADBC) unwrapped."""
    import pyarrow as pa

    typ = column.type
    if isinstance(typ, pa.ExtensionType) or getattr(typ, "storage_type", None) is not None:
        storage = pa.chunked_array([chunk.storage for chunk in column.chunks], typ.storage_type)
        return typ.storage_type, storage
    return typ, column


def _is_numeric_text(field: pa.Field) -> bool:
    meta = field.metadata or {}
    return meta.get(b"POSTGRESQL:type") == b"numeric" or meta.get(b"ADBC:postgresql:typname") == b"numeric"


def _computed_decimal(column: pa.ChunkedArray, known: Declared) -> pa.DataType:
    """A query's decimal column as DuckDB returns it: whole numbers exact, the rest ``float64``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    if known.scale is not None:
        scale = known.scale
    elif t.is_decimal(column.type):
        scale = column.type.scale
    else:  # PostgreSQL's numeric as text: its scale is the digits after the point
        scale = 1 if pc.any(pc.match_substring(column, ".")).as_py() else 0
    return pa.decimal128(38, 0) if scale == 0 else pa.float64()


def conform(table: pa.Table, declared: list[Declared] | None) -> pa.Table:
    """``table`` with the portable Arrow types described in the module docstring.

    :param declared: per column, what reflection or the cursor description knows (``None``:
        nothing, as for a query on a columnar driver).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    arrays, fields = [], []
    for index, field in enumerate(table.schema):
        column = table.column(index)
        known = declared[index] if declared and index < len(declared) else Declared()
        numeric_text = _is_numeric_text(field)
        typ, column = _numeric_storage(column)
        target: pa.DataType | None = None
        if known.boolean and (t.is_integer(typ) or t.is_boolean(typ)):
            target = pa.bool_()
        elif known.timestamp and t.is_timestamp(typ):
            target = pa.timestamp(*known.timestamp)
        elif numeric_text or t.is_decimal(typ):
            target = pa.decimal128(*known.decimal) if known.decimal else _computed_decimal(column, known)
        elif t.is_large_string(typ) or str(typ) == "string_view":
            target = pa.string()
        if target is not None and target != column.type:
            try:
                column = pc.cast(column, target, safe=not t.is_floating(target))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                if t.is_decimal(target):  # a value beyond the declared scale: keep it as a number
                    column, target = pc.cast(column, pa.float64()), pa.float64()
                else:
                    raise DataError(f"column {field.name!r} cannot be read as {target}: {exc}") from exc
        arrays.append(column)
        fields.append(pa.field(field.name, column.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def rows_to_arrow(names: list[str], batches: Any, declared: list[Declared]) -> pa.Table:
    """DB-API rows, a batch at a time, as one Arrow table, each batch converted a column at once.

    Types come from the values (as pandas would), then :func:`conform`; a column whose type
    differs between batches (nulls, then numbers) is unified by Arrow's type promotion.
    """
    import pyarrow as pa

    tables = []
    for rows in batches:
        if not rows:
            continue
        columns = list(zip(*rows, strict=True))
        arrays = []
        for index, values in enumerate(columns):
            if declared[index].boolean:
                values = tuple(None if v is None else bool(v) for v in values)
            try:
                arrays.append(pa.array(values))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise DataError(f"column {names[index]!r} holds values Arrow cannot read: {exc}") from exc
        tables.append(pa.Table.from_arrays(arrays, names=names))
    if not tables:
        return conform(pa.table({name: pa.array([], pa.null()) for name in names}), declared)
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    return conform(table, declared)
