"""What runs inside a Dask worker process: each task in a warm Lamina worker or its own process.

These functions are pickled by reference (the workers import this module) and run in Dask's
worker threads; everything they share is guarded by ``_LOCK``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from lamina.adapter import EXIT_INFRA

from .settings import LOG_TAIL, WORKER_ENV

# -- on the worker -----------------------------------------------------------------------------
#
# These run inside a Dask worker process (pickled by reference: the workers import this module).
# Dask runs them in its worker threads; everything they share is guarded by _LOCK.

_LOCK = threading.Lock()
_PROCESSES: dict[str, subprocess.Popen[bytes]] = {}
"""Process mode: the running task processes by handle."""
_WARM: dict[tuple[str, ...], WarmWorker] = {}
"""Warm mode: ``python -m lamina worker`` processes by (run, flow file, interpreter, environment)."""
_CANCELLED: set[str] = set()
"""Handles cancelled before they reached this worker's process: they will not start."""
WARM_IDLE_LIMIT = 600.0
"""Seconds after which a warm worker with no task is stopped (its driver never said goodbye)."""


class _Waiter:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.code = 0
        self.output = ""


class WarmWorker:
    """One ``python -m lamina worker`` on this Dask worker: the flow imported once, a fork per task.

    It is the local stack's warm worker (``lamina.runtime.worker``, JSON lines over two pipes),
    so a task here is isolated exactly as on the local stack, and loads the flow as ``__main__``.
    """

    def __init__(self, python: str, flow_file: str, env: dict[str, str], slots: int) -> None:
        fd, self.log_path = tempfile.mkstemp(prefix="lamina-dask-worker-", suffix=".log")
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [python, "-m", "lamina", "worker", "--flow-file", flow_file]
                + ["--fd-in", str(to_worker_r), "--fd-out", str(from_worker_w), "--max-workers", str(slots)],
                pass_fds=(to_worker_r, from_worker_w),
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except BaseException:
            os.close(to_worker_w)
            os.close(from_worker_r)
            raise
        finally:
            os.close(fd)
            os.close(to_worker_r)
            os.close(from_worker_w)
        self.to_worker: int | None = to_worker_w
        self.waiters: dict[str, _Waiter] = {}
        self.error = ""
        self.dead = False
        self.last_used = time.monotonic()
        self._send_lock = threading.Lock()
        threading.Thread(
            target=self._read, args=(from_worker_r,), name="lamina-warm-worker", daemon=True
        ).start()

    def _send(self, message: dict[str, Any]) -> None:
        data = memoryview((json.dumps(message) + "\n").encode())
        with self._send_lock:
            if self.to_worker is None:
                raise BrokenPipeError("the warm worker was stopped")
            while data:
                data = data[os.write(self.to_worker, data) :]

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as stream:
            for line in stream:
                message = json.loads(line)
                if message.get("ready") is False:
                    self.error = f"the warm Lamina worker could not load the flow: {message.get('error')}"
                elif "handle" in message:
                    with _LOCK:
                        waiter = self.waiters.pop(message["handle"], None)
                    if waiter is not None:
                        waiter.code = int(message["exit"])
                        waiter.output = "" if waiter.code == 0 else self.log_tail()
                        waiter.done.set()
        code = self.proc.wait()
        with _LOCK:
            self.dead = True
            orphans, self.waiters = list(self.waiters.values()), {}
        for waiter in orphans:
            waiter.code = code if code else EXIT_INFRA
            waiter.output = (
                (self.error or f"the warm Lamina worker exited (code {code})") + "\n" + self.log_tail()
            )
            waiter.done.set()
        self._close()
        try:
            os.unlink(self.log_path)
        except OSError:
            pass

    def log_tail(self) -> str:
        """The end of what the worker and its tasks printed (all of its tasks, interleaved)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(0, os.fstat(fh.fileno()).st_size - LOG_TAIL))
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def run(self, handle: str, spec: dict[str, Any]) -> tuple[int, str]:
        waiter = _Waiter()
        with _LOCK:
            if _cancelled_before_start(handle):
                return -signal.SIGTERM, "cancelled before it started"
            if self.dead:
                return EXIT_INFRA, self.error or "the warm Lamina worker had exited"
            self.waiters[handle] = waiter
            self.last_used = time.monotonic()
        try:
            self._send({"op": "run", "handle": handle, "spec": spec})
        except OSError:
            pass  # the worker died: the reader fails every waiter
        waiter.done.wait()
        with _LOCK:
            self.last_used = time.monotonic()
        return waiter.code, waiter.output

    def cancel(self, handle: str) -> None:
        try:
            self._send({"op": "cancel", "handle": handle})
        except OSError:
            pass

    def _close(self) -> None:
        with self._send_lock:
            if self.to_worker is not None:
                os.close(self.to_worker)
                self.to_worker = None

    def stop(self, grace: float = 5.0) -> None:
        """Close the worker's pipe: it stops its tasks (SIGTERM) and exits; SIGKILL after ``grace``."""
        self._close()

        def kill_if_alive() -> None:
            if self.proc.poll() is None:
                _signal_group(self.proc, signal.SIGKILL)

        timer = threading.Timer(grace, kill_if_alive)
        timer.daemon = True
        timer.start()


