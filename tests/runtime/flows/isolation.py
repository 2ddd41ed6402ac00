"""Tasks that change module state, or crash the interpreter, must not affect other tasks."""

import os
import signal

from lamina import FlowSpec, Parameter, step

STATE = {"touched_by": None}


class IsolationFlow(FlowSpec):
    crash = Parameter("crash", default=False)

    @step
    def start(self):
        self.items = [0, 1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.seen_before = STATE["touched_by"]
        STATE["touched_by"] = self.input
        if self.crash and self.input == 2:
            os.kill(os.getpid(), signal.SIGSEGV)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = [i.seen_before for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    IsolationFlow()
