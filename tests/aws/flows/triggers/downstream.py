"""Starts when a deployed run of UpstreamFlow succeeds; records which run it was."""

from lamina import FlowSpec, current, step, trigger_on_finish


@trigger_on_finish(flow="UpstreamFlow")
class DownstreamFlow(FlowSpec):
    @step
    def start(self):
        t = current.trigger
        self.upstream = [t.type, t.name, t.run_id] if t else None
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DownstreamFlow()
