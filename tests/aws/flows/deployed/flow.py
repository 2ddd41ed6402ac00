"""A flow deployed to Step Functions in the tests: a branch, a foreach, a retried step, prints."""

from lamina import FlowSpec, Parameter, current, retry, step


class DeployedFlow(FlowSpec):
    scale = Parameter("scale", default=2, help="multiplier")

    @step
    def start(self):
        self.items = [1, 2, 3]
        print("starting with", self.items)
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = "left"
        self.next(self.meet)

    @retry(times=1)
    @step
    def right(self):
        if current.retry_count == 0:
            raise RuntimeError("the first attempt fails")
        self.side = "right"
        self.next(self.meet)

    @step
    def meet(self, inputs):
        self.sides = sorted(i.side for i in inputs)
        self.items = inputs.left.items
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.value = self.input * self.input * self.scale
        print("square of", self.input, "is", self.value)
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.values = [i.value for i in inputs]
        self.merge_artifacts(inputs, include=["sides"])
        self.next(self.end)

    @step
    def end(self):
        print("values", self.values, "sides", self.sides)


if __name__ == "__main__":
    DeployedFlow()
