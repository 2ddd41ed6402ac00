"""A small flow whose artifacts and records go wherever the stack's versioning layer keeps them."""

from lamina import FlowSpec, step


class BlobFlow(FlowSpec):
    @step
    def start(self):
        self.numbers = [1, 2, 3]
        self.next(self.square, foreach="numbers")

    @step
    def square(self):
        self.squared = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.squared for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    BlobFlow()
