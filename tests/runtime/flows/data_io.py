import pyarrow as pa
from lamina import FlowSpec, current, step


class DataFlow(FlowSpec):
    @step
    def start(self):
        current.data.write("scores", pa.table({"id": [1, 2, 3], "score": [0.5, 0.7, 0.9]}))
        self.next(self.end)

    @step
    def end(self):
        self.table = current.data.read("scores")
        self.top = (
            current.data.query("SELECT id FROM scores WHERE score > 0.6 ORDER BY id").column("id").to_pylist()
        )


if __name__ == "__main__":
    DataFlow()
