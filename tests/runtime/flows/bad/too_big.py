from lamina import FlowSpec, resources, step


class TooBig(FlowSpec):
    @step
    def start(self):
        self.next(self.train)

    @resources(cpu=4096, memory=1024)
    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TooBig()
