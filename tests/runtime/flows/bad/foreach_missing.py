from lamina import FlowSpec, step


class ForeachMissing(FlowSpec):
    @step
    def start(self):
        self.itmes = [1, 2]
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
    ForeachMissing()
