"""The contracts of Lamina's four layers and of its plugins, as pluggy hookspecs.

One marker for the whole project: ``HookspecMarker("lamina")``. Each layer's spec is one class;
a resolved stack holds one ``PluginManager`` per layer with exactly the profile's adapter
registered in it (plus cross-cutting plugins such as tracing, caching), and pluggy validates the
adapter's signatures against the spec when it is registered.

Layer hooks are ``firstresult``: the adapter answers, unless a ``tryfirst`` plugin (a cache)
answers before it. Wrappers (``@hookimpl(wrapper=True)``) observe every call. Retries are not a
wrapper's business (a wrapper yields once): the layer facade retries the exceptions an adapter
declares transient through its ``*_transient_errors`` hook.

Each hook's promises are declared once, beside its spec, with :func:`contract`: whether every
adapter of the layer must implement it (``required``), whether calling it twice with the same
arguments gives the same outcome (``idempotent``, possibly only for some arguments), and whether
the facade may retry it on a transient error (``retry``). :data:`CONTRACTS` collects them; the
facades, the load-time checks, ``docs/writing-an-adapter.md`` and the conformance suites read it.

Contract versions: pluggy lets an implementation omit a spec's argument and silently never see
it, so a hook that gains an argument or meaning bumps :data:`CONTRACT_VERSION`. An adapter
declares the version it implements and the features it supports (``AdapterInfo.contract``,
``AdapterInfo.features``); the core refuses a feature an adapter does not declare rather than
let it be ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

if TYPE_CHECKING:
    import pyarrow as pa

    from .models import (
        AdapterInfo,
        CheckResult,
        DataResult,
        DataSnapshot,
        Deployment,
        DeployResult,
        Resources,
        RunState,
        TaskSpec,
        TaskStatus,
    )

PROJECT = "lamina"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

CONTRACT_VERSION = 2
"""The version of the hook contracts this core implements. 1: the first release. 2: the
orchestration contract of deployed flows (``orchestration_trigger`` returns the run id;
``orchestration_status`` follows a deployed run; ``@project`` branches reach trigger and status;
``orchestration_deployments`` and ``orchestration_delete``; the built-in scheduler walks every
interactive run, so ``orchestration_run`` is gone)."""

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class HookContract:
    """What a hook promises (see :func:`contract`)."""

    hook: str
    layer: str
    required: bool
    idempotent: bool | str
    """``True``, ``False``, or the condition under which it is (``"when mode is 'replace'"``)."""
    retry: bool
    since: int = 1
    retry_when: Callable[[dict[str, Any]], bool] | None = field(default=None, compare=False, repr=False)

    def may_retry(self, kwargs: dict[str, Any]) -> bool:
        """Whether the facade may call the hook again with ``kwargs`` after a transient error."""
        return self.retry and (self.retry_when is None or self.retry_when(kwargs))


def contract(
    *,
    required: bool,
    idempotent: bool | str,
    retry: bool,
    retry_when: Callable[[dict[str, Any]], bool] | None = None,
    since: int = 1,
) -> Callable[[F], F]:
    """Declare a hook's contract beside its spec (collected into :data:`CONTRACTS`).

    :param required: every adapter of the layer must implement it (else a default applies).
    :param idempotent: the same arguments twice give the same outcome; a string names the
        condition under which that holds.
    :param retry: the facade may retry it on an error the adapter declares transient.
    :param retry_when: for a conditional ``idempotent``: given the call's arguments, may it retry?
    :param since: the :data:`CONTRACT_VERSION` that introduced the hook.
    """

    def mark(func: F) -> F:
        func._lamina_contract = {  # type: ignore[attr-defined]
            "required": required,
            "idempotent": idempotent,
            "retry": retry,
            "retry_when": retry_when,
            "since": since,
        }
        return func

    return mark


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
    @contract(required=False, idempotent=True, retry=False)
    def lamina_adapters(self) -> list[AdapterInfo]:
        """Return the adapters this plugin offers.

        :return: a list of :class:`lamina.models.AdapterInfo` (layer, name, settings model,
            factory, the extra that installs its dependencies). Results of all plugins are
            concatenated; two adapters with the same layer and name are a ``PluginError``.
        """

    @hookspec
    @contract(required=False, idempotent=True, retry=False)
    def lamina_stack_profiles(self) -> dict[str, Path]:
        """Return stack profiles this plugin ships, as ``{name: path to a TOML file}``.

        Project and user profiles of the same name take precedence.
        """

    @hookspec
    @contract(required=False, idempotent=True, retry=False, since=2)
    def lamina_cli_commands(self) -> list[CommandInfo]:
        """Return the ``lamina`` subcommands this plugin adds (tox's ``tox_add_option`` is the model).

        Answered cheaply, without importing the command's code: a :class:`CommandInfo` names the
        module and functions that build the command's parser and run it, imported only when the
        command runs, so ``lamina --help`` lists the command at no cost.
        """

    @hookspec
    @contract(required=False, idempotent=True, retry=False, since=2)
    def lamina_emulators(self) -> list[EmulatorInfo]:
        """Return the local stand-ins this plugin can start, one per emulated service.

        ``lamina emulate STACK`` starts those that the profile's adapters need (a mixed stack is
        emulated service by service). Answered without importing the emulator's code.
        """

    @hookspec
    @contract(required=False, idempotent=False, retry=False)
    def lamina_run_started(
        self, run_id: str, flow_name: str, stack_name: str, params: dict[str, Any]
    ) -> None:
        """Called by the scheduler once a run's metadata exists, before its first task.

        :param run_id: the new run's id.
        :param flow_name: the flow's class name.
        :param stack_name: the stack it runs on.
        :param params: the run's parameters, by name.
        """

    @hookspec
    @contract(required=False, idempotent=False, retry=False)
    def lamina_task_finished(self, run_id: str, step: str, task_id: str, ok: bool, duration: float) -> None:
        """Called by the scheduler after a task's completion record was stored.

        :param run_id: the run.
        :param step: the task's step.
        :param task_id: the task's id (its foreach indices joined by ``.``, ``0`` outside one).
        :param ok: whether the task succeeded.
        :param duration: seconds from submission to completion.
        """

    @hookspec
    @contract(required=False, idempotent=False, retry=False)
    def lamina_run_finished(self, run_id: str, flow_name: str, ok: bool) -> None:
        """Called by the scheduler when a run ends, successfully or not.

        :param run_id: the run.
        :param flow_name: the flow's class name.
        :param ok: whether the run succeeded.
        """


def _replace_mode(kwargs: dict[str, Any]) -> bool:
    return kwargs.get("mode") == "replace"


class DataSpec:
    """Where tables live; how a step queries, reads and writes them."""

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=True)
    def data_query(self, sql: str, parameters: list[Any] | None) -> DataResult:
        """Run a read-only SQL query in the adapter's dialect.

        :param sql: the query, with the dialect's own positional placeholders.
        :param parameters: values for the placeholders, or ``None``.
        :return: a :class:`DataResult` with an Arrow table (no row-by-row conversion) and the
            snapshot the query saw.
        :raises DataError: bad SQL or an unknown table (with the database's message).

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=True)
    def data_read(self, name: str) -> DataResult:
        """Read a whole table by name.

        :param name: the table's name.
        :return: the table and the snapshot (data version) it was read at.
        :raises DataError: the table does not exist (the message lists what does).

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent="when mode is 'replace'", retry=True, retry_when=_replace_mode)
    def data_write(self, name: str, table: pa.Table, mode: str) -> DataSnapshot:
        """Write an Arrow table, atomically for readers: they see the old table or the new one.

        :param name: the table's name.
        :param table: the rows, as an Arrow table.
        :param mode: ``replace`` (create or replace: idempotent) or ``append`` (not idempotent,
            so never retried).
        :return: the snapshot of the table after the write.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=True)
    def data_tables(self) -> list[str]:
        """Names of the tables the adapter can read, sorted.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=False)
    def data_check(self) -> CheckResult:
        """Probe credentials and reachability; never raises, reports a verdict and a fix.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=False, idempotent=True, retry=False)
    def data_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Exception types worth retrying with backoff (throttling, dropped connections, locks).

        Default: none. Stops at the first non-None result (firstresult).
        """

    @hookspec
    @contract(required=False, idempotent=True, retry=False)
    def data_close(self) -> None:
        """Release connections. Called once, when the stack is closed."""


class ComputeSpec:
    """Where one task runs, with what resources."""

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=True)
    def compute_validate(self, step: str, resources: Resources) -> str:
        """Check that ``resources`` can be met before anything is submitted.

        :param step: the step's name (for the message).
        :param resources: what the step's ``@resources`` asks for.
        :return: a short description of what the step will get (e.g. an instance type).
        :raises ResourceUnsatisfiable: naming the step, what was asked and the largest offer.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=False, idempotent=False, retry=False)
    def compute_start(self, run_id: str, flow_file: str, stack: dict[str, Any], max_workers: int) -> None:
        """Prepare for a run (start warm workers, connect to a cluster). Called once per run,
        before the first ``compute_submit``; ``compute_shutdown`` is called exactly once after.

        :param run_id: the run.
        :param flow_file: the flow file's absolute path on this machine.
        :param stack: the stack snapshot (``${VAR}`` unresolved: no secrets).
        :param max_workers: at most this many tasks run at once.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=False, retry=False)
    def compute_submit(self, task: TaskSpec) -> str:
        """Start one task. It must run Lamina's task entry point on ``task``
        (``lamina.adapter.task_command()`` with ``--spec-file``/``--spec-b64``, or
        ``lamina.adapter.serve_worker``), whose exit code is one of ``lamina.adapter.EXIT_*``.

        :param task: everything the task needs; ``task.stack`` must reach a remote task through
            ``lamina.adapter.remote_snapshot`` (non-secret ``${VAR}`` resolved).
        :return: a handle for :meth:`compute_wait` and :meth:`compute_cancel`.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=False, idempotent=True, retry=False)
    def compute_default_workers(self) -> int | None:
        """How many tasks to run at once when the user gives no ``--max-workers``.

        A local adapter answers the cores of this machine; a cluster or a cloud its own capacity
        (workers, a job quota from the profile). ``None`` leaves the scheduler's default, the
        number of cores of the machine that runs it.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=False, idempotent=True, retry=False)
    def compute_queue_depth(self) -> int:
        """How many tasks beyond ``max_workers`` the scheduler may hand over ahead of time.

        An adapter that queues tasks itself and never runs more than ``max_workers`` at once
        answers a positive number, so its workers start the next task without waiting for the
        scheduler. Adapters that start every submitted task at once answer 0 (the default).

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=False, retry=False)
    def compute_wait(self, handles: list[str], timeout: float) -> list[TaskStatus]:
        """Wait up to ``timeout`` seconds for any of ``handles`` to finish. Each finished task is
        reported once (so a call is not idempotent, and never retried).

        :param handles: tasks submitted and not yet reported finished.
        :param timeout: seconds to wait at most.
        :return: the statuses of the tasks that finished (possibly none).

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=True)
    def compute_cancel(self, handle: str) -> None:
        """Stop a task; a finished or already stopped task is left alone.

        :param handle: what :meth:`compute_submit` returned.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=False, idempotent=True, retry=True)
    def compute_logs(self, handle: str) -> str:
        """Platform logs of a task (beyond its own stored stdout/stderr), or ``""``.

        :param handle: what :meth:`compute_submit` returned.

        Stops at the first non-None result (firstresult).
        """

    @hookspec
    @contract(required=False, idempotent=False, retry=False)
    def compute_shutdown(self) -> None:
        """Stop workers and release the cluster: called exactly once per ``compute_start``,
        when the run ends (however it ends)."""

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=False)
    def compute_check(self) -> CheckResult:
        """Probe credentials and capacity; never raises, reports a verdict and a fix.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=False, idempotent=True, retry=False)
    def compute_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Exception types worth retrying with backoff. Default: none.

        Stops at the first non-None result (firstresult).
        """


