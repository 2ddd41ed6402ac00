"""The ``dask`` compute adapter: each task runs on a worker of a Dask distributed cluster.

Two ways to get a cluster (the profile's ``[compute]`` table):

- ``address = "tcp://127.0.0.1:8786"``: connect to a running scheduler; its workers run the tasks.
- no ``address``: start a ``distributed.LocalCluster`` on 127.0.0.1 for each run (``n_workers``
  worker processes of one thread each, every worker offering ``worker_resources``) and close it
  when the run ends.

A task is one Dask task that runs Lamina's task entry point on the worker, with
``LAMINA_PROJECT_DIR`` set to the driver's project and ``LAMINA_DASK_WORKER`` to the worker's
address. Never ``run_task`` in the Dask worker process itself: a task loads the flow as
``__main__``, points file descriptors 1 and 2 at its log capture and arms ``SIGALRM`` for
``@timeout``, all of which belong to the whole process, while a Dask worker runs tasks in threads
beside its own event loop; and a step that changes module state, leaks memory or crashes would
take the worker with it. Instead (``mode``):

- ``auto`` (where the flow file is on the worker and ``fork`` exists): the first task of a run on
  a Dask worker starts a warm ``python -m lamina worker``, the local stack's own warm worker, which
  imports Lamina and the flow once and forks a child per task that calls ``run_task``. Isolation
  is that of a fresh process, at the cost of a fork. The adapter stops these workers when the run
  ends.
- ``process`` (and ``auto`` when the flow file is not on the worker: the task then restores the
  code package from the blob store): each task is a new ``python -m lamina task --spec-file``
  process. The spec travels in a file on the worker, so a join over ten thousand inputs is not
  limited by the longest command-line argument.

``@resources`` maps onto Dask worker resources: ``cpu`` onto ``CPU``, ``memory`` (MiB) onto
``MEMORY`` (bytes), ``gpu`` onto ``GPU`` and ``disk`` (GiB) onto ``DISK`` (bytes). A step that
asks for any of them runs only on a worker that declares at least that much
(``dask worker ADDRESS --resources "CPU=4 MEMORY=16e9 GPU=1"``), and a request that no worker can
meet fails in :meth:`DaskCompute.compute_validate`, before anything is submitted.

With the ``local`` versioning and ``duckdb`` data adapters (the ``dask`` stack), the workers must
see the driver's project directory: a LocalCluster does, and so does a cluster on one machine or
on a shared filesystem. Workers elsewhere need a stack whose versioning and data live in a
service (S3, Snowflake...).

This module imports no Dask at import time: ``import lamina`` and ``lamina stack list`` stay fast.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from typing import Any, Literal

from lamina.errors import LaminaError, ResourceUnsatisfiable
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import AdapterInfo, AdapterSettings, CheckResult, Resources, TaskSpec, TaskStatus
from lamina.redaction import is_secret_name, refuse_secret_names
from lamina.runtime.task import EXIT_INFRA
from pydantic import Field, field_validator

ADAPTER_NAME = "dask"
MIB = 1024**2
GIB = 1024**3
LOG_TAIL = 16_000
"""Characters of a task process's own output kept for :meth:`DaskCompute.compute_logs`."""
WORKER_ENV = "LAMINA_DASK_WORKER"
"""Set in every task's environment: the address of the Dask worker running it."""
logger = logging.getLogger(__name__)
_RESOURCE_OF = {"cpu": "CPU", "memory": "MEMORY", "gpu": "GPU", "disk": "DISK"}


