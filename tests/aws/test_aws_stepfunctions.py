"""Step Functions: ``deploy`` compiles a flow into a state machine that moto accepts (read back
and checked per task kind), updates it idempotently, schedules it, and ``lamina trigger`` starts
it; a deployed task finds the same inputs the scheduler would give it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lamina.cli.main import main as lamina_main
from lamina.errors import LaminaError, ParameterError, ResourceUnsatisfiable
from lamina.plugins.aws.asl import S3_GET, SAGEMAKER_SYNC, task_states, to_aws_schedule
from lamina.runtime.deploy import deploy_flow
from lamina.runtime.task import load_flow_class
from lamina.testing import OrchestrationSuite
from lamina.testing.aws import AwsEmulator

FLOWS = Path(__file__).parent / "flows"
SHAPES = FLOWS / "shapes.py"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_env: dict[str, str]) -> Path:
    (tmp_path / ".lamina").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAMINA_CONFIG_DIR", str(tmp_path / "user-config"))
    monkeypatch.setenv("LAMINA_SFN_WAIT", "sync")  # these tests read the .sync form real AWS runs
    return tmp_path


def deploy(name: str, **options: Any) -> Any:
    flow_cls = load_flow_class(str(SHAPES), name, as_main=False)
    return deploy_flow(flow_cls, str(SHAPES), stack="aws-sagemaker", **options)


def read_back(emulator: AwsEmulator, arn: str) -> dict[str, Any]:
    described = emulator.client("stepfunctions").describe_state_machine(stateMachineArn=arn)
    return json.loads(described["definition"])


def training_tasks(states: dict[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in states.items() if s.get("Resource") == SAGEMAKER_SYNC}


def test_linear_flow_is_a_chain_of_training_jobs(project: Path, aws_emulator: AwsEmulator) -> None:
    result = deploy("LinearFlow")
    definition = read_back(aws_emulator, result.target)
    states = definition["States"]
    tasks = training_tasks(states)
    assert list(tasks) == ["start", "double", "end"]
    assert (tasks["start"]["Next"], tasks["double"]["Next"], tasks["end"].get("End")) == (
        "double",
        "end",
        True,
    )
    assert tasks["double"]["Retry"][0]["MaxAttempts"] == 2  # @retry(times=2)
    params = tasks["double"]["Parameters"]
    assert params["AlgorithmSpecification"]["ContainerEntrypoint"] == ["python", "-m", "lamina.plugins.aws"]
    arguments = params["AlgorithmSpecification"]["ContainerArguments.$"]
    assert "'deployed'" in arguments and "'--step', 'double'" in arguments and "$.lamina.run_id" in arguments
    assert params["RoleArn"].endswith(":role/lamina-sagemaker")
    # the parameters and the run's manifest are saved where tasks and sync read them, before the first step
    assert (states["Save parameters"]["Next"], states["Save manifest"]["Next"], states["Run"]["Next"]) == (
        "Manifest", "Run", "start"
    )
    assert states["Default parameters"]["Parameters"] == {
        "parameters": {"size": 3}, "user": "deployment:LinearFlow", "trigger": None
    }


def test_static_branch_is_a_parallel_state(project: Path, aws_emulator: AwsEmulator) -> None:
    definition = read_back(aws_emulator, deploy("BranchFlow").target)
    states = definition["States"]
    parallel = states["start: branches"]
    assert parallel["Type"] == "Parallel" and states["start"]["Next"] == "start: branches"
    branches = {b["StartAt"]: b["States"] for b in parallel["Branches"]}
    assert set(branches) == {"left", "right"}
    assert all(b[name]["Resource"] == SAGEMAKER_SYNC and b[name]["End"] for name, b in branches.items())
    assert parallel["Next"] == "join" and training_tasks(states)["join"]["Next"] == "end"
    # @resources(memory=30000) on one branch picks its instance type
    left = branches["left"]["left"]["Parameters"]["ResourceConfig"]["InstanceType"]
    right = branches["right"]["right"]["Parameters"]["ResourceConfig"]["InstanceType"]
    assert (left, right) == ("ml.r5.xlarge", "ml.m5.large")


def test_foreach_is_a_map_over_the_recorded_count(project: Path, aws_emulator: AwsEmulator) -> None:
    definition = read_back(aws_emulator, deploy("ForeachFlow").target)
    states = definition["States"]
    assert states["start"]["Next"] == "start: count"
    count = states["start: count"]
    assert count["Resource"] == S3_GET and "record.json" in count["Parameters"]["Key.$"]
    assert states["start: fan-out"]["Next"] == "start: foreach"
    each = states["start: foreach"]
    assert each["Type"] == "Map" and each["Next"] == "join"
    body = each["ItemProcessor"]["States"]
    assert list(training_tasks(body)) == ["each"] and body["each"]["End"]
    frame_args = body["each"]["Parameters"]["AlgorithmSpecification"]["ContainerArguments.$"]
    assert "'--frame', $.lamina.f0" in frame_args
    assert "'start:{}:{}'" in each["ItemSelector"]["lamina"]["f0.$"]  # step:index:count per item


def test_nested_foreach_in_a_branch_compiles(project: Path) -> None:
    flow_cls = load_flow_class(str(FLOWS / "aws_train_flow.py"), as_main=False)
    result = deploy_flow(flow_cls, str(FLOWS / "aws_train_flow.py"), stack="aws-sagemaker", dry_run=True)
    assert isinstance(result.definition, dict)
    states = task_states(result.definition)
    assert states["start: branches"]["Type"] == "Parallel"
    assert states["features: foreach"]["Type"] == "Map"
    assert set(training_tasks(states)) == {"start", "features", "fit", "choose", "summary", "merge", "end"}


def test_deploying_twice_updates_one_state_machine(project: Path, aws_emulator: AwsEmulator) -> None:
    first = deploy("LinearFlow")
    second = deploy("LinearFlow")
    assert first.target == second.target
    machines = aws_emulator.client("stepfunctions").list_state_machines()["stateMachines"]
    assert [m["name"] for m in machines].count("lamina-LinearFlow") == 1


def test_schedule_becomes_an_eventbridge_rule_and_goes_away(project: Path, aws_emulator: AwsEmulator) -> None:
    result = deploy("LinearFlow", schedule="30 6 * * 1-5")
    assert result.schedule == "cron(30 6 ? * 2-6 *)"
    events = aws_emulator.client("events")
    rule = events.describe_rule(Name="lamina-LinearFlow-schedule")
    assert rule["ScheduleExpression"] == "cron(30 6 ? * 2-6 *)"
    target = events.list_targets_by_rule(Rule="lamina-LinearFlow-schedule")["Targets"][0]
    assert target["Arn"] == result.target and json.loads(target["Input"]) == {
        "parameters": {"size": 3},
        "user": "deployment:LinearFlow",
        "trigger": {"type": "schedule", "name": result.schedule},
    }
    deploy("LinearFlow")  # deployed again without a schedule: the schedule is removed
    assert "lamina-LinearFlow-schedule" not in [r["Name"] for r in events.list_rules()["Rules"]]


def test_cron_conversion() -> None:
    assert to_aws_schedule("0 3 * * *") == "cron(0 3 * * ? *)"
    assert to_aws_schedule("0 3 1 * *") == "cron(0 3 1 * ? *)"
    assert to_aws_schedule("0 0 * * 0,6") == "cron(0 0 ? * 1,7 *)"
    assert to_aws_schedule("rate(1 day)") == "rate(1 day)"
    with pytest.raises(ValueError, match="five fields"):
        to_aws_schedule("every day")


def test_dry_run_prints_the_definition_and_creates_nothing(project: Path, aws_emulator: AwsEmulator) -> None:
    s3, sfn = aws_emulator.client("s3"), aws_emulator.client("stepfunctions")

    def state() -> tuple[int, list[str]]:
        stored = int(s3.list_objects_v2(Bucket="lamina-emulated", Prefix="lamina/").get("KeyCount", 0))
        machines = sorted(m["name"] for m in sfn.list_state_machines()["stateMachines"])
        return stored, machines

    before = state()
    proc = subprocess.run(
        [sys.executable, str(FLOWS / "aws_train_flow.py"), "deploy", "--stack", "aws-sagemaker", "--dry-run"],
        env=dict(os.environ), capture_output=True, text=True, timeout=120, cwd=project,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    definition = json.loads(proc.stdout)
    assert definition["StartAt"] == "Input" and "fit" in task_states(definition)
    assert state() == before  # no code package, no template, no state machine


def test_unsatisfiable_resources_stop_a_deploy_before_anything_is_created(
    project: Path, aws_emulator: AwsEmulator
) -> None:
    with pytest.raises(ResourceUnsatisfiable, match="step 'train'"):
        deploy("GreedyFlow")
    machines = aws_emulator.client("stepfunctions").list_state_machines()["stateMachines"]
    assert "lamina-GreedyFlow" not in [m["name"] for m in machines]


def test_trigger_starts_an_execution_named_by_the_run_id(
    project: Path, aws_emulator: AwsEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy("LinearFlow")
    assert lamina_main(["trigger", "LinearFlow", "--stack", "aws-sagemaker", "--param", "size=5"]) == 0
    out = capsys.readouterr().out
    run_id = out.split(" run ", 1)[1].split()[0]  # "started LinearFlow run RUN_ID on stack ..."
    sfn = aws_emulator.client("stepfunctions")
    machine = next(m for m in sfn.list_state_machines()["stateMachines"] if m["name"].endswith("LinearFlow"))
    arn = machine["stateMachineArn"].replace(":stateMachine:", ":execution:") + f":{run_id}"
    execution = sfn.describe_execution(executionArn=arn)
    given = json.loads(execution["input"])
    assert given["parameters"] == {"size": 5}  # converted to the declared int
    assert given["user"] and given["trigger"] is None  # the run is the triggering user's
    assert execution["name"] == run_id
    from lamina.stack import resolve_stack

    with resolve_stack("aws-sagemaker") as stack:  # the contract: trigger returns the run id, status follows it
        assert stack.orchestration.status("LinearFlow", run_id).run_id == run_id
    with pytest.raises(ParameterError, match="no parameter 'colour'"):
        from lamina.stack import resolve_stack

        with resolve_stack("aws-sagemaker") as stack:
            stack.orchestration.trigger("LinearFlow", {"colour": "red"})
    assert lamina_main(["trigger", "NeverDeployed", "--stack", "aws-sagemaker"]) != 0
    assert "not deployed" in capsys.readouterr().err


def test_step_functions_needs_sagemaker_compute(project: Path) -> None:
    from lamina.plugins.aws.stepfunctions import StepFunctionsOrchestration, StepFunctionsSettings

    adapter = StepFunctionsOrchestration(StepFunctionsSettings(role="arn:aws:iam::123456789012:role/x"), None)  # type: ignore[arg-type]
    flow = {
        "name": "F",
        "steps": {},
        "stack": {
            "name": "mixed",
            "layers": {"compute": {"adapter": "local"}, "versioning": {"adapter": "s3", "bucket": "b-1"}},
        },
    }
    with pytest.raises(LaminaError, match="SageMaker training job"):
        adapter.compile(flow)


class TestStepFunctionsConformance(OrchestrationSuite):
    """The orchestration contract on the emulated stack, where state machines are compiled in
    the describe-wait-choice loop form (``wait = "poll"``) that moto executes, each job run by the
    emulator's job runner."""

    @pytest.fixture
    def orchestration_stack(self, aws_env: dict[str, str]) -> str:
        return "aws-sagemaker"
