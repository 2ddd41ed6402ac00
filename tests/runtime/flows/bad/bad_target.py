from lamina import FlowSpec, step


class BadTarget(FlowSpec):
    @step
    def start(self):
        self.next(self.ennd)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BadTarget()
