"""A task that segfaults, runs out of memory or fills its disk fails alone and cleanly: its output
and the other tasks' results are kept, nothing half-written is readable, and resume finishes."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_helpers import Driver, no_leftovers


@pytest.mark.parametrize(
    "crash, says",
    [
        ("segfault", "SIGSEGV"),
        ("memory", "MemoryError"),
        ("disk", "File too large"),
    ],
)
def test_a_crashing_task_fails_alone_and_resume_finishes_the_run(
    lamina_project: Path, crash: str, says: str
) -> None:
    driver = Driver(lamina_project, "waiting.py", "--max-workers", "2", env={"CRASH": crash})
    try:
        assert driver.wait(120) == 1, driver.output
        assert "Traceback (most recent call last)" not in driver.output.split("failed:")[0]
        no_leftovers(driver)
        from lamina import client

        client.use_store(None, None)
        run = client.Run(driver.run_id)
        assert run.status == "failed"
        crashed = run["work"]["1"]
        assert crashed.status == "failed" and says in (crashed.error or ""), crashed.error
        assert "work 1 started" in crashed.stdout  # printed before it died, stored all the same
        finished = [t for t in run["work"].tasks if t.successful]
        assert {t.id for t in finished} >= {"0"}
        assert all(t.data.square == int(t.id) ** 2 for t in finished)
        for t in finished:
            (driver.fault_dir / f"started-{t.id}").unlink()
        driver.env.pop("CRASH")
        assert driver.resume() == 0, driver.output
        for t in finished:
            assert not driver.started(t.id), f"finished task {t.id} ran again"
        client.use_store(None, None)
        latest = client.Flow("WaitingFlow").latest_run
        assert latest is not None and latest.status == "succeeded"
        assert latest["join"].task.data.squares == [0, 1, 4, 9]
    finally:
        driver.kill_leftovers()
