"""Read runs back from Python: ``Flow("TrainFlow").latest_run["train"].task.data.model``.

The client reads the metadata store for what exists and the blob store for values, which load
lazily (touching ``task.data.model`` loads ``model`` only, memory-mapped where possible).

Namespaces: by default you see your own runs (user ``$LAMINA_USER``, else your login name).
``namespace(None)`` shows everyone's; ``namespace("user:alice")`` Alice's; any other string is a
tag (``namespace("team:vision")``). ``Run(...)`` of a run outside the namespace is ``NotFound``.

Where the stores are: the current project's stack (``lamina.stack.resolve_stack()``, through
the replaceable hook :func:`_open_stack`), unless :func:`use_store` set them explicitly. Inside a
running step, the run's own stack. Metaflow's names work too: a Metaflow *metadata provider* is a
Lamina *stack* (its versioning layer holds the metadata), so ``metadata("aws-sagemaker")``
switches the stack the client reads and ``get_metadata()`` says which one it reads.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import NotFound
from .models import ArtifactRef, DataSnapshot, ForeachFrame
from .versioning.artifacts import ArtifactNamespace, ArtifactStore

if TYPE_CHECKING:  # SQLAlchemy loads when the first query runs, not on import
    from .versioning.metadata import MetadataStore, RunInfo, TaskInfo

__all__ = [
    "Metaflow",
    "Flow",
    "Run",
    "Step",
    "Task",
    "DataArtifact",
    "namespace",
    "get_namespace",
    "default_namespace",
    "metadata",
    "get_metadata",
    "default_metadata",
    "compare_runs",
    "use_store",
    "current_user",
]

_UNSET: Any = object()
_stores: tuple[ArtifactStore, MetadataStore] | None = None
_namespace: str | None = _UNSET
_stack_name: str | None = None
"""The stack :func:`metadata` chose; ``None``: the project's (or, in a step, the run's)."""
_opened_stack: str | None = None
"""The name of the stack whose stores ``_stores`` holds, for :func:`get_metadata`."""


def _open_stack() -> Any:
    """The stack to read (an object with ``.versioning`` and ``.project_dir``): the one
    :func:`metadata` chose, else the running step's, else the current project's."""
    from .flow.current import current
    from .stack import resolve_stack  # type: ignore[attr-defined]

    if _stack_name is None and current._stack is not None:
        return current._stack
    return resolve_stack(_stack_name)


def use_store(artifact_store: ArtifactStore | None, metadata_store: MetadataStore | None) -> None:
    """Read from these stores instead of the stack's; ``use_store(None, None)`` goes back."""
    global _stores
    if (artifact_store is None) != (metadata_store is None):
        raise ValueError("use_store() takes both stores, or neither (None, None) to use the stack again")
    _stores = (artifact_store, metadata_store) if artifact_store is not None else None  # type: ignore[assignment]
    global _opened_stack
    _opened_stack = None


def _get_stores() -> tuple[ArtifactStore, MetadataStore]:
    global _stores, _opened_stack
    if _stores is None:
        from .versioning.metadata import MetadataStore

        stack = _open_stack()
        _opened_stack = getattr(stack, "name", None)
        cache = Path(stack.project_dir) / ".lamina" / "cache"
        _stores = (
            ArtifactStore(stack.versioning, cache_dir=cache),
            MetadataStore(stack.versioning.metadata_url()),
        )
    return _stores


def current_user() -> str:
    """``$LAMINA_USER``, else the login name."""
    return os.environ.get("LAMINA_USER") or getpass.getuser()


def namespace(ns: str | None = _UNSET) -> str | None:
    """Set the namespace (when given) and return the current one.

    ``None``: all runs. ``"user:NAME"``: runs of that user. Anything else: runs with that tag.
    """
    global _namespace
    if ns is not _UNSET:
        _namespace = ns
    return get_namespace()


def get_namespace() -> str | None:
    """The current namespace (``user:<you>`` until :func:`namespace` changes it)."""
    return f"user:{current_user()}" if _namespace is _UNSET else _namespace


def default_namespace() -> str:
    """Go back to the default namespace, your own runs (``user:<you>``), and return it."""
    global _namespace
    _namespace = _UNSET
    return f"user:{current_user()}"


