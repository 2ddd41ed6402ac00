"""A foreach whose tasks the fault tests can hold: each task of ``work`` marks that it started
(``$FAULT_DIR/started-<i>``); the ones listed in ``$HOLD`` then wait for ``$FAULT_DIR/release``.
``$CRASH`` names how task 1 of ``work`` dies: ``segfault``, ``memory`` (RLIMIT_AS), ``disk``
(RLIMIT_FSIZE while writing its artifact)."""

import os
import time
from pathlib import Path

from lamina import FlowSpec, Parameter, step

FAULT_DIR = Path(os.environ.get("FAULT_DIR", "."))
HOLD = {int(i) for i in os.environ.get("HOLD", "").split(",") if i}
CRASH = os.environ.get("CRASH", "")


def _wait_for_release() -> None:
    deadline = time.monotonic() + 120
    while not (FAULT_DIR / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


class WaitingFlow(FlowSpec):
    width = Parameter("width", default=4)

    @step
    def start(self):
        if os.environ.get("HOLD_START"):
            (FAULT_DIR / "started-start").write_text(str(os.getpid()))
            _wait_for_release()
        self.items = list(range(int(self.width)))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        (FAULT_DIR / f"started-{self.input}").write_text(str(os.getpid()))
        print(f"work {self.input} started", flush=True)
        if self.input in HOLD:
            _wait_for_release()
        if self.input == 1 and CRASH:
            _crash(CRASH)
            if CRASH == "disk":
                self.big = os.urandom(4 << 20)  # stored after the step: past the file size limit
        self.square = self.input * self.input
        if os.environ.get("BIG"):  # megabytes of fresh bytes: a long artifact write
            self.big = os.urandom(int(os.environ["BIG"]) << 20)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = [i.square for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


def _crash(how: str) -> None:
    import resource

    if how == "segfault":
        import ctypes

        ctypes.string_at(0)
    elif how == "memory":
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        hog = [bytearray(64 << 20) for _ in range(64)]  # 4 GiB: more than the limit allows
        print(len(hog))
    elif how == "disk":
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG


if __name__ == "__main__":
    WaitingFlow()
