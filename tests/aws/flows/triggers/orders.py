"""Started by a business event; the run sees its payload."""

from lamina import FlowSpec, current, step, trigger


@trigger(event="orders_updated")
class OrdersFlow(FlowSpec):
    @step
    def start(self):
        self.seen = current.trigger.payload if current.trigger else None
        print("triggered by", current.trigger.type if current.trigger else None, "payload", self.seen)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    OrdersFlow()
