from lamina import FlowSpec, step


class NoEnd(FlowSpec):
    @step
    def start(self):
        self.next(self.middle)

    @step
    def middle(self):
        pass


if __name__ == "__main__":
    NoEnd()
