"""``lamina sync``: index runs in the metadata store from what their tasks left in the blob store.

A task needs nothing but the blob store; whoever scheduled it records the result. For a run the
local scheduler walked, that already happened. For a deployed flow (Step Functions, Vertex AI
Pipelines, Azure ML) the tasks ran with no scheduler of ours watching: ``lamina sync`` reads each
run's manifest and task records and records them, idempotently.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import LaminaError, StoreError
from ..models import TaskRecord

if TYPE_CHECKING:
    from ..stack import Stack


@dataclass
class SyncResult:
    run_id: str
    flow: str
    tasks: int
    status: str
    created: bool


def list_runs(stack: Stack, flow: str) -> list[str]:
    from ..versioning.runstore import RunStore

    return RunStore(stack.versioning).run_ids(flow)


def sync_run(stack: Stack, flow: str, run_id: str, *, user: str | None = None) -> SyncResult:
    """Record run ``flow/run_id`` and all its task attempts found in the blob store.

    :param user: whose run it is when its manifest does not say (a deployed run started by
        ``lamina trigger`` belongs to the user who triggered it)."""
    from ..versioning.metadata import MetadataStore
    from ..versioning.runstore import RunStore

    blobs = stack.versioning
    runs = RunStore(blobs)
    found = runs.records(flow, run_id, all_attempts=True)
    manifest = runs.load_manifest(flow, run_id)
    if manifest is None:
        params = runs.load_params(flow, run_id)
        manifest = {"params": params} if params is not None else None
    if manifest is None and not found:
        raise LaminaError(
            f"nothing is stored for run {flow}/{run_id} on stack {stack.name}: check the flow name and run id."
        )
    store = MetadataStore(blobs.metadata_url())
    records = [(record, key) for key, record in found]
    records.sort(key=lambda rk: (rk[0].started_at, rk[0].attempt))
    created = False
    try:
        store.create_run(
            flow_name=flow,
            run_id=run_id,
            params=(manifest or {}).get("params", {}),
            stack=(manifest or {}).get("stack", {}),
            code_key=(manifest or {}).get("code_key"),
            user=(manifest or {}).get("user") or user or "",
            tags=(manifest or {}).get("tags", []),
            python_version=(manifest or {}).get("python_version", ""),
            packages=(manifest or {}).get("packages", {}),
            origin_run_id=(manifest or {}).get("origin_run_id"),
            started_at=_started_at(manifest, records),
        )
        created = True
    except StoreError:
        pass  # already indexed: records below are replaced idempotently
    store.record_batch([("finished", (record, key)) for record, key in records])
    status = _status(records)
    existing = store.get_run(run_id)
    if status != "running" and (created or existing.status in ("running", "killed")):
        # the run's end is its latest task's, never the time of this sync; a run already
        # recorded as ended (succeeded, failed, interrupted) keeps what its driver recorded
        ended = max(r.finished_at for r, _ in records)
        store.finish_run(run_id, ok=status == "succeeded", finished_at=ended)
    return SyncResult(run_id=run_id, flow=flow, tasks=len(records), status=status, created=created)


def _started_at(manifest: dict[str, Any] | None, records: list[tuple[TaskRecord, str]]) -> dt.datetime | None:
    """When the run really started: its manifest says (runs since the heartbeat schema), else
    its earliest task record."""
    stamp = (manifest or {}).get("started_at")
    if stamp:
        try:
            return dt.datetime.fromisoformat(stamp)
        except (TypeError, ValueError):
            pass
    return min((r.started_at for r, _ in records), default=None)


def _status(records: list[tuple[TaskRecord, str]]) -> str:
    latest: dict[tuple[str, str], TaskRecord] = {}
    for record, _ in records:
        prev = latest.get((record.step, record.task_id))
        if prev is None or prev.attempt <= record.attempt:
            latest[(record.step, record.task_id)] = record
    if any(r.step == "end" and r.ok for r in latest.values()):
        return "succeeded"
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(hours=24)
    if any(not r.ok for r in latest.values()) and all(
        r.finished_at < stale or not r.ok for r in latest.values()
    ):
        return "failed"
    return "running"


def sync_cmd(args: Any) -> int:
    from ..stack import resolve_stack

    flow, _, run_id = args.target.partition("/")
    with resolve_stack(args.stack) as stack:
        run_ids = [run_id] if run_id else list_runs(stack, flow)
        if not run_ids:
            raise LaminaError(f"no runs of {flow} are stored on stack {stack.name}.")
        for rid in run_ids:
            result = sync_run(stack, flow, rid)
            print(
                f"{flow}/{rid}: {result.tasks} task record(s), {result.status}"
                + (" (new)" if result.created else "")
            )
    return 0
