"""``lamina runs | show | logs | compare | code`` read runs back, as tables and as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "quickstart" / "flow.py"


def lamina(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamina", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def two_runs(run_flow) -> tuple[str, str]:
    a = run_flow(EXAMPLE, {"count": 2})
    b = run_flow(EXAMPLE, {"count": 3}, tags=["candidate"])
    assert a.ok and b.ok
    return a.run_id, b.run_id


def test_runs_lists_newest_first_with_filters(two_runs: tuple[str, str]) -> None:
    a, b = two_runs
    listed = json.loads(lamina("runs", "QuickstartFlow", "--json").stdout)
    assert [r["id"] for r in listed] == [b, a]
    assert all(r["status"] == "succeeded" for r in listed)
    tagged = json.loads(lamina("runs", "--tag", "candidate", "--json").stdout)
    assert [r["id"] for r in tagged] == [b]
    table = lamina("runs").stdout
    assert "QuickstartFlow" in table and b in table and "candidate" in table


def test_show_a_run_a_step_and_a_task(two_runs: tuple[str, str]) -> None:
    _, b = two_runs
    text = lamina("show", f"QuickstartFlow/{b}").stdout
    assert "succeeded" in text and "count=3" in text
    assert any(line.split()[:3] == ["square", "3", "3"] for line in text.splitlines())  # 3 tasks, 3 ok
    assert "squares" in text  # an artifact of end, with its value
    data = json.loads(lamina("show", b, "--json").stdout)
    assert data["params"] == {"greeting": "Hello", "count": 3} and data["tags"] == ["candidate"]
    assert data["steps"]["square"] == ["succeeded"] * 3
    task = json.loads(lamina("show", f"{b}/square/2", "--json").stdout)
    assert task[0]["metrics"] == {"square": [9.0]}
    assert task[0]["inputs"] == ["gather/0/0"]
    missing = lamina("show", "20000101T000000.000000.abcdef")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr


def test_logs_print_what_tasks_printed(two_runs: tuple[str, str]) -> None:
    _, b = two_runs
    out = lamina("logs", f"{b}/square").stdout
    assert "3 squared is 9" in out and "--- QuickstartFlow/" in out
    one = lamina("logs", f"{b}/square/0", "--stream", "stdout").stdout
    assert one.strip() == "1 squared is 1"


def test_compare_shows_what_differs(two_runs: tuple[str, str]) -> None:
    a, b = two_runs
    diff = json.loads(lamina("compare", a, b, "--json").stdout)
    assert diff["params"] == {"count": [2, 3]}
    assert "squares" in diff["artifacts"] and "messages" not in diff["artifacts"]
    assert "square" in diff["metrics"]
    text = lamina("compare", a, b).stdout
    assert "params that differ" in text and "count" in text


def test_code_restores_the_flow_a_run_ran_with(two_runs: tuple[str, str], tmp_path: Path) -> None:
    _, b = two_runs
    dest = tmp_path / "restored"
    result = lamina("code", b, str(dest))
    assert result.returncode == 0, result.stderr
    assert (dest / "flow.py").read_text() == EXAMPLE.read_text()
    again = lamina("code", b, str(dest))
    assert again.returncode != 0 and "Traceback" not in again.stderr  # never overwrites silently
