"""One task of a foreach kills its own process: the run must fail cleanly, not hang."""

import os
import signal

from lamina import FlowSpec, Parameter, step


class CrashingFlow(FlowSpec):
    how = Parameter("how", default="exit", help="'exit' (os._exit) or 'kill' (SIGKILL of itself)")

    @step
    def start(self):
        self.items = [0, 1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.input == 1:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(3)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CrashingFlow()
