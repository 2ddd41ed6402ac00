"""An upstream flow whose successful deployed runs start DownstreamFlow."""

from lamina import FlowSpec, step


class UpstreamFlow(FlowSpec):
    @step
    def start(self):
        self.rows = 5
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UpstreamFlow()
