"""Start a flow as a user's shell does, hurt it, and look at what is left."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

FLOWS = Path(__file__).parent / "flows"


class Driver:
    """``python flows/NAME run ...`` in its own session and process group, like a terminal's job.

    Every process it starts inherits ``FAULT_TOKEN``, so leftovers are found by their environment.
    """

    def __init__(self, project: Path, flow: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.token = uuid.uuid4().hex
        self.fault_dir = project / f"fault-{self.token[:8]}"
        self.fault_dir.mkdir()
        self.out = project / f"out-{self.token[:8]}.txt"
        self.err = project / f"err-{self.token[:8]}.txt"
        self.flow_file = FLOWS / flow
        self.env = {
            **os.environ,
            "FAULT_TOKEN": self.token,
            "FAULT_DIR": str(self.fault_dir),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.project = project
        self.proc = self._start("run", *args)

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        with open(self.out, "ab") as out, open(self.err, "ab") as err:
            return subprocess.Popen(
                [sys.executable, str(self.flow_file), *args],
                cwd=self.project,
                env=self.env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def started(self, name: str) -> bool:
        return (self.fault_dir / f"started-{name}").exists()

    def release(self) -> None:
        (self.fault_dir / "release").write_text("go")

    def signal_group(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 90) -> int:
        return self.proc.wait(timeout=timeout)

    @property
    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    @property
    def run_id(self) -> str:
        found = re.search(r"· run (\S+) ·", self.output)
        assert found, f"no run id printed:\n{self.output}"
        return found.group(1)

    def resume(self, *args: str) -> int:
        self.proc = self._start("resume", "--origin-run-id", self.run_id, *args)
        return self.proc.wait(timeout=120)

    def leftovers(self) -> list[int]:
        return processes_with(self.token)

    def kill_leftovers(self) -> None:
        for pid in self.leftovers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def processes_with(token: str) -> list[int]:
    """Live processes whose environment or command line carries ``token`` (zombies excluded)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if token.encode() in environ or token.encode() in cmdline:
            found.append(int(entry))
    return found


def wait_until(predicate: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


def no_leftovers(driver: Driver, timeout: float = 15) -> None:
    """Every process of the run ends soon (a task may take its grace to die)."""
    try:
        wait_until(lambda: not driver.leftovers(), timeout, "the run's processes to end")
    finally:
        driver.kill_leftovers()
