"""Metaflow's cloud hello-world, in its shape: a @kubernetes step with @retry."""

from lamina import FlowSpec, kubernetes, retry, step


class HelloCloudFlow(FlowSpec):
    """Say hi from the compute the stack provides."""

    @step
    def start(self):
        from lamina import get_metadata

        print("HelloCloud is starting.")
        print("")
        print("Using metadata provider: %s" % get_metadata())
        print("")
        print("The start step is running locally. Next, the ")
        print("'hello' step will run remotely on Kubernetes. ")
        self.next(self.hello)

    @kubernetes(cpu=1, memory=500)
    @retry
    @step
    def hello(self):
        self.message = "Hi from the cloud!"
        print("Metaflow says: %s" % self.message)
        self.next(self.end)

    @step
    def end(self):
        print("HelloCloud is finished.")


if __name__ == "__main__":
    HelloCloudFlow()
