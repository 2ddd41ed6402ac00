"""@retry (a step that fails on its first attempt only) and @catch (a step that always fails)."""

from lamina import FlowSpec, catch, current, retry, step


class RetryCatchFlow(FlowSpec):
    @retry(times=2)
    @step
    def start(self):
        print(f"flaky, attempt {current.retry_count}")
        if current.retry_count == 0:
            raise RuntimeError("fails on the first attempt only")
        self.attempt = current.retry_count
        self.next(self.risky)

    @catch(var="problem", print_exception=False)
    @step
    def risky(self):
        raise ValueError("always broken")
        self.next(self.end)

    @step
    def end(self):
        print(f"caught {self.problem}")


if __name__ == "__main__":
    RetryCatchFlow()
