"""The ``duckdb`` data adapter: the data-layer conformance suite, then what is DuckDB's own.

DuckDB's own: tables from Parquet/CSV files in the data directories, content-hash versions,
several processes reading and writing one database file, locks released after failures,
and the error messages users read.
"""

from __future__ import annotations

import fcntl
import hashlib
import multiprocessing
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pluggy
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lamina.errors import DataError, TransientError
from lamina.hookspecs import PROJECT, AdapterContext, DataSpec
from lamina.plugins.duckdb_data import (
    ADAPTER,
    DatabaseLocked,
    DuckDBData,
    DuckDBSettings,
    file_lock,
)
from lamina.testing import DataSuite

SPECIES = pa.table({"id": [1, 2, 3], "species": ["setosa", "versicolor", "virginica"]})
MEASURES_CSV = "id,petal\n1,1.4\n2,4.7\n3,6.0\n"


def make_adapter(project: Path, **settings: Any) -> DuckDBData:
    context = AdapterContext(project_dir=project, stack_name="local", adapter_name="duckdb")
    return DuckDBData(DuckDBSettings(**settings), context)


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    return tmp_path


@pytest.fixture
def adapter(project: Path) -> Iterator[DuckDBData]:
    plugin = make_adapter(project)
    yield plugin
    plugin.data_close()


@pytest.fixture
def with_files(project: Path) -> Path:
    """``data/species.parquet`` and ``data/measures.csv``."""
    pq.write_table(SPECIES, project / "data" / "species.parquet")
    (project / "data" / "measures.csv").write_text(MEASURES_CSV)
    return project


class TestDuckDBConformance(DataSuite):
    @pytest.fixture
    def data_adapter(self, adapter: DuckDBData) -> DuckDBData:
        return adapter


# -- the adapter as the stack loads it -------------------------------------------------------


def test_adapter_registers_against_the_data_spec(project: Path) -> None:
    assert (ADAPTER.layer, ADAPTER.name, ADAPTER.settings) == ("data", "duckdb", DuckDBSettings)
    assert ADAPTER.missing_modules() == []
    plugin = ADAPTER.factory(ADAPTER.settings(), AdapterContext(project, "local", "duckdb"))
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(DataSpec)
    pm.register(plugin)
    pm.check_pending()  # every hookimpl matches a DataSpec hook
    hooks = {name for name in dir(DataSpec) if name.startswith("data_")}
    assert hooks == {impl.name for impl in pm.get_hookcallers(plugin)}


def test_importing_the_module_loads_neither_duckdb_nor_pyarrow() -> None:
    code = "import sys, lamina.plugins.duckdb_data; print(sorted({'duckdb', 'pyarrow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_threads_setting_reaches_duckdb(project: Path) -> None:
    adapter = make_adapter(project, threads=2)
    result = adapter.data_query("SELECT current_setting('threads') AS threads", None)
    assert result.table.to_pylist() == [{"threads": 2}]


# -- files in the data directories -------------------------------------------------------------


def test_parquet_and_csv_files_are_tables_joinable_with_database_tables(
    adapter: DuckDBData, with_files: Path
) -> None:
    adapter.data_write("labels", pa.table({"id": [1, 3], "label": ["small", "large"]}), "replace")
    assert adapter.data_tables() == ["labels", "measures", "species"]
    assert adapter.data_read("species").table.to_pylist() == SPECIES.to_pylist()
    result = adapter.data_query(
        "SELECT s.species, m.petal, l.label FROM species s JOIN measures m USING (id) "
        "JOIN labels l USING (id) ORDER BY s.id",
        None,
    )
    assert result.table.to_pylist() == [
        {"species": "setosa", "petal": 1.4, "label": "small"},
        {"species": "virginica", "petal": 6.0, "label": "large"},
    ]
    handle = result.snapshot.handle
    assert set(handle["tables"]) == {"labels", "measures", "species"}
    assert handle["files"] == {"measures": "data/measures.csv", "species": "data/species.parquet"}


