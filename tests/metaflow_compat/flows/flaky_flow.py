"""A step that fails on its first attempt (counted in $COUNTS_DIR), and an @environment step."""

import os
from pathlib import Path

from lamina import FlowSpec, environment, step


class FlakyFlow(FlowSpec):
    @step
    def start(self):
        counter = Path(os.environ["COUNTS_DIR"]) / "start"
        seen = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(seen + 1))
        if seen == 0:
            raise RuntimeError("first attempt fails")
        self.next(self.configured)

    @environment(vars={"MODEL_KIND": "tree"})
    @step
    def configured(self):
        self.kind = os.environ.get("MODEL_KIND")
        self.next(self.end)

    @step
    def end(self):
        self.kind_after = os.environ.get("MODEL_KIND")


if __name__ == "__main__":
    FlakyFlow()
