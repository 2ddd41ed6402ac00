"""A task that writes its process id where the test can see it, then sleeps, to be cancelled."""

import os
import time
from pathlib import Path

from lamina import FlowSpec, Parameter, step


class SleepyFlow(FlowSpec):
    marker_dir = Parameter("marker_dir", help="a directory on this machine for the task's pid file")

    @step
    def start(self):
        marker = Path(self.marker_dir)
        (marker / "task.pid.tmp").write_text(str(os.getpid()))
        os.replace(marker / "task.pid.tmp", marker / "task.pid")
        time.sleep(300)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SleepyFlow()
