"""The ``sqlalchemy`` data adapter on the PostgreSQL and the MariaDB of this machine.

Each server gets a fresh schema (PostgreSQL) or database (MariaDB) per test session, dropped at
the end (see ``sqla_helpers``). The adapter is tested through its hooks, as the stack calls it:
the conformance suite (with the columnar readers and with the DB-API fallback), error messages,
transient-or-not classification, and atomic writes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from lamina.errors import DataError, TransientError
from lamina.models import DataSnapshot
from lamina.testing import DataSuite
from lamina.testing.data_suite import PEOPLE
from sqla_helpers import Database, open_database


@pytest.fixture(scope="session")
def postgres() -> Iterator[Database]:
    yield from open_database("postgresql")


@pytest.fixture(scope="session")
def mariadb() -> Iterator[Database]:
    yield from open_database("mariadb")


@pytest.fixture(params=["postgresql", "mariadb"])
def database(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue("postgres" if request.param == "postgresql" else "mariadb")


class _Suite(DataSuite):
    placeholder = "%s"  # the DB-API drivers' own (psycopg, PyMySQL); `?` is tested below
    reader = "auto"

    def snapshot_key(self, snapshot: DataSnapshot) -> Any:
        """Tables: their content versions; queries: the version of the result (not the time)."""
        return snapshot.handle.get("tables") or snapshot.handle["version"]


class TestPostgresConformance(_Suite):
    @pytest.fixture
    def data_adapter(self, postgres: Database) -> Iterator[Any]:
        adapter = postgres.adapter(reader=self.reader)
        yield adapter
        adapter.data_close()


class TestPostgresDBAPIConformance(TestPostgresConformance):
    """The fallback every other dialect takes: psycopg rows through a server-side cursor."""

    reader = "dbapi"


class TestMariaDBConformance(_Suite):
    @pytest.fixture
    def data_adapter(self, mariadb: Database) -> Iterator[Any]:
        adapter = mariadb.adapter(reader=self.reader)
        yield adapter
        adapter.data_close()


class TestMariaDBDBAPIConformance(TestMariaDBConformance):
    reader = "dbapi"


# -- behaviour beyond the suite --------------------------------------------------------------


def test_readers_are_the_columnar_ones_where_installed(postgres: Database, mariadb: Database) -> None:
    assert "reads through adbc" in postgres.adapter().data_check().message
    assert "reads through connectorx" in mariadb.adapter().data_check().message


def test_question_marks_bind_like_on_every_other_stack(database: Database) -> None:
    adapter = database.adapter()
    adapter.data_write("marks", PEOPLE, "replace")
    result = adapter.data_query(
        "SELECT id, name FROM marks WHERE id >= ? AND (name LIKE 'a%' OR name = ?) ORDER BY id", [1, "bob"]
    )
    assert result.table.to_pylist() == [{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}]
    literal = adapter.data_query("SELECT id FROM marks WHERE name <> '?' AND id = ?", [3]).table
    assert literal.num_rows == 0  # name is NULL for id 3; the quoted '?' stayed a question mark


def test_parameters_are_values_not_sql(database: Database) -> None:
    adapter = database.adapter()
    adapter.data_write("quoting", PEOPLE, "replace")
    result = adapter.data_query("SELECT id FROM quoting WHERE name = ?", ["x' OR '1'='1"])
    assert result.table.num_rows == 0


def test_versions_agree_with_duckdb(database: Database, tmp_path: Path) -> None:
    from lamina.hookspecs import AdapterContext
    from lamina.plugins.duckdb_data import DuckDBData, DuckDBSettings

    duck = DuckDBData(DuckDBSettings(), AdapterContext(tmp_path, "local", "duckdb"))
    ours = database.adapter()
    for adapter in (duck, ours):
        adapter.data_write("agree", PEOPLE, "replace")
    assert ours.data_read("agree").snapshot.handle == duck.data_read("agree").snapshot.handle


def test_a_table_written_by_another_tool_is_hashed_from_its_rows(database: Database) -> None:
    adapter = database.adapter()
    adapter.data_write("outside", PEOPLE, "replace")
    recorded = adapter.data_read("outside").snapshot.handle
    database.execute(f"UPDATE {database.qualified('outside')} SET id = id + 10 WHERE id = 1")
    database.execute(f"DELETE FROM {database.qualified('outside')} WHERE id = 2")  # the count changes
    changed = adapter.data_read("outside")
    assert changed.snapshot.handle != recorded
    assert adapter.data_read("outside").snapshot.handle == changed.snapshot.handle


def test_decimals_keep_their_declared_scale_in_a_read(database: Database) -> None:
    adapter = database.adapter()
    prices = pa.table(
        {"id": [1, 2], "price": pa.array([1.25, 100.5], pa.float64()).cast(pa.decimal128(10, 2))}
    )
    adapter.data_write("prices", prices, "replace")
    table = adapter.data_read("prices").table
    assert table.schema.field("price").type == pa.decimal128(10, 2)
    assert table.sort_by("id").column("price").to_pylist() == prices.column("price").to_pylist()


# -- errors ----------------------------------------------------------------------------------


def test_a_missing_table_lists_what_exists(database: Database) -> None:
    adapter = database.adapter()
    adapter.data_write("present", PEOPLE, "replace")
    with pytest.raises(DataError, match=r"(?s)no table named 'absent'.*Tables in .*present"):
        adapter.data_read("absent")
    with pytest.raises(DataError, match=r"(?s)absent.*Tables in .*present"):
        adapter.data_query("SELECT * FROM absent", None)


def test_sql_errors_carry_the_database_message(database: Database) -> None:
    adapter = database.adapter()
    adapter.data_write("errs", PEOPLE, "replace")
    expected = (
        'column "nosuch" does not exist' if database.kind == "postgresql" else "Unknown column 'nosuch'"
    )
    with pytest.raises(DataError, match=expected) as caught:
        adapter.data_query("SELECT nosuch FROM errs", None)
    assert "sql: SELECT nosuch FROM errs" in str(caught.value)
    assert not isinstance(caught.value, TransientError)


def test_writing_sql_is_refused_by_query(database: Database) -> None:
    with pytest.raises(DataError, match="only reads.*DELETE"):
        database.adapter().data_query("DELETE FROM errs", None)


def test_a_bad_url_is_refused_before_connecting() -> None:
    from lamina.plugins.sqlalchemy_data import SQLAlchemySettings
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not a SQLAlchemy URL"):
        SQLAlchemySettings(url="localhost:5432/test")
    bad_port = Database("postgresql", "postgresql+psycopg://u@127.0.0.1:notaport/db", None, "")
    with pytest.raises(DataError, match="data.url is not a valid SQLAlchemy URL"):
        bad_port.adapter().data_tables()


def test_an_unknown_dialect_names_the_driver_to_install() -> None:
    unknown = Database("x", "nosuchdb://u@host/db", None, "").adapter()
    with pytest.raises(DataError, match=r"(?s)'nosuchdb', which is not installed.*mssql.*postgresql"):
        unknown.data_tables()
    check = unknown.data_check()
    assert not check.ok and "nosuchdb" in check.message
    import importlib.util

    if importlib.util.find_spec("pyodbc") is None:  # not a test dependency: its absence is tested
        missing_driver = Database("x", "mssql+pyodbc://u@dsn", None, "").adapter()
        with pytest.raises(
            DataError, match=r"'mssql\+pyodbc', whose driver is not installed.*pip install pyodbc"
        ):
            missing_driver.data_tables()


def test_a_refused_login_says_so_and_is_not_retried(database: Database) -> None:
    from lamina.plugins.sqlalchemy_data import LoginRefused

    if database.kind == "postgresql":  # the server trusts local users: an unknown role is refused
        adapter = Database(
            "postgresql", "postgresql+psycopg://nosuchrole@127.0.0.1:5432/test", None, ""
        ).adapter()
    else:
        os.environ["LAMINA_TEST_WRONG_PASSWORD"] = "definitely-wrong"
        adapter = database.adapter(password_env="LAMINA_TEST_WRONG_PASSWORD")
    with pytest.raises(LoginRefused, match="refused the login") as caught:
        adapter.data_tables()
    assert not isinstance(caught.value, TransientError)
    assert not isinstance(caught.value, adapter.data_transient_errors())
    assert "definitely-wrong" not in str(caught.value)
    check = adapter.data_check()
    assert not check.ok and "refused the login" in check.message and "password" in check.fix


def test_an_unreachable_server_is_transient() -> None:
    from lamina.plugins.sqlalchemy_data import ConnectionDropped

    adapter = Database("postgresql", "postgresql+psycopg://u@127.0.0.1:1/test", None, "").adapter()
    with pytest.raises(ConnectionDropped) as caught:
        adapter.data_tables()
    assert isinstance(caught.value, adapter.data_transient_errors())
    assert not adapter.data_check().ok


def test_a_connection_dropped_mid_query_is_transient(postgres: Database) -> None:
    from lamina.plugins.sqlalchemy_data import ConnectionDropped

    adapter = postgres.adapter()
    adapter.data_tables()
    outcome: dict[str, BaseException] = {}

    def query() -> None:
        try:
            adapter.data_query("SELECT pg_sleep(60) AS slept", None)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    worker = threading.Thread(target=query)
    worker.start()
    deadline = time.monotonic() + 30
    while worker.is_alive() and time.monotonic() < deadline:
        killed = postgres.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE '%%pg_sleep(60) AS slept%%' AND pid <> pg_backend_pid()"
        )
        if killed:
            break
        time.sleep(0.05)
    worker.join(60)
    assert isinstance(outcome.get("error"), ConnectionDropped), outcome
    assert isinstance(outcome["error"], adapter.data_transient_errors())
    assert adapter.data_query("SELECT 1 AS one", None).table.to_pylist() == [{"one": 1}]  # reconnects


def test_messages_never_show_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMINA_TEST_DB_PASSWORD", "s3cret-value")
    adapter = Database("postgresql", "postgresql+psycopg://u@127.0.0.1:1/test", None, "").adapter(
        password_env="LAMINA_TEST_DB_PASSWORD"
    )
    with pytest.raises(DataError) as caught:
        adapter.data_tables()
    assert "s3cret-value" not in str(caught.value) and "***" in str(caught.value)
    assert "s3cret-value" not in adapter.data_check().message


def test_an_unset_password_variable_is_named(monkeypatch: pytest.MonkeyPatch, postgres: Database) -> None:
    monkeypatch.delenv("LAMINA_TEST_UNSET_PASSWORD", raising=False)
    with pytest.raises(DataError, match="LAMINA_TEST_UNSET_PASSWORD, which is not set"):
        postgres.adapter(password_env="LAMINA_TEST_UNSET_PASSWORD").data_tables()


# -- atomic writes ---------------------------------------------------------------------------


def _failing_rows(kind: str) -> pa.Table:
    """Many good rows, then one the database refuses (late, so some rows were already sent)."""
    count = 20_000
    if kind == "postgresql":  # PostgreSQL text cannot hold a NUL character
        bad = pa.array([*(f"row {i}" for i in range(count)), "nul \x00 here"])
        return pa.table({"id": pa.array(range(count + 1), pa.int64()), "name": bad})
    values = [*(float(i) for i in range(count)), float("nan")]  # MariaDB's DOUBLE holds no NaN
    return pa.table({"id": pa.array(range(count + 1), pa.int64()), "name": pa.array(values)})


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_a_failed_write_leaves_the_old_table(database: Database, mode: str) -> None:
    adapter = database.adapter()
    old = pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["a", "b"]})
    if database.kind != "postgresql":
        old = pa.table({"id": pa.array([1, 2], pa.int64()), "name": [1.0, 2.0]})
    before = adapter.data_write(f"kept_{mode}", old, "replace")
    with pytest.raises(DataError, match="the table was not changed"):
        adapter.data_write(f"kept_{mode}", _failing_rows(database.kind), mode)
    result = adapter.data_read(f"kept_{mode}")
    assert result.table.sort_by("id").to_pylist() == old.to_pylist()
    assert result.snapshot.handle == before.handle
    assert not [t for t in adapter.data_tables() if t.startswith("_lamina")]


WRITER = """
import sys
import pyarrow as pa
sys.path.insert(0, {helpers!r})
from sqla_helpers import Database

