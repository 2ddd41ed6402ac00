"""A table written, read back and queried through ``current.data``, on any data layer.

Dialects differ in how they spell column names and number types, so the steps turn results
into plain rows with lower-case names before storing them.
"""

import pyarrow as pa
from lamina import FlowSpec, current, step

TABLE = "lamina_suite_scores"


def plain_rows(table: pa.Table) -> list[dict]:
    rows = [{k.lower(): v for k, v in row.items()} for row in table.to_pylist()]
    return sorted(({"id": int(r["id"]), "score": float(r["score"])} for r in rows), key=lambda r: r["id"])


class TableIOFlow(FlowSpec):
    @step
    def start(self):
        current.data.write(TABLE, pa.table({"id": [1, 2, 3], "score": [0.5, 0.7, 0.9]}))
        current.data.write(TABLE, pa.table({"id": [4], "score": [0.95]}), mode="append")
        self.next(self.end)

    @step
    def end(self):
        self.rows = plain_rows(current.data.read(TABLE))
        top = current.data.query(f"SELECT id FROM {TABLE} WHERE score > 0.6 ORDER BY id")
        self.top = [int(v) for v in top.column(0).to_pylist()]
        print(f"{len(self.rows)} rows, top ids {self.top}")


if __name__ == "__main__":
    TableIOFlow()
