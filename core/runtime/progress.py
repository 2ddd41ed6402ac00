"""What a running flow shows: steps done / running / to go, a foreach's tasks done out of total."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field


@dataclass
class StepProgress:
    total: int = 0
    done: int = 0
    running: int = 0
    failed: int = 0
    reused: int = 0
    started: float | None = None
    finished: float | None = None


@dataclass
class Progress:
    steps: list[str]
    echo: bool = True
    interval: float = 2.0
    by_step: dict[str, StepProgress] = field(default_factory=dict)
    _last: float = 0.0
    _dirty: bool = False

    def __post_init__(self) -> None:
        self.by_step = {name: StepProgress() for name in self.steps}
        self.stream = sys.stderr
        self.color = self.stream.isatty() and not os.environ.get("NO_COLOR")

    def say(self, message: str) -> None:
        if self.echo:
            self.stream.write(message + "\n")
            self.stream.flush()

    def expect(self, step: str, count: int) -> None:
        self.by_step[step].total += count
        self._dirty = True

    def started(self, step: str) -> None:
        sp = self.by_step[step]
        sp.running += 1
        if sp.started is None:
            sp.started = time.monotonic()
        self._dirty = True

    def finished(self, step: str, ok: bool, reused: bool = False) -> None:
        sp = self.by_step[step]
        if not reused:
            sp.running -= 1
        elif sp.started is None:
            sp.started = time.monotonic()
        if ok:
            sp.done += 1
            sp.reused += int(reused)
        else:
            sp.failed += 1
        self._dirty = True

    def step_done(self, step: str) -> None:
        sp = self.by_step[step]
        if sp.finished is not None:
            return
        sp.finished = time.monotonic()
        took = sp.finished - (sp.started or sp.finished)
        detail = f"  {sp.done} tasks" if sp.done != 1 else ""
        if sp.reused:
            detail += f"  ({sp.reused} reused)" if sp.reused != sp.done or sp.done != 1 else "  (reused)"
        self.say(f"{self._mark('ok')} {step}{detail}  {took:.2f}s")

    def _mark(self, kind: str) -> str:
        if kind == "ok":
            return "\033[32m✓\033[0m" if self.color else "✓"
        return "\033[31m✗\033[0m" if self.color else "✗"

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self._dirty or (not force and now - self._last < self.interval):
            return
        self._last = now
        self._dirty = False
        done = sum(1 for s in self.by_step.values() if s.finished is not None)
        running = [n for n, s in self.by_step.items() if s.running > 0]
        to_go = len(self.steps) - done - len(running)
        parts = [f"steps: {done} done, {len(running)} running, {to_go} to go"]
        for name in running:
            sp = self.by_step[name]
            if sp.total > 1:
                parts.append(f"{name} {sp.done}/{sp.total}")
        self.say("… " + " · ".join(parts))
