"""Portable step decorators: ``@resources``, ``@retry``, ``@catch``, ``@timeout``, ``@environment``.

They only annotate the step function; each compute adapter maps them onto its platform and
fails loudly when it cannot (nothing is silently ignored). They work above or below ``@step``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import FlowDefinitionError

F = TypeVar("F", bound=Callable[..., Any])
_EVENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class RetrySpec:
    times: int = 3
    minutes_between_retries: float = 0.0


@dataclass(frozen=True)
class CatchSpec:
    var: str | None = None
    print_exception: bool = True


def _decorations(func: Callable[..., Any]) -> dict[str, Any]:
    deco = func.__dict__.get("_lamina_decorations")
    if deco is None:
        deco = {}
        func.__dict__["_lamina_decorations"] = deco
    return deco


def decorations(func: Callable[..., Any]) -> dict[str, Any]:
    """What decorators a step function carries: ``resources``, ``retry``, ``catch``, ``timeout``."""
    return dict(func.__dict__.get("_lamina_decorations", {}))


def resources(
    func: F | None = None,
    *,
    cpu: float | None = None,
    memory: int | None = None,
    gpu: int | None = None,
    disk: int | None = None,
) -> Any:
    """Ask for resources: ``cpu`` cores, ``memory`` MiB, ``gpu`` count, ``disk`` GiB."""

    def apply(f: F) -> F:
        for name, value in (("cpu", cpu), ("memory", memory), ("gpu", gpu), ("disk", disk)):
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise FlowDefinitionError(
                    f"@resources on step {f.__name__!r}: {name} must be a non-negative number, got {value!r}."
                )
        request = {"cpu": cpu, "memory": memory, "gpu": gpu, "disk": disk}
        deco = _decorations(f)
        if "resources" in deco:  # with @batch/@kubernetes: the larger of each number, as Metaflow does
            from .platform import merge_resources

            request = merge_resources(deco["resources"], request)
        deco["resources"] = request
        return f

    return apply(func) if func is not None else apply


def retry(func: F | None = None, *, times: int = 3, minutes_between_retries: float = 0.0) -> Any:
    """Run a failing step again, up to ``times`` more attempts."""

    def apply(f: F) -> F:
        if not isinstance(times, int) or times < 0:
            raise FlowDefinitionError(
                f"@retry on step {f.__name__!r}: times must be a non-negative integer, got {times!r}."
            )
        _decorations(f)["retry"] = RetrySpec(times, minutes_between_retries)
        return f

    return apply(func) if func is not None else apply


def catch(func: F | None = None, *, var: str | None = None, print_exception: bool = True) -> Any:
    """Let the flow go on when the step fails; the exception is stored in ``self.<var>``."""

    def apply(f: F) -> F:
        _decorations(f)["catch"] = CatchSpec(var, print_exception)
        return f

    return apply(func) if func is not None else apply


def timeout(func: F | None = None, *, seconds: float = 0, minutes: float = 0, hours: float = 0) -> Any:
    """Fail the step when one attempt runs longer than the given time."""

    def apply(f: F) -> F:
        total = seconds + 60 * minutes + 3600 * hours
        if total <= 0:
            raise FlowDefinitionError(
                f"@timeout on step {f.__name__!r}: give seconds=, minutes= or hours= greater than 0."
            )
        _decorations(f)["timeout"] = float(total)
        return f

    return apply(func) if func is not None else apply


def environment(func: F | None = None, *, vars: dict[str, str] | None = None) -> Any:  # noqa: A002
    """Set environment variables while the step runs (Metaflow's ``@environment(vars={...})``).

    Values are recorded with the flow's code, so they are for configuration, never secrets:
    credentials come from the stack's standard chains.
    """

    def apply(f: F) -> F:
        given = dict(vars or {})
        bad = [k for k, v in given.items() if not isinstance(k, str) or not isinstance(v, str | int | float)]
        if bad:
            raise FlowDefinitionError(
                f"@environment on step {f.__name__!r}: vars must map names to strings, got {bad[0]!r}."
            )
        _decorations(f)["environment"] = {k: str(v) for k, v in given.items()}
        return f

    return apply(func) if func is not None else apply


def project(cls: Any = None, *, name: str | None = None) -> Any:
    """Put a flow in a project: it deploys (and may run) under a branch, so variants of it run
    side by side (``deploy --branch NAME``, ``--production``; by default the user's own branch).
    See :mod:`lamina.runtime.branches`."""
    from ..runtime.branches import check_project_name

    def apply(flow_cls: Any) -> Any:
        flow_cls._lamina_project = check_project_name(name, flow_cls.__name__)
        return flow_cls

    if cls is not None:
        raise FlowDefinitionError('@project needs a name: @project(name="churn")')
    return apply


def schedule(cls: Any = None, *, cron: str | None = None, hourly: bool = False, daily: bool = False,
             weekly: bool = False) -> Any:  # fmt: skip
    """Run the deployed flow on a schedule: ``@schedule(cron="0 3 * * *")`` (five fields, UTC), or
    ``hourly=``/``daily=``/``weekly=True``. ``deploy --schedule`` still wins over it."""
    chosen = [v for v in (cron, "0 * * * *" if hourly else None, "0 0 * * *" if daily else None,
                          "0 0 * * 0" if weekly else None) if v]  # fmt: skip

    def apply(flow_cls: Any) -> Any:
        if len(chosen) != 1:
            raise FlowDefinitionError(
                f"@schedule on {flow_cls.__name__}: give exactly one of cron=, hourly=, daily=, weekly=."
            )
        flow_cls._lamina_schedule = chosen[0]
        return flow_cls

    if cls is not None:
        return apply(cls)
    return apply


def trigger(cls: Any = None, *, event: str | None = None, events: list[str] | None = None) -> Any:
    """Start the deployed flow when an event arrives (``lamina event publish NAME``, or the
    business system's own publisher); the run sees it as ``current.trigger``."""
    names = [n for n in ([event] if event else []) + list(events or [])]

    def apply(flow_cls: Any) -> Any:
        if not names or not all(isinstance(n, str) and _EVENT.match(n) for n in names):
            raise FlowDefinitionError(
                f"@trigger on {flow_cls.__name__}: name events with event=\"orders_updated\" (letters, digits, "
                f"'_', '-', '.'), got {names!r}."
            )
        flow_cls._lamina_events = sorted({*getattr(flow_cls, "_lamina_events", []), *names})
        return flow_cls

    if cls is not None:
        raise FlowDefinitionError('@trigger needs an event: @trigger(event="orders_updated")')
    return apply


def trigger_on_finish(cls: Any = None, *, flow: str | None = None, flows: list[str] | None = None) -> Any:
    """Start the deployed flow when a deployed run of ``flow`` (on the same branch) succeeds; the
    run sees the triggering run as ``current.trigger``."""
    names = [n for n in ([flow] if flow else []) + list(flows or [])]

    def apply(flow_cls: Any) -> Any:
        if not names or not all(isinstance(n, str) and n.isidentifier() for n in names):
            raise FlowDefinitionError(
                f"@trigger_on_finish on {flow_cls.__name__}: name the upstream flow's class, e.g. "
                f'flow="IngestFlow", got {names!r}.'
            )
        flow_cls._lamina_upstream = sorted({*getattr(flow_cls, "_lamina_upstream", []), *names})
        return flow_cls

    if cls is not None:
        raise FlowDefinitionError('@trigger_on_finish needs a flow: @trigger_on_finish(flow="IngestFlow")')
    return apply