class OrchestrationSpec:
    """How a flow is deployed, scheduled and started with no user machine involved.

    Interactive runs (``python flow.py run``) are always walked by the built-in scheduler, which
    sends each task to the stack's compute; an orchestrator serves deployed flows. Its contract:
    ``deploy`` stores a definition (and any schedule) and starts no run; ``trigger`` starts one
    and returns its run id; ``status`` follows a deployed run to its end.
    """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=True)
    def orchestration_deploy(self, flow: dict[str, Any], schedule: str | None, dry_run: bool) -> DeployResult:
        """Create or update the flow's deployment (deploying twice updates); start no run.

        :param flow: the flow descriptor: ``FlowGraph.describe()`` (steps, each with its input
            rule) plus ``code_key``, ``flow_file``, ``stack``, ``parameters``, ``user``,
            ``template_key``/``task_boot`` (the stored deploy template; build each task's command
            with ``lamina.adapter.task_arguments(flow, step)``), ``project``/``branch`` for a
            ``@project`` flow (feature ``branches``), and ``triggers``: ``{"events": [...],
            "flows": [...]}`` from ``@trigger``/``@trigger_on_finish`` (feature ``triggers``;
            an upstream flow's run triggers only on the same branch).
        :param schedule: a cron expression (five fields) to run on, or ``None`` (no schedule:
            an existing one is removed).
        :param dry_run: compile only: create, store and start nothing.
        :return: what was (or would be) created, with the compiled definition.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=False, retry=False)
    def orchestration_trigger(self, flow_name: str, parameters: dict[str, Any], branch: str | None) -> str:
        """Start a run of a deployed flow.

        :param flow_name: the flow's class name.
        :param parameters: values by name (strings from the command line, or values): check
            them with ``lamina.adapter.check_trigger_parameters``.
        :param branch: the ``@project`` branch whose deployment to start (``None``: the flow has no
            project); only passed to orchestrators that declare the ``branches`` feature. The run
            belongs to the user who triggers it (``lamina.adapter.current_user()``).
        :return: the new run's id (``lamina.adapter.new_run_id()``), under which its tasks store
            their records.
        :raises LaminaError: the flow is not deployed, or a parameter is unknown or invalid.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=False, idempotent=True, retry=True, since=2)
    def orchestration_status(self, flow_name: str, run_id: str, branch: str | None) -> RunState:
        """The state of a deployed run, as the orchestrator sees it.

        :param flow_name: the flow's class name.
        :param run_id: what :meth:`orchestration_trigger` returned.
        :param branch: the ``@project`` branch it was started on, or ``None``.
        :return: a :class:`lamina.models.RunState` (running, succeeded, failed, interrupted).
        :raises NotFound: the orchestrator knows no such run.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=False, idempotent=False, retry=False, since=2)
    def orchestration_publish(self, name: str, payload: dict[str, Any]) -> str:
        """Publish a business event on the orchestrator's event bus (feature ``triggers``):
        deployments whose flow has ``@trigger(event=name)`` start, and see it as ``current.trigger``.

        :param name: the event's name.
        :param payload: a JSON object the triggered runs receive.
        :return: the event's id.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=False, idempotent=True, retry=True, since=2)
    def orchestration_deployments(self) -> list[Deployment]:
        """What this orchestrator has deployed, per flow and branch (feature ``list``).

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=False, idempotent=True, retry=True, since=2)
    def orchestration_delete(self, flow_name: str, branch: str | None) -> str:
        """Remove a flow's deployment (of one branch) and its schedule (feature ``delete``);
        deleting what is not deployed is an error naming what is.

        :param flow_name: the flow's class name.
        :param branch: the ``@project`` branch, or ``None``.
        :return: what was removed, for the user.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=False)
    def orchestration_check(self) -> CheckResult:
        """Probe credentials and permissions; never raises, reports a verdict and a fix.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=False, idempotent=True, retry=False)
    def orchestration_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Exception types worth retrying with backoff. Default: none.

        Stops at the first non-None result (firstresult).
        """


