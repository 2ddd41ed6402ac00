"""@conda_base and @conda with conda names, resolved to the Python index."""

from lamina import FlowSpec, conda, conda_base, step


@conda_base(python="3.9.10", libraries={"tomli-w": "1.0.0"})
class CondaFlow(FlowSpec):
    @step
    def start(self):
        import tomli_w

        self.base = tomli_w.dumps({"a": 1})
        self.next(self.end)

    @conda(disabled=True)
    @step
    def end(self):
        import importlib.util

        self.end_has_it = importlib.util.find_spec("tomli_w") is not None


if __name__ == "__main__":
    CondaFlow()
