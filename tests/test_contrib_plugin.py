"""A third-party plugin as a user installs it: lamina-sqlite in a clean virtual environment.

Everything here runs the ``lamina`` command and ``python flow.py`` of that environment, so it
sees what a user's ``pip install lamina lamina-sqlite`` gives: the plugin found through its
entry point, a stack that names its adapter, a flow that runs on that stack, the switch that
blocks a plugin, and the error a broken plugin gives.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging_helpers import CleanVenv, build_wheel, run_checked

PROFILE = """\
description = "Tables in SQLite, the rest local"

[data]
adapter = "sqlite"
path = "tables/warehouse.db"

[compute]
adapter = "local"

[orchestration]
adapter = "local"

[versioning]
adapter = "local"
"""

FLOW = '''\
from lamina import FlowSpec, current, step


class TableRoundTripFlow(FlowSpec):
    """Write a table in one step, read it back in the next."""

    @step
    def start(self):
        snapshot = current.data.write("scores", {"id": [1, 2, 3], "score": [0.5, 0.25, 1.0]})
        self.written_rows = snapshot.rows
        self.next(self.end)

    @step
    def end(self):
        rows = current.data.read("scores").to_pylist()
        expected = [{"id": 1, "score": 0.5}, {"id": 2, "score": 0.25}, {"id": 3, "score": 1.0}]
        assert rows == expected, rows
        assert self.written_rows == 3
        assert current.stack == "mysql", current.stack
        print(f"read back {len(rows)} rows on stack {current.stack}")


if __name__ == "__main__":
    TableRoundTripFlow()
'''


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def rows_of(table_text: str) -> list[list[str]]:
    """The cells of a table the ``lamina`` command printed, split on runs of spaces."""
    return [line.split() for line in table_text.splitlines()]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with the ``mysql`` stack profile file and the flow beside it (not registered)."""
    root = tmp_path / "project"
    (root / ".lamina").mkdir(parents=True)
    (root / "profile.toml").write_text(PROFILE)
    (root / "flow.py").write_text(FLOW)
    return root


@pytest.fixture
def registered(clean_venv: CleanVenv, project: Path) -> Path:
    result = clean_venv.run("lamina", "stack", "register", "mysql", "--file", "profile.toml", cwd=project)
    assert result.returncode == 0, output(result)
    assert "registered stack mysql" in result.stdout
    return project


def test_plugins_list_shows_the_plugin_its_version_and_its_adapter(
    clean_venv: CleanVenv, project: Path
) -> None:
    result = clean_venv.run("lamina", "plugins", "list", cwd=project)
    assert result.returncode == 0, output(result)
    assert ["sqlite", "0.1.0", "data", "sqlite", "yes"] in rows_of(result.stdout), result.stdout

    result = clean_venv.run("lamina", "plugins", "list", "--json", cwd=project)
    assert result.returncode == 0, output(result)
    (row,) = [r for r in json.loads(result.stdout)["plugins"] if r["plugin"] == "sqlite"]
    assert (row["version"], row["source"], row["layer"], row["adapter"], row["installed"]) == (
        "0.1.0",
        "lamina-sqlite",
        "data",
        "sqlite",
        True,
    )


def test_the_plugin_ships_its_profile(clean_venv: CleanVenv, project: Path) -> None:
    result = clean_venv.run("lamina", "stack", "list", cwd=project)
    assert result.returncode == 0, output(result)
    row = next(r for r in rows_of(result.stdout) if "sqlite-local" in r)
    assert row[:3] == ["sqlite-local", "sqlite", "ready"], result.stdout
    assert "data=sqlite" in row


