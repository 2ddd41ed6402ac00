"""The smallest deployed flow: two steps and a parameter."""

from lamina import FlowSpec, Parameter, step


class DeployLinearFlow(FlowSpec):
    n = Parameter("n", default=3, help="how many")

    @step
    def start(self):
        self.numbers = list(range(self.n))
        self.next(self.end)

    @step
    def end(self):
        print("sum", sum(self.numbers))


if __name__ == "__main__":
    DeployLinearFlow()