def test_file_version_is_the_sha256_of_its_content_and_follows_changes(
    adapter: DuckDBData, with_files: Path
) -> None:
    csv = with_files / "data" / "measures.csv"
    first = adapter.data_read("measures").snapshot.handle["tables"]["measures"]
    assert first == sha256_file(csv)
    assert adapter.data_read("measures").snapshot.handle["tables"]["measures"] == first

    csv.write_text(MEASURES_CSV + "4,5.1\n")
    os.utime(csv, ns=(csv.stat().st_atime_ns, csv.stat().st_mtime_ns + 1_000_000_000))
    result = adapter.data_query("SELECT count(*) AS n FROM measures", None)
    assert result.table.to_pylist() == [{"n": 4}]
    assert result.snapshot.handle["tables"]["measures"] == sha256_file(csv) != first


def test_file_hashes_are_cached_by_size_and_mtime(adapter: DuckDBData, with_files: Path) -> None:
    csv = with_files / "data" / "measures.csv"
    adapter.data_read("measures")
    cache = with_files / ".lamina" / "data" / "file-hashes.json"
    assert str(csv) in cache.read_text()

    # a fresh adapter (another task process) takes the version from the cache, not the bytes
    cache.write_text(cache.read_text().replace(sha256_file(csv), "sha256:from-the-cache"))
    fresh = make_adapter(with_files)
    assert fresh.data_read("measures").snapshot.handle["tables"]["measures"] == "sha256:from-the-cache"

    os.utime(csv, ns=(csv.stat().st_atime_ns, csv.stat().st_mtime_ns + 1_000_000_000))
    assert fresh.data_read("measures").snapshot.handle["tables"]["measures"] == sha256_file(csv)


def test_reading_files_does_not_create_the_database(adapter: DuckDBData, with_files: Path) -> None:
    assert adapter.data_query("SELECT count(*) AS n FROM species", None).table.to_pylist() == [{"n": 3}]
    assert not (with_files / ".lamina" / "data" / "warehouse.duckdb").exists()


def test_missing_data_dirs_are_fine_and_reported(project: Path) -> None:
    adapter = make_adapter(project, data_dirs=["data", "elsewhere"])
    assert adapter.data_tables() == []
    check = adapter.data_check()
    assert check.ok
    assert "elsewhere (missing)" in check.message


def test_an_earlier_data_dir_wins_a_name_clash(project: Path) -> None:
    (project / "first").mkdir()
    (project / "first" / "t.csv").write_text("x\n1\n")
    (project / "data" / "t.csv").write_text("x\n2\n")
    adapter = make_adapter(project, data_dirs=["first", "data"])
    assert adapter.data_read("t").table.to_pylist() == [{"x": 1}]


def test_a_file_table_cannot_be_written(adapter: DuckDBData, with_files: Path) -> None:
    with pytest.raises(DataError, match=r"'species' is the read-only file data/species.parquet"):
        adapter.data_write("species", SPECIES, "replace")


# -- database table versions -------------------------------------------------------------------


def test_version_does_not_depend_on_chunking(adapter: DuckDBData) -> None:
    one_chunk = pa.table({"x": list(range(100))})
    three_chunks = pa.concat_tables([one_chunk.slice(0, 10), one_chunk.slice(10, 50), one_chunk.slice(60)])
    first = adapter.data_write("t", one_chunk, "replace").handle
    assert adapter.data_write("t", three_chunks, "replace").handle == first


def test_query_snapshot_names_only_the_tables_it_reads(adapter: DuckDBData) -> None:
    adapter.data_write("a", pa.table({"x": [1]}), "replace")
    before = adapter.data_query("SELECT * FROM a", None).snapshot.handle
    adapter.data_write("b", pa.table({"x": [2]}), "replace")
    after = adapter.data_query("SELECT * FROM a", None).snapshot.handle
    assert before == after
    assert list(after["tables"]) == ["a"]


