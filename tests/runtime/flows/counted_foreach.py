"""A foreach whose tasks count their executions in files, to prove what resume reuses."""

import os
import time
from pathlib import Path

from lamina import FlowSpec, Parameter, step

COUNTS = Path(os.environ.get("COUNTS_DIR", "."))


def bump(name: str) -> None:
    path = COUNTS / name
    path.write_text(str(int(path.read_text()) + 1 if path.exists() else 1))


class CountedFlow(FlowSpec):
    width = Parameter("width", default=6)
    sleep = Parameter("sleep", default=0.0)
    broken = Parameter("broken", default=-1, help="index that fails unless FIXED is set")

    @step
    def start(self):
        bump("start")
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        bump(f"work-{self.input}")
        time.sleep(self.sleep)
        if self.input == self.broken and not os.environ.get("FIXED"):
            raise ValueError(f"item {self.input} is broken")
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        bump("join")
        self.squares = [i.square for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        bump("end")


if __name__ == "__main__":
    CountedFlow()
