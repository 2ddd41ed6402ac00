"""Values that cross a layer boundary.

Every layer hook takes and returns these pydantic models (or Arrow tables), never an SDK object,
so an adapter can be swapped without the core noticing. They are also what a task writes to the
blob store as its completion record, so they must stay JSON-serialisable.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    import pyarrow as pa

Layer = Literal["data", "compute", "orchestration", "versioning"]
LAYERS: tuple[Layer, ...] = ("data", "compute", "orchestration", "versioning")


class _Model(BaseModel):
    """Base of the boundary models. Their schemas build at import, in the warm worker, so that
    forked tasks inherit them (deferring the build made every task rebuild them)."""


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


class AdapterSettings(_Model):
    """Base class of every adapter's settings: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_unset(cls, data: Any) -> Any:
        """An empty string for a setting whose default is ``None`` means unset (``${VAR:-}``
        resolves to one), so adapters need no validator of their own for it."""
        if not isinstance(data, dict):
            return data
        unset_able = {
            key for name, f in cls.model_fields.items() if f.default is None for key in (name, f.alias) if key
        }
        return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip() and k in unset_able)}


class Resources(_Model):
    """What one task asks for. ``None`` means "the adapter's default"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: float | None = None
    memory: int | None = Field(default=None, description="MiB")
    gpu: int | None = None
    disk: int | None = Field(default=None, description="GiB")

    def is_empty(self) -> bool:
        return self.cpu is None and self.memory is None and self.gpu is None and self.disk is None


class ForeachFrame(_Model):
    """One level of foreach nesting a task sits in."""

    step: str
    index: int
    count: int


class StepEnvironment(_Model):
    """The packages one step's environment holds (``@pypi``/``@conda``), built wherever the task
    runs: from the cache when an environment with the same ``key`` exists there, else from the
    Python package index."""

    kind: Literal["pypi", "conda"] = "pypi"
    packages: dict[str, str] = Field(default_factory=dict, description="PyPI name -> version ('' any)")
    requirements: list[str] = Field(default_factory=list, description="what is installed, e.g. 'six==1.16.0'")
    python: str | None = Field(default=None, description="the Python version asked for, if any")
    key: str = Field(description="hash of the requirement set; environments are cached under it")


class TaskSpec(_Model):
    """Everything the task entry point needs to run one task, wherever it runs."""

    run_id: str
    flow_name: str
    step: str
    task_id: str
    attempt: int = 0
    input_paths: list[str] = Field(default_factory=list, description="'step/task_id' of parent tasks")
    foreach_stack: list[ForeachFrame] = Field(default_factory=list)
    split_index: int | None = None
    flow_file: str = Field(description="path of the flow file inside the code package (or absolute, locally)")
    code_key: str | None = Field(
        default=None, description="blob key of the code package, when the task runs remotely"
    )
    stack: dict[str, Any] = Field(description="the resolved stack profile, without secrets")
    resources: Resources = Field(default_factory=Resources)
    timeout: float | None = None
    max_attempts: int = 1
    user: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    origin_run_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    environment: StepEnvironment | None = Field(
        default=None, description="the step's own environment (@pypi/@conda), or None: the task's interpreter"
    )
    with_decorators: list[str] = Field(
        default_factory=list, description="`--with` decorators of the run, e.g. 'catch' or 'retry:times=2'"
    )

    @property
    def pathspec(self) -> str:
        return f"{self.run_id}/{self.step}/{self.task_id}"


TaskState = Literal["pending", "running", "succeeded", "failed"]


class TaskStatus(_Model):
    handle: str
    state: TaskState
    exit_code: int | None = None
    message: str = ""
    output_shown: bool = False
    """Whether the task's output already appeared on the user's console (a local worker streams
    it live); otherwise the scheduler shows the stored output when the task ends."""


class ArtifactRef(_Model):
    """Where one artifact's serialized bytes live and how to read them."""

    key: str
    serializer: str
    size: int
    type: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)


class DataSnapshot(_Model):
    """What a data read saw, precisely enough to repeat it.

    ``handle`` is adapter-specific: content hashes for DuckDB and files, a query id and time for
    Snowflake time travel, a snapshot time for BigQuery.
    """

    adapter: str
    kind: Literal["table", "query", "write"]
    target: str
    handle: dict[str, Any] = Field(default_factory=dict)
    rows: int | None = None
    at: _dt.datetime = Field(default_factory=utcnow)


class Metric(_Model):
    name: str
    value: float
    step: int | None = None
    at: _dt.datetime = Field(default_factory=utcnow)


