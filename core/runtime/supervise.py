"""A task's output captured outside the task's process, and its time limit enforced from there.

A task that segfaults, calls ``os._exit`` or is killed (OOM killer, SIGKILL) cannot store what
it printed, so the process that started it owns the pipes: :class:`Supervised` makes them before
``fork``, the child points fds 1 and 2 at them, and the parent reads them, shows each line live
with the task's prefix (secrets masked) and keeps every byte.

Logs are stored by the parent. A child that ends normally asks for it first, over a small control
pipe (:func:`store_logs`): the parent drains what the child wrote, stores it and answers with the
keys, which the child puts in its completion record before writing it. A child that dies without
asking leaves its logs to the parent, which stores them and, when no record exists, writes a
failure record saying how the process ended (a signal, an exit status, a ``@timeout`` kill).

Two parents use this: the warm worker (``lamina.runtime.worker``), one ``Supervised`` per forked
task in its select loop, and the task entry point ``python -m lamina task`` (:func:`supervise`),
which runs the task in a child so that remote tasks get the same guarantees.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from typing import TYPE_CHECKING, Any

from ..redaction import redact, secret_values

if TYPE_CHECKING:
    from ..models import TaskSpec

TIMEOUT_GRACE_MIN = 2.0
"""Seconds a step may overrun its ``@timeout`` (its own alarm fires first) before it is killed."""
CANCEL_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL when a task is cancelled."""

PREFIXED_BY_PARENT = "LAMINA_PREFIXED_BY_PARENT"
"""Set for a task process whose output a supervising parent of the same task already shows with
the task's prefix (a step in its own ``@pypi``/``@conda`` environment): it echoes lines bare."""

_CHANNEL: tuple[int, int] | None = None
"""In a supervised child: (write end of the request pipe, read end of the reply pipe)."""


def timeout_grace(limit: float) -> float:
    return max(TIMEOUT_GRACE_MIN, 0.1 * limit)


def supervised() -> bool:
    """Whether this process is a task whose output a parent captures."""
    return _CHANNEL is not None


def store_logs(extra_stderr: bytes = b"") -> dict[str, str | None]:
    """In a supervised child: have the parent store everything printed so far (plus
    ``extra_stderr``, stored but not shown: the step's traceback, which the scheduler shows once)
    and return the log keys, ``{"stdout": key or None, "stderr": key or None}``."""
    assert _CHANNEL is not None
    request, reply = _CHANNEL
    _flush_std()
    message = json.dumps({"op": "store_logs", "extra_stderr": extra_stderr.decode(errors="replace")})
    _write_all(request, (message + "\n").encode())
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(reply, 65536)
        if not chunk:
            raise OSError("the supervising process went away before storing the task's logs")
        data += chunk
    answer: dict[str, Any] = json.loads(data)
    if "error" in answer:
        raise OSError(f"the task's logs could not be stored: {answer['error']}")
    return {"stdout": answer.get("stdout"), "stderr": answer.get("stderr")}


class _Stream:
    def __init__(self, fd: int, out_fd: int) -> None:
        self.fd = fd
        self.out_fd = out_fd
        self.chunks: list[bytes] = []
        self.partial: list[bytes] = []
        self.open = True