class VersioningSpec:
    """Where runs' bytes and metadata are kept.

    Backends implement a few byte primitives over keys (``/``-separated, relative); the core's
    content-addressed store and run store own hashing, dedup, serialisation and the key layout
    for every backend.
    """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=True)
    def versioning_put(
        self, key: str, data: bytes | memoryview | None, path: str | None, overwrite: bool
    ) -> bool:
        """Store bytes (``data``) or a local file (``path``) under ``key``, atomically: readers
        never see a partial object.

        :param key: where.
        :param data: the bytes, or ``None`` when ``path`` is given.
        :param path: a local file to store instead (``lamina.adapter.OWNED_TEMP_SUFFIX``: the
            caller abandons it, a backend may move it into place).
        :param overwrite: replace an existing object; with ``False`` an existing key is kept
            (create-only; promised for small objects at least).
        :return: whether anything was written.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=True)
    def versioning_get(self, key: str) -> bytes:
        """The bytes stored under a key.

        :param key: where.
        :raises KeyError: no such key.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=False, idempotent=True, retry=True)
    def versioning_local_path(self, key: str) -> str | None:
        """A local filesystem path holding the bytes of a key (to memory-map), or ``None``.

        :param key: where. Default: ``None`` (the core fetches into its cache instead).

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=True)
    def versioning_fetch(self, key: str, path: str) -> None:
        """Download a key to a local file.

        :param key: where.
        :param path: the local file to write (replaced).
        :raises KeyError: no such key.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=True)
    def versioning_exists(self, keys: list[str]) -> list[bool]:
        """Whether each key exists.

        :param keys: the keys to look up.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=True)
    def versioning_list(self, prefix: str) -> list[str]:
        """Keys that start with ``prefix`` (a string prefix, not only a folder), sorted.

        :param prefix: the prefix.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=True)
    def versioning_delete(self, keys: list[str]) -> None:
        """Remove keys; missing ones are ignored, so deleting twice is the same as once.

        :param keys: the keys to remove.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=True)
    def versioning_metadata_url(self) -> str:
        """The SQLAlchemy URL of the metadata database (never with a password in it).

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=True, idempotent=True, retry=False)
    def versioning_check(self) -> CheckResult:
        """Probe the bucket and the database; never raises, reports a verdict and a fix.

        Stops at the first non-None result (firstresult).
        """

    @hookspec(firstresult=True)
    @contract(required=False, idempotent=True, retry=False)
    def versioning_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Exception types worth retrying with backoff. Default: none.

        Stops at the first non-None result (firstresult).
        """


LAYER_SPECS: dict[str, type] = {
    "data": DataSpec,
    "compute": ComputeSpec,
    "orchestration": OrchestrationSpec,
    "versioning": VersioningSpec,
}


def _collect() -> dict[str, HookContract]:
    found: dict[str, HookContract] = {}
    for layer, spec in {"plugin": PluginSpec, **LAYER_SPECS}.items():
        for name, func in vars(spec).items():
            declared = getattr(func, "_lamina_contract", None)
            if callable(func) and not name.startswith("_") and declared is not None:
                found[name] = HookContract(hook=name, layer=layer, **declared)
    return found


CONTRACTS: dict[str, HookContract] = _collect()
"""Every hook's contract by name: the one table the facades, the load-time checks, the docs and
the conformance suites read."""


def contracts_markdown() -> str:
    """The contract table of the layer hooks as Markdown (``docs/writing-an-adapter.md`` holds
    it; a test keeps the two equal: ``python -c 'from lamina.hookspecs import contracts_markdown
    as m; print(m())'`` prints it)."""
    rows = ["| hook | layer | required | idempotent | the facade retries it | since |", "|---|---|---|---|---|---|"]
    for name, c in CONTRACTS.items():
        if c.layer == "plugin":
            continue
        idem = c.idempotent if isinstance(c.idempotent, str) else ("yes" if c.idempotent else "no")
        retry = ("only " + c.idempotent if isinstance(c.idempotent, str) else "yes") if c.retry else "no"
        rows.append(
            f"| `{name}` | {c.layer} | {'yes' if c.required else 'no'} | {idem} | {retry} | {c.since} |"
        )
    return "\n".join(rows)


@dataclass(frozen=True)
class CommandInfo:
    """A ``lamina`` subcommand a plugin adds (the ``lamina_cli_commands`` hook).

    ``module`` is imported only when the command runs (or its own ``--help`` is asked for), so
    listing commands never imports a plugin's heavy code.
    """

    name: str
    help: str
    module: str
    """Defines ``configure(parser: argparse.ArgumentParser) -> None`` and ``run(args) -> int``."""
    plugin: str = ""


@dataclass(frozen=True)
class EmulatorInfo:
    """A local stand-in of one cloud service (the ``lamina_emulators`` hook).

    ``lamina emulate STACK`` starts, for each adapter the profile names, the emulator whose
    ``serves`` lists it (``(layer, adapter)`` pairs), each once.
    """

    name: str
    """e.g. ``s3``, ``sagemaker``, ``snowflake``."""
    serves: tuple[tuple[str, str], ...]
    factory: str
    """``module:callable``; the callable returns an object with ``start() -> dict[str, str]``
    (the environment that points clients at it) and ``stop()``."""
    extra: str | None = None
    """The pip extra that installs what it needs (``aws-emulator``)."""
    requires: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    """Emulators this one needs started first (the SageMaker job runner needs moto's S3)."""
    description: str = ""
