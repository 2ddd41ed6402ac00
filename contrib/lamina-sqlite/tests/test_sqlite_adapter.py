"""The ``sqlite`` data adapter: Lamina's data-layer conformance suite, then what is SQLite's own.

SQLite's own: the plugin as Lamina loads it, type mapping both ways, read-only queries, tables
written by other tools, views, content versions, locks, and several processes writing at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import multiprocessing
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pluggy
import pyarrow as pa
import pytest
from lamina.discovery import get_registry, reset_registry
from lamina.errors import DataError, TransientError
from lamina.hookspecs import PROJECT, AdapterContext, DataSpec
from lamina.stack import resolve_stack
from lamina.stack.profile import load_profile_file, validate_settings
from lamina.testing import DataSuite
from lamina_sqlite import plugin
from lamina_sqlite.adapter import DatabaseLocked, SQLiteData, SQLiteSettings

PEOPLE = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["ada", "bob", None]})


def make_adapter(project: Path, **settings: Any) -> SQLiteData:
    context = AdapterContext(project_dir=project, stack_name="test", adapter_name="sqlite")
    return SQLiteData(SQLiteSettings(**settings), context)


@pytest.fixture
def adapter(tmp_path: Path) -> Iterator[SQLiteData]:
    plugin_object = make_adapter(tmp_path)
    yield plugin_object
    plugin_object.data_close()


@pytest.fixture
def database(adapter: SQLiteData) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the adapter's file, as another tool would open it."""
    adapter.path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(adapter.path, isolation_level=None)
    yield con
    con.close()


class TestSQLiteConformance(DataSuite):
    booleans_in_queries = "integer"  # SQLite has no boolean type; data_read restores written ones

    @pytest.fixture
    def data_adapter(self, adapter: SQLiteData) -> SQLiteData:
        return adapter


# -- the plugin as Lamina loads it -----------------------------------------------------------


def test_plugin_offers_a_data_adapter_that_matches_the_data_spec(tmp_path: Path) -> None:
    (info,) = plugin.lamina_adapters()
    assert (info.layer, info.name, info.settings) == ("data", "sqlite", SQLiteSettings)
    assert info.missing_modules() == []
    adapter_object = info.factory(info.settings(), AdapterContext(tmp_path, "test", "sqlite"))
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(DataSpec)
    pm.register(adapter_object)
    pm.check_pending()
    hooks = {name for name in dir(DataSpec) if name.startswith("data_")}
    assert hooks == {impl.name for impl in pm.get_hookcallers(adapter_object) or []}


def test_lamina_discovers_the_installed_plugin_through_its_entry_point() -> None:
    reset_registry()
    registry = get_registry()
    info = registry.adapter("data", "sqlite")
    assert info is not None and info.factory is SQLiteData
    assert info.plugin_name == "lamina-sqlite"
    assert registry.plugins["sqlite"].source == "lamina-sqlite"


def test_shipped_profile_validates_against_the_installed_adapters() -> None:
    profiles = plugin.lamina_stack_profiles()
    path = profiles["sqlite-local"]
    profile = load_profile_file(path, name="sqlite-local", origin="sqlite")
    assert {layer: cfg.adapter for layer, cfg in profile.layers.items()} == {
        "data": "sqlite",
        "compute": "local",
        "orchestration": "local",
        "versioning": "local",
    }
    settings = validate_settings(profile, get_registry(), resolve_env=False)
    assert settings["data"] == SQLiteSettings()


def test_a_resolved_stack_writes_to_the_file_named_relative_to_the_project(lamina_project: Path) -> None:
    stacks = lamina_project / ".lamina" / "stacks"
    stacks.mkdir()
    (stacks / "lite.toml").write_text(
        '[data]\nadapter = "sqlite"\npath = "warehouse/tables.db"\n'
        '[compute]\nadapter = "local"\n[orchestration]\nadapter = "local"\n[versioning]\nadapter = "local"\n'
    )
    with resolve_stack("lite", lamina_project) as stack:
        stack.data.write("people", {"id": [1, 2], "name": ["ada", "bob"]})
        assert stack.data.read("people").to_pylist() == [{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}]
        assert [s.adapter for s in stack.data.reads] == ["sqlite", "sqlite"]
    with contextlib.closing(sqlite3.connect(lamina_project / "warehouse" / "tables.db")) as con:
        assert con.execute("SELECT count(*) FROM people").fetchone() == (2,)


