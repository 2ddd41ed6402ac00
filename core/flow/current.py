"""``current``: what a running step knows about its run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import LaminaError

if TYPE_CHECKING:
    from ..stack import Stack
    from ..stack.facades import DataLayer


@dataclass(frozen=True)
class Trigger:
    """What started a deployed run (``current.trigger``)."""

    type: str
    """``event`` or ``run``."""
    name: str
    """The event's name, or the upstream flow's."""
    at: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Trigger | None:
        if not data or not data.get("type"):
            return None
        detail = data.get("detail") or {}
        if isinstance(detail, dict):  # what the event bus delivered (see the deployers' rules)
            data = {
                **data,
                "payload": data.get("payload", detail.get("payload")),
                "at": data.get("at") or detail.get("at") or detail.get("stopDate") or "",
                "run_id": data.get("run_id") or (detail.get("name") if data["type"] == "run" else None),
            }
        payload = data.get("payload")
        if isinstance(payload, str):
            import json

            try:
                payload = json.loads(payload)
            except ValueError:
                payload = {"value": payload}
        return cls(
            type=str(data["type"]), name=str(data.get("name", "")), at=str(data.get("at", "")),
            payload=dict(payload or {}) if isinstance(payload, dict) else {"value": payload},
            run_id=data.get("run_id") or None,
        )  # fmt: skip


class Current:
    """Run context for the step being executed. Outside a task, reading it is an error."""

    def __init__(self) -> None:
        self._ctx: dict[str, Any] | None = None
        self._stack: Stack | None = None
        self._metrics: list[Any] = []
        self._card: Any = None

    def _bind(self, stack: Stack | None, **ctx: Any) -> None:
        self._ctx = ctx
        self._stack = stack
        self._metrics = []
        self._card = None

    def _unbind(self) -> None:
        if self._ctx and self._ctx.get("tempdir"):
            import shutil

            shutil.rmtree(self._ctx["tempdir"], ignore_errors=True)
        self._ctx = None
        self._stack = None

    def _get(self, key: str) -> Any:
        if self._ctx is None:
            raise LaminaError(f"current.{key} is only available inside a running step.")
        return self._ctx.get(key)

    @property
    def is_running_flow(self) -> bool:
        return self._ctx is not None

    @property
    def flow_name(self) -> str:
        return self._get("flow_name")

    @property
    def run_id(self) -> str:
        return self._get("run_id")

    @property
    def step_name(self) -> str:
        return self._get("step_name")

    @property
    def task_id(self) -> str:
        return self._get("task_id")

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.run_id}/{self.step_name}/{self.task_id}"

    @property
    def retry_count(self) -> int:
        return self._get("attempt")

    @property
    def origin_run_id(self) -> str | None:
        return self._get("origin_run_id")

    @property
    def trigger(self) -> Trigger | None:
        """What started this run of a deployed flow: an event (its ``name``, ``at`` and ``payload``)
        or an upstream flow's run (``name`` is the flow, ``run_id`` its run); ``None`` when the run
        was started by hand (``run``, ``lamina trigger``)."""
        found = self._get("trigger")
        if callable(found):  # read from the run's manifest on first use
            found = found()
            assert self._ctx is not None
            self._ctx["trigger"] = found
        return found

    @property
    def user(self) -> str:
        return self._get("user")

    @property
    def username(self) -> str:
        """Metaflow's name for :attr:`user`."""
        return self._get("user")

    @property
    def tags(self) -> list[str]:
        """The run's tags (``--tag``)."""
        return list(self._get("tags") or [])

    @property
    def namespace(self) -> str:
        """The namespace the run belongs to: ``user:<name>``."""
        return f"user:{self._get('user')}"

    @property
    def tempdir(self) -> str:
        """A temporary directory for this task, removed when the step ends."""
        path = self._get("tempdir")
        if path is None:
            import tempfile

            path = tempfile.mkdtemp(prefix="lamina-task-")
            assert self._ctx is not None
            self._ctx["tempdir"] = path
        return path

    @property
    def run(self) -> Any:
        """This run, through the client (``lamina.Run``); needs the stack's metadata store."""
        from ..client import Run

        return Run(f"{self.flow_name}/{self.run_id}")

    @property
    def task(self) -> Any:
        """This task, through the client (``lamina.Task``): its record appears when it ends."""
        from ..client import Task

        return Task(self.pathspec)

    @property
    def stack(self) -> str:
        """The name of the stack the run uses."""
        return self._get("stack_name")

    @property
    def data(self) -> DataLayer:
        """The stack's data layer: ``query(sql)``, ``read(name)``, ``write(name, table, mode=)``."""
        self._get("data")
        assert self._stack is not None
        return self._stack.data

    @property
    def card(self) -> Any:
        """The running step's card (``@card``): ``current.card.append(Markdown("# Hi"))``.

        Components are in ``lamina.cards``: Markdown, Table, Image, LineChart, Artifact.
        """
        self._get("card")
        if self._card is None:
            from ..cards import CardCollector

            self._card = CardCollector()
            self._card._reset(bool(self._get("card")))
        return self._card

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Record one point of a metric's time series for this task."""
        from ..models import Metric

        self._get("log_metric")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise LaminaError(f"log_metric({name!r}): value must be a number, got {value!r}.") from None
        self._metrics.append(Metric(name=name, value=number, step=step))

    def __repr__(self) -> str:
        if self._ctx is None:
            return "<current: not in a running step>"
        return f"<current {self.pathspec} on stack {self.stack}>"


current = Current()
