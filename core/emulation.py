"""What a cloud plugin's emulator is built from (public through :mod:`lamina.adapter`).

An emulator starts local stand-ins of a cloud's services on 127.0.0.1, runs a command against
them and stops everything afterwards, leaving nothing listening and no process behind. No
stand-in runs a training job, so emulators include a *job runner*: it reads each job an adapter
submitted to a stand-in and runs that job's command locally, with the job's environment, as the
cloud would run the container. :class:`JobRunner` is the part every cloud shares; a plugin says
how to find new jobs and what to do when one ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import LaminaError


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, *, timeout: float = 60.0, proc: subprocess.Popen[Any] | None = None, what: str = "a server"
) -> None:
    """Wait until something listens on 127.0.0.1:``port``.

    :raises LaminaError: ``proc`` exited first, or nothing listened within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LaminaError(f"{what} exited with status {proc.returncode} before listening on port {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise LaminaError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:g} s")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM if the thread that started it dies without stopping it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_group(command: list[str], **popen: Any) -> subprocess.Popen[Any]:
    """Start ``command`` as the leader of a new process group that dies with this process, so
    :func:`stop_group` stops it and everything it started, and a crash of ours orphans nothing."""
    popen.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent, **popen)


def stop_group(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the process group of ``proc``, then SIGKILL what is left after ``grace`` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:  # the leader may be gone while its children linger
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=grace)


@dataclass
class Job:
    """One job a stand-in holds: what to run, and how it ended."""

    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    output: bytes = b""
    stopped: bool = False


class JobRunner:
    """Runs the jobs submitted to a stand-in as the cloud runs their containers.

    A subclass (or the callables given) says how to list new jobs (``discover``: returns
    :class:`Job` objects not seen before) and what to record when one ends (``finished``). Each
    job runs in its own process group, working directory and environment (``base_env`` plus the
    job's own; nothing else of this process), at most ``max_parallel`` at once.
    """

    def __init__(
        self,
        workdir: Path,
        base_env: dict[str, str],
        discover: Callable[[], list[Job]],
        finished: Callable[[Job], None],
        *,
        max_parallel: int = 8,
        interval: float = 0.05,
        python: str | None = None,
    ) -> None:
        import sys

        self.workdir = workdir
        self.base_env = base_env
        self.discover = discover
        self.finished = finished
        self.interval = interval
        self.python = python or sys.executable
        self.slots = threading.Semaphore(max_parallel)
        self.ran: list[str] = []
        """Names of the jobs run, in order of start (tests read it)."""
        self.errors: list[str] = []
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        """The running jobs' processes by job name."""
        self._stopping: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._poller = threading.Thread(target=self._loop, name="lamina-job-runner", daemon=True)

    def start(self) -> None:
        self._poller.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for job in self.discover():
                    thread = threading.Thread(target=self._run, args=(job,), daemon=True)
                    self._threads.append(thread)
                    thread.start()
            except Exception as exc:  # the runner must survive a stand-in's hiccup
                if not self._stop.is_set():
                    self.errors.append(f"listing jobs: {type(exc).__name__}: {exc}")
            self._stop.wait(self.interval)

    def command(self, job: Job) -> list[str]:
        """The job's command as run here: the image's ``python`` is this interpreter."""
        command = list(job.command)
        if not command:
            raise LaminaError(
                f"job {job.name} has no command: the emulator cannot run an image's own entry point"
            )
        if Path(command[0]).name in ("python", "python3"):
            command[0] = self.python
        return command

    def _run(self, job: Job) -> None:
        with self.slots:
            if self._stop.is_set():
                return
            job_dir = self.workdir / "jobs" / job.name
            (job_dir / "tmp").mkdir(parents=True, exist_ok=True)
            env = {**self.base_env, **job.env, "TMPDIR": str(job_dir / "tmp"), "HOME": str(job_dir)}
            env.setdefault("LAMINA_CODE_DIR", str(self.workdir / "code"))
            try:
                command = self.command(job)
            except LaminaError as exc:
                job.exit_code, job.output = 2, str(exc).encode()
                self._end(job)
                return
            with self._lock:
                if job.name in self._stopping:
                    job.exit_code, job.stopped = -signal.SIGTERM, True
                    self._end(job)
                    return
                proc = start_group(
                    command, cwd=job_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
                )
                self.procs[job.name] = proc
                self.ran.append(job.name)
            assert proc.stdout is not None
            job.output = proc.stdout.read()
            job.exit_code = proc.wait()
            with self._lock:
                self.procs.pop(job.name, None)
                job.stopped = job.name in self._stopping
            (job_dir / "output.log").write_bytes(job.output)
            self._end(job)

    def _end(self, job: Job) -> None:
        try:
            self.finished(job)
        except Exception as exc:
            self.errors.append(f"recording the end of {job.name}: {type(exc).__name__}: {exc}")

    def stop_job(self, name: str) -> None:
        """Stop one job (the cloud's cancel): SIGTERM its processes, SIGKILL after a grace period."""
        with self._lock:
            self._stopping.add(name)
            proc = self.procs.get(name)
        if proc is not None:
            threading.Thread(target=stop_group, args=(proc, 10.0), daemon=True).start()

    def stop(self) -> None:
        """Stop polling and every running job; wait for their threads."""
        self._stop.set()
        if self._poller.is_alive():
            self._poller.join(timeout=10)
        with self._lock:
            procs = list(self.procs.values())
        for proc in procs:
            stop_group(proc, grace=3.0)
        for thread in self._threads:
            thread.join(timeout=10)
