"""Bad flows, options and metadata files are short errors (exit 2 for bad input, no traceback)
that name the step, parameter, option or file and say what to do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lamina import Run
from runtime_helpers import FLOWS, flow_cli

pytestmark = pytest.mark.usefixtures("lamina_project")

RESERVED = ["graph", "parameters", "next", "input", "index", "merge_artifacts", "resolve_parameters"]

STEP_NAMED = """from lamina import FlowSpec, step


class ReservedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.{name})

    @step
    def {name}(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ReservedFlow()
"""

PARAMETER_NAMED = """from lamina import FlowSpec, Parameter, step


class OptionFlow(FlowSpec):
    clash = Parameter("{name}", default="x")

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    OptionFlow()
"""


def python(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, timeout=120)


def lamina(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamina", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("name", RESERVED)
def test_a_step_named_like_a_flowspec_attribute_is_refused_by_show_check_and_run(
    tmp_path: Path, name: str
) -> None:
    flow = tmp_path / "reserved.py"
    flow.write_text(STEP_NAMED.format(name=name))
    for command in ("show", "check", "run"):
        result = python(flow, command)
        assert result.returncode == 2, (command, result.stderr)
        assert f"step {name!r} ({flow}:10) has the name of a FlowSpec attribute" in result.stderr
        assert "rename it" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "name", ["stack", "tag", "max-workers", "max_workers", "quiet", "run-id-file", "help"]
)
def test_a_parameter_named_like_a_builtin_option_is_refused(tmp_path: Path, name: str) -> None:
    flow = tmp_path / "option.py"
    flow.write_text(PARAMETER_NAMED.format(name=name))
    for command in ("run", "check"):
        result = python(flow, command)
        assert result.returncode == 2, result.stderr
        assert f"Parameter({name!r}) (attribute 'clash') would be the option --{name}" in result.stderr
        assert "rename the parameter" in result.stderr and "Traceback" not in result.stderr


def test_a_cycle_is_reported_as_a_cycle_naming_its_steps() -> None:
    for command in ("check", "run"):
        result = flow_cli("bad/cycle.py", command)
        assert result.returncode == 2
        assert (
            f"steps a -> b -> a form a cycle (b at {FLOWS / 'bad/cycle.py'}:15 goes back to 'a')"
            in result.stderr
        )
        assert "unreachable" not in result.stderr and "Traceback" not in result.stderr
    assert "form a cycle" in flow_cli("bad/cycle.py", "show").stdout


@pytest.mark.parametrize("value", ["-1", "0", "two"])
def test_max_workers_must_be_positive(value: str) -> None:
    result = flow_cli("dict_foreach.py", "run", "--max-workers", value, timeout=30)
    assert result.returncode == 2
    assert f"argument --max-workers: must be a whole number of at least 1, got {value!r}" in result.stderr
    assert "Traceback" not in result.stderr


def test_max_workers_must_be_positive_from_python(run_flow) -> None:
    from lamina.errors import ParameterError

    with pytest.raises(ParameterError, match="max_workers must be a whole number of at least 1"):
        run_flow(FLOWS / "dict_foreach.py", max_workers=0)


def test_foreach_over_a_dict_fans_out_over_its_keys(run_flow) -> None:
    outcome = run_flow(FLOWS / "dict_foreach.py")
    assert outcome.ok, outcome.message
    assert Run(outcome.run_id).data.lines == ["apple=3", "pear=5", "fig=7"]


def test_random_bytes_in_the_metadata_database_are_a_short_clear_error(
    run_flow, lamina_project: Path
) -> None:
    assert run_flow(FLOWS / "dict_foreach.py").ok
    db = lamina_project / ".lamina" / "metadata.db"
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    db.write_bytes(bytes(range(256)) * 80)
    for args in (("runs",), ("show", "DictForeachFlow/x")):
        result = lamina(*args)
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert f"{db} is not a Lamina metadata database" in result.stderr
        assert f"mv {db} {db}.damaged" in result.stderr and "`lamina sync DictForeachFlow`" in result.stderr


def test_an_emptied_metadata_database_says_lamina_sync_rebuilds_it(run_flow, lamina_project: Path) -> None:
    run_id = run_flow(FLOWS / "dict_foreach.py").run_id
    for path in (lamina_project / ".lamina").glob("metadata.db*"):
        path.unlink()
    listed = lamina("runs")
    assert listed.returncode == 0
    assert "no runs" in listed.stdout and "`lamina sync DictForeachFlow`" in listed.stdout
    shown = lamina("show", run_id)
    assert shown.returncode == 1 and "Traceback" not in shown.stderr
    assert f"`lamina sync DictForeachFlow/{run_id}` indexes it" in shown.stderr
    assert lamina("sync", "DictForeachFlow").returncode == 0
    assert [r["id"] for r in json.loads(lamina("runs", "--json").stdout)] == [run_id]
