"""A step that raises: the run must fail there, with the step's traceback stored."""

from lamina import FlowSpec, step


class FailingFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.boom)

    @step
    def boom(self):
        raise ValueError("broken on purpose")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FailingFlow()
