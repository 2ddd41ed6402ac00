from lamina import FlowSpec, step


class DictForeachFlow(FlowSpec):
    @step
    def start(self):
        self.prices = {"apple": 3, "pear": 5, "fig": 7}
        self.next(self.price, foreach="prices")

    @step
    def price(self):
        self.line = f"{self.input}={self.prices[self.input]}"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.lines = [i.line for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print(self.lines)


if __name__ == "__main__":
    DictForeachFlow()
