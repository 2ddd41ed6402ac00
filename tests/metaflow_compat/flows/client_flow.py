"""A small flow whose runs the Metaflow-named client reads back; ``--fail`` makes it fail."""

import os

from lamina import FlowSpec, Parameter, current, step


class ClientFlow(FlowSpec):
    fail = Parameter("fail", default=False)

    @step
    def start(self):
        self.items = [1, 2, 3]
        print("starting")
        self.context = {
            "username": current.username,
            "tags": current.tags,
            "namespace": current.namespace,
            "tempdir": os.path.isdir(current.tempdir),
            "run": current.run.id == current.run_id,
            "pathspec": current.pathspec,
        }
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.value = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        import sys

        print("almost done", file=sys.stderr)
        if self.fail:
            raise ValueError("asked to fail")
        self.result = self.total


if __name__ == "__main__":
    ClientFlow()
