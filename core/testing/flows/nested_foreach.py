"""A foreach inside a foreach; the inner join merges an artifact from before the fan-out."""

from lamina import FlowSpec, step


class NestedForeachFlow(FlowSpec):
    @step
    def start(self):
        self.outer = ["a", "b"]
        self.next(self.fan, foreach="outer")

    @step
    def fan(self):
        self.letter = self.input
        self.inner = [1, 2]
        self.next(self.leaf, foreach="inner")

    @step
    def leaf(self):
        self.value = f"{self.letter}{self.input}"
        print(f"leaf {self.value}")
        self.next(self.join_inner)

    @step
    def join_inner(self, inputs):
        self.values = [i.value for i in inputs]
        self.merge_artifacts(inputs, include=["letter"])
        self.next(self.join_outer)

    @step
    def join_outer(self, inputs):
        self.all = [v for i in inputs for v in i.values]
        self.letters = [i.letter for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NestedForeachFlow()
