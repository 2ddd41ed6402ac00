from lamina import FlowSpec, step


class ForeachScalar(FlowSpec):
    @step
    def start(self):
        self.items = 42
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ForeachScalar()
