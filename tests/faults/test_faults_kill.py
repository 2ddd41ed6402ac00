"""The driver is SIGKILLed at each stage of a run: nothing finished is lost, nothing is left
running, the run is shown killed once its heartbeat stops, and resume finishes it correctly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fault_helpers import Driver, no_leftovers, wait_until

FAST_HEARTBEAT = {"LAMINA_HEARTBEAT_INTERVAL": "0.2", "LAMINA_HEARTBEAT_STALE": "1.5"}


def lamina(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamina", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, **FAST_HEARTBEAT},
        timeout=60,
    )


def listed_status(project: Path, run_id: str) -> str | None:
    listed = lamina(project, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    return next((r["status"] for r in json.loads(listed.stdout) if r["id"] == run_id), None)


def check_killed_then_resume(driver: Driver, project: Path, done_before: set[str]) -> None:
    no_leftovers(driver)
    run_id = driver.run_id
    wait_until(lambda: listed_status(project, run_id) == "killed", 20, "the run to be shown killed")
    shown = lamina(project, "show", run_id)
    assert shown.returncode == 0 and "killed" in shown.stdout, shown.stdout + shown.stderr
    from lamina import client

    client.use_store(None, None)
    os.environ["LAMINA_HEARTBEAT_STALE"] = FAST_HEARTBEAT["LAMINA_HEARTBEAT_STALE"]
    try:
        run = client.Run(run_id)
        statuses = [t.status for s in run.steps for t in s.tasks]
    finally:
        del os.environ["LAMINA_HEARTBEAT_STALE"]
    assert run.status == "killed" and "running" not in statuses
    for name in done_before:  # finished before the kill: resume must reuse them, not run them again
        (driver.fault_dir / f"started-{name}").unlink()
    driver.release()
    assert driver.resume() == 0, driver.output
    for name in done_before:
        assert not driver.started(name), f"task {name} ran again though it had finished"
    client.use_store(None, None)
    latest = client.Flow("WaitingFlow").latest_run
    assert latest is not None and latest.id != run_id and latest.status == "succeeded"
    assert latest["join"].task.data.squares == [i * i for i in range(4)]


def test_killed_before_its_first_task_the_run_is_listed_from_the_moment_its_id_is_shown(
    lamina_project: Path,
) -> None:
    driver = Driver(lamina_project, "waiting.py", env={**FAST_HEARTBEAT, "HOLD_START": "1"})
    try:
        wait_until(lambda: " · run " in driver.output, what="the run id")
        driver.signal_group(signal.SIGKILL)  # the whole job: driver and warm worker at once
        driver.wait()
        assert listed_status(lamina_project, driver.run_id) in ("running", "killed")
        check_killed_then_resume(driver, lamina_project, set())
    finally:
        driver.kill_leftovers()


@pytest.mark.parametrize("whom", ["driver", "group"])
def test_killed_mid_foreach_keeps_every_finished_task(lamina_project: Path, whom: str) -> None:
    driver = Driver(lamina_project, "waiting.py", "--max-workers", "2", env={**FAST_HEARTBEAT, "HOLD": "2,3"})
    try:
        wait_until(lambda: driver.started("2") and driver.started("3"), what="the held tasks")
        if whom == "driver":
            driver.proc.kill()  # the warm worker sees its pipe close and stops the tasks
        else:
            driver.signal_group(signal.SIGKILL)  # the tasks die with their worker (PDEATHSIG)
        driver.wait()
        check_killed_then_resume(driver, lamina_project, {"0", "1"})
    finally:
        driver.kill_leftovers()


def test_killed_during_an_artifact_write_leaves_nothing_readable_half_written(lamina_project: Path) -> None:
    driver = Driver(lamina_project, "waiting.py", "--max-workers", "2", env={**FAST_HEARTBEAT, "BIG": "200"})
    blobs = lamina_project / ".lamina"
    try:
        wait_until(lambda: driver.started("0"), what="the tasks that write 200 MB")
        wait_until(
            lambda: (
                any(name.endswith(".tmp") for _, _, names in os.walk(blobs) for name in names)
                or driver.proc.poll() is not None
            ),
            what="an artifact being written",
        )
        driver.signal_group(signal.SIGKILL)
        driver.wait()
        no_leftovers(driver)
        wait_until(lambda: listed_status(lamina_project, driver.run_id) == "killed", 20, "killed")
        driver.env.pop("BIG")
        driver.release()
        assert driver.resume() == 0, driver.output
        from lamina import client

        client.use_store(None, None)
        latest = client.Flow("WaitingFlow").latest_run
        assert latest is not None and latest.status == "succeeded"
        assert latest["join"].task.data.squares == [i * i for i in range(4)]
    finally:
        driver.kill_leftovers()


def test_killed_during_metadata_commits_the_database_stays_whole(lamina_project: Path) -> None:
    """A wide foreach of quick tasks commits batches all the time; kill in the middle of it."""
    driver = Driver(lamina_project, "waiting.py", "--width", "60", "--max-workers", "2", env=FAST_HEARTBEAT)
    try:
        wait_until(lambda: driver.started("20"), what="a third of the tasks")
        driver.signal_group(signal.SIGKILL)
        driver.wait()
        no_leftovers(driver)
        wait_until(lambda: listed_status(lamina_project, driver.run_id) == "killed", 20, "killed")
        resumed = driver._start("resume", "--origin-run-id", driver.run_id, "--width", "60")
        assert resumed.wait(120) == 0, driver.output
        from lamina import client

        client.use_store(None, None)
        latest = client.Flow("WaitingFlow").latest_run
        assert latest is not None and latest.status == "succeeded"
        assert latest["join"].task.data.squares == [i * i for i in range(60)]
    finally:
        driver.kill_leftovers()
