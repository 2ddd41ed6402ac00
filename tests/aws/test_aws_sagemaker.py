"""The ``sagemaker`` compute adapter: @resources onto ml.* instance types, unsatisfiable requests
refused before anything is submitted, the job it submits, cancel and logs on the emulator."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from lamina.adapter import unpack
from lamina.errors import ResourceUnsatisfiable
from lamina.hookspecs import AdapterContext
from lamina.models import Resources, TaskSpec
from lamina.plugins.aws.container import pack_spec
from lamina.plugins.aws.instance_types import largest, pick_instance_type
from lamina.plugins.aws.sagemaker_compute import SageMakerCompute, SageMakerSettings
from lamina.runtime.api import run_flow
from lamina.testing.aws import IMAGE, SAGEMAKER_ROLE, AwsEmulator

SHAPES = Path(__file__).parent / "flows" / "shapes.py"


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (Resources(), "ml.m5.large"),  # nothing asked: the profile's default
        (Resources(cpu=2, memory=8192), "ml.m5.large"),  # the default fits
        (Resources(cpu=4), "ml.c5.xlarge"),  # fewest vCPUs, then least memory
        (Resources(memory=30000), "ml.r5.xlarge"),  # 32 GiB at 4 vCPU beats ml.m5.2xlarge
        (Resources(cpu=36, memory=65536), "ml.c5.9xlarge"),
        (Resources(gpu=1), "ml.g4dn.xlarge"),
        (Resources(gpu=4, memory=200_000), "ml.p3.8xlarge"),
        (Resources(gpu=8, memory=1_000_000), "ml.p4d.24xlarge"),
    ],
)
def test_resources_pick_the_smallest_instance_type_that_fits(resources: Resources, expected: str) -> None:
    assert pick_instance_type("train", resources, "ml.m5.large").name == expected


def test_an_unsatisfiable_request_names_the_step_and_the_largest_offer() -> None:
    with pytest.raises(ResourceUnsatisfiable) as caught:
        pick_instance_type("train", Resources(gpu=16), "ml.m5.large")
    message = str(caught.value)
    assert "step 'train'" in message and "gpu=16" in message
    assert largest().name in message and "Lower the request" in message
    with pytest.raises(ResourceUnsatisfiable, match="16384 GiB"):
        pick_instance_type("train", Resources(disk=20000), "ml.m5.large")


def test_a_default_outside_the_table_is_used_as_given() -> None:
    assert pick_instance_type("s", Resources(), "ml.trn1.2xlarge").name == "ml.trn1.2xlarge"
    assert pick_instance_type("s", Resources(cpu=4), "ml.trn1.2xlarge").name == "ml.c5.xlarge"


def test_settings_refuse_a_bad_role_and_secret_environment() -> None:
    with pytest.raises(ValueError, match="IAM role ARN"):
        SageMakerSettings(role="lamina-role", image=IMAGE)
    with pytest.raises(ValueError, match="Secrets Manager"):
        SageMakerSettings(role=SAGEMAKER_ROLE, image=IMAGE, environment={"DB_PASSWORD": "x"})
    settings = SageMakerSettings(role=SAGEMAKER_ROLE, image=IMAGE, subnets="subnet-1, subnet-2")
    assert settings.subnets == ["subnet-1", "subnet-2"]


def test_the_task_spec_travels_in_short_container_arguments() -> None:
    spec = '{"stack": "' + "x" * 20_000 + '"}'
    chunks = pack_spec(spec)
    assert all(len(c) <= 256 and not c.startswith("-") for c in chunks)
    assert unpack(chunks) == json.loads(spec)


def _task(tmp_path: Path, **update: object) -> TaskSpec:
    stack = {
        "name": "aws-sagemaker",
        "layers": {"versioning": {"adapter": "s3", "bucket": "${LAMINA_S3_BUCKET}", "prefix": "lamina"}},
    }
    spec = TaskSpec(
        run_id="20261130T000000.000000.abcdef", flow_name="F", step="train", task_id="0",
        flow_file=str(tmp_path / "flow.py"), code_key="code/sha256/ab/cd.tar.gz", stack=stack,
    )  # fmt: skip
    return spec.model_copy(update=update)


def test_the_job_request_carries_everything_the_container_needs(
    aws_env: dict[str, str], tmp_path: Path
) -> None:
    settings = SageMakerSettings(
        role=SAGEMAKER_ROLE, image=IMAGE, subnets="subnet-1", security_group_ids="sg-1",
        secrets_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:s", environment={"MODE": "x"},
    )  # fmt: skip
    compute = SageMakerCompute(settings, AdapterContext(tmp_path, "aws-sagemaker", "sagemaker"))
    request = compute.request_for(_task(tmp_path, resources=Resources(cpu=8, disk=100), timeout=600))
    algo = request["AlgorithmSpecification"]
    assert algo["ContainerEntrypoint"] == ["python", "-m", "lamina.plugins.aws"]
    assert algo["ContainerArguments"][:3] == ["--secrets", settings.secrets_arn, "spec"]
    spec = TaskSpec.model_validate(unpack(algo["ContainerArguments"][3:]))
    assert spec.flow_file == "flow.py"  # inside the code package, not the driver's path
    assert spec.stack["layers"]["versioning"]["bucket"] == "lamina-emulated"  # resolved for the container
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.c5.2xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 100,
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 900}
    assert request["VpcConfig"] == {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}
    assert request["OutputDataConfig"] == {"S3OutputPath": "s3://lamina-emulated/lamina/sagemaker"}
    assert request["Environment"] == {"MODE": "x"}


def test_unsatisfiable_resources_fail_the_run_before_any_job(
    aws_env: dict[str, str], aws_emulator: AwsEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sagemaker = aws_emulator.client("sagemaker")
    before = len(sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"])
    from lamina.runtime.task import load_flow_class

    flow_cls = load_flow_class(str(SHAPES), "GreedyFlow", as_main=False)
    with pytest.raises(ResourceUnsatisfiable, match="step 'train'"):
        run_flow(flow_cls, stack="aws-sagemaker", echo=False)
    assert len(sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]) == before


def _slow_task_compute(
    aws_env: dict[str, str], aws_emulator: AwsEmulator, tmp_path: Path
) -> tuple[SageMakerCompute, str]:
    """Submit a job whose container sleeps, through the adapter, and wait until it runs."""
    settings = SageMakerSettings(role=SAGEMAKER_ROLE, image=IMAGE, poll_interval=0.1)
    compute = SageMakerCompute(settings, AdapterContext(tmp_path, "aws-sagemaker", "sagemaker"))
    task = _task(tmp_path, run_id=f"cancel-{time.time_ns()}")
    original = compute.request_for

    def sleeping(spec: TaskSpec) -> dict:
        request = original(spec)
        request["AlgorithmSpecification"]["ContainerEntrypoint"] = ["python", "-c"]
        request["AlgorithmSpecification"]["ContainerArguments"] = [
            "import time; print('working', flush=True); time.sleep(60)"
        ]
        return request

    compute.request_for = sleeping  # type: ignore[method-assign]
    handle = compute.compute_submit(task)
    assert aws_emulator.runner is not None
    deadline = time.monotonic() + 30
    while handle not in aws_emulator.runner.procs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handle in aws_emulator.runner.procs, "the job runner never started the job"
    return compute, handle


def test_cancel_stops_the_training_job(
    aws_env: dict[str, str], aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    compute, handle = _slow_task_compute(aws_env, aws_emulator, tmp_path)
    assert compute.compute_wait([handle], timeout=0.2) == []  # still running
    compute.compute_cancel(handle)
    compute.compute_cancel(handle)  # idempotent
    statuses = []
    deadline = time.monotonic() + 30
    while not statuses and time.monotonic() < deadline:
        statuses = compute.compute_wait([handle], timeout=1.0)
    assert [(s.handle, s.state) for s in statuses] == [(handle, "failed")]
    assert statuses[0].message.startswith("Stopped")
    described = aws_emulator.client("sagemaker").describe_training_job(TrainingJobName=handle)
    assert described["TrainingJobStatus"] == "Stopped"
    assert "working" in compute.compute_logs(handle)  # the job's CloudWatch stream