def test_table_created_outside_lamina_gets_a_content_version(adapter: DuckDBData, project: Path) -> None:
    adapter.data_write("seed", pa.table({"x": [1]}), "replace")  # creates the database file
    database = project / ".lamina" / "data" / "warehouse.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE TABLE outside AS SELECT range AS x FROM range(5)")
    first = adapter.data_read("outside").snapshot.handle["tables"]["outside"]
    assert first.startswith("sha256:")
    assert (
        adapter.data_query("SELECT sum(x) FROM outside", None).snapshot.handle["tables"]["outside"] == first
    )
    with duckdb.connect(str(database)) as con:
        con.execute("INSERT INTO outside VALUES (5)")
    assert adapter.data_read("outside").snapshot.handle["tables"]["outside"] != first
    adapter.data_write("outside", pa.table({"x": [6]}), "append")
    assert adapter.data_read("outside").table.num_rows == 7


def test_names_are_case_insensitive(adapter: DuckDBData) -> None:
    adapter.data_write("Iris", SPECIES, "replace")
    adapter.data_write("IRIS", SPECIES, "append")
    assert adapter.data_read("iris").table.num_rows == 6
    assert adapter.data_tables() == ["Iris"]


# -- several processes -------------------------------------------------------------------------

WORKERS = 4
APPENDS = 5
ROWS_PER_APPEND = 10


def _worker(project: str, worker: int, barrier: Any, errors: Any) -> None:
    """One task process: appends batches and reads, checking it never sees a partial append."""
    try:
        adapter = make_adapter(Path(project))
        barrier.wait()
        for i in range(APPENDS):
            batch = pa.table({"worker": [worker] * ROWS_PER_APPEND, "i": [i] * ROWS_PER_APPEND})
            adapter.data_write("events", batch, "append")
            seen = adapter.data_query("SELECT count(*) AS n FROM events", None).table.column("n")[0].as_py()
            assert seen % ROWS_PER_APPEND == 0, f"saw {seen} rows: a partial append"
            assert adapter.data_read("species").table.num_rows == 3
    except BaseException as exc:
        errors.put(f"worker {worker}: {type(exc).__name__}: {exc}")
        raise