def metadata(ms: str) -> str:
    """Read runs from the stack named ``ms`` (Metaflow: choose a metadata provider).

    In Lamina a run's metadata lives in its stack's versioning layer, so the provider *is* a
    stack: ``metadata("aws-sagemaker")``. Metaflow's ``"local@PATH"`` spelling is accepted and
    means the stack before the ``@``. Returns :func:`get_metadata`'s description.

    :raises ProfileError: there is no stack of that name (the message lists the known ones).
    """
    global _stack_name, _stores
    from .stack import resolve_stack  # type: ignore[attr-defined]

    name = ms.split("@", 1)[0].strip()
    with resolve_stack(name):  # validates the name now, not at the first query
        pass
    _stack_name, _stores = name, None
    return get_metadata()


def get_metadata() -> str:
    """Which stack the client reads, as ``STACK@METADATA_URL`` (password hidden).

    Metaflow answers ``local@/path`` or ``service@URL``; Lamina names the stack, since a
    stack's versioning layer is its metadata provider.
    """
    meta = _get_stores()[1]
    url = meta.url.render_as_string(hide_password=True)
    return f"{_opened_stack or _stack_name or 'custom'}@{url}"


def default_metadata() -> str:
    """Go back to the default stack (the project's; in a running step, the run's); return
    :func:`get_metadata`'s description of it."""
    global _stack_name, _stores
    _stack_name, _stores = None, None
    return get_metadata()


def _namespace_filter() -> dict[str, Any]:
    ns = get_namespace()
    if ns is None:
        return {}
    if ns.startswith("user:"):
        return {"user": ns[len("user:") :]}
    return {"tags": [ns]}


def _in_namespace(info: RunInfo) -> bool:
    f = _namespace_filter()
    return ("user" not in f or info.user == f["user"]) and all(t in info.tags for t in f.get("tags", []))


class MetricPoint(NamedTuple):
    step: int | None
    value: float
    at: dt.datetime


class DataRead(NamedTuple):
    step: str
    task_id: str
    snapshot: DataSnapshot


