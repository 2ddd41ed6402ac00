"""Arrow <-> SQLite: declared column types, values on the way in, arrays on the way out.

SQLite stores five kinds of value (NULL, INTEGER, REAL, TEXT, BLOB); a column's declared type
is free text that only sets its *affinity*. Writes therefore declare a type that names the Arrow
type precisely and store values SQLite understands, so that reads can restore the type:

==========================  ============================  ====================================
Arrow                       declared type                 stored as
==========================  ============================  ====================================
int8..int64, uint8..uint64  ``INTEGER``                   integer (uint64 above 2**63-1 fails)
float16/32/64               ``REAL``                      real (NaN is stored as NULL)
bool                        ``BOOLEAN``                   integer 0 / 1
string, large_string        ``TEXT``                      text
binary, large/fixed binary  ``BLOB``                      blob
date32, date64              ``DATE``                      text ``YYYY-MM-DD``
timestamp[unit]             ``TIMESTAMP(p)``              text ``YYYY-MM-DD HH:MM:SS.fff``
timestamp[unit, tz]         ``TIMESTAMPTZ(p)``            text in UTC with a ``Z`` suffix
time32, time64              ``TIME(p)``                   text ``HH:MM:SS.fff``
decimal128/256(p, s)        ``DECIMAL(p,s)``              numeric (SQLite keeps 15 digits)
dictionary<..., v>          as its value type ``v``       as ``v``
null                        (none)                        NULL
==========================  ============================  ====================================

``p`` is the number of fractional-second digits: 0, 3, 6 or 9 for s, ms, us, ns. Text dates and
times keep SQL comparisons and SQLite's date functions working. Nested types (list, struct,
map) and durations are refused with a message saying what to do.

Reads map a declared type back (tables written by other tools too: ``DATETIME``, ``VARCHAR(20)``,
``BIGINT`` follow SQLite's affinity rules), and infer the type of columns that declare none,
such as a query's computed columns. Everything is done a column at a time.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lamina.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

_UNIT_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}
_TIMESTAMP = re.compile(r"(TIMESTAMP|DATETIME)(TZ)?\s*(?:\(\s*(\d)\s*\))?")
_TIME = re.compile(r"TIME\s*(?:\(\s*(\d)\s*\))?")
_DECIMAL = re.compile(r"(DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)")


def _unit_for_digits(digits: int) -> str:
    for unit, unit_digits in _UNIT_DIGITS.items():
        if digits <= unit_digits:
            return unit
    return "ns"


@dataclass(frozen=True)
class ColumnPlan:
    """How one Arrow column is written: its declared type and its values as SQLite takes them."""

    name: str
    declared: str
    arrow_type: pa.DataType

    def values(self, column: pa.Array | pa.ChunkedArray) -> list[Any]:
        """The column's values for ``executemany``, converted with Arrow compute, not per row."""
        values: list[Any] = to_sqlite_values(column, self.arrow_type).to_pylist()
        return values


def declared_type(name: str, arrow_type: pa.DataType) -> str:
    """The declared SQLite type for an Arrow type (see the module's table).

    :raises DataError: the type has no SQLite representation; the message names the column.
    """
    import pyarrow as pa

    t = pa.types
    if t.is_dictionary(arrow_type):
        return declared_type(name, arrow_type.value_type)
    if t.is_boolean(arrow_type):
        return "BOOLEAN"
    if t.is_integer(arrow_type):
        return "INTEGER"
    if t.is_floating(arrow_type):
        return "REAL"
    if t.is_string(arrow_type) or t.is_large_string(arrow_type) or _is(arrow_type, "is_string_view"):
        return "TEXT"
    if (
        t.is_binary(arrow_type)
        or t.is_large_binary(arrow_type)
        or t.is_fixed_size_binary(arrow_type)
        or _is(arrow_type, "is_binary_view")
    ):
        return "BLOB"
    if t.is_date(arrow_type):
        return "DATE"
    if t.is_timestamp(arrow_type):
        digits = _UNIT_DIGITS[arrow_type.unit]
        return f"{'TIMESTAMPTZ' if arrow_type.tz else 'TIMESTAMP'}({digits})"
    if t.is_time(arrow_type):
        return f"TIME({_UNIT_DIGITS[arrow_type.unit]})"
    if t.is_decimal(arrow_type):
        return f"DECIMAL({arrow_type.precision},{arrow_type.scale})"
    if t.is_null(arrow_type):
        return ""
    raise DataError(
        f"column {name!r} has the Arrow type {arrow_type}, which SQLite cannot store. SQLite holds "
        "numbers, text, blobs, dates and times: convert the column first (nested values to JSON "
        "text, durations to a number of seconds)."
    )


def _is(arrow_type: pa.DataType, predicate: str) -> bool:
    """``pyarrow.types.<predicate>`` where this pyarrow has it (view types are recent)."""
    import pyarrow as pa

    check = getattr(pa.types, predicate, None)
    return bool(check(arrow_type)) if check is not None else False


def plan_columns(schema: pa.Schema) -> list[ColumnPlan]:
    return [ColumnPlan(f.name, declared_type(f.name, f.type), f.type) for f in schema]