def run_lamina_task(
    handle: str, spec_json: str, env: dict[str, str], python: str | None, mode: str = "auto"
) -> tuple[int, str]:
    """Run one task on this Dask worker: in a forked child of a warm ``python -m lamina worker``
    (mode ``auto`` where the flow file is here and ``fork`` exists), else with
    ``python -m lamina task`` in a new process.

    :return: the exit code and, for a failure, the end of what Lamina printed around the step (an
        infrastructure error before the task could record a result); the step's own output is
        in the task's stored logs.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
        address, slots = worker.address, int(getattr(worker.state, "nthreads", 1) or 1)
    except (ImportError, ValueError, AttributeError):
        address, slots = "", 1
    spec = json.loads(spec_json)
    flow_file = spec.get("flow_file", "")
    here = os.path.isabs(flow_file) and os.path.exists(flow_file)
    if not here and spec.get("code_key"):
        # not on a shared filesystem: the task restores the code package from the blob store,
        # in which the flow file sits at the top (it is packaged from the flow's folder)
        spec["flow_file"] = os.path.basename(flow_file)
    task_env = {**os.environ, **env, WORKER_ENV: address}
    interpreter = python or sys.executable
    if mode == "auto" and here and hasattr(os, "fork"):
        return _warm_worker(spec, interpreter, task_env, slots).run(handle, spec)
    return _run_process(handle, spec, interpreter, task_env)


def _warm_worker(spec: dict[str, Any], python: str, env: dict[str, str], slots: int) -> WarmWorker:
    key = (spec["run_id"], spec["flow_file"], python, json.dumps(env, sort_keys=True))
    with _LOCK:
        warm = _WARM.get(key)
        if warm is not None and not warm.dead:
            return warm
        now = time.monotonic()
        for other_key, other in list(_WARM.items()):  # drivers that died without shutting down
            if other.dead or (not other.waiters and now - other.last_used > WARM_IDLE_LIMIT):
                del _WARM[other_key]
                other.stop()
        warm = _WARM[key] = WarmWorker(python, spec["flow_file"], env, slots)
        return warm


def _run_process(handle: str, spec: dict[str, Any], python: str, env: dict[str, str]) -> tuple[int, str]:
    # the spec travels in a file: a join's input list can exceed the longest command-line argument
    fd, spec_file = tempfile.mkstemp(prefix="lamina-task-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(spec, fh)
        with _LOCK:
            if _cancelled_before_start(handle):
                return -signal.SIGTERM, "cancelled before it started"
            proc = subprocess.Popen(
                [python, "-m", "lamina", "task", "--spec-file", spec_file, "--quiet"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # cancel stops the task's own children too
            )
            _PROCESSES[handle] = proc
        try:
            output, _ = proc.communicate()
        finally:
            with _LOCK:
                _PROCESSES.pop(handle, None)
        return proc.returncode, "" if proc.returncode == 0 else output.decode(errors="replace")[-LOG_TAIL:]
    finally:
        os.unlink(spec_file)


def _cancelled_before_start(handle: str) -> bool:
    """Whether ``handle`` was cancelled before it got here (call with ``_LOCK`` held)."""
    if handle in _CANCELLED:
        _CANCELLED.discard(handle)
        return True
    return False


def kill_lamina_task(handle: str, grace: float = 5.0) -> bool:
    """Stop task ``handle`` if it runs on this worker: SIGTERM, then SIGKILL after ``grace``.

    Runs in the worker's event loop (``Client.run``), so it never blocks. A task that has not
    reached this worker's processes yet is remembered and will not start.
    """
    with _LOCK:
        proc = _PROCESSES.get(handle)
        warm = next((w for w in _WARM.values() if handle in w.waiters), None)
        if proc is None and warm is None:
            _CANCELLED.add(handle)
            return False
    if warm is not None:
        warm.cancel(handle)
        return True
    assert proc is not None
    _signal_group(proc, signal.SIGTERM)

    def kill_if_alive() -> None:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)

    timer = threading.Timer(grace, kill_if_alive)
    timer.daemon = True
    timer.start()
    return True


def stop_warm_workers(run_id: str) -> int:
    """Stop this worker's warm workers of run ``run_id`` (``Client.run`` at the end of a run)."""
    with _LOCK:
        mine = [key for key in _WARM if key[0] == run_id]
        stopping = [_WARM.pop(key) for key in mine]
    for warm in stopping:
        warm.stop()
    return len(stopping)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def worker_probe() -> dict[str, Any]:
    """What a worker can run: whether Lamina imports there, and its version."""
    try:
        from importlib.metadata import version

        lamina_version: str | None = version("lamina")
    except Exception:
        lamina_version = None
    return {"lamina": lamina_version, "python": sys.executable}
