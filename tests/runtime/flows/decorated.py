"""Retry, catch, timeout and a counter file so tests can see how often each task ran."""

import os
import time
from pathlib import Path

from lamina import FlowSpec, catch, retry, step, timeout

COUNTS = Path(os.environ.get("COUNTS_DIR", "."))


def bump(name: str) -> int:
    path = COUNTS / name
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    return n


class DecoratedFlow(FlowSpec):
    @retry(times=2)
    @step
    def start(self):
        if bump("start") < 2:
            raise RuntimeError("flaky the first time")
        self.next(self.risky)

    @catch(var="problem")
    @step
    def risky(self):
        raise ValueError("always broken")
        self.next(self.slow)

    @timeout(seconds=float(os.environ.get("TIMEOUT_S", "30")))
    @step
    def slow(self):
        if os.environ.get("MAKE_SLOW"):
            time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DecoratedFlow()