database = Database({kind!r}, {url!r}, {schema!r}, "")
rows = 3_000_000
table = pa.table({{"id": pa.array(range(rows), pa.int64()), "name": pa.array([f"row number {{i}}" for i in range(rows)])}})
print("writing", flush=True)
database.adapter().data_write("survivor", table, "replace")
print("finished", flush=True)
"""


def _write_in_progress(database: Database) -> bool:
    if database.kind == "postgresql":
        return bool(
            database.execute(
                "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'COPY %%survivor%%' AND state = 'active'"
            )
        )
    # the staging table is created (and committed) just before its rows are sent
    return bool(
        database.execute(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME LIKE '\\_lamina\\_stage\\_%%'"
        )
    )


def test_a_write_killed_midway_leaves_the_old_table_readable(database: Database, tmp_path: Path) -> None:
    adapter = database.adapter()
    old = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["old", "rows", "stay"]})
    before = adapter.data_write("survivor", old, "replace")
    script = WRITER.format(
        helpers=str(Path(__file__).parent), kind=database.kind, url=database.url, schema=database.schema
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        deadline = time.monotonic() + 120
        while not _write_in_progress(database):
            assert writer.poll() is None, "the write ended before it could be interrupted"
            assert time.monotonic() < deadline, "the write never started"
            time.sleep(0.02)
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(30)
    assert writer.returncode == -signal.SIGKILL
    result = adapter.data_read("survivor")
    assert result.table.sort_by("id").to_pylist() == old.to_pylist()
    assert result.snapshot.handle == before.handle
    assert not [t for t in adapter.data_tables() if t.lower().startswith("_lamina")]
    adapter.data_write("survivor", PEOPLE, "replace")  # and the table can be written again
    assert adapter.data_read("survivor").table.num_rows == PEOPLE.num_rows


def test_staging_tables_of_killed_writes_are_dropped_a_day_later(mariadb: Database) -> None:
    fresh = f"_lamina_stage_{int(time.time())}_0123abcd"
    for name in ("_lamina_stage_1000_deadbeef", fresh):
        mariadb.execute(f"CREATE TABLE {name} (id BIGINT)")
    mariadb.adapter().data_write("after_a_crash", PEOPLE, "replace")
    left = {name for (name,) in mariadb.execute("SHOW TABLES LIKE '\\_lamina\\_stage\\_%%'")}
    assert "_lamina_stage_1000_deadbeef" not in left
    assert fresh in left  # a staging table younger than a day may belong to a write in progress
    mariadb.execute(f"DROP TABLE {fresh}")


def test_check_names_a_missing_schema(postgres: Database) -> None:
    check = postgres.adapter(schema="no_such_schema_here").data_check()
    assert not check.ok
    assert "'no_such_schema_here' does not exist" in check.message and "CREATE SCHEMA" in check.fix


def test_times_dates_and_narrow_numbers_read_back_as_written(database: Database) -> None:
    import datetime as dt

    moment = dt.datetime(2024, 1, 2, 3, 4, 5, 678901)
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "small": pa.array([7, None], pa.int32()),
            "ratio": pa.array([0.5, None], pa.float32()),
            "at": pa.array([moment, None], pa.timestamp("us")),
            "at_ns": pa.array([moment, None], pa.timestamp("ns")),  # pandas' datetime64[ns]
            "at_utc": pa.array([moment.replace(tzinfo=dt.UTC), None], pa.timestamp("us", "UTC")),
            "day": pa.array([dt.date(2024, 2, 29), None]),
            "label": pa.array(["a", "b"]).dictionary_encode(),
        }
    )
    adapter = database.adapter()
    written = adapter.data_write("moments", table, "replace")
    result = adapter.data_read("moments")
    expected = table.set_column(7, "label", table.column("label").cast(pa.string()))
    assert result.table.sort_by("id").equals(expected), result.table.schema
    assert result.snapshot.handle == written.handle


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_url_without_a_driver_takes_the_installed_one(kind: str, request: pytest.FixtureRequest) -> None:
    import importlib.util

    database: Database = request.getfixturevalue("postgres" if kind == "postgresql" else "mariadb")
    default = "psycopg2" if kind == "postgresql" else "MySQLdb"
    if importlib.util.find_spec(default) is not None:
        pytest.skip(f"{default} is installed: SQLAlchemy's default driver serves the URL")
    plain = database.url.replace("+psycopg", "").replace("+pymysql", "")
    adapter = Database(kind, plain, database.schema, "").adapter()
    adapter.data_write("plain_url", PEOPLE, "replace")
    assert adapter.data_read("plain_url").table.num_rows == 3


@pytest.mark.parametrize("reader", ["auto", "dbapi"])
def test_appending_to_a_table_made_by_another_tool(database: Database, reader: str) -> None:
    name = f"foreign_{reader}"
    database.execute(f"DROP TABLE IF EXISTS {database.qualified(name)}")
    database.execute(f"CREATE TABLE {database.qualified(name)} (id BIGINT, name VARCHAR(20))")
    database.execute(f"INSERT INTO {database.qualified(name)} VALUES (1, 'made'), (2, 'elsewhere')")
    adapter = database.adapter(reader=reader)
    before = adapter.data_read(name).snapshot.handle["tables"][name]
    more = pa.table({"id": pa.array([3], pa.int64()), "name": ["appended"]})
    written = adapter.data_write(name, more, "append")
    result = adapter.data_read(name)
    assert result.table.sort_by("id").column("name").to_pylist() == ["made", "elsewhere", "appended"]
    assert written.rows == 3 and result.snapshot.handle == written.handle
    assert written.handle["tables"][name] != before
