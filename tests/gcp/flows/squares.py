"""A small foreach whose artifacts a GCS-versioned stack keeps in the bucket."""

from lamina import FlowSpec, step


class SquaresFlow(FlowSpec):
    @step
    def start(self):
        self.numbers = [1, 2, 3]
        self.next(self.square, foreach="numbers")

    @step
    def square(self):
        self.value = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        print(f"total={self.total}")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SquaresFlow()