def to_sqlite_values(column: pa.Array | pa.ChunkedArray, arrow_type: pa.DataType) -> pa.ChunkedArray:
    """Convert a column to an Arrow type whose Python values ``sqlite3`` stores as intended."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = pa.types
    if isinstance(column, pa.Array):
        column = pa.chunked_array([column], column.type)
    if t.is_dictionary(arrow_type):
        return to_sqlite_values(column.cast(arrow_type.value_type), arrow_type.value_type)
    if t.is_float16(arrow_type):
        return column.cast(pa.float64())
    if t.is_date(arrow_type) or t.is_time(arrow_type) or t.is_decimal(arrow_type):
        return column.cast(pa.string())
    if t.is_timestamp(arrow_type):
        if arrow_type.tz:
            # The stored instants are UTC already: drop the zone without shifting, mark it "Z".
            utc = column.cast(pa.int64()).cast(pa.timestamp(arrow_type.unit)).cast(pa.string())
            return pc.binary_join_element_wise(utc, "Z", "")
        return column.cast(pa.string())
    if t.is_fixed_size_binary(arrow_type) or _is(arrow_type, "is_binary_view"):
        return column.cast(pa.binary())
    if _is(arrow_type, "is_string_view"):
        return column.cast(pa.string())
    return column


def arrow_type_for(declared: str) -> pa.DataType | None:
    """The Arrow type a declared SQLite type reads as; ``None``: infer from the values."""
    import pyarrow as pa

    text = " ".join(declared.upper().split())
    if text in ("BOOLEAN", "BOOL"):
        return pa.bool_()
    if text == "DATE":
        return pa.date32()
    match = _TIMESTAMP.fullmatch(text)
    if match:
        unit = _unit_for_digits(int(match.group(3))) if match.group(3) else "us"
        return pa.timestamp(unit, tz="UTC" if match.group(2) else None)
    match = _TIME.fullmatch(text)
    if match:
        unit = _unit_for_digits(int(match.group(1))) if match.group(1) else "us"
        return pa.time32(unit) if unit in ("s", "ms") else pa.time64(unit)
    match = _DECIMAL.fullmatch(text)
    if match:
        precision, scale = int(match.group(2)), int(match.group(3))
        if 0 < precision <= 38 and scale <= precision:
            return pa.decimal128(precision, scale)
        if 38 < precision <= 76 and scale <= precision:
            return pa.decimal256(precision, scale)
        return None
    # SQLite's own affinity rules (https://sqlite.org/datatype3.html, section 3.1), in order.
    if "INT" in text:
        return pa.int64()
    if "CHAR" in text or "CLOB" in text or "TEXT" in text:
        return pa.string()
    if "BLOB" in text:
        return pa.binary()
    if "REAL" in text or "FLOA" in text or "DOUB" in text:
        return pa.float64()
    return None


class MixedTypes(ValueError):
    """A column holds values of several SQLite storage classes."""


def infer_array(values: Sequence[Any]) -> pa.Array:
    """An Arrow array from the values of one SQLite column, typed by what they are.

    Integers and reals together become float64; NULLs alone become the null type.
    :raises MixedTypes: text with numbers, blobs with text, and the like.
    """
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        kinds = sorted({type(v).__name__ for v in values if v is not None})
        raise MixedTypes(", ".join(kinds)) from exc


def tagged_array(values: Sequence[Any]) -> pa.Array:
    """Every value as tagged text (``int:1``, ``str:'a'``): a faithful fingerprint of any column."""
    import pyarrow as pa

    return pa.array([None if v is None else f"{type(v).__name__}:{v!r}" for v in values], pa.string())


def typed_array(column: str, declared: str, values: Sequence[Any], target: pa.DataType | None) -> pa.Array:
    """One column of a result as Arrow: inferred from the values, then cast to ``target``.

    The cast is safe: a REAL of 1.5 in an ``INTEGER`` column, or text in a ``DATE`` column that
    is not an ISO date, is an error rather than a silent change.

    :raises DataError: naming the column, its declared type and what to do.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    def refuse(detail: str) -> DataError:
        where = f"column {column!r}" + (f" (declared {declared})" if declared else "")
        return DataError(
            f"{where} holds {detail}, which cannot be read as "
            f"{target if target is not None else 'one Arrow type'}. SQLite lets a column hold any "
            f"value: CAST it in a query, e.g. stack.data.query('SELECT CAST({column} AS TEXT) ...'), "
            "or fix the rows."
        )

    if target is not None and pa.types.is_decimal(target):
        try:
            decimals = [None if v is None else decimal.Decimal(str(v)) for v in values]
            return pa.array(decimals, target)
        except (decimal.InvalidOperation, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise refuse(f"values that are not decimals ({exc})") from exc
    try:
        array = infer_array(values)
    except MixedTypes as exc:
        raise refuse(f"values of several kinds ({exc})") from exc
    if target is None or array.type == target:
        return array
    source = array
    if pa.types.is_time(target) and pa.types.is_string(array.type):
        source = pc.binary_join_element_wise("1970-01-01 ", array, "").cast(pa.timestamp("ns"))
    try:
        return source.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        sample = next((v for v in values if v is not None), None)
        raise refuse(f"{type(sample).__name__} values such as {sample!r} ({exc})") from exc