def test_concurrent_writers_and_readers_all_succeed(adapter: DuckDBData, with_files: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, errors = ctx.Barrier(WORKERS), ctx.Queue()
    processes = [
        ctx.Process(target=_worker, args=(str(with_files), w, barrier, errors)) for w in range(WORKERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=240)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert [p.exitcode for p in processes] == [0] * WORKERS, failures

    result = adapter.data_query(
        "SELECT worker, count(*) AS n FROM events GROUP BY worker ORDER BY worker", None
    )
    assert result.table.to_pylist() == [{"worker": w, "n": APPENDS * ROWS_PER_APPEND} for w in range(WORKERS)]
    snapshot = adapter.data_read("events").snapshot
    assert snapshot.rows == WORKERS * APPENDS * ROWS_PER_APPEND
    assert snapshot.handle["tables"]["events"] == result.snapshot.handle["tables"]["events"]


# -- locks -------------------------------------------------------------------------------------


def _lock_is_free(adapter: DuckDBData) -> bool:
    fd = os.open(adapter.lock_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    "failing",
    [
        pytest.param(lambda a: a.data_query("SELECT * FROM t WHERE nope = 1", None), id="query-binder-error"),
        pytest.param(lambda a: a.data_query("SELEC 1", None), id="query-syntax-error"),
        pytest.param(lambda a: a.data_read("missing"), id="read-unknown-table"),
        pytest.param(
            lambda a: a.data_write("t", pa.table({"other": ["a"]}), "append"), id="append-wrong-columns"
        ),
    ],
)
def test_a_failed_operation_releases_the_lock_and_changes_nothing(
    adapter: DuckDBData, failing: Callable[[DuckDBData], object]
) -> None:
    before = adapter.data_write("t", pa.table({"x": [1, 2]}), "replace")
    with pytest.raises(DataError):
        failing(adapter)
    assert _lock_is_free(adapter)
    after = adapter.data_read("t").snapshot
    assert (after.rows, after.handle) == (before.rows, before.handle)
    assert adapter.data_write("t", pa.table({"x": [3]}), "append").rows == 3


def test_waiting_too_long_for_the_lock_is_a_transient_error(project: Path) -> None:
    adapter = make_adapter(project, lock_timeout=0.05)
    adapter.data_write("t", pa.table({"x": [1]}), "replace")
    with file_lock(adapter.lock_path, exclusive=True, timeout=1):
        with pytest.raises(DatabaseLocked, match="lock_timeout") as caught:
            adapter.data_read("t")
    assert isinstance(caught.value, adapter.data_transient_errors())
    assert isinstance(caught.value, TransientError)
    assert adapter.data_read("t").table.num_rows == 1


def test_a_database_held_outside_lamina_is_a_transient_error(adapter: DuckDBData, project: Path) -> None:
    adapter.data_write("t", pa.table({"x": [1]}), "replace")
    holder = textwrap.dedent(
        f"""
        import sys, duckdb
        con = duckdb.connect({str(adapter.database)!r})
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        with pytest.raises(DatabaseLocked, match="outside Lamina") as caught:
            adapter.data_read("t")
        assert isinstance(caught.value, adapter.data_transient_errors())
        check = adapter.data_check()
        assert not check.ok and check.fix
    finally:
        process.communicate("", timeout=60)
    assert adapter.data_read("t").table.num_rows == 1


# -- what users read ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bad-name", "1st", "", "two words", "x" * 64, 'q"uote', "a.b"])
def test_bad_table_names_say_what_is_allowed(adapter: DuckDBData, name: str) -> None:
    with pytest.raises(
        DataError, match="letters, digits and underscores, starting with a letter or underscore"
    ):
        adapter.data_write(name, SPECIES, "replace")


def test_reserved_and_longest_names(adapter: DuckDBData) -> None:
    with pytest.raises(DataError, match="'_lamina' are Lamina's"):
        adapter.data_write("_lamina_versions", SPECIES, "replace")
    longest = "t" * 63
    assert adapter.data_write(longest, SPECIES, "replace").rows == 3


def test_unknown_table_message_lists_tables_and_where_they_are_looked_for(
    adapter: DuckDBData, with_files: Path
) -> None:
    adapter.data_write("labels", SPECIES, "replace")
    with pytest.raises(DataError) as caught:
        adapter.data_read("irsi")
    message = str(caught.value)
    assert "no table named 'irsi'" in message
    assert "Available tables: labels, measures, species." in message
    assert ".lamina/data/warehouse.duckdb" in message and "data directories: data" in message

    with pytest.raises(DataError) as caught:
        adapter.data_query("SELECT * FROM irsi", None)
    message = str(caught.value)
    assert "irsi" in message and "Available tables: labels, measures, species." in message


def test_writing_sql_in_a_query_points_to_data_write(adapter: DuckDBData) -> None:
    adapter.data_write("t", SPECIES, "replace")
    with pytest.raises(DataError, match="data_query only reads.*DROP.*data_write"):
        adapter.data_query("DROP TABLE t", None)
    assert adapter.data_read("t").table.num_rows == 3


def test_wrong_input_type_names_the_conversion(adapter: DuckDBData) -> None:
    with pytest.raises(DataError, match=r"takes a pyarrow.Table, got builtins.dict.*from_pandas"):
        adapter.data_write("t", {"x": [1]}, "replace")  # type: ignore[arg-type]


def test_failed_append_says_which_columns_came_in(adapter: DuckDBData) -> None:
    adapter.data_write("t", pa.table({"x": [1]}), "replace")
    with pytest.raises(
        DataError, match=r"(?s)nothing was changed.*table columns: x BIGINT\n  incoming columns: other string"
    ):
        adapter.data_write("t", pa.table({"other": ["a"]}), "append")


def test_check_reports_the_database_and_data_dirs(adapter: DuckDBData, with_files: Path) -> None:
    check = adapter.data_check()
    assert check.ok
    assert ".lamina/data/warehouse.duckdb (created)" in check.message
    assert "data (2 files)" in check.message


def test_check_reports_an_unwritable_database_location(project: Path) -> None:
    (project / "blocker").write_text("a file where a directory should be")
    check = make_adapter(project, database="blocker/warehouse.duckdb").data_check()
    assert not check.ok
    assert "blocker" in check.message and "data.database" in check.fix
