"""The run store: every record of a run, above the content-addressed artifact store.

A run leaves more in the blob store than artifacts: each task attempt's completion record and
its stdout and stderr, the run's parameters and manifest, and a pointer to each user's latest
run of a flow. :class:`RunStore` is the only way these reach storage and come back (Metaflow's
task datastore is the model): the scheduler, the task runtime, ``lamina sync``, the client and
every deployer go through it, and only it (with :mod:`.layout`, private to the versioning core)
knows the key layout. A deployer that must name a key inside a definition it compiles (a Step
Functions state reading a record, say) asks :meth:`RunStore.key_template` for it.

Everything here needs only the blob primitives (the versioning layer facade), so a task on any
compute, with no database in reach, records itself completely.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from ..errors import NotFound, StoreError
from ..models import TaskRecord
from . import layout
from .integrity import DamagedBlob
from .layout import new_run_id

if TYPE_CHECKING:
    from .artifacts import BlobStore

__all__ = ["RunStore", "new_run_id", "run_key_template"]

Stream = Literal["stdout", "stderr"]
TemplateKind = Literal["record", "params", "manifest", "log"]


class RunStore:
    """A run's records in the blob store ``blobs`` (the versioning layer facade).

    Names used as key segments (flow, run id, step, task id) may not contain ``/`` nor start with
    ``.``; a bad one is a ``ValueError`` naming it.
    """

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    # -- task records ---------------------------------------------------------------------

    def save_record(self, record: TaskRecord) -> str:
        """Store a task attempt's completion record (a task's last act) and return its key.

        Replaces an earlier record of the same attempt, so a re-delivered attempt is idempotent.
        """
        key = layout.task_record_key(
            record.flow_name, record.run_id, record.step, record.task_id, record.attempt
        )
        self.blobs.put(key, data=record.model_dump_json().encode(), overwrite=True)
        return key

    def record(self, flow: str, run_id: str, step: str, task_id: str, attempt: int) -> TaskRecord | None:
        """The completion record of one attempt, or ``None`` if it wrote none (yet)."""
        return self.record_at(layout.task_record_key(flow, run_id, step, task_id, attempt))

    def record_key(self, flow: str, run_id: str, step: str, task_id: str, attempt: int) -> str:
        """Where the record of one attempt is (or will be) kept; metadata stores index it."""
        return layout.task_record_key(flow, run_id, step, task_id, attempt)

    def record_at(self, key: str) -> TaskRecord | None:
        """The record stored under ``key`` (as :meth:`save_record` returned it), or ``None``.

        :raises DamagedBlob: the bytes there are not a task record (a damaged store).
        """
        try:
            raw = self.blobs.get(key)
        except KeyError:
            return None
        return parse_record(raw, key)

    def step_succeeded(self, flow: str, run_id: str, step: str) -> bool:
        """Whether a task of ``step`` recorded success (for ``end``: whether the run succeeded)."""
        for key in self.blobs.list(
            layout.run_prefix(flow, run_id) + f"{layout.check_segment(step, 'step name')}/"
        ):
            try:
                layout.parse_task_record_key(key)
                record = self.record_at(key)
            except (ValueError, StoreError):
                continue  # a log, or a damaged record: not a success
            if record is not None and record.ok:
                return True
        return False

    def attempts(self, flow: str, run_id: str, step: str, task_id: str) -> list[int]:
        """The attempts of a task that stored a completion record, ascending."""
        found = []
        for key in self.blobs.list(layout.task_prefix(flow, run_id, step, task_id)):
            try:
                found.append(layout.parse_task_record_key(key)[4])
            except ValueError:
                continue  # a log, not a record
        return sorted(found)

    def latest_record(self, flow: str, run_id: str, step: str, task_id: str) -> TaskRecord | None:
        """The record of the task's highest attempt that wrote one, or ``None``."""
        attempts = self.attempts(flow, run_id, step, task_id)
        return self.record(flow, run_id, step, task_id, attempts[-1]) if attempts else None

    def input_record(self, flow: str, run_id: str, path: str) -> TaskRecord:
        """The record of a task's input, named by its path ``step/task_id[/attempt]``.

        Without an attempt the latest one that stored a record is taken (a deployed task knows
        its parents' steps and task ids, not how often they were retried).

        :raises StoreError: the input stored no record.
        """
        step, task_id, *rest = path.split("/")
        if rest:
            record = self.record(flow, run_id, step, task_id, int(rest[0]))
        else:
            record = self.latest_record(flow, run_id, step, task_id)
        if record is None:
            raise StoreError(
                f"run {flow}/{run_id}: the input task {path} stored no completion record "
                f"({layout.task_prefix(flow, run_id, step, task_id)}); it may not have finished."
            )
        return record

    def records(self, flow: str, run_id: str, *, all_attempts: bool = False) -> list[tuple[str, TaskRecord]]:
        """A run's task records as ``(key, record)``: the latest attempt of each task, or every
        attempt with ``all_attempts``, in key order. This is what ``lamina sync`` indexes and what
        ``resume`` reuses."""
        keys: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for key in self.blobs.list(layout.run_prefix(flow, run_id)):
            try:
                _, _, step, task_id, attempt = layout.parse_task_record_key(key)
            except ValueError:
                continue
            keys.setdefault((step, task_id), []).append((attempt, key))
        chosen = [
            key for found in keys.values() for _, key in (sorted(found) if all_attempts else [max(found)])
        ]
        out = []
        for key in sorted(chosen):
            record = self.record_at(key)
            if record is not None:
                out.append((key, record))
        return out

    # -- logs -----------------------------------------------------------------------------

    def save_log(
        self,
        flow: str,
        run_id: str,
        step: str,
        task_id: str,
        attempt: int,
        stream: Stream,
        data: bytes | str | None = None,
        path: str | None = None,
    ) -> str:
        """Store (or replace, for progressive uploads) an attempt's stdout or stderr; return the key."""
        key = layout.log_key(flow, run_id, step, task_id, attempt, stream)
        payload = data.encode() if isinstance(data, str) else data
        self.blobs.put(key, data=payload if path is None else None, path=path, overwrite=True)
        return key

    def log_key(self, flow: str, run_id: str, step: str, task_id: str, attempt: int, stream: Stream) -> str:
        """Where an attempt's stdout or stderr is (or will be) kept."""
        return layout.log_key(flow, run_id, step, task_id, attempt, stream)

    def log(self, flow: str, run_id: str, step: str, task_id: str, attempt: int, stream: Stream) -> str:
        """An attempt's stored stdout or stderr, or ``""`` when it printed nothing."""
        try:
            return self.text(layout.log_key(flow, run_id, step, task_id, attempt, stream))
        except NotFound:
            return ""

    def text(self, key: str) -> str:
        """The UTF-8 text stored under ``key`` (undecodable bytes replaced).

        :raises NotFound: no such key.
        """
        try:
            return self.blobs.get(key).decode("utf-8", errors="replace")
        except KeyError:
            raise NotFound(f"nothing is stored under {key!r}") from None

    def save_card(self, flow: str, run_id: str, step: str, task_id: str, attempt: int, html: str) -> str:
        """Store (or replace) an attempt's ``@card`` HTML document; return its key."""
        key = layout.card_key(flow, run_id, step, task_id, attempt)
        self.blobs.put(key, data=html.encode(), overwrite=True)
        return key

    # -- run-level records ----------------------------------------------------------------

    def save_params(self, flow: str, run_id: str, params: dict[str, Any]) -> str:
        """Store a run's parameters as JSON (tasks that start without a database read them)."""
        key = layout.run_params_key(flow, run_id)
        self.blobs.put(key, data=json.dumps(params, sort_keys=True, default=str).encode(), overwrite=True)
        return key

    def load_params(self, flow: str, run_id: str) -> dict[str, Any] | None:
        """A run's parameters, or ``None`` when they were never stored."""
        return self._json(layout.run_params_key(flow, run_id))

    def save_manifest(self, flow: str, run_id: str, manifest: dict[str, Any]) -> str:
        """Store a run's manifest (parameters, stack, code, user, tags, versions, graph), from
        which any metadata store can index the run (``lamina sync``)."""
        key = layout.run_manifest_key(flow, run_id)
        self.blobs.put(key, data=json.dumps(manifest, sort_keys=True, default=str).encode(), overwrite=True)
        return key

    def load_manifest(self, flow: str, run_id: str) -> dict[str, Any] | None:
        """A run's manifest, or ``None`` for a run that stored none."""
        return self._json(layout.run_manifest_key(flow, run_id))

    def set_latest_run(self, flow: str, user: str, run_id: str) -> None:
        """Point ``resume`` at ``run_id`` as ``user``'s latest run of ``flow``."""
        self.blobs.put(
            layout.latest_run_key(flow, user), data=json.dumps({"run_id": run_id}).encode(), overwrite=True
        )

    def latest_run(self, flow: str, user: str) -> str | None:
        """``user``'s latest run of ``flow`` as :meth:`set_latest_run` left it, or ``None``."""
        pointer = self._json(layout.latest_run_key(flow, user))
        return str(pointer["run_id"]) if pointer and pointer.get("run_id") else None

    def flows(self) -> list[str]:
        """Names of the flows that stored a run, sorted (from the latest-run pointers when there
        are any, a cheap listing; else from the runs themselves)."""
        names = {key.split("/")[1] for key in self.blobs.list("pointers/") if key.count("/") >= 2}
        if not names:
            names = {key.split("/")[1] for key in self.blobs.list(layout.RUNS_PREFIX) if key.count("/") >= 3}
        return sorted(names)

    def run_ids(self, flow: str) -> list[str]:
        """Ids of every run of ``flow`` that stored anything, sorted (oldest first)."""
        prefix = layout.flow_prefix(flow)
        return sorted({key[len(prefix) :].split("/", 1)[0] for key in self.blobs.list(prefix)})

    def run_exists(self, flow: str, run_id: str) -> bool:
        """Whether run ``flow/run_id`` stored anything at all."""
        return bool(self.blobs.list(layout.run_prefix(flow, run_id)))

    # -- for deployers --------------------------------------------------------------------

    def deploy_template_key(self, flow: str, template: dict[str, Any]) -> str:
        """Where :meth:`save_deploy_template` keeps ``template`` (nothing is stored)."""
        import hashlib

        return layout.deploy_template_key(flow, hashlib.sha256(_canonical(template)).hexdigest())

    def save_deploy_template(self, flow: str, template: dict[str, Any]) -> str:
        """Store a deployed flow's template (see :mod:`lamina.runtime.deployed`); return its key."""
        key = self.deploy_template_key(flow, template)
        self.blobs.put(key, data=_canonical(template), overwrite=False)
        return key

    def load_deploy_template(self, key: str) -> dict[str, Any]:
        """The deploy template stored under ``key``. :raises StoreError: none is stored there."""
        template = self._json(key)
        if template is None:
            raise StoreError(
                f"no deploy template is stored under {key!r}: the flow's deployment refers to a template "
                "that is gone (another bucket?). Deploy the flow again."
            )
        return template

    def key_template(self, kind: TemplateKind, flow: str, step: str | None = None) -> str:
        """See :func:`run_key_template`."""
        return run_key_template(kind, flow, step)

    # -- helpers --------------------------------------------------------------------------

    def _json(self, key: str) -> dict[str, Any] | None:
        try:
            raw = self.blobs.get(key)
        except KeyError:
            return None
        try:
            value = json.loads(raw)
        except ValueError as e:
            raise StoreError(f"{key!r} in the blob store is damaged (not JSON: {e}).") from e
        if not isinstance(value, dict):
            raise StoreError(f"{key!r} in the blob store is damaged (not a JSON object).")
        return value


