"""A static branch whose join merges the artifacts the branches agree on."""

from lamina import FlowSpec, step


class BranchMergeFlow(FlowSpec):
    @step
    def start(self):
        self.shared = "same"
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = "L"
        self.weight = 1
        self.next(self.join)

    @step
    def right(self):
        self.side = "R"
        self.weight = 1
        self.next(self.join)

    @step
    def join(self, inputs):
        self.sides = (inputs.left.side, inputs.right.side)
        self.merge_artifacts(inputs, exclude=["side"])
        print(f"joined {self.sides} with shared={self.shared} weight={self.weight}")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BranchMergeFlow()
