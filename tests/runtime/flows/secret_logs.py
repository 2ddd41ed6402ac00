import os

from lamina import FlowSpec, step


class SecretFlow(FlowSpec):
    @step
    def start(self):
        print("connecting with", os.environ["DEMO_PASSWORD"])
        self.next(self.end)

    @step
    def end(self):
        raise RuntimeError(f"login failed for {os.environ['DEMO_PASSWORD']}")


if __name__ == "__main__":
    SecretFlow()