@dataclass(frozen=True)
class CodeInfo:
    """A run's code package: its blob key, and a way to unpack it."""

    key: str

    def restore(self, dest_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Unpack the package into ``dest_dir`` (which must be empty unless ``overwrite``)."""
        from .versioning.codepkg import restore_code

        return restore_code(_get_stores()[0], self.key, dest_dir, overwrite=overwrite)


class Metaflow:
    """Every flow with runs in the metadata store (Metaflow's entry point): ``Metaflow().flows``."""

    @property
    def flows(self) -> list[Flow]:
        return [Flow(name) for name in _get_stores()[1].flows()]

    def __iter__(self) -> Iterator[Flow]:
        return iter(self.flows)

    def __repr__(self) -> str:
        return f"Metaflow({get_metadata()!r})"


class Flow:
    """A flow, by class name. :raises NotFound: it has no runs in the metadata store."""

    def __init__(self, name: str) -> None:
        known = _get_stores()[1].flows()
        if name not in known:
            raise NotFound(f"no flow named {name!r} has runs; flows with runs: {', '.join(known) or 'none'}")
        self.name = name

    id = property(lambda self: self.name)
    pathspec = property(lambda self: self.name)

    def __getitem__(self, run_id: str) -> Run:
        return Run(f"{self.name}/{run_id}")

    def runs(
        self,
        *tags: str,
        tag: str | Sequence[str] | None = None,
        status: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs in the current namespace, newest first, with all of the given tags (positional,
        as Metaflow's ``flow.runs("a", "b")``, or ``tag=``).

        ``status`` is one of :data:`lamina.models.RUN_STATUSES`: ``running``, ``succeeded``,
        ``failed``, ``interrupted`` (Ctrl-C, SIGTERM) or ``killed`` (its driver died: its
        heartbeat stopped).
        """
        filt = _namespace_filter()
        wanted = list(filt.pop("tags", [])) + list(tags)
        wanted += [tag] if isinstance(tag, str) else list(tag or [])
        infos = _get_stores()[1].runs(
            self.name, tags=wanted, status=status, since=since, until=until, limit=limit, **filt
        )
        return [Run._from(i) for i in infos]

    @property
    def latest_run(self) -> Run | None:
        found = self.runs(limit=1)
        return found[0] if found else None

    @property
    def latest_successful_run(self) -> Run | None:
        found = self.runs(status="succeeded", limit=1)
        return found[0] if found else None

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs())

    def __repr__(self) -> str:
        return f"Flow({self.name!r})"


class _Recorded:
    """What a run and a task share: a status row (``_info``) read from the metadata store."""

    _info: Any
    status = property(lambda self: self._info.status, doc="one of lamina.models.RUN_STATUSES")
    started_at = property(lambda self: self._info.started_at)
    created_at = property(lambda self: self._info.started_at, doc="Metaflow's name for started_at")
    finished_at = property(lambda self: self._info.finished_at)

    @property
    def successful(self) -> bool:
        return self._info.status == "succeeded"

    @property
    def finished(self) -> bool:
        """Ended, however it ended (succeeded, failed, interrupted or killed)."""
        return self.status != "running"


class Run(_Recorded):
    """One run, by ``"run_id"`` or ``"Flow/run_id"``. :raises NotFound: unknown or outside the namespace."""

    def __init__(self, pathspec: str) -> None:
        flow, _, run_id = pathspec.rpartition("/")
        info = _get_stores()[1].get_run(run_id)
        if flow and info.flow != flow:
            raise NotFound(f"run {run_id!r} belongs to flow {info.flow!r}, not {flow!r}")
        if not _in_namespace(info):
            raise NotFound(
                f"run {pathspec!r} (user {info.user!r}) is outside the current namespace {get_namespace()!r}; "
                "call lamina.client.namespace(None) to see every run"
            )
        self._info = info

    @classmethod
    def _from(cls, info: RunInfo) -> Run:
        run = cls.__new__(cls)
        run._info = info
        return run

    def refresh(self) -> Run:
        """Re-read the run's row (status, tags) from the metadata store."""
        self._info = _get_stores()[1].get_run(self.id)
        return self

    id = property(lambda self: self._info.id)
    flow_name = property(lambda self: self._info.flow)
    user = property(lambda self: self._info.user)
    params = property(lambda self: dict(self._info.params))
    stack = property(lambda self: dict(self._info.stack), doc="the resolved stack, secrets redacted")
    tags = property(lambda self: list(self._info.tags))
    python_version = property(lambda self: self._info.python_version)
    packages = property(lambda self: dict(self._info.packages))
    origin_run_id = property(lambda self: self._info.origin_run_id, doc="the run this one resumed")

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.id}"

    @property
    def environments(self) -> dict[str, dict[str, Any]]:
        """Each ``@pypi``/``@conda`` step's environment (packages, requirements, Python asked
        for, hash), from the run's manifest; empty when no step had one."""
        from .versioning.runstore import RunStore

        manifest = RunStore(_get_stores()[0].blobs).load_manifest(self.flow_name, self.id) or {}
        return dict(manifest.get("environments") or {})

    @property
    def code(self) -> CodeInfo | None:
        return CodeInfo(self._info.code_key) if self._info.code_key else None

    @property
    def system_tags(self) -> list[str]:
        """Tags Lamina derives (Metaflow's system tags): ``user:NAME``, ``stack:NAME``."""
        return [f"user:{self.user}", f"stack:{self._info.stack.get('name', '')}"]

    @property
    def user_tags(self) -> list[str]:
        """The tags given with ``--tag`` or :meth:`add_tag` (``tags`` in Lamina)."""
        return self.tags

    def add_tag(self, tag: str) -> None:
        _get_stores()[1].add_tag(self.id, tag)
        self.refresh()

    def add_tags(self, tags: Sequence[str]) -> None:
        for tag in tags:
            _get_stores()[1].add_tag(self.id, tag)
        self.refresh()

    def remove_tag(self, tag: str) -> None:
        _get_stores()[1].remove_tag(self.id, tag)
        self.refresh()

    def remove_tags(self, tags: Sequence[str]) -> None:
        for tag in tags:
            _get_stores()[1].remove_tag(self.id, tag)
        self.refresh()

    def replace_tag(self, tag_to_remove: str, tag_to_add: str) -> None:
        self.replace_tags([tag_to_remove], [tag_to_add])

    def replace_tags(self, tags_to_remove: Sequence[str], tags_to_add: Sequence[str]) -> None:
        meta = _get_stores()[1]
        for tag in tags_to_add:
            meta.add_tag(self.id, tag)
        for tag in tags_to_remove:
            if tag not in tags_to_add:
                meta.remove_tag(self.id, tag)
        self.refresh()

    @property
    def steps(self) -> list[Step]:
        return [Step(self, name) for name in _get_stores()[1].steps(self.id)]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __contains__(self, step: object) -> bool:
        return step in _get_stores()[1].steps(self.id)

    def __getitem__(self, step: str) -> Step:
        names = _get_stores()[1].steps(self.id)
        if step not in names:
            raise NotFound(
                f"run {self.pathspec} has no step {step!r}; its steps: {', '.join(names) or 'none yet'}"
            )
        return Step(self, step)

    @property
    def end_task(self) -> Task:
        """The task of the ``end`` step. :raises NotFound: the run did not reach it."""
        if "end" not in self:
            raise NotFound(
                f"run {self.pathspec} ({self.status}) has no 'end' step; "
                f"read a step's artifacts instead, e.g. run['{(_get_stores()[1].steps(self.id) or ['start'])[-1]}'].task.data"
            )
        return self["end"].task

    @property
    def data(self) -> ArtifactNamespace:
        """Artifacts of the ``end`` step's task."""
        return self.end_task.data

    @property
    def data_reads(self) -> list[DataRead]:
        """Every data read of the run's tasks (latest attempts), with the snapshot each saw."""
        meta = _get_stores()[1]
        tasks = meta.tasks(self.id)
        reads = meta.data_reads([t.pk for t in tasks])
        return [DataRead(t.step, t.task_id, d) for t in tasks for d in reads[t.pk]]

    @property
    def metrics(self) -> dict[str, list[MetricPoint]]:
        """Metrics of all tasks (latest attempts), by name, in time order."""
        meta = _get_stores()[1]
        tasks = meta.tasks(self.id)
        return _metric_points([m for ms in meta.metrics([t.pk for t in tasks]).values() for m in ms])

    def __repr__(self) -> str:
        return f"Run({self.pathspec!r})"


class Step:
    """One step of a run: ``run["train"]`` or ``Step("Flow/run_id/step")``.

    :raises NotFound: (from a pathspec) the run or the step does not exist.
    """

    def __init__(self, run: Run | str, name: str | None = None) -> None:
        if isinstance(run, str):
            where, _, step = run.rpartition("/")
            if name is not None or not where:
                raise ValueError(f"a step pathspec is 'Flow/run_id/step', got {run!r}")
            run, name = Run(where), step
            if name not in run:
                raise NotFound(f"run {run.pathspec} has no step {name!r}")
        assert name is not None
        self.run = run
        self.name = name

    id = property(lambda self: self.name)

    @property
    def finished_at(self) -> dt.datetime | None:
        """When the step's last task finished."""
        ends = [t.finished_at for t in self.tasks if t.finished_at is not None]
        return max(ends) if ends else None

    @property
    def pathspec(self) -> str:
        return f"{self.run.pathspec}/{self.name}"

    @property
    def tasks(self) -> list[Task]:
        """The step's tasks (several after a ``foreach``), latest attempt of each, in foreach order."""
        infos = _get_stores()[1].tasks(self.run.id, self.name)
        return [Task._from(self.run, t) for t in sorted(infos, key=lambda t: _task_order(t.task_id))]

    @property
    def task(self) -> Task:
        """The step's only task. :raises NotFound: the step has several (use ``.tasks``) or none."""
        tasks = self.tasks
        if len(tasks) != 1:
            raise NotFound(
                f"step {self.pathspec} has {len(tasks)} tasks, not one; iterate over .tasks instead"
            )
        return tasks[0]

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, task_id: str) -> Task:
        return Task._from(self.run, _get_stores()[1].task(self.run.id, self.name, str(task_id)))

    def __repr__(self) -> str:
        return f"Step({self.pathspec!r})"


class Task(_Recorded):
    """One task (its latest attempt): ``Task("Flow/run_id/step/task_id")`` or ``run["step"].task``."""

    def __init__(self, pathspec: str) -> None:
        parts = pathspec.split("/")
        if len(parts) not in (3, 4):
            raise ValueError(
                f"a task pathspec is 'Flow/run_id/step/task_id' or 'run_id/step/task_id', got {pathspec!r}"
            )
        run = Run("/".join(parts[:-2]))
        self._run, self._info = run, _get_stores()[1].task(run.id, parts[-2], parts[-1])
        self._data: ArtifactNamespace | None = None

    @classmethod
    def _from(cls, run: Run, info: TaskInfo) -> Task:
        task = cls.__new__(cls)
        task._run, task._info, task._data = run, info, None
        return task

    run = property(lambda self: self._run)

    id = property(lambda self: self._info.task_id)
    step_name = property(lambda self: self._info.step)
    attempt = property(lambda self: self._info.attempt)
    error = property(lambda self: self._info.error)
    traceback = property(lambda self: self._info.traceback)
    input_paths = property(lambda self: list(self._info.input_paths))

    @property
    def pathspec(self) -> str:
        return f"{self._run.pathspec}/{self.step_name}/{self.id}"

    @property
    def foreach_stack(self) -> list[ForeachFrame]:
        return list(self._info.foreach_stack)

    @property
    def index(self) -> int | None:
        """The task's index in its innermost ``foreach``, or ``None``."""
        return self._info.foreach_stack[-1].index if self._info.foreach_stack else None

    @property
    def artifacts(self) -> dict[str, ArtifactRef]:
        """Artifact references by name (keys, sizes, serializers), loading nothing."""
        return _get_stores()[1].artifacts([self._info.pk])[self._info.pk]

    @property
    def data(self) -> ArtifactNamespace:
        """Artifacts by name, loaded on first access: ``task.data.model``."""
        if self._data is None:
            self._data = ArtifactNamespace(_get_stores()[0], self.artifacts, where=f"task {self.pathspec}")
        return self._data

    def __getitem__(self, name: str) -> DataArtifact:
        """One artifact as Metaflow's ``task["name"]``: ``.data``, ``.sha``, ``.pathspec``."""
        refs = self.artifacts
        if name not in refs:
            raise NotFound(
                f"task {self.pathspec} has no artifact {name!r}; its artifacts: {', '.join(sorted(refs)) or 'none'}"
            )
        return DataArtifact._from(self, name, refs[name])

    def __iter__(self) -> Iterator[DataArtifact]:
        return iter([DataArtifact._from(self, n, ref) for n, ref in sorted(self.artifacts.items())])

    def __contains__(self, name: object) -> bool:
        return name in self.artifacts

    @property
    def card(self) -> str | None:
        """The task's ``@card`` as an HTML document, or ``None`` when the step has no card."""
        from .versioning.runstore import RunStore

        runs = RunStore(_get_stores()[0].blobs)
        record = runs.record_at(self._info.record_key) if self._info.record_key else None
        return runs.text(record.card_key) if record is not None and record.card_key else None

    @property
    def exception(self) -> str | None:
        """Why the task failed (``"ValueError: ..."``), or ``None``. Metaflow returns an exception
        object; Lamina keeps the message here and the full text in :attr:`traceback`."""
        return self._info.error or None

    @property
    def stdout(self) -> str:
        return self._log(self._info.stdout_key)

    @property
    def stderr(self) -> str:
        return self._log(self._info.stderr_key)

    def _log(self, key: str | None) -> str:
        if key is None:
            return ""
        from .versioning.runstore import RunStore

        try:
            return RunStore(_get_stores()[0].blobs).text(key)
        except NotFound:
            return ""

    @property
    def metrics(self) -> dict[str, list[MetricPoint]]:
        """Logged metrics by name, each a list of ``(step, value, at)`` in time order."""
        return _metric_points(_get_stores()[1].metrics([self._info.pk])[self._info.pk])

    @property
    def data_reads(self) -> list[DataSnapshot]:
        return _get_stores()[1].data_reads([self._info.pk])[self._info.pk]

    @property
    def parent_tasks(self) -> list[Task]:
        """The tasks whose outputs were this task's inputs."""
        meta = _get_stores()[1]
        parents = []
        for path in self._info.input_paths:  # "step/task_id", or "step/task_id/attempt"
            step, task_id, *attempt = path.split("/")
            info = meta.task(self._run.id, step, task_id, int(attempt[0]) if attempt else None)
            parents.append(Task._from(self._run, info))
        return parents

    @property
    def child_tasks(self) -> list[Task]:
        """The tasks that took this task's outputs as inputs."""
        me = [self.step_name, self.id]
        return [
            Task._from(self._run, t)
            for t in _get_stores()[1].tasks(self._run.id)
            if any(p.split("/")[:2] == me for p in t.input_paths)
        ]

    def __repr__(self) -> str:
        return f"Task({self.pathspec!r})"


class DataArtifact:
    """One artifact of one task: ``Task(...)["model"]`` or
    ``DataArtifact("Flow/run_id/step/task_id/name")``. ``.data`` loads the value."""

    def __init__(self, pathspec: str) -> None:
        where, _, name = pathspec.rpartition("/")
        if where.count("/") != 3:
            raise ValueError(f"an artifact pathspec is 'Flow/run_id/step/task_id/name', got {pathspec!r}")
        task = Task(where)
        refs = task.artifacts
        if name not in refs:
            raise NotFound(
                f"task {task.pathspec} has no artifact {name!r}; its artifacts: {', '.join(sorted(refs)) or 'none'}"
            )
        self._task: Task = task
        self.id: str = name
        self._ref: ArtifactRef = refs[name]

    @classmethod
    def _from(cls, task: Task, name: str, ref: ArtifactRef) -> DataArtifact:
        artifact = cls.__new__(cls)
        artifact._task, artifact.id, artifact._ref = task, name, ref
        return artifact

    name = property(lambda self: self.id)
    task = property(lambda self: self._task)
    size = property(lambda self: self._ref.size, doc="serialized bytes")
    finished_at = property(lambda self: self._task.finished_at)

    @property
    def sha(self) -> str:
        """The content hash the value is stored under (equal hashes, equal values)."""
        return self._ref.key.rsplit("/", 1)[-1].split(".")[0]

    @property
    def pathspec(self) -> str:
        return f"{self._task.pathspec}/{self.id}"

    @property
    def data(self) -> Any:
        return self._task.data[self.id]

    def __repr__(self) -> str:
        return f"DataArtifact({self.pathspec!r})"


def _task_order(task_id: str) -> tuple[tuple[int, int | str], ...]:
    """Order ``"2" < "10"`` and ``"1.2" < "1.10"``: foreach indices compare as numbers."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in task_id.split("."))


def _metric_points(metrics: Sequence[Any]) -> dict[str, list[MetricPoint]]:
    out: dict[str, list[MetricPoint]] = {}
    for m in sorted(metrics, key=lambda m: m.at):
        out.setdefault(m.name, []).append(MetricPoint(m.step, m.value, m.at))
    return out


_SCALARS = ("builtins.int", "builtins.float", "builtins.str", "builtins.bool", "builtins.NoneType")


def compare_runs(a: Run | str, b: Run | str) -> dict[str, dict[str, tuple[Any, Any]]]:
    """What differs between two runs: ``{"params"|"metrics"|"artifacts": {name: (a, b)}}``.

    Metrics compare their last value. Artifacts are those of each run's ``end`` task (empty if it
    has none); small scalars compare by value, anything else by content key (equal keys mean
    equal bytes). A name missing on one side shows ``None`` there.
    """
    ra, rb = (r if isinstance(r, Run) else Run(r) for r in (a, b))

    def diff(x: dict[str, Any], y: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        return {k: (x.get(k), y.get(k)) for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)}

    def last_metrics(r: Run) -> dict[str, float]:
        return {name: points[-1].value for name, points in r.metrics.items()}

    def artifacts(r: Run) -> dict[str, Any]:
        if "end" not in r:
            return {}
        task = r.end_task
        refs = task.artifacts
        return {
            n: task.data[n] if ref.type in _SCALARS and ref.size <= 1024 else ref.key
            for n, ref in refs.items()
        }

    return {
        "params": diff(ra.params, rb.params),
        "metrics": diff(last_metrics(ra), last_metrics(rb)),
        "artifacts": diff(artifacts(ra), artifacts(rb)),
    }
