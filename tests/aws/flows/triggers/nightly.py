"""Runs on a schedule declared in the flow file."""

from lamina import FlowSpec, current, schedule, step


@schedule(cron="0 3 * * *")
class NightlyFlow(FlowSpec):
    @step
    def start(self):
        self.kind = [current.trigger.type, current.trigger.name] if current.trigger else None
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NightlyFlow()
