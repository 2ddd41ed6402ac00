"""Fixtures for the stack tests: an isolated project for the ``lamina`` command, and extra
plugins loaded into the registry for one test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from stack_helpers import Cli, FakeEntryPoint


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    project = tmp_path / "project"
    (project / ".lamina").mkdir(parents=True)
    config_dir = tmp_path / "user-config"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")}
    env.update(
        LAMINA_CONFIG_DIR=str(config_dir),
        LAMINA_CODE_DIR=str(tmp_path / "code-cache"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return Cli(project=project, config_dir=config_dir, env=env)


@pytest.fixture
def add_entry_points(monkeypatch: pytest.MonkeyPatch, lamina_project: Path) -> Iterator[Callable[..., None]]:
    """Install extra ``lamina`` entry points (beside the real ones) for the current test."""
    from lamina import discovery

    real = discovery._entry_points
    extra: list[FakeEntryPoint] = []
    monkeypatch.setattr(discovery, "_entry_points", lambda: [*real(), *extra])

    def add(*entry_points: FakeEntryPoint) -> None:
        extra.extend(entry_points)
        discovery.reset_registry()

    yield add
    discovery.reset_registry()
