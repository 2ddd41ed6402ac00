import numpy as np
from lamina import FlowSpec, step


class InPlaceFlow(FlowSpec):
    """A large array changed in place (not reassigned) in one step is what the next step sees."""

    @step
    def start(self):
        self.arr = np.zeros(1_000_000)  # 8 MB: stored as .npy and memory-mapped by readers
        self.untouched = np.ones(1_000_000)
        self.next(self.change)

    @step
    def change(self):
        self.arr[0] = 42.0
        self.next(self.end)

    @step
    def end(self):
        self.first = float(self.arr[0])


if __name__ == "__main__":
    InPlaceFlow()