def test_reading_a_missing_database_does_not_create_it(adapter: SQLiteData) -> None:
    assert adapter.data_tables() == []
    assert adapter.data_query("SELECT 1 AS one", None).table.to_pylist() == [{"one": 1}]
    with pytest.raises(DataError, match="none yet"):
        adapter.data_read("people")
    assert not adapter.path.exists()


# -- types -------------------------------------------------------------------------------------

EVERY_TYPE = pa.table(
    {
        "small": pa.array([1, None], pa.int8()),
        "big": pa.array([2**63 - 1, 0], pa.uint64()),
        "ratio": pa.array([0.25, None], pa.float32()),
        "flag": pa.array([True, None]),
        "label": pa.array(["x", None], pa.large_string()),
        "raw": pa.array([b"\x00\xff", None]),
        "day": pa.array([dt.date(2024, 2, 29), None]),
        "at": pa.array([dt.datetime(2024, 2, 29, 23, 59, 58, 123456), None], pa.timestamp("us")),
        "at_ns": pa.array([1_709_251_198_123_456_789, None], pa.timestamp("ns")),
        "at_utc": pa.array(
            [dt.datetime(2024, 2, 29, 12, 0, tzinfo=dt.UTC), None], pa.timestamp("ms", tz="Europe/Paris")
        ),
        "clock": pa.array([dt.time(13, 14, 15, 16), None], pa.time64("us")),
        "price": pa.array([decimal.Decimal("12.50"), None], pa.decimal128(8, 2)),
        "kind": pa.array(["a", None]).dictionary_encode(),
        "nothing": pa.nulls(2),
    }
)


def test_written_types_read_back(adapter: SQLiteData) -> None:
    adapter.data_write("every", EVERY_TYPE, "replace")
    table = adapter.data_read("every").table
    assert dict(zip(table.column_names, map(str, table.schema.types), strict=True)) == {
        "small": "int64",
        "big": "int64",
        "ratio": "double",
        "flag": "bool",
        "label": "string",
        "raw": "binary",
        "day": "date32[day]",
        "at": "timestamp[us]",
        "at_ns": "timestamp[ns]",
        "at_utc": "timestamp[ms, tz=UTC]",
        "clock": "time64[us]",
        "price": "decimal128(8, 2)",
        "kind": "string",
        "nothing": "null",
    }
    same = EVERY_TYPE.cast(table.schema)  # the widenings above lose nothing
    assert table.equals(same)


def test_dates_and_times_are_stored_as_text_sql_can_compare(
    adapter: SQLiteData, database: sqlite3.Connection
) -> None:
    adapter.data_write("every", EVERY_TYPE, "replace")
    stored = database.execute("SELECT day, at, at_utc, clock, flag FROM every WHERE small = 1").fetchone()
    assert stored == (
        "2024-02-29",
        "2024-02-29 23:59:58.123456",
        "2024-02-29 12:00:00.000Z",
        "13:14:15.000016",
        1,
    )
    result = adapter.data_query(
        "SELECT count(*) AS n, date(max(day), '+1 day') AS next FROM every WHERE at >= ?", ["2024-02-29"]
    )
    assert result.table.to_pylist() == [{"n": 1, "next": "2024-03-01"}]


def test_query_results_take_their_types_from_the_values(adapter: SQLiteData) -> None:
    adapter.data_write("every", EVERY_TYPE, "replace")
    table = adapter.data_query("SELECT small, ratio, flag, day, small * 0.5 AS half FROM every", None).table
    assert table.to_pylist() == [
        {"small": 1, "ratio": 0.25, "flag": 1, "day": "2024-02-29", "half": 0.5},
        {"small": None, "ratio": None, "flag": None, "day": None, "half": None},
    ]


@pytest.mark.parametrize(
    "column",
    [
        pa.array([[1, 2]], pa.list_(pa.int64())),
        pa.array([{"a": 1}]),
        pa.array([dt.timedelta(seconds=1)]),
    ],
    ids=["list", "struct", "duration"],
)
def test_unstorable_columns_are_refused_before_anything_is_written(
    adapter: SQLiteData, column: pa.Array
) -> None:
    with pytest.raises(DataError, match=r"column 'nested' has the Arrow type .* convert the column first"):
        adapter.data_write("mixed", pa.table({"id": [1], "nested": column}), "replace")
    assert "mixed" not in adapter.data_tables()


