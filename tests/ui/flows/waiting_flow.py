"""A flow whose middle step waits until a file exists: the test watches it while it runs."""

import time
from pathlib import Path

from lamina import FlowSpec, Parameter, step


class UIWaitFlow(FlowSpec):
    gate = Parameter("gate", help="the file the wait step waits for")

    @step
    def start(self):
        self.next(self.wait)

    @step
    def wait(self):
        deadline = time.monotonic() + 120
        while not Path(self.gate).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.gate} never appeared")
            time.sleep(0.1)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UIWaitFlow()
