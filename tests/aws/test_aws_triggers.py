"""Triggers from business systems on the emulated AWS stack: a published event starts a @trigger
flow, an upstream flow's successful deployed run starts a @trigger_on_finish flow, and a
@schedule's tick starts its flow; each run sees what started it as current.trigger. moto's
EventBridge can neither target a state machine nor fire schedules: the emulator delivers the
events and ticks to the rules' own targets (StartExecution with the rule's input transformer)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lamina.testing.aws import AwsEmulator

FLOWS = Path(__file__).parent / "flows" / "triggers"
pytestmark = pytest.mark.slow


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def end_artifacts(cwd: Path, flow: str, timeout: float = 240) -> tuple[str, dict[str, Any]]:
    """Wait for a deployed run of ``flow`` to store its end record; its run id and artifacts."""
    import os

    from lamina.stack import resolve_stack
    from lamina.versioning.artifacts import ArtifactStore
    from lamina.versioning.runstore import RunStore

    here = os.getcwd()
    os.chdir(cwd)
    try:
        with resolve_stack("aws-sagemaker") as stack:
            runs, store = RunStore(stack.versioning), ArtifactStore(stack.versioning, cache_dir=cwd / "cache")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for run_id in runs.run_ids(flow):
                    record = runs.latest_record(flow, run_id, "end", "0")
                    if record is not None and record.ok:
                        return run_id, {n: store.load(r) for n, r in record.artifacts.items()}
                time.sleep(0.5)
    finally:
        os.chdir(here)
    raise AssertionError(f"no run of {flow} finished within {timeout:g} s")


@pytest.fixture
def project(tmp_path: Path, aws_env: dict[str, str]) -> Path:
    dest = tmp_path / "project"
    shutil.copytree(FLOWS, dest)
    (dest / ".lamina").mkdir()
    return dest


def test_a_published_event_starts_the_flow_and_the_run_sees_its_payload(project: Path) -> None:
    dry = run("orders.py", "deploy", "--stack", "aws-sagemaker", "--dry-run", cwd=project)
    assert dry.returncode == 0 and "EventBridge rule" in dry.stderr and "(event orders_updated)" in dry.stderr
    assert run("orders.py", "deploy", "--stack", "aws-sagemaker", cwd=project).returncode == 0
    published = run("-m", "lamina", "event", "publish", "orders_updated", "--payload", '{"rows": 10}',
                    "--stack", "aws-sagemaker", cwd=project)  # fmt: skip
    assert published.returncode == 0, published.stderr
    run_id, artifacts = end_artifacts(project, "OrdersFlow")
    assert artifacts["seen"] == {"rows": 10}
    # no one followed this run: `lamina runs FLOW` indexes it from the blob store when asked
    listed = run("-m", "lamina", "runs", "OrdersFlow", "--all", "--stack", "aws-sagemaker", cwd=project)
    assert run_id in listed.stdout and "deployment:OrdersFlow" in listed.stdout, "an event's run is the deployment's"
    bad = run("-m", "lamina", "event", "publish", "x", "--payload", "[1]", "--stack", "aws-sagemaker", cwd=project)
    assert bad.returncode == 2 and "JSON object" in bad.stderr


def test_an_upstream_run_succeeding_starts_the_downstream_flow(project: Path) -> None:
    for name in ("upstream.py", "downstream.py"):
        assert run(name, "deploy", "--stack", "aws-sagemaker", cwd=project).returncode == 0
    upstream = run("-m", "lamina", "trigger", "UpstreamFlow", "--stack", "aws-sagemaker", "--wait", cwd=project)
    assert upstream.returncode == 0, upstream.stdout + upstream.stderr
    upstream_run = upstream.stdout.split(" run ", 1)[1].split()[0]
    _, artifacts = end_artifacts(project, "DownstreamFlow")
    assert artifacts["upstream"] == ["run", "UpstreamFlow", upstream_run]


def test_a_schedule_tick_starts_the_flow(project: Path, aws_emulator: AwsEmulator) -> None:
    deployed = run("nightly.py", "deploy", "--stack", "aws-sagemaker", cwd=project)
    assert deployed.returncode == 0 and "on schedule cron(0 3 * * ? *)" in deployed.stdout
    rules = aws_emulator.client("events").list_rules()["Rules"]
    rule = next(r for r in rules if r["Name"].endswith("NightlyFlow-schedule"))
    assert rule["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert aws_emulator.events is not None
    aws_emulator.events.tick(rule["Name"])
    _, artifacts = end_artifacts(project, "NightlyFlow")
    assert artifacts["kind"] == ["schedule", "cron(0 3 * * ? *)"]
    assert json.loads(aws_emulator.client("events").list_targets_by_rule(Rule=rule["Name"])["Targets"][0]["Input"])[
        "user"
    ] == "deployment:NightlyFlow"
