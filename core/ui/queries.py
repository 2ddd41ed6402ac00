"""What the UI shows, as JSON-ready dicts, read from a stack's metadata and blob stores.

Every value here comes from metadata rows, run manifests, logs, code packages (read as tar
members, never extracted) and the previews recorded when artifacts were saved: nothing is ever
unpickled or executed. Lists are paged in SQL. Secrets are masked by :class:`Masker` in
:mod:`.app`, over every response, the way task logs are masked when they are captured.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import LaminaError, NotFound
from ..models import RUN_STATUSES
from ..redaction import is_secret_name
from ..versioning.runstore import RunStore

if TYPE_CHECKING:
    from ..versioning.artifacts import ArtifactStore
    from ..versioning.metadata import MetadataStore, RunInfo, TaskInfo

MAX_PAGE = 500
LOG_TAIL = 1 << 20
"""Logs longer than this are cut to their last MiB (the download link has all of it)."""
CODE_FILE_MAX = 1 << 20
STATUSES = RUN_STATUSES  # the one definition, lamina.models


class BadRequest(LaminaError):
    """A request the UI refuses: a bad filter, or a path outside the store."""


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def masked_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters with secret-named entries blanked (a parameter called ``api_token``...)."""
    return {k: "***" if is_secret_name(k) else v for k, v in params.items()}


def tagged(tags: Sequence[str], kind: str) -> str | None:
    """The value of a run's ``kind:VALUE`` tag: ``@project`` runs carry ``project:`` and ``branch:``."""
    for tag in tags:
        if tag.startswith(kind + ":"):
            return tag[len(kind) + 1 :]
    return None


def branch_of(tags: Sequence[str]) -> str | None:
    return tagged(tags, "branch")


def run_summary(info: RunInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "flow": info.flow,
        "status": info.status,
        "user": info.user,
        "tags": list(info.tags),
        "project": tagged(info.tags, "project"),
        "branch": branch_of(info.tags),
        "params": masked_params(dict(info.params)),
        "started_at": _iso(info.started_at),
        "finished_at": _iso(info.finished_at),
        "duration": _seconds(info.started_at, info.finished_at),
        "origin_run_id": info.origin_run_id,
    }


def _task_order(task_id: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in task_id.split("."))


@dataclass
class _Tasks:
    """A run's task attempts: the latest per task, and how many attempts each had."""

    latest: dict[tuple[str, str], TaskInfo]
    attempts: dict[tuple[str, str], int]

    @classmethod
    def of(cls, infos: Sequence[TaskInfo]) -> _Tasks:
        latest: dict[tuple[str, str], TaskInfo] = {}
        attempts: dict[tuple[str, str], int] = {}
        for t in infos:
            key = (t.step, t.task_id)
            attempts[key] = attempts.get(key, 0) + 1
            if key not in latest or t.attempt > latest[key].attempt:
                latest[key] = t
        return cls(latest, attempts)

    def of_step(self, step: str) -> list[TaskInfo]:
        found = [t for (s, _), t in self.latest.items() if s == step]
        return sorted(found, key=lambda t: _task_order(t.task_id))


