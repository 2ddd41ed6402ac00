"""One step with its own package from the Python index; the other steps must not see it."""

from lamina import FlowSpec, pypi, step


class PypiFlow(FlowSpec):
    @step
    def start(self):
        try:
            import tomli_w  # noqa: F401
        except ImportError:
            self.start_has_it = False
        else:
            self.start_has_it = True
        self.next(self.writer)

    @pypi(packages={"tomli-w": "1.0.0"})
    @step
    def writer(self):
        import importlib.metadata
        import sys

        import tomli_w

        self.document = tomli_w.dumps({"answer": 42})
        self.version = importlib.metadata.version("tomli-w")
        self.prefix = sys.prefix
        self.next(self.end)

    @step
    def end(self):
        import importlib.util

        self.end_has_it = importlib.util.find_spec("tomli_w") is not None


if __name__ == "__main__":
    PypiFlow()
