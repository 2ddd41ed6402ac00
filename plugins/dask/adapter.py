"""The ``dask`` compute adapter: tasks on a Dask distributed cluster (see the package docstring)."""

from __future__ import annotations

import logging
import os
import queue
import time
import traceback
import uuid
from typing import Any

from lamina.adapter import remote_snapshot
from lamina.errors import LaminaError, ResourceUnsatisfiable
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import AdapterInfo, CheckResult, Resources, TaskSpec, TaskStatus

from .on_worker import kill_lamina_task, run_lamina_task, stop_warm_workers, worker_probe
from .resources import (
    _cli_resources,
    dask_resources,
    default_worker_resources,
    describe_request,
    describe_resources,
    fits,
    largest_offer,
)
from .settings import ADAPTER_NAME, DaskComputeSettings

logger = logging.getLogger("lamina.plugins.dask")

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
        remote = task.model_copy(update={"stack": remote_snapshot(task.stack)})
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


ADAPTER = AdapterInfo(
    layer="compute",
    name=ADAPTER_NAME,
    settings=DaskComputeSettings,
    factory=DaskCompute,
    extra="dask",
    requires=("dask", "distributed"),
    description="tasks on a Dask distributed cluster (an address, or a LocalCluster on 127.0.0.1)",
)

