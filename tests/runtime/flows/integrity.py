import numpy as np
from lamina import FlowSpec, step


class IntegrityFlow(FlowSpec):
    @step
    def start(self):
        self.x = {"a": 1}
        self.big = np.arange(300_000, dtype=np.int64)  # 2.4 MB: loaded memory-mapped
        self.next(self.end)

    @step
    def end(self):
        self.total = int(self.big.sum())


if __name__ == "__main__":
    IntegrityFlow()
