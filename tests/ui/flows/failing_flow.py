"""A flow whose second step fails, after writing to both of its logs."""

import os
import sys

from lamina import FlowSpec, step


class UIFailFlow(FlowSpec):
    @step
    def start(self):
        self.rows = 3
        self.next(self.explode)

    @step
    def explode(self):
        print("about to divide rows by zero")
        print("the leaked value is", os.environ.get("UI_LEAKED", ""))  # not secret-named: stored as is
        print("a warning on stderr", file=sys.stderr)
        self.ratio = self.rows / 0
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UIFailFlow()
