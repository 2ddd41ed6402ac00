"""Every flow shape a deployer compiles: linear steps, a static branch, a nested foreach and joins."""

from lamina import FlowSpec, Parameter, step


class DeployShapesFlow(FlowSpec):
    width = Parameter("width", default=2, help="items per foreach level")

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = "left"
        self.next(self.meet)

    @step
    def right(self):
        self.side = "right"
        self.next(self.meet)

    @step
    def meet(self, inputs):
        self.sides = sorted(i.side for i in inputs)
        self.items = inputs.left.items
        self.next(self.outer, foreach="items")

    @step
    def outer(self):
        self.inner_items = [self.input * 10 + i for i in range(2)]
        self.next(self.inner, foreach="inner_items")

    @step
    def inner(self):
        self.value = self.input
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.values = [i.value for i in inputs]
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.total = sum(sum(i.values) for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    DeployShapesFlow()