class DaskComputeSettings(AdapterSettings):
    """Settings of the ``dask`` compute adapter (the ``[compute]`` table of a profile)."""

    address: str | None = Field(
        default=None,
        description="scheduler address (tcp://host:8786); none: start a LocalCluster on 127.0.0.1 per run",
    )
    n_workers: int | None = Field(
        default=None, ge=1, le=256, description="LocalCluster only: worker processes; default: the cores"
    )
    worker_resources: dict[str, float] | None = Field(
        default=None,
        description="LocalCluster only: what each worker offers, e.g. {CPU = 2, MEMORY = 4e9, GPU = 1}; "
        "default: the machine's cores and memory split evenly between the workers",
    )
    timeout: float = Field(
        default=30.0, gt=0, le=3600, description="seconds to reach the scheduler or start the LocalCluster"
    )
    python: str | None = Field(
        default=None, description="the interpreter that runs tasks on the workers; default: the worker's own"
    )
    environment: dict[str, str] = Field(
        default_factory=dict, description="extra non-secret environment variables for every task"
    )
    mode: Literal["auto", "process"] = Field(
        default="auto",
        description="auto: a warm `lamina worker` per Dask worker forks each task where the flow file is "
        "on the worker; process: a new `python -m lamina task` process per task",
    )

    @field_validator("address", "python", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if "://" not in value:
            value = "tcp://" + value
        scheme, _, rest = value.partition("://")
        if not rest or ":" not in rest:
            raise ValueError(
                f"{value!r} is not a Dask scheduler address: write tcp://HOST:PORT (the scheduler prints it, "
                "e.g. tcp://127.0.0.1:8786), or leave `address` out to start a LocalCluster"
            )
        return f"{scheme}://{rest}"

    @field_validator("worker_resources")
    @classmethod
    def _resources(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        for name, amount in value.items():
            if amount <= 0:
                raise ValueError(f"worker_resources.{name} must be positive, got {amount:g}")
            if name.lower() in _RESOURCE_OF and name != _RESOURCE_OF[name.lower()]:
                raise ValueError(
                    f"worker_resources.{name}: @resources maps onto {_RESOURCE_OF[name.lower()]!r} "
                    "(upper case); Dask resource names are case-sensitive"
                )
        return value

    @field_validator("environment")
    @classmethod
    def _no_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        return refuse_secret_names(
            value, "a profile holds no secrets", "Set it in the workers' own environment instead."
        )


# -- resources ---------------------------------------------------------------------------------


def dask_resources(resources: Resources) -> dict[str, float]:
    """The Dask worker resources a step's ``@resources`` asks for (zero or unset: not asked)."""
    wanted: dict[str, float] = {}
    if resources.cpu:
        wanted["CPU"] = float(resources.cpu)
    if resources.memory:
        wanted["MEMORY"] = float(resources.memory * MIB)
    if resources.gpu:
        wanted["GPU"] = float(resources.gpu)
    if resources.disk:
        wanted["DISK"] = float(resources.disk * GIB)
    return wanted


def describe_resources(offer: dict[str, float]) -> str:
    """``CPU=2, MEMORY=4000000000 (3815 MiB), GPU=1``: Dask's names, with readable sizes."""
    if not offer:
        return "no resources"
    order = list(_RESOURCE_OF.values())
    parts = []
    for name, amount in sorted(
        offer.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])
    ):
        text = f"{name}={amount:.12g}"
        if name == "MEMORY":
            text += f" ({amount / MIB:.0f} MiB)"
        elif name == "DISK":
            text += f" ({amount / GIB:.3g} GiB)"
        parts.append(text)
    return ", ".join(parts)


def describe_request(resources: Resources) -> str:
    """The request as the step wrote it: ``cpu=64, memory=2048``."""
    return ", ".join(f"{k}={v:g}" for k, v in resources.model_dump().items() if v)


def fits(offer: dict[str, float], wanted: dict[str, float]) -> bool:
    return all(offer.get(name, 0.0) >= amount for name, amount in wanted.items())


def largest_offer(
    offers: dict[str, dict[str, float]], wanted: dict[str, float]
) -> tuple[str, dict[str, float]]:
    """The worker that comes closest to ``wanted``: most resources met, then the largest share."""

    def closeness(item: tuple[str, dict[str, float]]) -> tuple[int, float, float]:
        offer = item[1]
        met = sum(1 for name, amount in wanted.items() if offer.get(name, 0.0) >= amount)
        share = sum(min(offer.get(name, 0.0) / amount, 1.0) for name, amount in wanted.items())
        return met, share, sum(offer.get(name, 0.0) for name in wanted)

    return max(offers.items(), key=closeness)