def test_a_registered_stack_using_the_adapter_is_listed_shown_and_runs_a_flow(
    clean_venv: CleanVenv, registered: Path
) -> None:
    listed = clean_venv.run("lamina", "stack", "list", cwd=registered)
    assert listed.returncode == 0, output(listed)
    row = next(r for r in rows_of(listed.stdout) if "mysql" in r)
    assert row[:3] == ["mysql", "project", "ready"], listed.stdout
    assert "data=sqlite" in row

    shown = clean_venv.run("lamina", "stack", "show", "mysql", cwd=registered)
    assert shown.returncode == 0, output(shown)
    assert "[data] sqlite  ok: installed (lamina-sqlite 0.1.0)" in shown.stdout, shown.stdout
    assert "path = 'tables/warehouse.db'" in shown.stdout

    run = clean_venv.run("python", "flow.py", "run", "--stack", "mysql", cwd=registered)
    assert run.returncode == 0, output(run)
    assert "read back 3 rows on stack mysql" in run.stdout + run.stderr, output(run)
    # The rows really went through SQLite, into the file the profile names.
    with contextlib.closing(sqlite3.connect(registered / "tables" / "warehouse.db")) as con:
        assert con.execute("SELECT id, score FROM scores ORDER BY id").fetchall() == [
            (1, 0.5),
            (2, 0.25),
            (3, 1.0),
        ]


def test_a_disabled_plugin_is_hidden_and_a_stack_using_it_fails_naming_the_adapter(
    clean_venv: CleanVenv, registered: Path
) -> None:
    disabled = {"LAMINA_DISABLE_PLUGINS": "sqlite"}
    listed = clean_venv.run("lamina", "plugins", "list", cwd=registered, env=disabled)
    assert listed.returncode == 0, output(listed)
    assert not any(r and r[0] == "sqlite" for r in rows_of(listed.stdout)), listed.stdout
    assert "disabled by LAMINA_DISABLE_PLUGINS: sqlite" in listed.stdout

    stacks = clean_venv.run("lamina", "stack", "list", cwd=registered, env=disabled)
    assert stacks.returncode == 0, output(stacks)
    row = next(r for r in rows_of(stacks.stdout) if "mysql" in r)
    assert row[2] != "ready", stacks.stdout

    run = clean_venv.run("python", "flow.py", "run", "--stack", "mysql", cwd=registered, env=disabled)
    assert run.returncode == 2, output(run)
    assert "'sqlite'" in run.stderr, output(run)
    assert "Installed data adapters: duckdb" in run.stderr, output(run)
    assert "Traceback" not in run.stderr
    assert not (registered / "tables").exists()


@pytest.fixture(scope="module")
def broken_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding an installed distribution whose plugin module raises on import."""
    source = tmp_path_factory.mktemp("broken-src")
    (source / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "lamina-broken"
            version = "0.0.1"

            [project.entry-points.lamina]
            broken = "lamina_broken"

            [tool.setuptools]
            py-modules = ["lamina_broken"]
            """
        )
    )
    (source / "lamina_broken.py").write_text('raise RuntimeError("the plugin cannot find its config")\n')
    wheel = build_wheel(source, tmp_path_factory.mktemp("broken-wheel"))
    target = tmp_path_factory.mktemp("broken-site")
    run_checked(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ]
    )
    return target


def test_a_plugin_that_fails_to_import_is_an_error_naming_it(
    clean_venv: CleanVenv, project: Path, broken_plugin: Path
) -> None:
    with_broken = {"PYTHONPATH": str(broken_plugin)}
    for command in (["plugins", "list"], ["stack", "list"]):
        result = clean_venv.run("lamina", *command, cwd=project, env=with_broken)
        assert result.returncode == 2, output(result)
        assert "plugin 'broken' from the distribution 'lamina-broken' failed to import" in result.stderr, (
            output(result)
        )
        assert "RuntimeError: the plugin cannot find its config" in result.stderr
        assert "LAMINA_DISABLE_PLUGINS=broken" in result.stderr
        assert "Traceback" not in result.stderr

    blocked = clean_venv.run(
        "lamina", "plugins", "list", cwd=project, env={**with_broken, "LAMINA_DISABLE_PLUGINS": "broken"}
    )
    assert blocked.returncode == 0, output(blocked)
    assert ["sqlite", "0.1.0", "data", "sqlite", "yes"] in rows_of(blocked.stdout)
