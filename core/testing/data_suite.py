"""Conformance tests for data adapters (the ``DataSpec`` layer), in the style of fsspec's.

Every data adapter, first-party or third-party, runs the same suite: subclass
:class:`DataSuite` and provide a ``data_adapter`` fixture that returns a constructed
adapter plugin object (the object whose ``@hookimpl`` methods implement ``DataSpec``) over a
writable place nobody else uses (a temporary project, a fresh schema)::

    from lamina.testing import DataSuite

    class TestMyWarehouse(DataSuite):
        @pytest.fixture
        def data_adapter(self, tmp_path):
            return MyWarehouseData(MyWarehouseSettings(...), context)

The suite calls the hook methods directly and needs only pyarrow. It never drops what it
writes (``DataSpec`` has no drop hook), so every table name is unique to its test. Dialects
differ; a subclass adapts the suite through a few class attributes and methods:

* ``placeholder``: how the dialect writes a positional query parameter (``None`` skips the
  parameter test);
* :meth:`DataSuite.snapshot_key`: the part of a snapshot's handle that identifies the
  data version (adapters whose handles carry a query id or a time override it);
* :meth:`DataSuite.rows`: how a result is turned into comparable rows;
* ``booleans_in_queries`` and ``exact_averages``: where the adapter's database leaves the
  portable types below (SQLite has no boolean type; Snowflake's ``AVG`` is an exact ``NUMBER``).

The portable types, and how each maps to Arrow on every adapter (the suite checks them):

============================  ==============================================================
``DataAdapterSuite`` is the suite's earlier name, kept as an alias. The pytest plugin
registers this module for assertion rewriting.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import pyarrow as pa
import pytest
from lamina.errors import DataError
from lamina.models import CheckResult, DataResult, DataSnapshot

PEOPLE = pa.table(
    {
        "id": pa.array([1, 2, 3], pa.int64()),
        "name": pa.array(["ada", "bob", None], pa.string()),
        "score": pa.array([1.5, None, 3.25], pa.float64()),
        "active": pa.array([True, False, None], pa.bool_()),
    }
)
MORE_PEOPLE = pa.table(
    {
        "id": pa.array([4, 5], pa.int64()),
        "name": pa.array(["cy", "di"], pa.string()),
        "score": pa.array([4.0, 5.0], pa.float64()),
        "active": pa.array([True, True], pa.bool_()),
    }
)
VISITS = pa.table(
    {
        "person_id": pa.array([1, 1, 2, 3, 3, 3], pa.int64()),
        "minutes": pa.array([10, 20, 5, 1, 2, 3], pa.int64()),
    }
)


class DataSuite:
    """The behaviour every data adapter promises. Subclass it and provide ``data_adapter``."""

    placeholder: ClassVar[str | None] = "?"
    """A positional parameter in the adapter's SQL dialect; ``None`` skips the parameter test."""

    booleans_in_queries: ClassVar[str] = "bool"
    """How a boolean column comes back in a query result: ``"bool"``, or ``"integer"`` (0 / 1)."""
    exact_averages: ClassVar[bool] = False
    """Whether ``AVG`` comes back as an exact ``decimal128`` rather than ``float64``."""

    @pytest.fixture
    def data_adapter(self) -> Any:
        """The adapter plugin object under test; subclasses must override this fixture."""
        pytest.fail(f"{type(self).__name__} must provide a 'data_adapter' fixture")

    @pytest.fixture
    def new_name(self) -> Callable[[str], str]:
        """Make table names unique to this test, so runs never see each other's tables."""
        token = uuid.uuid4().hex[:8]
        return lambda stem: f"{stem}_{token}"

    def snapshot_key(self, snapshot: DataSnapshot) -> Any:
        """What identifies the data a snapshot saw; equal keys mean the same data."""
        return snapshot.handle

    def rows(self, table: pa.Table, order_by: str = "id") -> list[dict[str, Any]]:
        """A result as plain rows with lower-case column names, sorted by ``order_by``."""
        table = table.rename_columns([name.lower() for name in table.column_names])
        if order_by in table.column_names:
            table = table.sort_by(order_by)
        return table.to_pylist()

    # -- writes and reads ------------------------------------------------------------------

    def test_replace_then_read_returns_the_rows(
        self, data_adapter: Any, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("people")
        data_adapter.data_write(name, PEOPLE, "replace")
        result = data_adapter.data_read(name)
        assert isinstance(result, DataResult)
        assert isinstance(result.table, pa.Table)
        assert self.rows(result.table) == PEOPLE.to_pylist()

    def test_replace_overwrites_rows_and_columns(
        self, data_adapter: Any, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("people")
        data_adapter.data_write(name, PEOPLE, "replace")
        data_adapter.data_write(name, VISITS, "replace")
        assert self.rows(data_adapter.data_read(name).table, "minutes") == self.rows(VISITS, "minutes")

    def test_replace_is_idempotent(self, data_adapter: Any, new_name: Callable[[str], str]) -> None:
        name = new_name("people")
        first = data_adapter.data_write(name, PEOPLE, "replace")
        second = data_adapter.data_write(name, PEOPLE, "replace")
        assert second.rows == first.rows == PEOPLE.num_rows
        assert self.rows(data_adapter.data_read(name).table) == PEOPLE.to_pylist()

    def test_append_adds_rows(self, data_adapter: Any, new_name: Callable[[str], str]) -> None:
        name = new_name("people")
        data_adapter.data_write(name, PEOPLE, "replace")
        data_adapter.data_write(name, MORE_PEOPLE, "append")
        expected = PEOPLE.to_pylist() + MORE_PEOPLE.to_pylist()
        assert self.rows(data_adapter.data_read(name).table) == expected

    def test_append_creates_a_missing_table(self, data_adapter: Any, new_name: Callable[[str], str]) -> None:
        name = new_name("people")
        data_adapter.data_write(name, PEOPLE, "append")
        assert self.rows(data_adapter.data_read(name).table) == PEOPLE.to_pylist()

    def test_write_returns_the_snapshot_after_the_write(
        self, data_adapter: Any, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("people")
        snapshot = data_adapter.data_write(name, PEOPLE, "replace")
        assert isinstance(snapshot, DataSnapshot)
        assert (snapshot.kind, snapshot.target.lower(), snapshot.rows) == ("write", name, 3)
        snapshot = data_adapter.data_write(name, MORE_PEOPLE, "append")
        assert snapshot.rows == 5
        read = data_adapter.data_read(name).snapshot
        assert self.snapshot_key(read) == self.snapshot_key(snapshot)

    def test_unknown_write_mode_is_refused(self, data_adapter: Any, new_name: Callable[[str], str]) -> None:
        name = new_name("people")
        with pytest.raises(DataError, match="upsert"):
            data_adapter.data_write(name, PEOPLE, "upsert")
        assert name not in [t.lower() for t in data_adapter.data_tables()]

    def test_read_snapshot_describes_the_table(
        self, data_adapter: Any, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("people")
        data_adapter.data_write(name, PEOPLE, "replace")
        snapshot = data_adapter.data_read(name).snapshot
        assert (snapshot.kind, snapshot.target.lower(), snapshot.rows) == ("table", name, 3)
        assert snapshot.model_dump_json()  # stored in task records: must serialise

    # -- queries ---------------------------------------------------------------------------

    def test_query_joins_and_aggregates(self, data_adapter: Any, new_name: Callable[[str], str]) -> None:
        people, visits = new_name("people"), new_name("visits")
        data_adapter.data_write(people, PEOPLE, "replace")
        data_adapter.data_write(visits, VISITS, "replace")
        result = data_adapter.data_query(
            f"SELECT p.id AS id, p.name AS name, SUM(v.minutes) AS total, COUNT(*) AS n "
            f"FROM {people} p JOIN {visits} v ON v.person_id = p.id GROUP BY p.id, p.name",
            None,
        )
        assert isinstance(result.table, pa.Table)
        assert self.rows(result.table) == [
            {"id": 1, "name": "ada", "total": 30, "n": 2},
            {"id": 2, "name": "bob", "total": 5, "n": 1},
            {"id": 3, "name": None, "total": 6, "n": 3},
        ]
        assert (result.snapshot.kind, result.snapshot.rows) == ("query", 3)

    def test_query_binds_parameters(self, data_adapter: Any, new_name: Callable[[str], str]) -> None:
        if self.placeholder is None:
            pytest.skip("this adapter's dialect has no positional parameters")
        name = new_name("people")
        data_adapter.data_write(name, PEOPLE, "replace")
        result = data_adapter.data_query(f"SELECT id FROM {name} WHERE id >= {self.placeholder}", [2])
        assert self.rows(result.table) == [{"id": 2}, {"id": 3}]

    def test_query_with_no_rows_keeps_the_columns(
        self, data_adapter: Any, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("people")
        data_adapter.data_write(name, PEOPLE, "replace")
        result = data_adapter.data_query(f"SELECT id, name FROM {name} WHERE id < 0", None)
        assert result.table.num_rows == 0
        assert [c.lower() for c in result.table.column_names] == ["id", "name"]

    # -- portable types --------------------------------------------------------------------

    def _column(self, table: pa.Table, name: str) -> pa.ChunkedArray:
        lower = [n.lower() for n in table.column_names]
        return table.column(lower.index(name))

    def test_written_types_read_back_as_written(
        self, data_adapter: Any, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("people")
        data_adapter.data_write(name, PEOPLE, "replace")
        table = data_adapter.data_read(name).table
        for field in PEOPLE.schema:
            column = self._column(table, field.name)
            if pa.types.is_integer(field.type):
                assert pa.types.is_integer(column.type), (field.name, column.type)
            else:
                assert column.type == field.type, (field.name, column.type)
        assert self._column(table, "active").type == pa.bool_()  # MariaDB's TINYINT(1) included

    def test_booleans_in_a_query(self, data_adapter: Any, new_name: Callable[[str], str]) -> None:
        name = new_name("people")
        data_adapter.data_write(name, PEOPLE, "replace")
        table = data_adapter.data_query(f"SELECT id, active FROM {name}", None).table
        column = self._column(table, "active")
        if self.booleans_in_queries == "bool":
            assert column.type == pa.bool_(), column.type
        else:
            assert pa.types.is_integer(column.type) or column.type == pa.bool_(), column.type
        assert [r["active"] for r in self.rows(table)] == [True, False, None]

    def test_empty_strings_and_nulls_stay_apart(
        self, data_adapter: Any, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("texts")
        texts = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "text": pa.array(["", None, "x"])})
        data_adapter.data_write(name, texts, "replace")
        assert self.rows(data_adapter.data_read(name).table) == texts.to_pylist()

    def test_sum_and_avg_are_numbers(self, data_adapter: Any, new_name: Callable[[str], str]) -> None:
        visits = new_name("visits")
        data_adapter.data_write(visits, VISITS, "replace")
        table = data_adapter.data_query(
            f"SELECT person_id AS id, SUM(minutes) AS total, AVG(minutes) AS mean FROM {visits} GROUP BY person_id",
            None,
        ).table
        total, mean = self._column(table, "total"), self._column(table, "mean")
        assert (
            pa.types.is_integer(total.type)
            or pa.types.is_decimal(total.type)
            or pa.types.is_floating(total.type)
        ), total.type
        if self.exact_averages:
            assert pa.types.is_decimal(mean.type), mean.type
        else:
            assert mean.type == pa.float64(), mean.type
        rows = self.rows(table)
        assert [float(r["total"]) for r in rows] == [30.0, 5.0, 6.0]
        assert [round(float(r["mean"]), 6) for r in rows] == [15.0, 5.0, 2.0]
        overall = data_adapter.data_query(f"SELECT AVG(minutes) AS mean FROM {visits}", None).table
        assert abs(float(self._column(overall, "mean")[0].as_py()) - 41 / 6) < 1e-4

    # -- errors ----------------------------------------------------------------------------

    def test_read_of_an_unknown_table_names_it_and_lists_tables(
        self, data_adapter: Any, new_name: Callable[[str], str]
    ) -> None:
        existing, missing = new_name("people"), new_name("missing")
        data_adapter.data_write(existing, PEOPLE, "replace")
        with pytest.raises(DataError) as caught:
            data_adapter.data_read(missing)
        message = str(caught.value).lower()
        assert missing in message
        assert existing in message

    def test_query_of_an_unknown_table_is_a_data_error(
        self, data_adapter: Any, new_name: Callable[[str], str]
    ) -> None:
        missing = new_name("missing")
        with pytest.raises(DataError, match=f"(?i){missing}"):
            data_adapter.data_query(f"SELECT * FROM {missing}", None)

    def test_bad_sql_is_a_data_error(self, data_adapter: Any) -> None:
        with pytest.raises(DataError):
            data_adapter.data_query("SELEC 1 FROMM nowhere", None)

    # -- snapshots -------------------------------------------------------------------------

    def test_snapshot_is_stable_without_a_write(
        self, data_adapter: Any, new_name: Callable[[str], str]
    ) -> None:
        name = new_name("people")
        data_adapter.data_write(name, PEOPLE, "replace")
        sql = f"SELECT COUNT(*) AS n FROM {name}"
        assert self.snapshot_key(data_adapter.data_read(name).snapshot) == self.snapshot_key(
            data_adapter.data_read(name).snapshot
        )
        assert self.snapshot_key(data_adapter.data_query(sql, None).snapshot) == self.snapshot_key(
            data_adapter.data_query(sql, None).snapshot
        )

    @pytest.mark.parametrize("mode", ["replace", "append"])
    def test_snapshot_changes_after_a_write(
        self, data_adapter: Any, new_name: Callable[[str], str], mode: str
    ) -> None:
        name = new_name("people")
        data_adapter.data_write(name, PEOPLE, "replace")
        sql = f"SELECT COUNT(*) AS n FROM {name}"
        read_before = data_adapter.data_read(name).snapshot
        query_before = data_adapter.data_query(sql, None).snapshot
        data_adapter.data_write(name, MORE_PEOPLE, mode)
        assert self.snapshot_key(data_adapter.data_read(name).snapshot) != self.snapshot_key(read_before)
        assert self.snapshot_key(data_adapter.data_query(sql, None).snapshot) != self.snapshot_key(
            query_before
        )

    # -- catalogue, health, lifecycle ------------------------------------------------------

    def test_tables_lists_written_tables(self, data_adapter: Any, new_name: Callable[[str], str]) -> None:
        people, visits = new_name("people"), new_name("visits")
        data_adapter.data_write(people, PEOPLE, "replace")
        data_adapter.data_write(visits, VISITS, "append")
        tables = data_adapter.data_tables()
        assert isinstance(tables, list)
        assert {people, visits} <= {t.lower() for t in tables}

    def test_check_reports_ok(self, data_adapter: Any) -> None:
        result = data_adapter.data_check()
        assert isinstance(result, CheckResult)
        assert result.layer == "data"
        assert result.ok, f"{result.message} (fix: {result.fix})"
        assert result.message

    def test_transient_errors_are_exception_types(self, data_adapter: Any) -> None:
        errors = data_adapter.data_transient_errors()
        assert isinstance(errors, tuple)
        assert all(isinstance(e, type) and issubclass(e, BaseException) for e in errors)

    def test_close_after_use(self, data_adapter: Any, new_name: Callable[[str], str]) -> None:
        data_adapter.data_write(new_name("people"), PEOPLE, "replace")
        assert data_adapter.data_close() is None


DataAdapterSuite = DataSuite
"""The suite's earlier name, kept so existing adapters' tests keep working."""
