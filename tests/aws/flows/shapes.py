"""Flows of each shape the Step Functions compiler handles: linear, static branch, foreach, and
one whose @resources no SageMaker instance type can meet."""

from lamina import FlowSpec, Parameter, resources, retry, step


class LinearFlow(FlowSpec):
    size = Parameter("size", default=3, help="how many numbers")

    @step
    def start(self):
        self.numbers = list(range(self.size))
        self.next(self.double)

    @retry(times=2)
    @step
    def double(self):
        self.numbers = [2 * n for n in self.numbers]
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.numbers)


class BranchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.left, self.right)

    @resources(memory=30000)
    @step
    def left(self):
        self.side = "left"
        self.next(self.join)

    @step
    def right(self):
        self.side = "right"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.sides = [inp.side for inp in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


class ForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = ["a", "b", "c"]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.upper = self.input.upper()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.uppers = [inp.upper for inp in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


class GreedyFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train)

    @resources(gpu=64, memory=4_000_000)
    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass
