"""Linear steps, a foreach fan-out and its join: the smallest flow that exercises a compute."""

from lamina import FlowSpec, Parameter, current, step


class FanOutFlow(FlowSpec):
    count = Parameter("count", default=3, help="how many items to fan out over")

    @step
    def start(self):
        self.items = list(range(1, self.count + 1))
        print(f"run {current.run_id}: fanning out over {self.items}")
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.square = self.input * self.input
        print(f"square of {self.input} is {self.square}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = [inp.square for inp in inputs]
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.squares)
        print(f"total {self.total}")


if __name__ == "__main__":
    FanOutFlow()
