"""Deployed flows really run on the emulated AWS stack: deploy, then `lamina trigger --wait`
follows the Step Functions execution to its end, prints what `run` prints, and indexes the run
so `lamina runs` and the client see it with no separate sync."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FLOW_DIR = Path(__file__).parent / "flows" / "deployed"
pytestmark = pytest.mark.slow


def lamina(*args: str, cwd: Path, flow: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "flow.py", *args] if flow else [sys.executable, "-m", "lamina", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def printed(output: str) -> list[str]:
    """What the tasks printed, without run ids, timings and the order tasks ran in."""
    return sorted(line for line in output.splitlines() if re.match(r"^\[\w+/[\d.]+( attempt \d+)?\] ", line))


def test_a_deployed_flow_runs_end_to_end_and_is_indexed(tmp_path: Path, aws_env: dict[str, str]) -> None:
    project = tmp_path / "project"
    shutil.copytree(FLOW_DIR, project)
    (project / ".lamina").mkdir()
    local = lamina("run", "--stack", "local", "--scale", "3", cwd=project, flow=True)
    assert local.returncode == 0, local.stderr

    deployed = lamina("deploy", "--stack", "aws-sagemaker", cwd=project, flow=True)
    assert deployed.returncode == 0, deployed.stderr
    assert "deployed DeployedFlow to arn:aws:states:" in deployed.stdout
    runs_before = lamina("runs", "DeployedFlow", "--stack", "aws-sagemaker", "--json", cwd=project)
    assert runs_before.stdout.count('"id"') == 1, "deploy starts no run (the one listed is the local run)"

    follow = lamina(
        "trigger", "DeployedFlow", "--stack", "aws-sagemaker", "--param", "scale=3", "--wait", cwd=project
    )
    assert follow.returncode == 0, follow.stdout + follow.stderr
    run_id = re.search(r"started DeployedFlow run (\S+) on stack aws-sagemaker", follow.stdout).group(1)
    assert f"run {run_id} succeeded" in follow.stdout
    assert "✓ square/2" in follow.stdout and "✗ right/0" in follow.stdout, "each task, the failed attempt too"
    assert printed(follow.stdout + follow.stderr) == printed(local.stdout + local.stderr)

    listed = lamina("runs", "DeployedFlow", "--stack", "aws-sagemaker", cwd=project)
    assert run_id in listed.stdout and "succeeded" in listed.stdout
    probe = (
        "from lamina import Flow; run = Flow('DeployedFlow').latest_run; "
        "print(run.id, run.successful, run.data.values, run['end'].task.data.sides)"
    )
    client = subprocess.run(
        [sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, timeout=120,
        env={**aws_env, "PATH": "/usr/bin:/bin", "LAMINA_STACK": "aws-sagemaker",
             **{k: v for k, v in __import__("os").environ.items() if k in ("HOME", "LAMINA_CONFIG_DIR", "VIRTUAL_ENV")}},
    )  # fmt: skip
    assert client.returncode == 0, client.stderr
    assert client.stdout.split() == [run_id, "True", "[3,", "12,", "27]", "['left',", "'right']"]


def _wait_for(project: Path, flow: str, run_id: str, branch: str | None = None) -> str:
    import os
    import time

    from lamina.stack import resolve_stack

    here = os.getcwd()
    os.chdir(project)
    try:
        with resolve_stack("aws-sagemaker") as stack:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                state = stack.orchestration.status(flow, run_id, branch)
                if state.status != "running":
                    return state.status
                time.sleep(0.5)
    finally:
        os.chdir(here)
    raise AssertionError(f"{flow}/{run_id} still runs")


def test_trigger_without_wait_says_how_to_follow_and_a_failed_run_exits_non_zero(
    tmp_path: Path, aws_env: dict[str, str]
) -> None:
    project = tmp_path / "project"
    shutil.copytree(FLOW_DIR, project)
    (project / ".lamina").mkdir()
    assert lamina("deploy", "--stack", "aws-sagemaker", cwd=project, flow=True).returncode == 0
    started = lamina("trigger", "DeployedFlow", "--stack", "aws-sagemaker", cwd=project)
    assert started.returncode == 0 and "lamina sync DeployedFlow/" in started.stdout
    run_id = started.stdout.split(" run ", 1)[1].split()[0]
    _wait_for(project, "DeployedFlow", run_id)  # it runs on: let it end before other tests count jobs
    bad = lamina("trigger", "DeployedFlow", "--stack", "aws-sagemaker", "--param", "scale=x", cwd=project)
    assert bad.returncode == 2 and "not a valid int" in bad.stderr and "Traceback" not in bad.stderr


def test_two_branches_of_a_project_deploy_side_by_side_and_compare(tmp_path: Path, aws_env: dict[str, str]) -> None:
    project = tmp_path / "project"
    shutil.copytree(Path(__file__).parent / "flows" / "project", project)
    (project / ".lamina").mkdir()
    for branch in (["--production"], ["--branch", "experiment"]):
        done = lamina("deploy", "--stack", "aws-sagemaker", *branch, cwd=project, flow=True)
        assert done.returncode == 0, done.stderr
    listed = lamina("deployments", "--stack", "aws-sagemaker", "--json", cwd=project)
    deployments = __import__("json").loads(listed.stdout)
    assert {(d["flow_name"], d["project"], d["branch"]) for d in deployments} >= {
        ("ChurnFlow", "churn", "prod"), ("ChurnFlow", "churn", "experiment")
    }
    assert len({d["target"] for d in deployments if d["flow_name"] == "ChurnFlow"}) == 2, "one state machine each"
    prod = lamina("trigger", "ChurnFlow", "--stack", "aws-sagemaker", "--branch", "prod", "--wait", cwd=project)
    exp = lamina("trigger", "ChurnFlow", "--stack", "aws-sagemaker", "--branch", "experiment",
                 "--param", "threshold=0.8", "--wait", cwd=project)  # fmt: skip
    assert prod.returncode == 0 and exp.returncode == 0, prod.stdout + exp.stdout + exp.stderr
    assert "positives 2" in prod.stdout and "positives 1" in exp.stdout
    on_prod = lamina("runs", "ChurnFlow", "--stack", "aws-sagemaker", "--branch", "prod", cwd=project)
    assert on_prod.stdout.count("ChurnFlow ") == 1 and "branch:prod" in on_prod.stdout
    compared = lamina("compare", "ChurnFlow@prod", "ChurnFlow@experiment", "--stack", "aws-sagemaker", "--json",
                      cwd=project)  # fmt: skip
    assert compared.returncode == 0, compared.stderr
    diff = __import__("json").loads(compared.stdout)
    assert diff["params"]["threshold"] == [0.5, 0.8] and diff["artifacts"]["positives"] == [2, 1]
    removed = lamina("deploy", "--stack", "aws-sagemaker", "--branch", "experiment", "--delete", cwd=project, flow=True)
    assert removed.returncode == 0 and "branch experiment" in removed.stdout
    again = lamina("trigger", "ChurnFlow", "--stack", "aws-sagemaker", "--branch", "experiment", cwd=project)
    assert again.returncode != 0 and "not deployed on branch experiment" in again.stderr
    assert "ChurnFlow (branch prod)" in again.stderr, "the error says what is deployed"
