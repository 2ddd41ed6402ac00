"""Metaflow's first tutorial (00-helloworld), in its shape; only the import names lamina."""

from lamina import FlowSpec, step


class HelloFlow(FlowSpec):
    """A flow that prints 'Hi'."""

    @step
    def start(self):
        """The first step: every flow has one named 'start'."""
        print("HelloFlow is starting.")
        self.next(self.hello)

    @step
    def hello(self):
        """The flow introduces itself."""
        print("Metaflow says: Hi!")
        self.next(self.end)

    @step
    def end(self):
        """The last step: every flow has one named 'end'."""
        print("HelloFlow is all done.")


if __name__ == "__main__":
    HelloFlow()
