"""``lamina.data_tools``, the toolkit data adapters share: what every adapter relies on it for."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest
from lamina.data_tools import (
    DIGEST_ROWS,
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
from lamina.errors import DataError


def test_digest_depends_on_rows_not_chunking_or_schema_metadata() -> None:
    rows = pa.table({"x": list(range(DIGEST_ROWS + 10)), "s": ["a"] * (DIGEST_ROWS + 10)})
    chunked = pa.Table.from_batches(rows.to_batches(max_chunksize=999))
    with_metadata = rows.replace_schema_metadata({b"pandas": b"{}"})
    version = digest_table(rows)
    assert version.startswith("sha256:")
    assert digest_table(chunked) == digest_table(with_metadata) == version
    assert digest_batches(rows.schema, iter(chunked.to_batches())) == version
    assert digest_table(rows.slice(1)) != version


def test_small_tables_hash_as_one_ipc_stream() -> None:
    """A table of at most DIGEST_ROWS rows hashes as its plain Arrow IPC stream."""
    table = pa.table({"x": [1, 2, None]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    assert digest_table(table) == "sha256:" + hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def test_chained_versions_follow_both_parts() -> None:
    a, b = digest_table(pa.table({"x": [1]})), digest_table(pa.table({"x": [2]}))
    assert chain_versions(a, b).startswith("sha256:")
    assert chain_versions(a, b) != chain_versions(b, a)


def test_table_names_and_quoting() -> None:
    check_table_name("iris_clean")
    with pytest.raises(DataError, match="letters, digits and underscores"):
        check_table_name("1st")
    with pytest.raises(DataError, match="'_lamina' are Lamina's"):
        check_table_name("_LAMINA_versions")
    with pytest.raises(DataError, match="'_lamina' or 'tmp_' are reserved here"):
        check_table_name("tmp_x", reserved=("_lamina", "tmp_"), reserved_note="reserved here")
    assert quote_ident('a"b') == '"a""b"'


def test_write_input_is_checked_in_order() -> None:
    batch = pa.RecordBatch.from_pydict({"x": [1]})
    assert isinstance(table_to_write("t", batch, "append"), pa.Table)
    with pytest.raises(DataError, match="unknown write mode 'upsert'"):
        table_to_write("1st", {"x": [1]}, "upsert", check_name=check_table_name)
    with pytest.raises(DataError, match=r"got builtins.dict.*from_pandas.*current.data.write"):
        table_to_write("1st", {"x": [1]}, "replace", check_name=check_table_name)
    with pytest.raises(DataError, match="is not allowed"):
        table_to_write("1st", pa.table({}), "replace", check_name=check_table_name)
    with pytest.raises(DataError, match="no columns"):
        table_to_write("t", pa.table({}), "replace")


def test_snapshots() -> None:
    table = pa.table({"x": [1, 2]})
    query = query_result("a", "SELECT ?", table, {"v": 1}, [1, "s", None, object()])
    assert query.snapshot.kind == "query" and query.snapshot.rows == 2
    assert query.snapshot.handle["v"] == 1
    assert query.snapshot.handle["parameters"][:3] == [1, "s", None]
    assert query.snapshot.handle["parameters"][3].startswith("<object object")
    assert "parameters" not in query_result("a", "SELECT 1", table, {}, []).snapshot.handle
    read = read_result("a", "t", table, {"tables": {"t": "sha256:x"}})
    assert (read.table, read.snapshot.kind, read.snapshot.target) == (table, "table", "t")
    written = write_snapshot("a", "t", {"tables": {"t": "sha256:x"}}, 2)
    assert (written.kind, written.rows) == ("write", 2)
