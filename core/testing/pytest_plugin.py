"""Lamina's pytest plugin (entry point ``pytest11``): fixtures for testing flows and adapters.

- ``lamina_project``: an empty project directory (with ``.lamina/``) as the working directory,
  with the user's configuration isolated, so a test never reads or writes the real one.
- ``lamina_stack``: the resolved ``local`` stack of that project.
- ``run_flow``: runs a flow file in that project and returns the outcome.

The conformance suites (``lamina.testing.data_suite`` ...) are rewritten for assertion details,
so a failing promise shows the values it compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lamina.models import RunOutcome
    from lamina.stack import Stack

pytest.register_assert_rewrite(
    "lamina.testing.data_suite",
    "lamina.testing.versioning_suite",
    "lamina.testing.compute_suite",
    "lamina.testing.stack_suite",
    "lamina.testing.orchestration_suite",
    "lamina.testing.suite_tools",
)


@pytest.fixture
def lamina_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    project = tmp_path / "project"
    (project / ".lamina").mkdir(parents=True)
    monkeypatch.chdir(project)
    monkeypatch.setenv("LAMINA_CONFIG_DIR", str(tmp_path / "user-config"))
    monkeypatch.setenv("LAMINA_CODE_DIR", str(tmp_path / "code-cache"))
    monkeypatch.delenv("LAMINA_STACK", raising=False)
    monkeypatch.delenv("LAMINA_PROJECT_DIR", raising=False)
    monkeypatch.delenv("LAMINA_DISABLE_PLUGINS", raising=False)
    from lamina import client
    from lamina.discovery import reset_registry

    reset_registry()
    client.use_store(None, None)  # the client finds this project's stores afresh
    yield project
    client.use_store(None, None)


@pytest.fixture
def lamina_stack(lamina_project: Path) -> Iterator[Stack]:
    from lamina.stack import resolve_stack

    with resolve_stack("local", lamina_project) as stack:
        yield stack


@pytest.fixture
def run_flow(lamina_project: Path) -> Callable[..., RunOutcome]:
    from lamina.runtime.api import run_flow as _run

    def run(flow_file: str | Path, params: dict[str, Any] | None = None, **options: Any) -> RunOutcome:
        options.setdefault("echo", False)
        return _run(str(flow_file), params, **options)

    return run