def parse_record(raw: bytes, key: str) -> TaskRecord:
    """A task record from its stored JSON.

    :raises DamagedBlob: the bytes are not a valid record (a damaged or truncated blob).
    """
    try:
        return TaskRecord.model_validate_json(raw)
    except ValueError as e:
        first = str(e).splitlines()[1:2] or [str(e)[:200]]
        raise DamagedBlob(
            f"the blob store is damaged: the task record {key!r} is not a valid task record "
            f"({first[0].strip()}). The task's results cannot be trusted: re-run it with "
            "`python flow.py resume --origin-run-id RUN STEP`, or restore the file from a backup; "
            "`lamina verify` lists every damaged blob",
            key=key,
        ) from None


def _canonical(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, default=str).encode()


def run_key_template(kind: TemplateKind, flow: str, step: str | None = None) -> str:
    """A key with ``{run_id}``, ``{task_id}`` and ``{attempt}`` placeholders (``{stream}`` for
    ``log``), for a deployer that must name a record's key in a definition it compiles (the
    run id and task ids are only known when the deployed run executes).

    :param kind: ``record`` (a task attempt's completion record; needs ``step``), ``log``
        (needs ``step``) or ``params`` (the run's parameters).
    """
    marker = "x-run"
    if kind == "params":
        return layout.run_params_key(flow, marker).replace(marker, "{run_id}")
    if kind == "manifest":
        return layout.run_manifest_key(flow, marker).replace(marker, "{run_id}")
    if step is None:
        raise ValueError(f"key_template({kind!r}) needs the step")
    if kind == "record":
        key = layout.task_record_key(flow, marker, step, "x-task", 7)
        return key.replace(marker, "{run_id}").replace("/x-task/7/", "/{task_id}/{attempt}/")
    if kind == "log":
        key = layout.log_key(flow, marker, step, "x-task", 7, "stdout")
        return (
            key.replace(marker, "{run_id}")
            .replace("/x-task/7/", "/{task_id}/{attempt}/")
            .replace("stdout.log", "{stream}.log")
        )
    raise ValueError(f"unknown key template {kind!r}: record, log or params")