class Supervised:
    """The parent's side of one task process. Make it before ``fork``; call :meth:`in_child` in
    the child and :meth:`in_parent` in the parent; feed :meth:`on_readable` from a select loop."""

    def __init__(self, spec: TaskSpec, *, echo: bool, out_fd: int = 1, err_fd: int = 2) -> None:
        self.spec = spec
        self.echo = echo
        label = f"[{spec.step}/{spec.task_id}{f' attempt {spec.attempt}' if spec.attempt else ''}] "
        self.prefix = b"" if os.environ.get(PREFIXED_BY_PARENT) else label.encode()
        self.pid = 0
        self.started = time.monotonic()
        limit = spec.timeout
        self.deadline = self.started + limit + timeout_grace(limit) if limit else None
        self.kill_at: float | None = None
        self.ended_by: str | None = None  # why the parent stopped it: "timeout", "cancel"
        self.logs_stored = False
        self._out_r, self._out_w = os.pipe()
        self._err_r, self._err_w = os.pipe()
        self._req_r, self._req_w = os.pipe()
        self._rep_r, self._rep_w = os.pipe()
        self._streams = {self._out_r: _Stream(self._out_r, out_fd), self._err_r: _Stream(self._err_r, err_fd)}
        self._request = b""

    # -- fork -------------------------------------------------------------------------------

    def in_child(self) -> None:
        global _CHANNEL
        os.dup2(self._out_w, 1)
        os.dup2(self._err_w, 2)
        for fd in (self._out_r, self._err_r, self._req_r, self._rep_w, self._out_w, self._err_w):
            os.close(fd)
        _CHANNEL = (self._req_w, self._rep_r)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _die_with_parent()

    def close_in_child(self) -> None:
        """In the child of another task: drop this task's pipe ends, inherited by fork."""
        # only the ends still open here: a closed one's number may already be reused by the
        # pipes of the task being forked
        for fd in [*self.fds(), self._rep_w]:
            if fd >= 0:
                os.close(fd)

    def in_parent(self, pid: int) -> None:
        self.pid = pid
        for fd in (self._out_w, self._err_w, self._req_w, self._rep_r):
            os.close(fd)
        for fd in (self._out_r, self._err_r, self._req_r):
            os.set_blocking(fd, False)

    def fds(self) -> list[int]:
        fds = [s.fd for s in self._streams.values() if s.open]
        return fds + [self._req_r] if self._req_r >= 0 else fds

    # -- reading ----------------------------------------------------------------------------

    def on_readable(self, fd: int) -> None:
        if fd == self._req_r:
            self._read_request()
        elif fd in self._streams:
            self._drain(self._streams[fd])

    def _drain(self, stream: _Stream) -> None:
        while stream.open:
            try:
                chunk = os.read(stream.fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                stream.open = False
                os.close(stream.fd)
                if stream.partial:
                    self._echo(stream, b"".join(stream.partial) + b"\n")
                    stream.partial = []
                return
            stream.chunks.append(chunk)
            if not self.echo:
                continue
            # only whole lines are shown; the split is linear in the bytes read
            newline = chunk.rfind(b"\n")
            if newline < 0:
                stream.partial.append(chunk)
                continue
            lines = b"".join([*stream.partial, chunk[: newline + 1]])
            stream.partial = [chunk[newline + 1 :]] if newline + 1 < len(chunk) else []
            self._echo(stream, lines)

    def _echo(self, stream: _Stream, lines: bytes) -> None:
        text = self.prefix + lines[:-1].replace(b"\n", b"\n" + self.prefix) + b"\n"
        view = memoryview(redact(text, secret_values()))
        while view:
            try:
                view = view[os.write(stream.out_fd, view) :]
            except BlockingIOError:
                select.select([], [stream.out_fd], [], 1.0)
            except OSError:
                return

    def _read_request(self) -> None:
        while True:
            try:
                chunk = os.read(self._req_r, 65536)
            except BlockingIOError:
                return
            if not chunk:
                os.close(self._req_r)
                self._req_r = -1
                return
            self._request += chunk
            while b"\n" in self._request:
                line, self._request = self._request.split(b"\n", 1)
                self._answer(json.loads(line))

    def _answer(self, message: dict[str, Any]) -> None:
        for stream in self._streams.values():
            self._drain(stream)  # the child flushed before asking: all it wrote is in the pipes
        try:
            keys = self.store(message.get("extra_stderr", "").encode())
            reply: dict[str, Any] = keys
        except Exception as exc:  # the child reports it as the task's infrastructure error
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        try:
            _write_all(self._rep_w, (json.dumps(reply) + "\n").encode())
        except OSError:
            pass

    # -- storing ----------------------------------------------------------------------------

    def store(self, extra_stderr: bytes = b"") -> dict[str, str | None]:
        """Store what the task printed (non-empty streams only) and return the keys."""
        from ..versioning.runstore import RunStore
        from .task import task_stack

        runs = RunStore(task_stack(self.spec).versioning)
        spec = self.spec
        ids = (spec.flow_name, spec.run_id, spec.step, spec.task_id, spec.attempt)
        secrets = secret_values()
        keys: dict[str, str | None] = {"stdout": None, "stderr": None}
        for name, fd in (("stdout", self._out_r), ("stderr", self._err_r)):
            data = redact(b"".join(self._streams[fd].chunks), secrets)
            if name == "stderr":
                data += extra_stderr
            if data:
                keys[name] = runs.save_log(*ids, name, data)  # type: ignore[arg-type]
        self.logs_stored = True
        return keys

    def ended(self, exit_code: int) -> int:
        """The child was reaped: keep the rest of its output, and when it could not store its logs
        and record, do it for it. Returns the exit code to report."""
        for stream in self._streams.values():
            self._drain(stream)
            if stream.open:  # a grandchild still holds the pipe: keep what is here, stop reading
                stream.open = False
                os.close(stream.fd)
        for fd in (self._req_r, self._rep_w):
            if fd >= 0:
                os.close(fd)
        self._req_r = self._rep_w = -1
        if exit_code in (0, 1) and self.ended_by is None:
            return exit_code  # the task stored its logs and its record
        try:
            return self._record_death(exit_code)
        except Exception as exc:  # the scheduler records a task without a record itself
            os.write(2, f"lamina: could not record how task {self.spec.pathspec} ended: {exc}\n".encode())
            return exit_code

    def _record_death(self, exit_code: int) -> int:
        from ..models import TaskRecord, utcnow
        from ..versioning.runstore import RunStore
        from .task import EXIT_FAILED, task_stack

        runs = RunStore(task_stack(self.spec).versioning)
        spec = self.spec
        ids = (spec.flow_name, spec.run_id, spec.step, spec.task_id, spec.attempt)
        if runs.record_at(runs.record_key(*ids)) is not None:
            return exit_code if exit_code else EXIT_FAILED
        keys = (
            self.store()
            if not self.logs_stored
            else {
                stream: runs.log_key(*ids, stream) if runs.log(*ids, stream) else None  # type: ignore[arg-type]
                for stream in ("stdout", "stderr")
            }
        )
        record = TaskRecord.begin(
            spec,
            error=self.death_message(exit_code),
            stdout_key=keys["stdout"],
            stderr_key=keys["stderr"],
            finished_at=utcnow(),
        )
        runs.save_record(record)
        return EXIT_FAILED

    def death_message(self, exit_code: int) -> str:
        if self.ended_by == "timeout":
            limit = self.spec.timeout or 0
            return (
                f"StepTimeout: step '{self.spec.step}' ran longer than its @timeout of {limit:g} s and did not "
                f"stop (it caught the timeout?); killed after {limit + timeout_grace(limit):g} s"
            )
        if self.ended_by == "cancel":
            return "the task was cancelled (the run was interrupted)"
        if exit_code < 0:
            try:
                name = signal.Signals(-exit_code).name
            except ValueError:
                name = f"signal {-exit_code}"
            hint = {
                "SIGKILL": ": out of memory, or killed from outside",
                "SIGSEGV": ": a crash in native code",
            }.get(name, "")
            return f"the task process died before recording a result (killed by signal {-exit_code}, {name}{hint})"
        return f"the task process died before recording a result (exit status {exit_code})"

    # -- stopping ---------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        times = [t for t in (self.deadline, self.kill_at) if t is not None]
        return min(times) if times else None

    def check_deadlines(self, now: float) -> None:
        """SIGKILL a task past its ``@timeout`` plus grace, or a cancelled one past its grace."""
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            self.ended_by = self.ended_by or "timeout"
            kill_group(self.pid, signal.SIGKILL)
        if self.kill_at is not None and now >= self.kill_at:
            self.kill_at = None
            kill_group(self.pid, signal.SIGKILL)

    def cancel(self) -> None:
        """SIGTERM the task's process group now, SIGKILL it after :data:`CANCEL_GRACE`; a
        second cancel kills it at once."""
        if self.ended_by == "cancel":
            self.kill_now()
            return
        self.ended_by = self.ended_by or "cancel"
        kill_group(self.pid, signal.SIGTERM)
        self.kill_at = time.monotonic() + CANCEL_GRACE

    def kill_now(self) -> None:
        self.ended_by = self.ended_by or "cancel"
        self.kill_at = None
        kill_group(self.pid, signal.SIGKILL)


def kill_group(pid: int, sig: int) -> None:
    """Signal a task's process group (its own children too), or the process if it has none."""
    if pid <= 0:
        return
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def supervise(spec: TaskSpec, echo: bool, run: Any) -> int:
    """Run ``run()`` (a task) in a forked child whose output and time this process supervise;
    return the task's exit code. The entry point for tasks started as processes."""
    import sys

    child = Supervised(spec, echo=echo)
    _flush_std()
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            os.setpgid(0, 0)
            child.in_child()
            code = run()
        finally:
            try:
                _flush_std()
            finally:
                os._exit(code)
    child.in_parent(pid)
    stop = {"signal": 0}

    def forward(signum: int, _frame: object) -> None:
        stop["signal"] = signum
        child.cancel()

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            fds = child.fds()
            deadline = child.next_deadline()
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            ready: list[int] = []
            if fds:
                ready, _, _ = select.select(fds, [], [], wait)
            else:
                time.sleep(wait)
            for fd in ready:
                child.on_readable(fd)
            child.check_deadlines(time.monotonic())
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = child.ended(os.waitstatus_to_exitcode(status))
                sys.stdout.flush()
                return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_LIBC: Any = None


def prepare() -> None:
    """Load what a child needs before the parent forks many (the C library's ``prctl``)."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _LIBC = False


def _die_with_parent() -> None:
    """Linux: the kernel kills this task if its supervising parent dies (no orphans even if the
    parent is SIGKILLed)."""
    prepare()
    prctl = getattr(_LIBC, "prctl", None)
    if prctl is not None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _flush_std() -> None:
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
