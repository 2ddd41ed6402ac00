"""Hooks a plugin answers besides an adapter's: lifecycle events, profiles it ships, and the
compute layer's capacity answers, as a plugin author relies on them."""

from __future__ import annotations

from pathlib import Path

from lamina.discovery import get_registry
from lamina.errors import TransientError
from lamina.hookspecs import hookimpl
from lamina.runtime.api import run_flow
from lamina.stack import resolve_stack

FLOWS = Path(__file__).resolve().parents[1] / "runtime" / "flows"


class Observer:
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    @hookimpl
    def lamina_run_started(self, run_id, flow_name, stack_name, params):  # type: ignore[no-untyped-def]
        self.events.append(("started", flow_name, stack_name))

    @hookimpl
    def lamina_task_finished(self, run_id, step, task_id, ok, duration):  # type: ignore[no-untyped-def]
        assert duration >= 0
        self.events.append(("task", step, str(ok)))

    @hookimpl
    def lamina_run_finished(self, run_id, flow_name, ok):  # type: ignore[no-untyped-def]
        self.events.append(("finished", flow_name, str(ok)))


def test_lifecycle_hooks_see_every_run_and_task(lamina_project: Path) -> None:
    observer = Observer()
    pm = get_registry().pm
    pm.register(observer, name="observer")
    try:
        outcome = run_flow(str(FLOWS / "branches.py"), echo=False)
    finally:
        pm.unregister(observer)
    assert outcome.ok
    assert observer.events[0][0] == "started" and observer.events[-1] == ("finished", observer.events[0][1], "True")
    tasks = [e for e in observer.events if e[0] == "task"]
    assert tasks and all(ok == "True" for _, _, ok in tasks)
    assert {step for _, step, _ in tasks} >= {"start", "end"}


def test_the_builtin_plugin_ships_the_stack_profiles(lamina_project: Path) -> None:
    shipped: dict[str, Path] = {}
    for found in get_registry().hook().lamina_stack_profiles():
        shipped.update(found)
    assert {"local", "aws-sagemaker", "dask"} <= set(shipped)
    assert all(path.is_file() and path.suffix == ".toml" for path in shipped.values())


def test_the_local_compute_answers_its_capacity_and_declares_no_transient_errors(lamina_project: Path) -> None:
    import os

    with resolve_stack("local") as stack:
        assert stack.compute.default_workers() == (os.cpu_count() or 1)
        assert stack.compute.queue_depth() == 0, "no warm worker yet: nothing to queue ahead"
        assert stack.compute.transient_errors() == (TransientError,)
        assert stack.orchestration.transient_errors() == (TransientError,)


def test_the_local_orchestrator_lists_no_deployments_and_refuses_what_it_cannot_do(lamina_project: Path) -> None:
    import pytest
    from lamina.errors import LaminaError, NotFound

    with resolve_stack("local") as stack:
        assert stack.orchestration.deployments() == []
        with pytest.raises(LaminaError, match="does not declare the 'delete' feature"):
            stack.orchestration.delete("AnyFlow")
        with pytest.raises(LaminaError, match="does not declare the 'status' feature"):
            stack.orchestration.status("AnyFlow", "20260101T000000.000000.abcdef")
        with pytest.raises(LaminaError, match="does not declare the 'triggers' feature"):
            stack.orchestration.publish("orders_updated", {})
        with pytest.raises(LaminaError, match="no event bus"):
            stack.orchestration.pm.hook.orchestration_publish(name="orders_updated", payload={})
        with pytest.raises(LaminaError, match="no deployed flows to trigger"):
            stack.orchestration.trigger("AnyFlow", {})
        assert NotFound  # the local status hook answers NotFound when asked directly
        with pytest.raises(NotFound):
            stack.orchestration.pm.hook.orchestration_status(flow_name="F", run_id="r", branch=None)