def test_an_integer_beyond_64_bits_fails_and_leaves_the_table_as_it_was(adapter: SQLiteData) -> None:
    adapter.data_write("counts", pa.table({"n": pa.array([1], pa.uint64())}), "replace")
    with pytest.raises(DataError, match="nothing was changed.*signed 64-bit"):
        adapter.data_write("counts", pa.table({"n": pa.array([2**64 - 1], pa.uint64())}), "replace")
    assert adapter.data_read("counts").table.to_pylist() == [{"n": 1}]


# -- append ------------------------------------------------------------------------------------


def test_append_matches_columns_by_name_and_casts_to_the_table_types(adapter: SQLiteData) -> None:
    adapter.data_write(
        "events",
        pa.table({"id": pa.array([1], pa.int64()), "at": pa.array([0], pa.timestamp("s"))}),
        "replace",
    )
    later = pa.table({"at": pa.array([1_000_000], pa.timestamp("us")), "ID": pa.array([2], pa.int32())})
    adapter.data_write("events", later, "append")
    adapter.data_write("events", pa.table({"id": [3]}), "append")
    table = adapter.data_read("events").table
    assert table.schema.types == [pa.int64(), pa.timestamp("s")]
    assert table.to_pylist() == [
        {"id": 1, "at": dt.datetime(1970, 1, 1)},
        {"id": 2, "at": dt.datetime(1970, 1, 1, 0, 0, 1)},
        {"id": 3, "at": None},
    ]


def test_append_of_an_unknown_column_names_the_table_columns(adapter: SQLiteData) -> None:
    adapter.data_write("people", PEOPLE, "replace")
    with pytest.raises(DataError, match=r"no column\(s\) 'age'. Its columns: id, name"):
        adapter.data_write("people", pa.table({"id": [4], "age": [30]}), "append")
    assert adapter.data_read("people").table.num_rows == 3


def test_append_that_would_lose_precision_is_refused(adapter: SQLiteData) -> None:
    adapter.data_write("events", pa.table({"at": pa.array([0], pa.timestamp("s"))}), "replace")
    with pytest.raises(DataError, match="cannot append column 'at'"):
        adapter.data_write("events", pa.table({"at": pa.array([1_500_000], pa.timestamp("us"))}), "append")
    assert adapter.data_read("events").table.num_rows == 1


# -- queries -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DELETE FROM people", r"only reads, but this SQL would DELETE \(people\)"),
        ("UPDATE people SET name = 'x'", r"would UPDATE \(people\)"),
        ("DROP TABLE people", "would change the database schema"),
        ("CREATE TABLE other (a)", "would change the database schema"),
        ("SELECT 1; DELETE FROM people", "one statement at a time"),
    ],
)
def test_queries_cannot_change_the_database(adapter: SQLiteData, sql: str, message: str) -> None:
    adapter.data_write("people", PEOPLE, "replace")
    with pytest.raises(DataError, match=message):
        adapter.data_query(sql, None)
    assert adapter.data_read("people").table.num_rows == 3
    assert adapter.data_tables() == ["people"]


def test_views_are_tables_whose_versions_are_their_base_tables(
    adapter: SQLiteData, database: sqlite3.Connection
) -> None:
    written = adapter.data_write("people", PEOPLE, "replace")
    database.execute("CREATE VIEW named AS SELECT id, name FROM people WHERE name IS NOT NULL")
    assert adapter.data_tables() == ["named", "people"]
    result = adapter.data_read("named")
    assert result.table.to_pylist() == [{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}]
    assert result.table.schema.types == [pa.int64(), pa.string()]
    assert (result.snapshot.target, result.snapshot.handle) == ("named", written.handle)
    assert adapter.data_query("SELECT count(*) AS n FROM named", None).snapshot.handle == written.handle
    with pytest.raises(DataError, match="is a view"):
        adapter.data_write("named", PEOPLE, "replace")


# -- tables written by other tools -------------------------------------------------------------


def test_tables_of_other_tools_read_with_their_declared_types(
    adapter: SQLiteData, database: sqlite3.Connection
) -> None:
    database.execute(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(20), total NUMERIC(10,2), "
        "placed DATETIME, paid BOOL, note)"
    )
    database.execute(
        "INSERT INTO orders VALUES (1, 'ada', 9.5, '2024-01-02 03:04:05', 1, x'00'), (2, 'bob', 3, NULL, 0, NULL)"
    )
    table = adapter.data_read("orders").table
    assert table.schema.types == [
        pa.int64(),
        pa.string(),
        pa.decimal128(10, 2),
        pa.timestamp("us"),
        pa.bool_(),
        pa.binary(),  # no declared type: what the values are
    ]
    assert table.column("placed").to_pylist() == [dt.datetime(2024, 1, 2, 3, 4, 5), None]


