"""A warm worker: a process that has imported Lamina and the flow once, then forks one child per
task. A child starts in microseconds with everything imported, and dies with whatever the step
did to module state, memory or the interpreter, so isolation is as good as a fresh process.

Protocol (JSON lines over two pipes given by file descriptor):
  driver -> worker  {"op": "run", "handle": H, "spec": {...TaskSpec...}}
                    {"op": "cancel", "handle": H}
  worker -> driver  {"handle": H, "exit": CODE, "pid": PID}
                    {"ready": true} once the flow is imported
EOF of the driver's pipe (the driver died or finished) or SIGTERM stops the worker and its
children (SIGTERM to each task's process group, SIGKILL after a grace); the worker ignores SIGINT,
which a terminal sends to the whole process group: the driver decides what Ctrl-C means.

Each task runs in its own process group with its stdout and stderr on pipes this worker reads
(``lamina.runtime.supervise``): its output is shown live and stored even if it dies without
warning, and a step that overruns its ``@timeout`` and does not stop is killed from here.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .supervise import Supervised


def serve(flow_file: str, flow_name: str | None, fd_in: int, fd_out: int, max_workers: int = 1) -> int:
    from ..models import TaskSpec
    from .supervise import Supervised, prepare
    from .task import EXIT_INFRA, load_flow_class, run_task

    out = os.fdopen(fd_out, "wb", buffering=0)

    def send(message: dict[str, Any]) -> None:
        out.write((json.dumps(message) + "\n").encode())

    try:
        flow_cls = load_flow_class(flow_file, flow_name)
        flow_cls.graph()
        _preload()
        prepare()
    except BaseException as exc:
        send({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    send({"ready": True})

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    # Ctrl-C reaches the whole foreground process group: the driver decides what it means and
    # closes our pipe; SIGTERM (the driver's shutdown, or a user's) stops the tasks like EOF does
    interrupts: list[int] = []  # a second Ctrl-C (the driver got one too) kills the tasks at once
    signal.signal(signal.SIGINT, lambda signum, _frame: interrupts.append(signum))
    terminated: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: terminated.append(signum))
    echo = not os.environ.get("LAMINA_QUIET")
    children: dict[int, tuple[str, Supervised]] = {}
    by_handle: dict[str, int] = {}
    queued: deque[tuple[str, Any]] = deque()  # at most max_workers run; the rest wait here

    def start(handle: str, spec: Any) -> None:
        gc.freeze()  # objects made so far are never collected in a child: fewer copy-on-write faults
        sys.stdout.flush()
        sys.stderr.flush()
        task = Supervised(spec, echo=echo)
        pid = os.fork()
        if pid == 0:  # the task
            code = EXIT_INFRA
            try:
                os.setpgid(0, 0)
                os.close(fd_in)
                out.close()
                os.close(wake_r)
                os.close(wake_w)
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for other in children.values():
                    other[1].close_in_child()
                task.in_child()
                code = (
                    _run_profiled(spec, flow_cls)
                    if os.environ.get("LAMINA_PROFILE_TASKS")
                    else run_task(spec, flow_cls)
                )
            except BaseException:  # stored with the task's stderr by this worker
                import traceback

                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        task.in_parent(pid)
        children[pid] = (handle, task)
        by_handle[handle] = pid

    def stop_all() -> None:
        for _, task in children.values():
            task.cancel()

    buffer = b""
    stopping = False
    while True:
        watched = [wake_r] if stopping else [fd_in, wake_r]
        owner: dict[int, Supervised] = {}
        for _, task in children.values():
            for fd in task.fds():
                owner[fd] = task
        deadlines = [d for _, t in children.values() if (d := t.next_deadline()) is not None]
        wait = 1.0 if not deadlines else max(0.0, min(1.0, min(deadlines) - time.monotonic()))
        ready, _, _ = select.select(watched + list(owner), [], [], wait)
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
        for fd in ready:
            if fd in owner:
                owner[fd].on_readable(fd)
        if terminated and not stopping:
            stopping = True
            stop_all()
        if len(interrupts) >= 2:
            interrupts.clear()
            for _, task in children.values():
                task.kill_now()
        if fd_in in ready:
            chunk = os.read(fd_in, 1 << 20)
            if not chunk:
                stopping = True
                stop_all()
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                message = json.loads(line)
                if message["op"] == "run":
                    spec = TaskSpec.model_validate(message["spec"])
                    _warm(spec)
                    queued.append((message["handle"], spec))
                elif message["op"] == "cancel":
                    running = by_handle.get(message["handle"])
                    if running is not None and running in children:
                        children[running][1].cancel()
                    for item in list(queued):
                        if item[0] == message["handle"]:
                            queued.remove(item)
                            send({"handle": item[0], "exit": -signal.SIGTERM, "pid": 0})
        now = time.monotonic()
        for _, task in children.values():
            task.check_deadlines(now)
        _reap(children, by_handle, send)
        while queued and len(children) < max_workers and not stopping:
            start(*queued.popleft())
        if stopping and not children:
            return 0


def _warm(spec: Any) -> None:
    """Build the run's stack and its versioning layer once, in the worker, so every forked task
    inherits them instead of resolving the profile again."""
    from .capture import secret_values
    from .task import task_stack

    stack = task_stack(spec)
    stack.versioning  # noqa: B018 - building the layer is the point
    secret_values()


def _run_profiled(spec: Any, flow_cls: Any) -> int:
    """``LAMINA_PROFILE_TASKS=DIR``: write a cProfile of each task to DIR (for performance work)."""
    import cProfile

    from .task import run_task

    profiler = cProfile.Profile(time.process_time)  # CPU time: a loaded machine does not skew it
    code = profiler.runcall(run_task, spec, flow_cls)
    folder = os.environ["LAMINA_PROFILE_TASKS"]
    os.makedirs(folder, exist_ok=True)
    profiler.dump_stats(os.path.join(folder, f"{spec.step}-{spec.task_id}-{spec.attempt}.prof"))
    return code


def _reap(children: dict[int, tuple[str, Supervised]], by_handle: dict[str, int], send: Any) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        entry = children.pop(pid, None)
        if entry is None:
            continue
        handle, task = entry
        by_handle.pop(handle, None)
        # the task's output is stored, and a record written for a task that died, before the
        # driver hears of it: it then reads a complete result
        code = task.ended(os.waitstatus_to_exitcode(status))
        try:
            send({"handle": handle, "exit": code, "pid": pid})
        except BrokenPipeError:
            pass


def _preload() -> None:
    """Import what every task needs, once, so forked children do not pay for it."""
    import importlib

    for module in (
        "lamina.versioning.artifacts",
        "lamina.versioning.serializers",
        "lamina.versioning.runstore",
        "lamina.flow.current",
        "lamina.runtime.capture",
    ):
        importlib.import_module(module)
    try:  # the pickle fallback's helper for lambdas and local classes
        importlib.import_module("cloudpickle")
    except ImportError:
        pass


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lamina worker")
    parser.add_argument("--flow-file", required=True)
    parser.add_argument("--flow-name")
    parser.add_argument("--fd-in", type=int, required=True)
    parser.add_argument("--fd-out", type=int, required=True)
    parser.add_argument("--max-workers", type=int, default=1)
    args = parser.parse_args(argv)
    return serve(args.flow_file, args.flow_name, args.fd_in, args.fd_out, max(1, args.max_workers))


serve_worker = serve
"""The public name of :func:`serve` (``lamina.adapter.serve_worker``)."""
