"""Pass a 400 MB array and a million-row Arrow table from one step to the next."""

import numpy as np
import pyarrow as pa
from lamina import FlowSpec, step

N = 50_000_000  # float64: 400 MB


class BigArtifactsFlow(FlowSpec):
    @step
    def start(self):
        self.array = np.arange(N, dtype=np.float64)
        self.table = pa.table(
            {"id": pa.array(np.arange(1_000_000)), "value": pa.array(np.arange(1_000_000) * 0.5)}
        )
        self.next(self.check)

    @step
    def check(self):
        assert self.array.shape == (N,) and self.array[12345] == 12345.0 and self.array[-1] == N - 1
        assert float(self.array[::4096].sum()) == float(np.arange(N, dtype=np.float64)[::4096].sum())
        assert self.table.num_rows == 1_000_000 and self.table.column("value")[999_999].as_py() == 499_999.5
        self.kind = type(self.array).__name__
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BigArtifactsFlow()
