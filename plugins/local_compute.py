"""The ``local`` compute adapter: tasks run on this machine in warm worker processes.

A worker imports Lamina and the flow once and forks a child per task (see
``lamina.runtime.worker``). Where ``fork`` is unavailable, or with ``mode = "process"``, each task
runs in a new ``python -m lamina task`` process instead.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Literal

from lamina.adapter import machine, serve_worker
from lamina.errors import LaminaError, ResourceUnsatisfiable
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import AdapterInfo, AdapterSettings, CheckResult, Resources, TaskSpec, TaskStatus
from pydantic import Field


class LocalComputeSettings(AdapterSettings):
    max_workers: int | None = Field(
        default=None, ge=1, description="tasks at once; default: the number of cores"
    )
    mode: Literal["auto", "fork", "process"] = "auto"


class LocalCompute:
    def __init__(self, settings: LocalComputeSettings, context: AdapterContext) -> None:
        self.settings = settings
        self.context = context
        self._machine: dict[str, Any] | None = None
        self._worker: subprocess.Popen[bytes] | _ForkedWorker | None = None
        self._to_worker: int | None = None
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._done: dict[str, TaskStatus] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._spec_files: dict[str, str] = {}
        self._counter = 0
        self._max_workers = settings.max_workers or (os.cpu_count() or 1)
        self._lock = threading.Lock()

    # -- resources --------------------------------------------------------------------------

    @property
    def machine(self) -> dict[str, Any]:
        if self._machine is None:
            self._machine = machine()
        return self._machine

    @hookimpl
    def compute_validate(self, step: str, resources: Resources) -> str:
        have = self.machine
        problems = []
        if resources.cpu is not None and resources.cpu > have["cpu"]:
            problems.append(f"cpu={resources.cpu:g} but this machine has {have['cpu']} cores")
        if resources.memory is not None and have["memory"] and resources.memory > have["memory"]:
            problems.append(f"memory={resources.memory} MiB but this machine has {have['memory']} MiB")
        if resources.gpu:
            if resources.gpu > have["gpu"]:
                problems.append(f"gpu={resources.gpu} but this machine has {have['gpu']} GPU(s)")
        if resources.disk is not None:
            free = shutil.disk_usage(self.context.project_dir).free // (1024**3)
            if resources.disk > free:
                problems.append(
                    f"disk={resources.disk} GiB but {self.context.project_dir} has {free} GiB free"
                )
        if problems:
            raise ResourceUnsatisfiable(
                f"step '{step}': @resources cannot be met on the local stack: {'; '.join(problems)}. "
                "Lower the request, or run on a stack whose compute offers it (--stack NAME)."
            )
        return f"local worker (this machine: {have['cpu']} cores, {have['memory'] // 1024} GiB, {have['gpu']} GPU)"

    # -- running ----------------------------------------------------------------------------

    def _use_fork(self) -> bool:
        if self.settings.mode == "process":
            return False
        has_fork = hasattr(os, "fork") and sys.platform != "win32"
        if self.settings.mode == "fork" and not has_fork:
            raise LaminaError(
                "compute mode 'fork' was asked for, but this platform has no fork(); use mode = \"process\"."
            )
        return has_fork

    @hookimpl
    def compute_start(self, run_id: str, flow_file: str, stack: dict[str, Any], max_workers: int) -> None:
        self._max_workers = min(max_workers, self.settings.max_workers or max_workers)
        if not self._use_fork() or self._worker is not None:
            return
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        if self._can_fork_driver(flow_file):
            self._worker = _ForkedWorker.start(
                flow_file, to_worker_r, from_worker_w, to_worker_w, from_worker_r, self
            )
        else:
            self._worker = self._spawn_worker(flow_file, to_worker_r, from_worker_w)
        os.close(to_worker_r)
        os.close(from_worker_w)
        self._to_worker = to_worker_w
        threading.Thread(
            target=self._read_events, args=(from_worker_r,), name="lamina-worker-events", daemon=True
        ).start()

    def _can_fork_driver(self, flow_file: str) -> bool:
        """Whether this process can itself become the warm worker, by fork, saving an interpreter
        start: the flow must be this process's ``__main__`` (``python flow.py run``), so pickled
        classes resolve as in a task, and no other thread may run yet (fork copies only this one).
        """
        if os.environ.get("LAMINA_WORKER_SPAWN"):
            return False
        main = sys.modules.get("__main__")
        main_file = getattr(main, "__file__", None)
        return (
            main_file is not None
            and os.path.abspath(main_file) == os.path.abspath(flow_file)
            and threading.active_count() == 1
            and "sqlalchemy" not in sys.modules  # nothing that keeps connections or pools
        )

    def _spawn_worker(self, flow_file: str, to_worker_r: int, from_worker_w: int) -> subprocess.Popen[bytes]:
        env = dict(os.environ, LAMINA_PROJECT_DIR=str(self.context.project_dir))
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lamina",
                "worker",
                "--flow-file",
                flow_file,
                "--fd-in",
                str(to_worker_r),
                "--fd-out",
                str(from_worker_w),
                "--max-workers",
                str(self._max_workers),
            ],
            pass_fds=(to_worker_r, from_worker_w),
            stdin=subprocess.DEVNULL,
            env=env,
        )

    def _read_events(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as stream:
            for line in stream:
                self._events.put(json.loads(line))
        self._events.put({"eof": True})

    def _send(self, message: dict[str, Any]) -> None:
        assert self._to_worker is not None
        data = (json.dumps(message) + "\n").encode()
        with self._lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._to_worker, view) :]

    @hookimpl
    def compute_default_workers(self) -> int | None:
        return self.settings.max_workers or os.cpu_count() or 1

    @hookimpl
    def compute_queue_depth(self) -> int:
        # the warm worker queues tasks and runs at most max_workers at once, so hand it a few
        # ahead: it forks the next one the moment a task ends, without a round trip to us
        return self._max_workers if self._worker is not None else 0

    @hookimpl
    def compute_submit(self, task: TaskSpec) -> str:
        self._counter += 1
        handle = f"local-{self._counter}"
        if self._worker is not None:
            self._send({"op": "run", "handle": handle, "spec": task.model_dump(mode="json")})
            return handle
        fd, path = tempfile.mkstemp(prefix="lamina-task-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            fh.write(task.model_dump_json())
        env = dict(os.environ, LAMINA_PROJECT_DIR=str(self.context.project_dir))
        self._spec_files[handle] = path
        self._procs[handle] = subprocess.Popen(
            [sys.executable, "-m", "lamina", "task", "--spec-file", path], env=env
        )
        return handle

    @hookimpl
    def compute_wait(self, handles: list[str], timeout: float) -> list[TaskStatus]:
        wanted = set(handles)
        deadline = time.monotonic() + timeout
        while True:
            finished = [self._done.pop(h) for h in list(self._done) if h in wanted]
            for handle, proc in list(self._procs.items()):
                if handle in wanted and proc.poll() is not None:
                    del self._procs[handle]
                    os.unlink(self._spec_files.pop(handle))
                    finished.append(_status(handle, proc.returncode))
            if finished:
                return finished
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            try:
                event = self._events.get(timeout=min(remaining, 0.05) if self._procs else remaining)
            except queue.Empty:
                continue
            self._on_event(event)

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("eof"):
            self._worker_died()
        elif "ready" in event:
            if not event["ready"]:
                raise LaminaError(f"the local worker could not load the flow: {event.get('error')}")
        else:
            self._done[event["handle"]] = _status(event["handle"], event["exit"])

    def _worker_died(self) -> None:
        code = self._worker.wait() if self._worker else None
        self._worker = None
        raise LaminaError(
            f"the local worker process exited unexpectedly (exit {code}); the run cannot go on. Resume it."
        )

    @hookimpl
    def compute_cancel(self, handle: str) -> None:
        if handle in self._procs:
            self._procs[handle].terminate()
        elif self._worker is not None:
            self._send({"op": "cancel", "handle": handle})

    @hookimpl
    def compute_logs(self, handle: str) -> str:
        return ""

    @hookimpl
    def compute_shutdown(self) -> None:
        for proc in self._procs.values():
            proc.terminate()
        self._procs.clear()
        if self._to_worker is not None:
            os.close(self._to_worker)
            self._to_worker = None
        if self._worker is not None:
            try:
                self._worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._worker.kill()
            self._worker = None

    @hookimpl
    def compute_check(self) -> CheckResult:
        have = self.machine
        return CheckResult(
            layer="compute",
            adapter="local",
            ok=True,
            message=f"{have['cpu']} cores, {have['memory'] // 1024} GiB memory, {have['gpu']} GPU; "
            f"{'warm forked workers' if self._use_fork() else 'a process per task'}",
        )

    @hookimpl
    def compute_transient_errors(self) -> tuple[type[BaseException], ...]:
        return ()


class _ForkedWorker:
    """The warm worker as a fork of this (driver) process; quacks like ``subprocess.Popen``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    @classmethod
    def start(
        cls, flow_file: str, fd_in: int, fd_out: int, parent_w: int, parent_r: int, adapter: LocalCompute
    ) -> _ForkedWorker:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the driver's code
            code = 1
            try:
                os.close(parent_w)
                os.close(parent_r)
                os.environ["LAMINA_PROJECT_DIR"] = str(adapter.context.project_dir)
                code = serve_worker(flow_file, None, fd_in, fd_out, adapter._max_workers)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        return cls(pid)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"lamina worker {self.pid}", timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass


def _status(handle: str, code: int) -> TaskStatus:
    return TaskStatus(
        handle=handle,
        state="succeeded" if code == 0 else "failed",
        exit_code=code,
        message="" if code == 0 else (f"killed by signal {-code}" if code < 0 else f"exit status {code}"),
        output_shown=True,
    )


ADAPTER = AdapterInfo(
    layer="compute",
    name="local",
    settings=LocalComputeSettings,
    factory=LocalCompute,
    description="warm local worker processes, a forked child per task",
    contract=2,
)
