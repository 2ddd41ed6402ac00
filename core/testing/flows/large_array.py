"""A 50 MiB NumPy array passed from one step to the next, and checked where it arrives."""

import numpy as np
from lamina import FlowSpec, step

N = 6_553_600  # float64: 50 MiB


class LargeArrayFlow(FlowSpec):
    @step
    def start(self):
        self.array = np.arange(N, dtype=np.float64) * 0.5
        self.next(self.end)

    @step
    def end(self):
        assert self.array.shape == (N,) and self.array[-1] == (N - 1) * 0.5
        self.total = float(self.array.sum())
        self.is_array = isinstance(self.array, np.ndarray)  # memory-mapped where the store is local
        print(f"{self.array.nbytes} bytes of {self.array.dtype} sum to {self.total}")


if __name__ == "__main__":
    LargeArrayFlow()
