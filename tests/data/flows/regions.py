"""Writes a table, queries it once per region in a foreach, and prints what it finds.

The same file runs on every stack; the tests compare what it prints on each with ``local``.
"""

import pyarrow as pa
from lamina import FlowSpec, current, step

SALES = pa.table(
    {
        "id": pa.array([1, 2, 3, 4, 5, 6, 7], pa.int64()),
        "region": ["north", "south", "north", "east", "south", "north", "east"],
        "units": pa.array([3, 5, 2, 8, 1, 4, 6], pa.int64()),
        "price": [9.5, 12.25, 7.0, 3.5, 20.0, 11.75, 4.25],
        "paid": [True, False, True, None, True, False, True],
        "note": ["", None, "rush", "gift", "", None, "repeat"],
    }
)
LATE = pa.table(
    {
        "id": pa.array([8], pa.int64()),
        "region": ["south"],
        "units": pa.array([7], pa.int64()),
        "price": [2.5],
        "paid": [False],
        "note": ["late"],
    }
)


class RegionsFlow(FlowSpec):
    @step
    def start(self):
        current.data.write("sales", SALES)
        current.data.write("sales", LATE, mode="append")
        regions = current.data.query("SELECT DISTINCT region FROM sales ORDER BY region")
        self.regions = regions.column("region").to_pylist()
        print("regions:", self.regions)
        self.next(self.per_region, foreach="regions")

    @step
    def per_region(self):
        totals = current.data.query(
            "SELECT COUNT(*) AS orders, SUM(units) AS units, AVG(units) AS mean_units, "
            "MAX(price) AS top_price FROM sales WHERE region = ?",
            [self.input],
        )
        rows = current.data.query(
            "SELECT id, units, paid, note FROM sales WHERE region = ? AND units >= ? ORDER BY id",
            [self.input, 2],
        )
        self.summary = (self.input, *totals.to_pylist()[0].values())
        print(self.input, totals.to_pylist())
        for row in rows.to_pylist():
            print("  ", row)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.summaries = sorted(i.summary for i in inputs)
        for summary in self.summaries:
            print(summary)
        self.next(self.end)

    @step
    def end(self):
        table = current.data.read("sales")
        print("rows:", table.num_rows, "columns:", table.column_names)
        print("types:", [str(t) for t in table.schema.types])
        print("paid:", table.sort_by("id").column("paid").to_pylist())


if __name__ == "__main__":
    RegionsFlow()
