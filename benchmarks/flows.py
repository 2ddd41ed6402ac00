"""The scenario flows, written once and rendered for either framework.

Each template holds ``{IMPORT}``, which becomes ``from lamina import ...`` or ``from metaflow import ...``;
nothing else differs between the two files a scenario runs. Every flow checks its own result (the
sum of squares of a foreach, the CRC of the array read back, ...), so a framework that skipped work
would fail the run rather than win it.
"""

from __future__ import annotations

HELLO = '''{IMPORT}


class HelloFlow(FlowSpec):
    """A two-step flow, run once untimed to create each framework's store before timing starts."""

    @step
    def start(self):
        self.greeting = "hello"
        self.next(self.end)

    @step
    def end(self):
        assert self.greeting == "hello"


if __name__ == "__main__":
    HelloFlow()
'''


def _linear(n_steps: int) -> str:
    names = ["start"] + [f"s{i}" for i in range(1, n_steps - 1)] + ["end"]
    body = []
    for here, there in zip(names, names[1:], strict=False):
        body.append(
            f"    @step\n    def {here}(self):\n"
            + ("        self.value = 0\n" if here == "start" else "        self.value += 1\n")
            + f"        self.next(self.{there})\n"
        )
    body.append(f"    @step\n    def end(self):\n        assert self.value == {n_steps - 2}, self.value\n")
    return (
        "{IMPORT}\n\n\n"
        f"class LinearFlow(FlowSpec):\n"
        f'    """{n_steps} steps in a line, each adding one to an artifact."""\n\n'
        + "\n".join(body)
        + '\n\nif __name__ == "__main__":\n    LinearFlow()\n'
    )


LINEAR_10 = _linear(10)

FOREACH = '''{IMPORT}


class ForeachFlow(FlowSpec):
    """A fan-out over ``width`` items, a join that sums their squares, and a check."""

    width = Parameter("width", default=100)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(inp.square for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        n = self.width
        assert self.total == (n - 1) * n * (2 * n - 1) // 6, self.total


if __name__ == "__main__":
    ForeachFlow()
'''

ARRAY = '''import zlib

import numpy as np

{IMPORT}


class ArrayFlow(FlowSpec):
    """A ``mb`` MB float64 array made in one step and read back, CRC-checked, in the next."""

    seed = Parameter("seed", default=0)
    mb = Parameter("mb", default=400)

    @step
    def start(self):
        self.array = np.random.default_rng(self.seed).random(self.mb * 1_000_000 // 8)
        self.crc = zlib.crc32(self.array)
        self.next(self.end)

    @step
    def end(self):
        array = self.array
        assert array.shape == (self.mb * 1_000_000 // 8,), array.shape
        assert zlib.crc32(array) == self.crc, "the array read back differs from the one written"


if __name__ == "__main__":
    ArrayFlow()
'''

RESUME = '''import os

{IMPORT}


class ResumeFlow(FlowSpec):
    """Four steps; the last fails unless BENCH_RESUME_FIXED is set, so a resume re-runs only it."""

    @step
    def start(self):
        self.values = list(range(10_000))
        self.next(self.a)

    @step
    def a(self):
        self.total = sum(self.values)
        self.next(self.b)

    @step
    def b(self):
        self.double = self.total * 2
        self.next(self.end)

    @step
    def end(self):
        if not os.environ.get("BENCH_RESUME_FIXED"):
            raise RuntimeError("BENCH_RESUME_FIXED is not set")
        assert self.double == 2 * sum(range(10_000))


if __name__ == "__main__":
    ResumeFlow()
'''

TEMPLATES = {
    "flow_hello.py": HELLO,
    "flow_linear.py": LINEAR_10,
    "flow_foreach.py": FOREACH,
    "flow_array.py": ARRAY,
    "flow_resume.py": RESUME,
}


def render(template: str, framework: str) -> str:
    return template.replace("{IMPORT}", f"from {framework} import FlowSpec, Parameter, step")
