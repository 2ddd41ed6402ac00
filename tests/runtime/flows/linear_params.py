from lamina import FlowSpec, JSONType, Parameter, current, step


class LinearFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5, help="a float")
    n = Parameter("n", type=int, required=True, help="an int")
    name = Parameter("name", default="x")
    flag = Parameter("flag", default=False)
    config = Parameter("config", type=JSONType, default={"k": 1})

    @step
    def start(self):
        self.seen = {
            "alpha": self.alpha,
            "n": self.n,
            "name": self.name,
            "flag": self.flag,
            "config": self.config,
        }
        self.ctx = {
            "run_id": current.run_id,
            "step": current.step_name,
            "task": current.task_id,
            "stack": current.stack,
        }
        print("hello from start")
        self.next(self.middle)

    @step
    def middle(self):
        self.doubled = self.n * 2
        self.next(self.end)

    @step
    def end(self):
        self.total = self.doubled + 1


if __name__ == "__main__":
    LinearFlow()
