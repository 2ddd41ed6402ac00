"""Helpers shared by the stack tests (a uniquely named module: ``conftest`` names clash)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCAL_REST = """
[compute]
adapter = "local"

[orchestration]
adapter = "local"

[versioning]
adapter = "local"
"""
"""The three non-data layers of the ``local`` stack, to complete a profile under test."""


def profile_text(data: str = 'adapter = "duckdb"', rest: str = LOCAL_REST, head: str = "") -> str:
    """A profile: ``head`` (top-level keys, ``[options]``), a ``[data]`` table, the other layers."""
    return textwrap.dedent(head) + "\n[data]\n" + textwrap.dedent(data) + "\n" + textwrap.dedent(rest)


def write_profile(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


@dataclass
class Cli:
    """Runs ``python -m lamina ...`` (or a flow file) as a user would, in a throwaway project,
    with the user's configuration directory redirected so the real one is never touched."""

    project: Path
    config_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
        return self.run([sys.executable, "-m", "lamina", *args], env=env, cwd=cwd)

    def flow(self, flow_file: Path, *args: str, env: dict[str, str] | None = None) -> Any:
        return self.run([sys.executable, str(flow_file), *args], env=env)

    def run(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
        full_env = {**self.env, **(env or {})}
        return subprocess.run(
            argv, cwd=cwd or self.project, env=full_env, capture_output=True, text=True, timeout=120
        )

    @property
    def project_stacks(self) -> Path:
        return self.project / ".lamina" / "stacks"

    @property
    def user_stacks(self) -> Path:
        return self.config_dir / "stacks"


def assert_user_error(proc: Any, *needles: str, code: int = 2) -> str:
    """The command failed as a user should see it: the given exit status, one short paragraph on
    stderr that mentions every needle, and no traceback."""
    err = proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{err}"
    assert "Traceback" not in err, err
    assert err.startswith("lamina: error: "), err
    paragraph = err.strip()
    assert "\n\n" not in paragraph and paragraph.count("\n") <= 2, f"not one short paragraph:\n{err}"
    for needle in needles:
        assert needle in err, f"{needle!r} not in:\n{err}"
    return err


# -- plugins loaded for one test -------------------------------------------------------------------


@dataclass
class FakeDist:
    name: str
    version: str

    @property
    def metadata(self) -> dict[str, str]:
        return {"Name": self.name}


@dataclass
class FakeEntryPoint:
    """An entry point of the ``lamina`` group, as ``importlib.metadata`` would give it."""

    name: str
    plugin: object
    dist: FakeDist | None = None
    error: BaseException | None = None

    @property
    def value(self) -> str:
        return f"{self.name}_module:plugin"

    def load(self) -> object:
        if self.error is not None:
            raise self.error
        return self.plugin
