"""A flow with everything the UI shows: a foreach with metrics per task, a static branch and its
join, a table, a numpy array, a plain value, and a secret that its logs must never show."""

import os
import struct
import zlib

import numpy as np
import pyarrow as pa
from lamina import FlowSpec, Parameter, current, step


class UITrainFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5, type=float, help="learning rate")

    @step
    def start(self):
        print("connecting with", os.environ.get("UI_DEMO_PASSWORD", "no-secret"))
        self.folds = [0, 1, 2]
        self.next(self.fit, foreach="folds")

    @step
    def fit(self):
        for epoch in range(5):
            current.log_metric("loss", (1.0 + self.input) / (1 + epoch * self.alpha), step=epoch)
        self.score = 0.5 + 0.1 * self.input + self.alpha / 10
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.scores = [i.score for i in inputs]
        self.next(self.table, self.weights)

    @step
    def table(self):
        self.predictions = pa.table(
            {"id": list(range(25)), "label": [f"class-{i % 3}" for i in range(25)], "p": [i / 25 for i in range(25)]}
        )
        current.data.write("ui_predictions", self.predictions)  # a write and a read, with versions
        self.rows_read = current.data.read("ui_predictions").num_rows
        self.chart = _png(4, 3)
        self.next(self.merge)

    @step
    def weights(self):
        self.weights = np.linspace(-1.0, 1.0, 1000).reshape(10, 100) * self.alpha
        self.next(self.merge)

    @step
    def merge(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        self.best = max(self.scores)
        current.log_metric("best", self.best)


def _png(width, height):
    """A small red-to-blue PNG, written by hand so the flow needs no imaging library."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(
        b"\x00" + b"".join(bytes((255 * x // width, 40 * y, 255 - 255 * x // width)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


if __name__ == "__main__":
    UITrainFlow()
