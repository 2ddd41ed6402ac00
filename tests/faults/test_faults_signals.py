"""Ctrl-C and SIGTERM stop a run cleanly: no orphan task, the run recorded interrupted, resume works."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fault_helpers import Driver, no_leftovers, wait_until


def _metadata(run_id: str) -> tuple[str, dict[str, list[str]]]:
    from lamina.client import Run

    run = Run(run_id)
    return run.status, {s.name: [t.status for t in s.tasks] for s in run.steps}


@pytest.mark.parametrize(
    "sig, code, to_group",
    [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)],
    ids=["ctrl-c-to-the-group", "sigterm-to-the-driver"],
)
def test_a_signal_stops_every_task_records_the_run_interrupted_and_resume_finishes_it(
    lamina_project: Path, sig: int, code: int, to_group: bool
) -> None:
    driver = Driver(lamina_project, "waiting.py", "--max-workers", "2", env={"HOLD": "0,1"})
    try:
        wait_until(lambda: driver.started("0") and driver.started("1"), what="two held tasks")
        if to_group:
            driver.signal_group(sig)  # what a terminal does on Ctrl-C
        else:
            driver.proc.send_signal(sig)
        assert driver.wait(60) == code, driver.output
        assert "Resume with" in driver.output and f"resume --origin-run-id {driver.run_id}" in driver.output
        assert "Traceback" not in driver.output
        no_leftovers(driver)
        status, steps = _metadata(driver.run_id)
        assert status == "interrupted"
        assert steps["start"] == ["succeeded"]
        assert set(steps["work"]) <= {"interrupted", "succeeded"} and "running" not in steps["work"]
    finally:
        driver.kill_leftovers()
    driver.release()
    assert driver.resume() == 0, driver.output
    from lamina.client import Flow

    latest = Flow("WaitingFlow").latest_run
    assert latest is not None and latest.status == "succeeded"
    assert latest["join"].task.data.squares == [0, 1, 4, 9]


def test_a_second_ctrl_c_stops_at_once(lamina_project: Path) -> None:
    driver = Driver(lamina_project, "waiting.py", "--max-workers", "2", env={"HOLD": "0,1"})
    try:
        wait_until(lambda: driver.started("0") and driver.started("1"), what="two held tasks")
        # tasks that ignore SIGTERM would hold the first Ctrl-C for their grace; the second ends it
        driver.signal_group(signal.SIGINT)
        driver.signal_group(signal.SIGINT)
        assert driver.wait(30) == 130, driver.output
        no_leftovers(driver)
    finally:
        driver.kill_leftovers()


def test_the_python_api_raises_run_interrupted(lamina_project: Path) -> None:
    """``run_flow`` in a script: SIGTERM gives ``RunInterrupted`` with the resume hint."""
    script = lamina_project / "script.py"
    flow = Path(__file__).parent / "flows" / "waiting.py"
    script.write_text(
        "import sys\nfrom lamina import run_flow\nfrom lamina.errors import RunInterrupted\n"
        f"try:\n    run_flow({str(flow)!r}, max_workers=2)\n"
        "except RunInterrupted as e:\n    print('caught', e.exit_code, e)\n    sys.exit(5)\n"
    )
    driver = Driver(lamina_project, "waiting.py", env={"HOLD": "0,1"})
    driver.proc.kill()
    driver.proc.wait()
    with open(driver.out, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=lamina_project,
            env=driver.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: driver.started("0") and driver.started("1"), what="two held tasks")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 5
        assert "caught 143" in driver.out.read_text()
        no_leftovers(driver)
    finally:
        driver.kill_leftovers()