class TaskRecord(_Model):
    """The completion record a task writes, atomically, as its last act."""

    run_id: str
    flow_name: str
    step: str
    task_id: str
    attempt: int
    ok: bool
    artifacts: dict[str, ArtifactRef] = Field(default_factory=dict)
    foreach_count: int | None = None
    input_paths: list[str] = Field(default_factory=list)
    foreach_stack: list[ForeachFrame] = Field(default_factory=list)
    data_reads: list[DataSnapshot] = Field(default_factory=list)
    metrics: list[Metric] = Field(default_factory=list)
    stdout_key: str | None = None
    stderr_key: str | None = None
    card_key: str | None = Field(default=None, description="blob key of the task's @card HTML")
    error: str | None = None
    traceback: str | None = None
    started_at: _dt.datetime = Field(default_factory=utcnow)
    finished_at: _dt.datetime = Field(default_factory=utcnow)

    @classmethod
    def begin(cls, spec: TaskSpec, **fields: Any) -> TaskRecord:
        """A record for ``spec``'s attempt, not (yet) successful."""
        return cls(
            run_id=spec.run_id,
            flow_name=spec.flow_name,
            step=spec.step,
            task_id=spec.task_id,
            attempt=spec.attempt,
            ok=False,
            input_paths=spec.input_paths,
            foreach_stack=spec.foreach_stack,
            **fields,
        )


class CheckResult(_Model):
    """One layer's verdict from ``lamina stack check``."""

    layer: str
    adapter: str
    ok: bool
    message: str
    fix: str = ""


class DeployResult(_Model):
    flow_name: str
    target: str = Field(description="what was created or updated, e.g. a state machine ARN")
    definition: dict[str, Any] | str = Field(default_factory=dict)
    schedule: str | None = None
    dry_run: bool = False
    creates: list[str] = Field(default_factory=list, description="what deploy creates or updates, for people")


RunStatusName = Literal["running", "succeeded", "failed", "interrupted", "killed"]
RUN_STATUSES: tuple[RunStatusName, ...] = ("running", "succeeded", "failed", "interrupted", "killed")
"""A run's statuses, defined once for the client, ``lamina runs --status``, ``show`` and every view:
running; succeeded; failed (a task failed); interrupted (stopped by Ctrl-C or SIGTERM, resumable);
killed (its driver died without a word: its heartbeat stopped)."""


class RunState(_Model):
    """A deployed run's state as its orchestrator reports it (``orchestration_status``)."""

    run_id: str
    status: RunStatusName
    message: str = ""
    finished_steps: list[str] = Field(default_factory=list)
    """Steps whose every task has finished, in the order they finished (for progress lines)."""


class Deployment(_Model):
    """One deployed flow (of one ``@project`` branch), as ``lamina deployments`` lists it."""

    flow_name: str
    project: str | None = None
    branch: str | None = None
    target: str = Field(description="the orchestrator's name for it, e.g. a state machine ARN")
    schedule: str | None = None


class RunOutcome(_Model):
    run_id: str
    ok: bool
    failed_step: str | None = None
    message: str = ""


@dataclass
class DataResult:
    """A data read: the table and the snapshot it came from."""

    table: pa.Table
    snapshot: DataSnapshot


@dataclass
class AdapterInfo:
    """One adapter a plugin offers (see the ``lamina_adapters`` hook)."""

    layer: Layer
    name: str
    settings: type[AdapterSettings]
    factory: Any = field(repr=False)
    """``factory(settings, context) -> plugin object`` with ``@hookimpl`` methods."""
    extra: str | None = None
    """The pip extra that installs what it needs, e.g. ``aws`` -> ``pip install 'lamina[aws]'``."""
    requires: tuple[str, ...] = ()
    """Modules that must be importable for the adapter to work."""
    description: str = ""
    contract: int = 1
    """The hook contract version (``lamina.hookspecs.CONTRACT_VERSION``) the adapter implements."""
    features: frozenset[str] = frozenset()
    """Optional features it supports: for orchestrators ``schedule``, ``status``, ``branches``,
    ``triggers``; the core refuses one an adapter does not declare rather than see it ignored."""
    plugin_name: str = ""
    plugin_version: str = ""

    def supports(self, feature: str) -> bool:
        return feature in self.features

    def missing_modules(self) -> list[str]:
        import importlib.util

        missing = []
        for mod in self.requires:
            try:
                if importlib.util.find_spec(mod) is None:
                    missing.append(mod)
            except (ImportError, ValueError):
                missing.append(mod)
        return missing

    def install_hint(self) -> str:
        if self.extra:
            dist = self.plugin_name if self.plugin_name and self.plugin_name != "lamina" else "lamina"
            return f"pip install '{dist}[{self.extra}]'"
        return "pip install " + " ".join(self.requires)
