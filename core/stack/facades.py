"""The thin facades the core calls: ``stack.data.query(sql)``, never pluggy directly.

A facade calls its layer's hooks and retries, with exponential backoff and jitter, the calls
that fail with an exception the adapter declares transient (its ``*_transient_errors`` hook) or
with :class:`lamina.errors.TransientError`, for exactly the hooks whose contract says they may be
retried (:data:`lamina.hookspecs.CONTRACTS`; ``data_write`` only in ``replace`` mode).
"""

from __future__ import annotations

import builtins
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

from ..errors import DataError, LaminaError, TransientError
from ..hookspecs import CONTRACTS

if TYPE_CHECKING:
    import pyarrow as pa

    from ..models import (
        AdapterInfo,
        CheckResult,
        DataSnapshot,
        Deployment,
        DeployResult,
        Resources,
        RunState,
        TaskSpec,
        TaskStatus,
    )


class LayerFacade:
    layer = ""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        adapter: object,
        info: AdapterInfo,
        *,
        retry_attempts: int = 5,
        retry_backoff: float = 0.05,
    ) -> None:
        self.pm = pm
        self.adapter = adapter
        self.info = info
        self.retry_attempts = retry_attempts
        self.retry_backoff = retry_backoff
        self.retries = 0
        self._transient: tuple[type[BaseException], ...] | None = None

    @property
    def name(self) -> str:
        return self.info.name

    def transient_errors(self) -> tuple[type[BaseException], ...]:
        if self._transient is None:
            declared = getattr(self.pm.hook, f"{self.layer}_transient_errors")() or ()
            self._transient = (TransientError, *tuple(declared))
        return self._transient

    def _call(self, hook: str, **kwargs: Any) -> Any:
        caller: Callable[..., Any] = getattr(self.pm.hook, hook)
        attempts = self.retry_attempts if CONTRACTS[hook].may_retry(kwargs) else 1
        for attempt in range(1, attempts + 1):
            try:
                return caller(**kwargs)
            except self.transient_errors():
                if attempt >= attempts:
                    raise
                self.retries += 1
                delay = self.retry_backoff * (2 ** (attempt - 1))
                time.sleep(delay * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Release what the adapter holds; layers override."""


def to_arrow(data: Any) -> pa.Table:
    """Accept an Arrow table, a pandas or polars DataFrame, a dict of columns or a list of rows."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars":
        return data.to_arrow()
    if isinstance(data, dict):
        return pa.table(data)
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return pa.Table.from_pylist(data)
    raise DataError(
        f"cannot write a {type(data).__name__}: pass a pyarrow Table, a pandas or polars DataFrame, "
        "a dict of columns or a list of row dicts."
    )


class DataLayer(LayerFacade):
    layer = "data"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads: list[DataSnapshot] = []
        self.on_read: Callable[[DataSnapshot], None] | None = None

    def _record(self, snapshot: DataSnapshot) -> None:
        self.reads.append(snapshot)
        if self.on_read is not None:
            self.on_read(snapshot)

    def query(self, sql: str, parameters: list[Any] | None = None) -> pa.Table:
        """Run a read-only query; the snapshot it saw is recorded with the run."""
        result = self._call("data_query", sql=sql, parameters=parameters)
        self._record(result.snapshot)
        return result.table

    def read(self, name: str) -> pa.Table:
        """Read a whole table; the snapshot it saw is recorded with the run."""
        result = self._call("data_read", name=name)
        self._record(result.snapshot)
        return result.table

    def write(self, name: str, data: Any, mode: str = "replace") -> DataSnapshot:
        """Write a table (``mode`` ``replace`` or ``append``) from Arrow, pandas, polars or dicts."""
        if mode not in ("replace", "append"):
            raise DataError(f"write({name!r}): mode must be 'replace' or 'append', got {mode!r}.")
        snapshot = self._call("data_write", name=name, table=to_arrow(data), mode=mode)
        self._record(snapshot)
        return snapshot

    def tables(self) -> list[str]:
        return self._call("data_tables")

    def check(self) -> CheckResult:
        return self.pm.hook.data_check()

    def close(self) -> None:
        self.pm.hook.data_close()


class ComputeLayer(LayerFacade):
    layer = "compute"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._running = False

    def validate(self, step: str, resources: Resources) -> str:
        return self._call("compute_validate", step=step, resources=resources) or ""

    def start(self, run_id: str, flow_file: str, stack: dict[str, Any], max_workers: int) -> None:
        self._running = True
        self._call(
            "compute_start",
            run_id=run_id,
            flow_file=flow_file,
            stack=stack,
            max_workers=max_workers,
        )

    def submit(self, task: TaskSpec) -> str:
        return self._call("compute_submit", task=task)

    def default_workers(self) -> int | None:
        value = self.pm.hook.compute_default_workers()
        return int(value) if value else None

    def queue_depth(self) -> int:
        return int(self.pm.hook.compute_queue_depth() or 0)

    def wait(self, handles: list[str], timeout: float) -> list[TaskStatus]:
        return self._call("compute_wait", handles=handles, timeout=timeout) or []

    def cancel(self, handle: str) -> None:
        self._call("compute_cancel", handle=handle)

    def logs(self, handle: str) -> str:
        return self._call("compute_logs", handle=handle) or ""

    def shutdown(self) -> None:
        """End the run's use of the compute: ``compute_shutdown``, once per ``start``."""
        if self._running:
            self._running = False
            self.pm.hook.compute_shutdown()

    def check(self) -> CheckResult:
        return self.pm.hook.compute_check()

    def close(self) -> None:
        self.shutdown()


class OrchestrationLayer(LayerFacade):
    layer = "orchestration"

    def deploy(self, flow: dict[str, Any], schedule: str | None, dry_run: bool) -> DeployResult:
        if schedule:
            self.require("schedule", f"deploy {flow.get('name', '')} --schedule")
        if any((flow.get("triggers") or {}).values()):
            self.require("triggers", f"deploy {flow.get('name', '')} with @trigger/@trigger_on_finish")
        return self._call("orchestration_deploy", flow=flow, schedule=schedule, dry_run=dry_run)

    def trigger(self, flow_name: str, parameters: dict[str, Any], branch: str | None = None) -> str:
        if branch:
            self.require("branches", f"trigger {flow_name} --branch {branch}")
        return self._call("orchestration_trigger", flow_name=flow_name, parameters=parameters, branch=branch)

    def status(self, flow_name: str, run_id: str, branch: str | None = None) -> RunState:
        """A deployed run's state. :raises LaminaError: the orchestrator cannot report one."""
        self.require("status", f"following the run {flow_name}/{run_id}")
        state = self._call("orchestration_status", flow_name=flow_name, run_id=run_id, branch=branch)
        if state is None:
            raise LaminaError(f"the {self.name} orchestrator gave no status for {flow_name}/{run_id}")
        return state

    def publish(self, name: str, payload: dict[str, Any]) -> str:
        self.require("triggers", f"lamina event publish {name}")
        return str(self._call("orchestration_publish", name=name, payload=payload))

    def deployments(self) -> list[Deployment]:
        self.require("list", "listing deployments")
        return list(self._call("orchestration_deployments") or [])

    def delete(self, flow_name: str, branch: str | None = None) -> str:
        self.require("delete", f"deleting the deployment of {flow_name}")
        return str(self._call("orchestration_delete", flow_name=flow_name, branch=branch))

    def require(self, feature: str, what: str) -> None:
        """Refuse ``what`` unless the adapter declares ``feature`` (``AdapterInfo.features``):
        an old adapter would otherwise ignore the request without a word."""
        if not self.info.supports(feature):
            raise LaminaError(
                f"{what}: the {self.name} orchestrator does not declare the {feature!r} feature "
                f"(it implements hook contract {self.info.contract}; it declares "
                f"{', '.join(sorted(self.info.features)) or 'no optional features'}). Upgrade its "
                "plugin, or use a stack whose orchestrator supports it."
            )

    def check(self) -> CheckResult:
        return self.pm.hook.orchestration_check()


class VersioningLayer(LayerFacade):
    """Blob primitives and the metadata URL; ``lamina.versioning`` builds the stores on top."""

    layer = "versioning"

    def put(
        self,
        key: str,
        data: bytes | memoryview | None = None,
        path: str | None = None,
        overwrite: bool = False,
    ) -> bool:
        return bool(self._call("versioning_put", key=key, data=data, path=path, overwrite=overwrite))

    def get(self, key: str) -> bytes:
        return self._call("versioning_get", key=key)

    def local_path(self, key: str) -> str | None:
        return self._call("versioning_local_path", key=key)

    def fetch(self, key: str, path: str) -> None:
        self._call("versioning_fetch", key=key, path=path)

    def exists(self, keys: builtins.list[str]) -> builtins.list[bool]:
        return self._call("versioning_exists", keys=keys)

    def list(self, prefix: str) -> list[str]:
        return self._call("versioning_list", prefix=prefix)

    def delete(self, keys: builtins.list[str]) -> None:
        self._call("versioning_delete", keys=keys)

    def metadata_url(self) -> str:
        return self._call("versioning_metadata_url")

    def check(self) -> CheckResult:
        return self.pm.hook.versioning_check()


FACADES: dict[str, type[LayerFacade]] = {
    "data": DataLayer,
    "compute": ComputeLayer,
    "orchestration": OrchestrationLayer,
    "versioning": VersioningLayer,
}
