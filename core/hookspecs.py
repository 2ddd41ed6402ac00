"""The contracts of Lamina's four layers and of its plugins, as pluggy hookspecs.

One marker for the whole project: ``HookspecMarker("lamina")``. Each layer's spec is one class;
a resolved stack holds one ``PluginManager`` per layer with exactly the profile's adapter
registered in it (plus cross-cutting plugins such as tracing, caching), and pluggy validates the
adapter's signatures against the spec when it is registered.

Layer hooks are ``firstresult``: the adapter answers, unless a ``tryfirst`` plugin (a cache)
answers before it. Wrappers (``@hookimpl(wrapper=True)``) observe every call. Retries are not a
wrapper's business (a wrapper yields once): the layer facade retries the exceptions an adapter
declares transient through its ``*_transient_errors`` hook.

Hooks marked *idempotent* may be retried by the facade and must give the same outcome when
called twice with the same arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import pyarrow as pa

    from .models import (
        AdapterInfo,
        CheckResult,
        DataResult,
        DataSnapshot,
        DeployResult,
        Resources,
        RunOutcome,
        TaskSpec,
        TaskStatus,
    )

PROJECT = "lamina"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class AdapterContext:
    """Where an adapter is being built."""

    project_dir: Path
    stack_name: str
    adapter_name: str
    role: str = "driver"
    """``driver`` in the process that walks the DAG, ``task`` inside a running task."""


class PluginSpec:
    """Hooks of the global plugin manager: discovery and lifecycle events."""

    @hookspec
    def lamina_adapters(self) -> list[AdapterInfo]:
        """Return the adapters this plugin offers.

        :return: a list of :class:`lamina.models.AdapterInfo` (layer, name, settings model,
            factory, the extra that installs its dependencies). Results of all plugins are
            concatenated; two adapters with the same layer and name are a ``PluginError``.
        """

    @hookspec
    def lamina_stack_profiles(self) -> dict[str, Path]:
        """Return stack profiles this plugin ships, as ``{name: path to a TOML file}``.

        Project and user profiles of the same name take precedence.
        """

    @hookspec
    def lamina_run_started(
        self, run_id: str, flow_name: str, stack_name: str, params: dict[str, Any]
    ) -> None:
        """Called by the scheduler once a run's metadata exists, before its first task."""

    @hookspec
    def lamina_task_finished(self, run_id: str, step: str, task_id: str, ok: bool, duration: float) -> None:
        """Called by the scheduler after a task's completion record was stored."""

    @hookspec
    def lamina_run_finished(self, run_id: str, flow_name: str, ok: bool) -> None:
        """Called by the scheduler when a run ends, successfully or not."""


class DataSpec:
    """Where tables live; how a step queries, reads and writes them."""

    @hookspec(firstresult=True)
    def data_query(self, sql: str, parameters: list[Any] | None) -> DataResult:
        """Run a read-only SQL query in the adapter's dialect.

        :return: a :class:`DataResult` with an Arrow table (no row-by-row conversion) and the
            snapshot the query saw. Idempotent.
        :raises DataError: bad SQL or an unknown table.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def data_read(self, name: str) -> DataResult:
        """Read a whole table by name. Idempotent.

        :raises DataError: the table does not exist (the message lists what does).

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def data_write(self, name: str, table: pa.Table, mode: str) -> DataSnapshot:
        """Write an Arrow table; ``mode`` is ``replace`` (create or replace) or ``append``.

        :return: the snapshot of the table after the write. ``replace`` is idempotent.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def data_tables(self) -> list[str]:
        """Names of the tables the adapter can read.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def data_check(self) -> CheckResult:
        """Probe credentials and reachability; never raises, reports.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def data_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Exception types worth retrying with backoff (throttling, dropped connections, locks).

        Stops at the first non-None result (firstresult).
        """

    @hookspec
    def data_close(self) -> None:
        """Release connections. Called once when the stack is closed."""


