"""The ``snowflake`` data adapter against fakesnow in server mode (the real connector over HTTP):
the data-layer conformance suite, then what is Snowflake's own."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from lamina.errors import DataError
from lamina.hookspecs import AdapterContext
from lamina.models import DataSnapshot
from lamina.plugins.aws.snowflake_data import SnowflakeData, SnowflakeSettings
from lamina.testing import DataSuite
from lamina.testing.aws import AwsEmulator


def make(env: dict[str, str], project: Path, **overrides: Any) -> SnowflakeData:
    settings: dict[str, Any] = {
        "account": env["SNOWFLAKE_ACCOUNT"],
        "user": env["SNOWFLAKE_USER"],
        "warehouse": env["SNOWFLAKE_WAREHOUSE"],
        "database": env["SNOWFLAKE_DATABASE"],
        "schema": env["SNOWFLAKE_SCHEMA"],
        "host": env["SNOWFLAKE_HOST"],
        "port": env["SNOWFLAKE_PORT"],
        "protocol": env["SNOWFLAKE_PROTOCOL"],
        "network_timeout": 30,
        **overrides,
    }
    context = AdapterContext(project_dir=project, stack_name="aws-sagemaker", adapter_name="snowflake")
    return SnowflakeData(SnowflakeSettings.model_validate(settings), context)


@pytest.fixture
def snowflake(aws_env: dict[str, str], tmp_path: Path) -> Iterator[SnowflakeData]:
    adapter = make(aws_env, tmp_path)
    yield adapter
    adapter.data_close()


class TestSnowflakeConformance(DataSuite):
    """The suite every data adapter passes; snapshots compare on their ``version``."""

    placeholder = "?"

    @pytest.fixture
    def data_adapter(self, snowflake: SnowflakeData) -> SnowflakeData:
        return snowflake

    def snapshot_key(self, snapshot: DataSnapshot) -> Any:
        return snapshot.handle["version"]


def test_snapshots_carry_a_query_id_and_time_for_time_travel(snowflake: SnowflakeData) -> None:
    snowflake.data_write("tt_people", pa.table({"id": [1, 2]}), "replace")
    before = dt.datetime.now(dt.UTC)
    snapshot = snowflake.data_read("tt_people").snapshot
    assert snapshot.handle["query_id"]
    assert dt.datetime.fromisoformat(snapshot.handle["at"]) >= before - dt.timedelta(seconds=1)
    query = snowflake.data_query("SELECT COUNT(*) AS n FROM tt_people", None).snapshot
    assert query.handle["query_id"] and query.handle["query_id"] != snapshot.handle["query_id"]


def test_names_round_trip_as_written(snowflake: SnowflakeData) -> None:
    table = pa.table({"sepal_length": [5.1], "Species": ["setosa"]})
    snowflake.data_write("iris_names", table, "replace")
    back = snowflake.data_read("iris_names").table
    assert back.column_names == ["sepal_length", "Species"]  # lower-case unquoted; mixed case kept
    assert "iris_names" in snowflake.data_tables()
    # plain SQL finds lower-case names without quotes, as on every other stack
    rows = snowflake.data_query("SELECT sepal_length FROM iris_names", None).table
    assert rows.column_names == ["sepal_length"]


def test_column_types_survive_a_write(snowflake: SnowflakeData) -> None:
    table = pa.table(
        {
            "i": pa.array([1, None], pa.int32()),
            "f": pa.array([0.5, None], pa.float32()),
            "b": pa.array([True, False]),
            "s": pa.array(["x", None]),
            "d": pa.array([dt.date(2026, 1, 2), None]),
            "n": pa.array([decimal.Decimal("1.25"), None], pa.decimal128(10, 2)),
        }
    )
    snowflake.data_write("typed", table, "replace")
    back = snowflake.data_read("typed").table.to_pylist()
    assert back[0] == {
        "i": 1,
        "f": 0.5,
        "b": True,
        "s": "x",
        "d": dt.date(2026, 1, 2),
        "n": decimal.Decimal("1.25"),
    }
    assert back[1]["s"] is None and back[1]["i"] is None


def test_many_rows_are_written_in_batches(aws_env: dict[str, str], tmp_path: Path) -> None:
    adapter = make(aws_env, tmp_path, insert_batch_rows=600)
    try:
        n = 1500
        snapshot = adapter.data_write(
            "batched", pa.table({"id": list(range(n)), "sq": [i * i for i in range(n)]}), "replace"
        )
        assert snapshot.rows == n
        total = adapter.data_query("SELECT SUM(sq) AS total FROM batched", None).table.to_pylist()
        assert total == [{"total": sum(i * i for i in range(n))}]
    finally:
        adapter.data_close()


def test_a_failed_append_leaves_the_table_as_it_was(snowflake: SnowflakeData) -> None:
    snowflake.data_write("guarded", pa.table({"id": [1, 2]}), "replace")
    with pytest.raises(DataError, match="not changed"):
        snowflake.data_write("guarded", pa.table({"id": [3], "extra": ["no such column"]}), "append")
    assert snowflake.data_read("guarded").table.to_pylist() == [{"id": 1}, {"id": 2}]


def test_nested_columns_are_refused_with_a_fix(snowflake: SnowflakeData) -> None:
    with pytest.raises(DataError, match="JSON string"):
        snowflake.data_write("nested", pa.table({"tags": [["a", "b"]]}), "replace")


def test_queries_only_read(snowflake: SnowflakeData) -> None:
    with pytest.raises(DataError, match="only reads"):
        snowflake.data_query("DROP TABLE anything", None)


def test_password_comes_from_the_environment_only(
    aws_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SNOWFLAKE_PASSWORD")
    adapter = make(aws_env, tmp_path)
    with pytest.raises(DataError, match="SNOWFLAKE_PASSWORD"):
        adapter.data_tables()
    with pytest.raises(Exception, match="password"):
        SnowflakeSettings.model_validate({"account": "a", "password": "x"})  # not a setting at all


def test_the_emulator_database_is_what_the_real_connector_sees(
    snowflake: SnowflakeData, aws_emulator: AwsEmulator
) -> None:
    snowflake.data_write("shared_view", pa.table({"id": [7]}), "replace")
    conn = aws_emulator.snowflake_connect(database="LAMINA", schema="PUBLIC")
    try:
        assert conn.cursor().execute("SELECT ID FROM SHARED_VIEW").fetchall() == [(7,)]
    finally:
        conn.close()


def test_large_writes_go_through_a_stage(aws_env: dict[str, str], tmp_path: Path) -> None:
    adapter = make(aws_env, tmp_path, write_method="auto", stage_threshold_rows=100)
    try:
        table = pa.table({"id": list(range(300)), "label": [f"row {i}" for i in range(300)]})
        assert adapter.data_write("staged_rows", table, "replace").rows == 300
        assert adapter._staging_works  # PUT + COPY INTO worked; no fallback to inserts
        adapter.data_write("staged_rows", table.slice(0, 150), "append")
        back = adapter.data_read("staged_rows").table.sort_by("id")
        assert back.num_rows == 450 and back.column("label")[449].as_py() == "row 299"
        assert not [t for t in adapter.data_tables() if t.lower().startswith("_lamina")]
    finally:
        adapter.data_close()