class UIData:
    """The UI's reads over one stack's stores.

    :param metadata: the stack's metadata store.
    :param artifacts: the content-addressed store over the stack's blobs.
    :param stack_name: shown in the page header.
    """

    def __init__(self, metadata: MetadataStore, artifacts: ArtifactStore, stack_name: str) -> None:
        self.meta = metadata
        self.store = artifacts
        self.blobs = artifacts.blobs
        self.records = RunStore(artifacts.blobs)
        self.stack_name = stack_name
        self._manifests: OrderedDict[str, dict[str, Any] | None] = OrderedDict()
        self._code: OrderedDict[str, dict[str, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------- runs

    def flows(self) -> dict[str, Any]:
        return {"flows": self.meta.flows(), "stack": self.stack_name}

    def runs(
        self,
        *,
        flow: str | None = None,
        status: str | None = None,
        tags: Sequence[str] = (),
        user: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """One page of runs, newest first, and how many match the filters in all."""
        if status is not None and status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        if not 1 <= limit <= MAX_PAGE:
            raise BadRequest(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        if offset < 0:
            raise BadRequest(f"offset must be 0 or more, got {offset}")
        filters: dict[str, Any] = {"tags": list(tags), "status": status, "user": user}
        infos = self.meta.runs(flow, limit=limit, offset=offset, **filters)
        total = self.meta.count_runs(flow, **filters)
        return {
            "total": total,
            "limit": limit,
            "offset": offset,
            "runs": [run_summary(i) for i in infos],
        }

    def _run_info(self, run_id: str) -> RunInfo:
        return self.meta.get_run(run_id)

    def manifest(self, info: RunInfo) -> dict[str, Any] | None:
        """The run's manifest from the blob store (cached once the run finished: it is final)."""
        with self._lock:
            if info.id in self._manifests:
                return self._manifests[info.id]
        try:
            found = self.records.load_manifest(info.flow, info.id)
        except (LaminaError, ValueError):
            found = None
        if info.status != "running":
            with self._lock:
                self._manifests[info.id] = found
                while len(self._manifests) > 256:
                    self._manifests.popitem(last=False)
        return found

    def run(self, run_id: str) -> dict[str, Any]:
        """A run: its summary, stack, code, DAG with each step's tasks and status, data reads."""
        info = self._run_info(run_id)
        tasks = _Tasks.of(self.meta.tasks(run_id, all_attempts=True))
        manifest = self.manifest(info) or {}
        graph = manifest.get("graph")
        dag = _dag(graph, self.meta.steps(run_id), tasks, info.status)
        pks = [t.pk for t in tasks.latest.values()]
        reads = self.meta.data_reads(pks)
        data_reads = [
            {
                "step": t.step,
                "task_id": t.task_id,
                "kind": d.kind,
                "target": d.target,
                "adapter": d.adapter,
                "rows": d.rows,
                "version": _version(d.handle),
                "handle": d.handle,
                "at": _iso(d.at),
            }
            for t in sorted(tasks.latest.values(), key=lambda t: (t.started_at, _task_order(t.task_id)))
            for d in reads[t.pk]
        ]
        return {
            **run_summary(info),
            "stack": info.stack,
            "stack_name": info.stack.get("name"),
            "code_key": info.code_key,
            "python_version": info.python_version,
            "flow_file": (graph or {}).get("file"),
            "dag": dag,
            "data_reads": data_reads,
        }

    # ------------------------------------------------------------------------------- tasks

    def _task_attempts(self, run_id: str, step: str, task_id: str) -> list[TaskInfo]:
        found = [t for t in self.meta.tasks(run_id, step, all_attempts=True) if t.task_id == task_id]
        if not found:
            raise NotFound(f"run {run_id} has no task {step}/{task_id}")
        return sorted(found, key=lambda t: t.attempt)

    def _attempt(self, run_id: str, step: str, task_id: str, attempt: int | None) -> TaskInfo:
        attempts = self._task_attempts(run_id, step, task_id)
        if attempt is None:
            return attempts[-1]
        for t in attempts:
            if t.attempt == attempt:
                return t
        raise NotFound(f"task {run_id}/{step}/{task_id} has no attempt {attempt}")

    def task(self, run_id: str, step: str, task_id: str, attempt: int | None = None) -> dict[str, Any]:
        """A task attempt: status, error and traceback, artifacts with previews, metrics, reads."""
        info = self._run_info(run_id)
        attempts = self._task_attempts(run_id, step, task_id)
        t = self._attempt(run_id, step, task_id, attempt)
        refs = self.meta.artifacts([t.pk])[t.pk]
        metrics = self.meta.metrics([t.pk])[t.pk]
        reads = self.meta.data_reads([t.pk])[t.pk]
        base = f"/api/runs/{run_id}/tasks/{step}/{task_id}"
        return {
            "run": run_summary(info),
            "step": t.step,
            "task_id": t.task_id,
            "pathspec": f"{info.flow}/{run_id}/{step}/{task_id}",
            "attempt": t.attempt,
            "attempts": [
                {"attempt": a.attempt, "status": a.status, "error": a.error, "started_at": _iso(a.started_at)}
                for a in attempts
            ],
            "status": t.status,
            "started_at": _iso(t.started_at),
            "finished_at": _iso(t.finished_at),
            "duration": _seconds(t.started_at, t.finished_at),
            "foreach_stack": [f.model_dump() for f in t.foreach_stack],
            "inputs": list(t.input_paths),
            "error": t.error,
            "traceback": t.traceback,
            "artifacts": [
                {
                    "name": name,
                    "type": ref.type,
                    "size": ref.size,
                    "serializer": ref.serializer,
                    "key": ref.key,
                    "preview": ref.meta.get("preview"),
                    "download": f"{base}/artifacts/{name}?attempt={t.attempt}",
                }
                for name, ref in sorted(refs.items())
            ],
            "metrics": _series_by_name([(t, m) for m in metrics]),
            "data_reads": [
                {
                    "kind": d.kind,
                    "target": d.target,
                    "adapter": d.adapter,
                    "rows": d.rows,
                    "version": _version(d.handle),
                }
                for d in reads
            ],
            "logs": f"{base}/logs?attempt={t.attempt}",
        }

    def logs(self, run_id: str, step: str, task_id: str, attempt: int | None = None) -> dict[str, Any]:
        """A task attempt's stdout and stderr (their last MiB), also while it runs, where its
        compute uploads them as it goes."""
        info = self._run_info(run_id)
        t = self._attempt(run_id, step, task_id, attempt)
        out: dict[str, Any] = {"status": t.status, "attempt": t.attempt}
        for stream, recorded in (("stdout", t.stdout_key), ("stderr", t.stderr_key)):
            key = self.records.log_key(info.flow, run_id, step, task_id, t.attempt, stream)  # type: ignore[arg-type]
            if recorded not in (None, key):
                # metadata names a log elsewhere than this attempt's own: it is not followed
                raise BadRequest(f"refused: the log key {recorded!r} of {step}/{task_id} is not this task's")
            try:
                data = self.blobs.get(key)
            except KeyError:
                data = b""
            out[f"{stream}_truncated"] = len(data) > LOG_TAIL
            out[stream] = data[-LOG_TAIL:].decode("utf-8", errors="replace")
        return out

    def artifact(
        self, run_id: str, step: str, task_id: str, name: str, attempt: int | None = None
    ) -> tuple[Any, str | None]:
        """``(ref, local path or None)`` of an artifact's stored bytes, for a download."""
        t = self._attempt(run_id, step, task_id, attempt)
        ref = self.meta.artifacts([t.pk])[t.pk].get(name)
        if ref is None:
            raise NotFound(f"task {run_id}/{step}/{task_id} has no artifact {name!r}")
        if not self.store.is_content_key(ref.key):  # only content-addressed artifact keys are read
            raise BadRequest(f"refused: artifact {name!r} has the key {ref.key!r}, not a content address")
        return ref, self.blobs.local_path(ref.key)

    def artifact_bytes(self, key: str) -> bytes:
        """The blob of an artifact, checked against its content address."""
        return self.store.stored_bytes(key)

    # ------------------------------------------------------------------------------ metrics

    def metrics(self, run_id: str) -> dict[str, Any]:
        """Every metric of a run's tasks (latest attempts), one series per task."""
        self._run_info(run_id)
        tasks = _Tasks.of(self.meta.tasks(run_id, all_attempts=True))
        latest = sorted(tasks.latest.values(), key=lambda t: (t.started_at, _task_order(t.task_id)))
        found = self.meta.metrics([t.pk for t in latest])
        return {"run": run_id, "metrics": _series_by_name([(t, m) for t in latest for m in found[t.pk]])}

    # --------------------------------------------------------------------------------- code

    def _code_files(self, run_id: str) -> dict[str, bytes]:
        info = self._run_info(run_id)
        if not info.code_key:
            raise NotFound(f"run {run_id} has no stored code package")
        key = info.code_key
        with self._lock:
            if key in self._code:
                return self._code[key]
        data = self.store.stored_bytes(key)
        files: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                if member.isfile() and member.size <= CODE_FILE_MAX:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        files[member.name] = handle.read()
                elif member.isfile():
                    files[member.name] = b""
        with self._lock:
            self._code[key] = files
            while len(self._code) > 16:
                self._code.popitem(last=False)
        return files

    def code(self, run_id: str) -> dict[str, Any]:
        """The files of the run's code package, and which of them is the flow's file."""
        files = self._code_files(run_id)
        graph = (self.manifest(self._run_info(run_id)) or {}).get("graph") or {}
        flow_file = str(graph.get("file") or "").replace("\\", "/").rsplit("/", 1)[-1]
        return {
            "run": run_id,
            "flow_file": flow_file if flow_file in files else None,
            "files": [{"path": p, "size": len(b)} for p, b in sorted(files.items())],
        }

    def code_file(self, run_id: str, path: str) -> dict[str, Any]:
        check_relative(path)
        files = self._code_files(run_id)
        if path not in files:
            raise NotFound(f"the code package of run {run_id} has no file {path!r}")
        data = files[path]
        binary = b"\x00" in data[:8192]
        return {
            "run": run_id,
            "path": path,
            "size": len(data),
            "binary": binary,
            "text": None if binary else data.decode("utf-8", errors="replace"),
        }

    # ------------------------------------------------------------------------------ compare

    def latest_of_branches(self, flow: str, branches: Sequence[str]) -> list[str]:
        ids = []
        for branch in branches:
            found = self.meta.runs(flow, tags=[f"branch:{branch}"], limit=1)
            if not found:
                raise NotFound(f"flow {flow} has no run on branch {branch!r} (a run tagged branch:{branch})")
            ids.append(found[0].id)
        return ids

    def compare(self, run_ids: Sequence[str]) -> dict[str, Any]:
        """Two or more runs side by side: parameters, metrics (series and last values) and the
        artifacts of their ``end`` steps, each section with the names whose values differ."""
        if len(run_ids) < 2:
            raise BadRequest("compare takes two or more runs: ?runs=RUN_A,RUN_B")
        infos = [self._run_info(r) for r in run_ids]
        params = [masked_params(dict(i.params)) for i in infos]
        metrics = [self.metrics(i.id)["metrics"] for i in infos]
        artifacts = [self._end_artifacts(i.id) for i in infos]

        def side_by_side(values: list[dict[str, Any]]) -> dict[str, list[Any]]:
            names = sorted(set().union(*values))
            return {n: [v.get(n) for v in values] for n in names}

        def differ(table: dict[str, list[Any]], key: Any = lambda v: v) -> list[str]:
            return [
                n
                for n, vs in table.items()
                if len({json.dumps(key(v), sort_keys=True, default=str) for v in vs}) > 1
            ]

        params_table = side_by_side(params)
        last = [
            {n: series[-1]["points"][-1][1] for n, series in m.items() if series and series[-1]["points"]}
            for m in metrics
        ]
        last_table = side_by_side(last)
        artifacts_table = side_by_side(artifacts)
        return {
            "runs": [run_summary(i) for i in infos],
            "params": params_table,
            "params_differ": differ(params_table),
            "metrics": {n: [m.get(n, []) for m in metrics] for n in sorted(set().union(*metrics))},
            "metrics_last": last_table,
            "metrics_differ": differ(last_table),
            "artifacts": artifacts_table,
            "artifacts_differ": differ(artifacts_table, key=lambda a: a and a["key"]),
        }

    def _end_artifacts(self, run_id: str) -> dict[str, Any]:
        tasks = [t for t in self.meta.tasks(run_id, "end")]
        if not tasks:
            return {}
        t = tasks[-1]
        return {
            name: {"key": ref.key, "type": ref.type, "size": ref.size, "preview": ref.meta.get("preview")}
            for name, ref in self.meta.artifacts([t.pk])[t.pk].items()
        }


def check_relative(path: str) -> str:
    """Refuse a path that could leave the store: absolute, with ``..``, a backslash or a NUL."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or "\x00" in path or ".." in parts:
        raise BadRequest(f"refused: {path!r} is not a path inside the store")
    return path


def _version(handle: dict[str, Any]) -> str:
    tables = handle.get("tables") or {}
    if tables:
        return ", ".join(f"{name}@{str(v).split(':')[-1][:12]}" for name, v in tables.items())
    if "query_id" in handle:
        return f"query {handle['query_id']}"
    return ", ".join(f"{k}={v}" for k, v in handle.items())[:80]


def _series_by_name(pairs: Sequence[tuple[TaskInfo, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``{metric: [{"task", "step", "task_id", "index", "points": [[x, y], ...]}]}``: one series
    per task, x being the logged ``step`` (or the point's order when none was given)."""
    out: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for t, m in sorted(pairs, key=lambda p: p[1].at):
        series = out.setdefault(m.name, {}).setdefault(
            (t.step, t.task_id),
            {
                "task": f"{t.step}/{t.task_id}",
                "step": t.step,
                "task_id": t.task_id,
                "index": t.foreach_stack[-1].index if t.foreach_stack else None,
                "points": [],
            },
        )
        x = m.step if m.step is not None else len(series["points"])
        series["points"].append([x, m.value])

    def ordered(by_task: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
        # steps in the order they first logged, then a foreach's tasks by index (not by finish time)
        first: dict[str, int] = {}
        for i, (step, _) in enumerate(by_task):
            first.setdefault(step, i)
        return [by_task[k] for k in sorted(by_task, key=lambda k: (first[k[0]], _task_order(k[1])))]

    return {name: ordered(by_task) for name, by_task in sorted(out.items())}


def _dag(
    graph: dict[str, Any] | None, step_names: list[str], tasks: _Tasks, run_status: str
) -> dict[str, Any]:
    """Nodes (steps with type, status and tasks) and edges of a run's DAG.

    From the graph recorded in the run's manifest when there is one; else (older runs) from the
    steps that ran and their tasks' inputs.
    """
    if graph:
        specs = graph.get("steps", {})
        order = list(specs)
        edges = [[name, target] for name, spec in specs.items() for target in spec.get("next", [])]
    else:
        specs = {}
        order = list(step_names)
        pairs = {(p.split("/")[0], t.step) for t in tasks.latest.values() for p in t.input_paths if "/" in p}
        edges = [list(e) for e in sorted(pairs)]
    parents: dict[str, list[str]] = {}
    for a, b in edges:
        parents.setdefault(b, []).append(a)
    order = _topological(order, parents)
    nodes = []
    for name in order:
        spec = specs.get(name, {})
        step_tasks = tasks.of_step(name)
        foreach_parents = [
            p
            for p in parents.get(name, [])
            if (specs.get(p, {}).get("foreach") or _fans_out(tasks.of_step(p)))
        ]
        expected: int | None = None
        if foreach_parents:
            parent_tasks = [t for p in foreach_parents for t in tasks.of_step(p) if t.status == "succeeded"]
            expected = sum(t.foreach_count or 0 for t in parent_tasks) if parent_tasks else None
        counts = {s: sum(1 for t in step_tasks if t.status == s) for s in STATUSES}
        nodes.append(
            {
                "name": name,
                "type": spec.get("type") or _guess_type(name, step_tasks),
                "foreach": spec.get("foreach"),
                "doc": (spec.get("doc") or "").split("\n")[0],
                "decorators": sorted(spec.get("decorators", {})),
                "status": _step_status(step_tasks, expected, run_status),
                "counts": counts,
                "expected": expected,
                "foreach_count": sum(t.foreach_count or 0 for t in step_tasks)
                if _fans_out(step_tasks)
                else None,
                "tasks": [
                    {
                        "task_id": t.task_id,
                        "status": t.status,
                        "attempt": t.attempt,
                        "attempts": tasks.attempts[(t.step, t.task_id)],
                        "index": t.foreach_stack[-1].index if t.foreach_stack else None,
                        "started_at": _iso(t.started_at),
                        "finished_at": _iso(t.finished_at),
                        "duration": _seconds(t.started_at, t.finished_at),
                        "error": t.error,
                    }
                    for t in step_tasks
                ],
            }
        )
    return {"nodes": nodes, "edges": edges, "from_manifest": bool(graph)}


def _topological(names: list[str], parents: dict[str, list[str]]) -> list[str]:
    """``names`` ordered by their depth from ``start`` (longest path), then as given."""
    depth: dict[str, int] = {}

    def visit(name: str, seen: frozenset[str]) -> int:
        if name not in depth:
            ps = [p for p in parents.get(name, []) if p not in seen and p in names]
            depth[name] = 1 + max((visit(p, seen | {name}) for p in ps), default=-1)
        return depth[name]

    for name in names:
        visit(name, frozenset())
    return sorted(names, key=lambda n: (depth[n], names.index(n)))


def _fans_out(step_tasks: list[TaskInfo]) -> bool:
    return any(t.foreach_count is not None for t in step_tasks)


def _guess_type(name: str, step_tasks: list[TaskInfo]) -> str:
    if name in ("start", "end"):
        return name
    if _fans_out(step_tasks):
        return "foreach"
    if any(len(t.input_paths) > 1 for t in step_tasks):
        return "join"
    return "linear"


def _step_status(step_tasks: list[TaskInfo], expected: int | None, run_status: str) -> str:
    """``failed`` if a task failed, ``running`` while one runs or more are due, ``succeeded``
    once all are done, else ``pending`` (not reached, or never reached in a finished run)."""
    if any(t.status == "failed" for t in step_tasks):
        return "failed"
    if any(t.status == "running" for t in step_tasks):
        return "running"
    if not step_tasks:
        return "pending" if run_status == "running" else "skipped"
    if expected is not None and len(step_tasks) < expected:
        return "running" if run_status == "running" else "failed"
    return "succeeded"