def default_worker_resources(n_workers: int) -> dict[str, float]:
    """What each LocalCluster worker offers without ``worker_resources``: an even share of the machine."""
    from lamina.plugins.local_compute import machine

    have = machine()
    offer = {"CPU": round(have["cpu"] / n_workers, 3)}
    if have["memory"]:
        offer["MEMORY"] = float(have["memory"] * MIB // n_workers)
    return offer


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


# -- the adapter -------------------------------------------------------------------------------


class DaskCompute:
    """Compute-layer plugin: see the module docstring."""

    def __init__(self, settings: DaskComputeSettings, context: AdapterContext) -> None:
        self.settings = settings
        self.context = context
        self._client: Any = None
        self._cluster: Any = None
        self._futures: dict[str, Any] = {}
        self._logs: dict[str, str] = {}
        self._wakeups: queue.Queue[str] = queue.Queue()
        self._runs: set[str] = set()

    # -- the cluster ------------------------------------------------------------------------

    @property
    def n_workers(self) -> int:
        return self.settings.n_workers or os.cpu_count() or 1

    def local_worker_resources(self) -> dict[str, float]:
        """What each worker of the LocalCluster this adapter starts offers."""
        if self.settings.worker_resources is not None:
            return dict(self.settings.worker_resources)
        return default_worker_resources(self.n_workers)

    @property
    def where(self) -> str:
        if self.settings.address:
            return f"the Dask cluster at {self.settings.address}"
        if self._cluster is not None:
            return f"the LocalCluster at {self._cluster.scheduler_address}"
        return f"the LocalCluster this stack starts ({self.n_workers} workers)"

    def _connect(self) -> Any:
        """The client: connected to ``address``, or to a LocalCluster started now."""
        if self._client is not None:
            return self._client
        from distributed import Client

        if self.settings.address:
            try:
                self._client = Client(
                    self.settings.address, timeout=self.settings.timeout, set_as_default=False
                )
            except (OSError, TimeoutError) as exc:
                raise LaminaError(
                    f"cannot reach the Dask scheduler at {self.settings.address} within "
                    f"{self.settings.timeout:g} s ({type(exc).__name__}: {exc}). Start it (`dask scheduler "
                    "--host 127.0.0.1`, then `dask worker ADDRESS`), fix `address` in the [compute] table of "
                    f"stack {self.context.stack_name!r}, or remove `address` to start a LocalCluster."
                ) from exc
            return self._client
        self._cluster = self._start_local_cluster()
        try:
            self._client = Client(self._cluster, timeout=self.settings.timeout, set_as_default=False)
        except BaseException:
            self._cluster.close()
            self._cluster = None
            raise
        return self._client

    def _start_local_cluster(self) -> Any:
        from distributed import LocalCluster

        try:
            return LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address="127.0.0.1:0",
                worker_dashboard_address=None,
                resources=self.local_worker_resources(),
                silence_logs=logging.CRITICAL,  # workers' shutdown races are noise to a flow's user
                timeout=self.settings.timeout,
            )
        except Exception as exc:
            raise LaminaError(
                f"could not start a Dask LocalCluster of {self.n_workers} workers on 127.0.0.1 "
                f"({type(exc).__name__}: {exc}). A script that runs flows on the dask stack needs an "
                '`if __name__ == "__main__":` guard (Dask starts its workers by importing the main module); '
                "or lower `n_workers` in the [compute] table."
            ) from exc

    def _offers(self) -> dict[str, dict[str, float]]:
        """Each worker's resources, by address; for a LocalCluster not started yet, from the settings."""
        if self._client is None and not self.settings.address:
            offer = self.local_worker_resources()
            return {f"LocalCluster worker {i}": offer for i in range(self.n_workers)}
        client = self._connect()
        try:
            info = client.scheduler_info(n_workers=-1)
        except TypeError:  # distributed before 2025.4 always lists every worker
            info = client.scheduler_info()
        return {
            address: {str(k): float(v) for k, v in (worker.get("resources") or {}).items()}
            for address, worker in info.get("workers", {}).items()
        }

    # -- resources ----------------------------------------------------------------------------

    @hookimpl
    def compute_validate(self, step: str, resources: Resources) -> str:
        """Which workers can run the step. :raises ResourceUnsatisfiable: none can."""
        wanted = dask_resources(resources)
        if not wanted:
            return f"any worker of {self.where}"
        offers = self._offers()
        fix = (
            "Lower the request, or give the workers more: "
            + (
                f'`dask worker {self.settings.address} --resources "{_cli_resources(wanted)}"`'
                if self.settings.address
                else f"`worker_resources` (and `n_workers`) in the [compute] table of stack {self.context.stack_name!r}"
            )
            + "."
        )
        if not offers:
            raise ResourceUnsatisfiable(
                f"step '{step}': @resources({describe_request(resources)}) asks for {describe_resources(wanted)}, "
                f"but {self.where} has no workers. Start workers first; {fix}"
            )
        able = [address for address, offer in offers.items() if fits(offer, wanted)]
        if not able:
            address, offer = largest_offer(offers, wanted)
            raise ResourceUnsatisfiable(
                f"step '{step}': @resources({describe_request(resources)}) asks for {describe_resources(wanted)}, "
                f"which no worker of {self.where} offers; the largest offer is {describe_resources(offer)} "
                f"({address}, one of {len(offers)} worker(s)). {fix}"
            )
        return f"{len(able)} of {len(offers)} worker(s) of {self.where} offer {describe_resources(wanted)}"

    # -- running ------------------------------------------------------------------------------

    @hookimpl
    def compute_start(self, run_id: str, flow_file: str, stack: dict[str, Any], max_workers: int) -> None:
        """Connect to the cluster (or start the LocalCluster) and wait for a first worker."""
        client = self._connect()
        self._runs.add(run_id)
        try:
            client.wait_for_workers(1, timeout=self.settings.timeout)
        except TimeoutError as exc:
            raise LaminaError(
                f"{self.where} has no workers after {self.settings.timeout:g} s: start some "
                f"(`dask worker {self.settings.address or 'ADDRESS'}`), or raise `timeout` in the [compute] table."
            ) from exc

    def task_env(self) -> dict[str, str]:
        return {**self.settings.environment, "LAMINA_PROJECT_DIR": str(self.context.project_dir)}

    @hookimpl
    def compute_submit(self, task: TaskSpec) -> str:
        """Submit the task as one Dask task; the handle is its key."""
        client = self._connect()
        remote = task.model_copy(update={"stack": resolve_snapshot(task.stack)})
        handle = f"lamina-{task.flow_name}-{task.run_id}-{task.step}-{task.task_id}-{task.attempt}-{uuid.uuid4().hex[:8]}"
        future = client.submit(
            run_lamina_task,
            handle,
            remote.model_dump_json(),
            self.task_env(),
            self.settings.python,
            self.settings.mode,
            key=handle,
            pure=False,
            resources=dask_resources(task.resources) or None,
        )
        self._futures[handle] = future
        future.add_done_callback(lambda _: self._wakeups.put(handle))
        return handle

    @hookimpl
    def compute_default_workers(self) -> int | None:
        """The LocalCluster's workers; for a cluster given by address, its workers when reachable."""
        if self.settings.address is None:
            return self.n_workers
        try:
            return len(self._offers()) or None
        except Exception:  # unreachable now: compute_start reports it properly
            return None

    @hookimpl
    def compute_queue_depth(self) -> int:
        """0: Dask starts a submitted task as soon as any worker is free, so handing tasks over
        ahead of time would run more than the run's ``max_workers`` at once."""
        return 0

    @hookimpl
    def compute_wait(self, handles: list[str], timeout: float) -> list[TaskStatus]:
        """Wait up to ``timeout`` seconds for the first of ``handles`` to finish (``FIRST_COMPLETED``).

        Not ``distributed.wait``: it only works with a process-wide default client, and making
        ours the default would send every other Dask computation of the user's process (a
        notebook's) to this cluster, and break them once it closes. Each future's done-callback
        wakes this wait instead; the futures' own states say which finished.
        """
        unknown = [h for h in handles if h not in self._futures]
        if unknown:
            return [
                TaskStatus(
                    handle=h, state="failed", message="not a task of this Dask adapter (was it shut down?)"
                )
                for h in unknown
            ]
        deadline = time.monotonic() + timeout
        while True:
            while True:  # earlier wake-ups say nothing the futures' states do not
                try:
                    self._wakeups.get_nowait()
                except queue.Empty:
                    break
            done = [h for h in handles if self._futures[h].done()]
            if done:
                return [self._status(h) for h in done]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            try:
                self._wakeups.get(timeout=remaining)
            except queue.Empty:
                return []

    def _status(self, handle: str) -> TaskStatus:
        future = self._futures.pop(handle)
        if future.cancelled():
            self._logs[handle] = "the Dask task was cancelled"
            return TaskStatus(handle=handle, state="failed", message="cancelled")
        if future.status == "error":
            exc = future.exception()
            self._logs[handle] = "".join(traceback.format_exception(exc))
            return TaskStatus(
                handle=handle,
                state="failed",
                message=f"the Dask task failed on the cluster: {type(exc).__name__}: {exc}",
            )
        code, output = future.result()
        if code == 0:
            return TaskStatus(handle=handle, state="succeeded", exit_code=0)
        self._logs[handle] = output  # only failures: the scheduler asks when a task left no record
        message = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return TaskStatus(handle=handle, state="failed", exit_code=code, message=message)

    @hookimpl
    def compute_cancel(self, handle: str) -> None:
        """Stop the task's process on its worker and cancel its future. Idempotent."""
        future = self._futures.get(handle)
        if future is None or future.done():
            return
        try:
            self._client.run(kill_lamina_task, handle, wait=True)
        except Exception:  # a worker that cannot be reached has no process to stop
            pass
        future.cancel()

    @hookimpl
    def compute_logs(self, handle: str) -> str:
        return self._logs.get(handle, "")

    @hookimpl
    def compute_shutdown(self) -> None:
        """Cancel what still runs, disconnect, and close the LocalCluster this adapter started."""
        for handle in list(self._futures):
            try:
                self.compute_cancel(handle)
            except Exception:
                pass
        self._futures.clear()
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        runs, self._runs = self._runs, set()
        if client is not None:
            try:
                for run_id in runs:  # the warm workers of this run, on every Dask worker
                    client.run(stop_warm_workers, run_id)
            except Exception as exc:  # a later run stops them once idle for WARM_IDLE_LIMIT
                logger.warning("stopping the warm Lamina workers failed: %s: %s", type(exc).__name__, exc)
            try:
                client.close(timeout=self.settings.timeout)
            except Exception:
                pass
        if cluster is not None:
            try:
                cluster.close(timeout=self.settings.timeout)
            except Exception as exc:  # must not hide how the run ended
                logger.warning("closing the Dask LocalCluster failed: %s: %s", type(exc).__name__, exc)

    @hookimpl
    def compute_check(self) -> CheckResult:
        """The scheduler's address and workers (with their resources), or why they cannot be reached."""
        try:
            import distributed  # noqa: F401
        except ImportError as exc:
            return CheckResult(
                layer="compute",
                adapter=ADAPTER_NAME,
                ok=False,
                message=f"Dask distributed is not installed ({exc})",
                fix="pip install 'lamina[dask]'",
            )
        if not self.settings.address and self._client is None:
            return CheckResult(
                layer="compute",
                adapter=ADAPTER_NAME,
                ok=True,
                message=f"each run starts a LocalCluster on 127.0.0.1 with {self.n_workers} worker(s) offering "
                f"{describe_resources(self.local_worker_resources())}",
            )
        try:
            client = self._connect()
            offers = self._offers()
            probes = client.run(worker_probe) if offers else {}
        except Exception as exc:
            return CheckResult(
                layer="compute",
                adapter=ADAPTER_NAME,
                ok=False,
                message=str(exc) if isinstance(exc, LaminaError) else f"{type(exc).__name__}: {exc}",
                fix=f"start a scheduler and workers (`dask scheduler --host 127.0.0.1`, `dask worker ADDRESS`) "
                f"and set `address` in the [compute] table of stack {self.context.stack_name!r}",
            )
        address = self.settings.address or client.scheduler.address
        if not offers:
            return CheckResult(
                layer="compute",
                adapter=ADAPTER_NAME,
                ok=False,
                message=f"scheduler {address} answers but has no workers",
                fix=f"start workers: `dask worker {address}`",
            )
        missing = sorted(a for a, p in probes.items() if not p.get("lamina"))
        workers = "; ".join(f"{a}: {describe_resources(o)}" for a, o in sorted(offers.items()))
        if missing:
            return CheckResult(
                layer="compute",
                adapter=ADAPTER_NAME,
                ok=False,
                message=f"scheduler {address}, {len(offers)} worker(s); Lamina is not installed on "
                f"{', '.join(missing)}",
                fix="install Lamina (and the flow's dependencies) in the workers' environment",
            )
        return CheckResult(
            layer="compute",
            adapter=ADAPTER_NAME,
            ok=True,
            message=f"scheduler {address}, {len(offers)} worker(s): {workers}",
        )

    @hookimpl
    def compute_transient_errors(self) -> tuple[type[BaseException], ...]:
        return ()


def _cli_resources(wanted: dict[str, float]) -> str:
    return " ".join(f"{name}={amount:.12g}" for name, amount in wanted.items())


def resolve_snapshot(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The stack snapshot with its non-secret ``${VAR}`` references resolved in the driver.

    A worker on another machine does not have the driver's environment; keys that name secrets
    keep their references and are resolved from the worker's own environment.
    """
    from lamina.stack.profile import resolve_env_refs

    source = str(snapshot.get("source", "profile"))
    layers = {
        layer: {
            key: value
            if key == "adapter" or is_secret_name(key)
            else resolve_env_refs(value, source, layer, key)
            for key, value in table.items()
        }
        for layer, table in snapshot.get("layers", {}).items()
    }
    return {**snapshot, "layers": layers}


ADAPTER = AdapterInfo(
    layer="compute",
    name=ADAPTER_NAME,
    settings=DaskComputeSettings,
    factory=DaskCompute,
    extra="dask",
    requires=("dask", "distributed"),
    description="tasks on a Dask distributed cluster (an address, or a LocalCluster on 127.0.0.1)",
)
