"""Linear steps and parameters of every kind: what reaches each task, and what it prints."""

from lamina import FlowSpec, JSONType, Parameter, current, step


class LinearParamsFlow(FlowSpec):
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
        self.where = {"run_id": current.run_id, "step": current.step_name, "task": current.task_id}
        print(f"run {current.run_id} starts with n={self.n}")
        self.next(self.middle)

    @step
    def middle(self):
        self.doubled = self.n * 2
        self.next(self.end)

    @step
    def end(self):
        self.total = self.doubled + 1
        print(f"total {self.total}")


if __name__ == "__main__":
    LinearParamsFlow()
