from lamina import FlowSpec, step


class BranchFlow(FlowSpec):
    @step
    def start(self):
        self.shared = "same"
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = "L"
        self.next(self.join)

    @step
    def right(self):
        self.side = "R"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.sides = (inputs.left.side, inputs.right.side)
        self.merge_artifacts(inputs, exclude=["side"])
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BranchFlow()