class ComputeSpec:
    """Where one task runs, with what resources."""

    @hookspec(firstresult=True)
    def compute_validate(self, step: str, resources: Resources) -> str:
        """Check that ``resources`` can be met before anything is submitted.

        :return: a short description of what the step will get (e.g. an instance type).
        :raises ResourceUnsatisfiable: naming the step, what was asked and the largest offer.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def compute_start(self, run_id: str, flow_file: str, stack: dict[str, Any], max_workers: int) -> None:
        """Prepare for a run (start warm workers, connect to a cluster). Called once per run.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def compute_submit(self, task: TaskSpec) -> str:
        """Start one task; it must run ``lamina.runtime.task.run_task`` (``python -m lamina task``).

        :return: a handle for :meth:`compute_wait` and :meth:`compute_cancel`.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def compute_default_workers(self) -> int | None:
        """How many tasks to run at once when the user gives no ``--max-workers``.

        A local adapter answers the cores of this machine; a cluster or a cloud its own capacity
        (workers, a job quota from the profile). ``None`` leaves the scheduler's default, the
        number of cores of the machine that runs it.
        """

    @hookspec(firstresult=True)
    def compute_queue_depth(self) -> int:
        """How many tasks beyond ``max_workers`` the scheduler may hand over ahead of time.

        An adapter that queues tasks itself and never runs more than ``max_workers`` at once
        answers a positive number, so its workers start the next task without waiting for the
        scheduler. Adapters that start every submitted task at once answer 0 (the default).

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def compute_wait(self, handles: list[str], timeout: float) -> list[TaskStatus]:
        """Wait up to ``timeout`` seconds for any of ``handles`` to finish.

        :return: the statuses of the tasks that finished (possibly none).

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def compute_cancel(self, handle: str) -> None:
        """Stop a task. Idempotent; a finished task is left alone.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def compute_logs(self, handle: str) -> str:
        """Platform logs of a task (beyond its own stdout/stderr), or ``""``.

        Stops at the first non-None result (firstresult).
        """

    @hookspec
    def compute_shutdown(self) -> None:
        """Stop workers and release the cluster. Called once when a run ends."""

    @hookspec(firstresult=True)
    def compute_check(self) -> CheckResult:
        """Probe credentials and capacity; never raises, reports.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def compute_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Exception types worth retrying with backoff.

        Stops at the first non-None result (firstresult).
        """


class OrchestrationSpec:
    """Who walks the DAG; how a flow is deployed and scheduled."""

    @hookspec(firstresult=True)
    def orchestration_run(self, runtime: Any) -> RunOutcome | None:
        """Walk one interactive run's DAG (``python flow.py run``).

        :param runtime: the core's :class:`lamina.runtime.scheduler.RunDriver`, which submits
            tasks to the stack's compute and records their results.
        :return: the outcome, or ``None`` when this orchestrator does not take interactive
            runs; the built-in scheduler then walks the DAG.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def orchestration_deploy(self, flow: dict[str, Any], schedule: str | None, dry_run: bool) -> DeployResult:
        """Hand the whole DAG to the orchestrator, to run and schedule with no user machine.

        :param flow: the flow's descriptor (``lamina.flow.graph.FlowGraph.describe()``) plus
            ``code_key``, ``stack`` and ``parameters``.
        Idempotent: deploying twice updates.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def orchestration_trigger(self, flow_name: str, parameters: dict[str, Any]) -> str:
        """Start a run of a deployed flow. :return: the execution's id.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def orchestration_check(self) -> CheckResult:
        """Probe credentials and permissions; never raises, reports.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def orchestration_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Exception types worth retrying with backoff.

        Stops at the first non-None result (firstresult).
        """


class VersioningSpec:
    """Where runs' bytes and metadata are kept.

    Backends implement a few byte primitives over keys (``/``-separated, relative); the core's
    content-addressed store owns hashing, dedup and serialisation for every backend.
    """

    @hookspec(firstresult=True)
    def versioning_put(
        self, key: str, data: bytes | memoryview | None, path: str | None, overwrite: bool
    ) -> bool:
        """Store bytes (``data``) or a local file (``path``) under ``key``, atomically.

        Readers never see a partial object. With ``overwrite=False`` an existing key is kept.
        :return: whether anything was written. Idempotent.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def versioning_get(self, key: str) -> bytes:
        """Return the bytes under ``key``. :raises KeyError: no such key.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def versioning_local_path(self, key: str) -> str | None:
        """A local filesystem path holding the bytes of ``key`` (to memory-map), or ``None``.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def versioning_fetch(self, key: str, path: str) -> None:
        """Download ``key`` to the local file ``path``. :raises KeyError: no such key.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def versioning_exists(self, keys: list[str]) -> list[bool]:
        """Whether each key exists.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def versioning_list(self, prefix: str) -> list[str]:
        """Keys that start with ``prefix``, sorted.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def versioning_delete(self, keys: list[str]) -> None:
        """Remove keys; missing ones are ignored.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def versioning_metadata_url(self) -> str:
        """The SQLAlchemy URL of the metadata database (never with a password in it).

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def versioning_check(self) -> CheckResult:
        """Probe the bucket and the database; never raises, reports.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    def versioning_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Exception types worth retrying with backoff.

        Stops at the first non-None result (firstresult).
        """


LAYER_SPECS: dict[str, type] = {
    "data": DataSpec,
    "compute": ComputeSpec,
    "orchestration": OrchestrationSpec,
    "versioning": VersioningSpec,
}
