"""The quickstart: a linear step, a static branch, a foreach fan-out, joins and a parameter.

python examples/quickstart/flow.py run
python examples/quickstart/flow.py run --greeting Hi --count 5
"""

from lamina import FlowSpec, Parameter, current, step


class QuickstartFlow(FlowSpec):
    """Say hello in parallel, square some numbers, and gather the results."""

    greeting = Parameter("greeting", default="Hello", help="how to greet")
    count = Parameter("count", default=4, help="how many numbers to square")

    @step
    def start(self):
        """Prepare the work."""
        print(f"{self.greeting} from run {current.run_id} on stack {current.stack}")
        self.numbers = list(range(1, self.count + 1))
        self.next(self.branch_a, self.branch_b)

    @step
    def branch_a(self):
        """One side of a static branch."""
        self.side = "a"
        self.message = f"{self.greeting}, branch A"
        self.next(self.gather)

    @step
    def branch_b(self):
        """The other side, running at the same time."""
        self.side = "b"
        self.message = f"{self.greeting}, branch B"
        self.next(self.gather)

    @step
    def gather(self, inputs):
        """Join the branches; artifacts equal on both sides are merged."""
        self.messages = sorted(inp.message for inp in inputs)
        self.merge_artifacts(inputs, exclude=["side", "message"])
        self.next(self.square, foreach="numbers")

    @step
    def square(self):
        """One task per number."""
        self.result = self.input**2
        current.log_metric("square", self.result)
        print(f"{self.input} squared is {self.result}")
        self.next(self.collect)

    @step
    def collect(self, inputs):
        """Join the foreach."""
        self.squares = [inp.result for inp in inputs]
        self.merge_artifacts(inputs, include=["messages"])
        self.next(self.end)

    @step
    def end(self):
        """Report."""
        print("messages:", self.messages)
        print("squares:", self.squares, "sum:", sum(self.squares))


if __name__ == "__main__":
    QuickstartFlow()