def test_a_column_of_mixed_values_is_an_error_that_says_to_cast(
    adapter: SQLiteData, database: sqlite3.Connection
) -> None:
    database.execute("CREATE TABLE loose (id INTEGER, anything)")
    database.execute("INSERT INTO loose VALUES (1, 1), (2, 'two')")
    with pytest.raises(
        DataError, match=r"column 'anything' holds values of several kinds \(int, str\).*CAST"
    ):
        adapter.data_read("loose")
    result = adapter.data_query("SELECT id, CAST(anything AS TEXT) AS anything FROM loose", None)
    assert result.table.to_pylist() == [{"id": 1, "anything": "1"}, {"id": 2, "anything": "two"}]
    assert set(result.snapshot.handle["tables"]) == {"loose"}


def test_versions_of_tables_written_elsewhere_follow_their_content(
    adapter: SQLiteData, database: sqlite3.Connection
) -> None:
    database.execute("CREATE TABLE notes (id INTEGER, body TEXT)")
    database.execute("INSERT INTO notes VALUES (1, 'a')")
    first = adapter.data_read("notes").snapshot.handle["tables"]["notes"]
    assert first.startswith("sha256:")
    assert adapter.data_read("notes").snapshot.handle["tables"]["notes"] == first
    database.execute("INSERT INTO notes VALUES (2, 'b')")
    assert adapter.data_read("notes").snapshot.handle["tables"]["notes"] != first


def test_rows_added_outside_lamina_change_the_recorded_version(
    adapter: SQLiteData, database: sqlite3.Connection
) -> None:
    written = adapter.data_write("people", PEOPLE, "replace").handle["tables"]["people"]
    database.execute("INSERT INTO people VALUES (4, 'cy')")
    read = adapter.data_read("people").snapshot
    assert read.rows == 4
    assert read.handle["tables"]["people"] != written


def test_reserved_names_are_refused(adapter: SQLiteData) -> None:
    for name in ("_lamina_versions", "sqlite_stat1", "1st", "two words"):
        with pytest.raises(DataError, match="is not allowed"):
            adapter.data_write(name, PEOPLE, "replace")
    assert adapter.data_tables() == []


# -- locks and concurrency -----------------------------------------------------------------


def test_a_locked_database_raises_a_transient_error_and_is_usable_once_released(
    tmp_path: Path, database: sqlite3.Connection
) -> None:
    adapter = make_adapter(tmp_path, timeout=0)
    adapter.data_write("people", PEOPLE, "replace")
    assert DatabaseLocked in adapter.data_transient_errors()
    database.execute("BEGIN EXCLUSIVE")
    with pytest.raises(DatabaseLocked, match="is locked") as caught:
        adapter.data_read("people")
    assert isinstance(caught.value, TransientError)
    with pytest.raises(DatabaseLocked):
        adapter.data_write("people", PEOPLE, "append")
    database.execute("ROLLBACK")
    assert adapter.data_read("people").table.num_rows == 3


def _append_rows(project: str, worker: int, count: int) -> None:
    adapter = make_adapter(Path(project))
    for i in range(count):
        adapter.data_write("log", pa.table({"worker": [worker], "i": [i]}), "append")


def test_processes_appending_at_once_lose_no_row_and_keep_the_version_exact(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_rows, args=(str(tmp_path), w, 5)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    adapter = make_adapter(tmp_path)
    result = adapter.data_read("log")
    assert sorted(result.table.to_pylist(), key=lambda r: (r["worker"], r["i"])) == [
        {"worker": w, "i": i} for w in range(4) for i in range(5)
    ]
    with contextlib.closing(sqlite3.connect(adapter.path)) as con:
        recorded = con.execute("SELECT version, rows FROM _lamina_versions WHERE name = 'log'").fetchone()
    assert recorded == (result.snapshot.handle["tables"]["log"], 20)


# -- health ------------------------------------------------------------------------------------


def test_check_reports_a_path_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    result = make_adapter(tmp_path, path="a_file/tables.db").data_check()
    assert not result.ok
    assert "a_file" in result.message
    assert "data.path" in result.fix
