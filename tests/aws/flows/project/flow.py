"""A flow in a @project: two branches of it deploy and run side by side."""

from lamina import FlowSpec, Parameter, current, project, step


@project(name="churn")
class ChurnFlow(FlowSpec):
    threshold = Parameter("threshold", default=0.5, help="decision threshold")

    @step
    def start(self):
        self.scores = [0.2, 0.6, 0.9]
        self.next(self.end)

    @step
    def end(self):
        self.positives = sum(1 for s in self.scores if s >= self.threshold)
        current.log_metric("positives", self.positives)
        print("positives", self.positives)


if __name__ == "__main__":
    ChurnFlow()
