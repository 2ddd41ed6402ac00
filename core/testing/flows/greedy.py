"""A step asking for more than any compute offers; ``start`` leaves a mark if it ever runs."""

from pathlib import Path

from lamina import FlowSpec, Parameter, resources, step


class GreedyFlow(FlowSpec):
    marker_dir = Parameter("marker_dir", help="a directory where start writes 'started'")

    @step
    def start(self):
        (Path(self.marker_dir) / "started").write_text("yes")
        self.next(self.train)

    @resources(cpu=10_000)
    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GreedyFlow()
