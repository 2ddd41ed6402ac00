"""Tasks that print, then die without warning (``HOW``: segfault, exit, kill) or overrun a
``@timeout`` they swallow (``HOW=swallow``)."""

import ctypes
import os
import signal
import time

from lamina import FlowSpec, step, timeout

HOW = os.environ.get("HOW", "")


class DyingFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1]
        self.next(self.work, foreach="items")

    @timeout(seconds=1)
    @step
    def work(self):
        print(f"line before the end of task {self.input}", flush=True)
        print("half a line without newline", end="", flush=True)
        if self.input == 1:
            if HOW == "segfault":
                ctypes.string_at(0)
            elif HOW == "exit":
                os._exit(3)
            elif HOW == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif HOW == "swallow-and-return":
                try:
                    time.sleep(30)
                except Exception:
                    pass  # caught the timeout, then returns as if all were well
            elif HOW == "swallow":
                for _ in range(600):  # a loop that catches everything, the timeout included
                    try:
                        time.sleep(0.1)
                    except Exception:
                        pass
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DyingFlow()
