"""The ``sagemaker`` compute adapter: one task is one SageMaker training job.

The job's container (the profile's ``image``, which must have Lamina and the flow's
dependencies installed) runs Lamina's task entry point through
:mod:`lamina.plugins.aws.container`; the spec travels in ``ContainerArguments`` and the code
package through the blob store (S3), where the scheduler already put it (``TaskSpec.code_key``).
The job's role must be able to read and write the versioning bucket.

Jobs are created with the SageMaker Python SDK v3's resource layer
(``sagemaker.core.resources.TrainingJob``), the layer underneath ``sagemaker.train.ModelTrainer``.
``ModelTrainer`` itself cannot run a given command: with ``source_code`` it always sets the
container entry point to its own ``sm_train.sh`` driver, uploaded as an extra input channel, and
without it the image's entry point runs. ``TrainingJob.create`` takes the
``AlgorithmSpecification`` (``ContainerEntrypoint``, ``ContainerArguments``) as is.

``@resources`` picks an instance type from :mod:`lamina.plugins.aws.instance_types` (the
profile's ``instance_type`` when it fits); a request no type meets fails in
:meth:`SageMakerCompute.compute_validate`, before anything is submitted. ``disk`` sizes the EBS
volume; ``@timeout`` becomes the job's ``MaxRuntimeInSeconds``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from typing import Any

from lamina.adapter import remote_snapshot
from lamina.errors import LaminaError
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import AdapterInfo, AdapterSettings, CheckResult, Resources, TaskSpec, TaskStatus
from lamina.redaction import refuse_secret_names
from pydantic import Field, field_validator

from . import _aws
from .container import pack_spec
from .instance_types import pick_instance_type, volume_size

ADAPTER_NAME = "sagemaker"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
ENTRY_MODULE = "lamina.plugins.aws"
"""``python -m lamina.plugins.aws`` runs :func:`lamina.plugins.aws.container.main`."""
_TERMINAL = {"Completed": "succeeded", "Failed": "failed", "Stopped": "failed"}
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class SageMakerSettings(AdapterSettings):
    """Settings of the ``sagemaker`` compute adapter (the ``[compute]`` table of a profile)."""

    role: str = Field(description="IAM role ARN the training jobs run as")
    image: str = Field(description="training image URI with Lamina and the flow's dependencies installed")
    region: str | None = None
    instance_type: str = Field(default="ml.m5.large", description="for steps without @resources")
    instance_count: int = Field(default=1, ge=1, description="instances per job (each runs the task)")
    volume_size_gb: int = Field(default=30, ge=1, le=16384)
    subnets: list[str] = Field(default_factory=list, description="VPC subnets (a list or 'a,b')")
    security_group_ids: list[str] = Field(default_factory=list, description="VPC security groups")
    output_path: str | None = Field(
        default=None, description="s3:// URI for SageMaker's own output; default: under the versioning bucket"
    )
    max_runtime_seconds: int = Field(default=86_400, ge=60, description="for steps without @timeout")
    python: str = Field(default="python", description="the interpreter inside the image")
    job_name_prefix: str = Field(default="lamina", max_length=20)
    max_parallel_jobs: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="jobs at once when a run gives no --max-workers (mind your quota)",
    )
    poll_interval: float = Field(default=10.0, gt=0, le=600, description="seconds between status polls")
    environment: dict[str, str] = Field(default_factory=dict, description="extra non-secret variables")
    secrets_arn: str | None = Field(
        default=None, description="Secrets Manager secret (JSON) exported into each task's environment"
    )
    tags: dict[str, str] = Field(default_factory=dict)
    endpoint_url: str | None = None


    @field_validator("subnets", "security_group_ids", mode="before")
    @classmethod
    def _split(cls, value: Any) -> list[str]:
        return _aws.split_list(value)

    @field_validator("role")
    @classmethod
    def _role_arn(cls, value: str) -> str:
        if _aws.role_name(value) is None:
            raise ValueError(
                f"{value!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME): name the role "
                "SageMaker training jobs run as (LAMINA_SAGEMAKER_ROLE for the built-in aws-sagemaker profile)"
            )
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name the training image (LAMINA_SAGEMAKER_IMAGE for the built-in profile)")
        return value

    @field_validator("environment")
    @classmethod
    def _no_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        return refuse_secret_names(
            value,
            "a job's environment is readable by anyone who may describe it",
            "Put secrets in AWS Secrets Manager and name the secret in `secrets_arn`.",
        )


def job_slug(prefix: str, flow: str, step: str) -> str:
    """``prefix-flow-step`` with only the characters a job name allows."""
    return re.sub(r"[^a-zA-Z0-9]+", "-", f"{prefix}-{flow}-{step}").strip("-").lower()


def job_name(prefix: str, task: TaskSpec) -> str:
    """A SageMaker job name, unique per task attempt and stable (a resubmission finds its job)."""
    digest = hashlib.sha256(f"{task.run_id}/{task.step}/{task.task_id}/{task.attempt}".encode()).hexdigest()
    slug = job_slug(prefix, task.flow_name, task.step)
    name = f"{slug[: 62 - 13].rstrip('-')}-{run_token(task.run_id)}-{digest[:6]}"
    assert _JOB_NAME.match(name), name
    return name


def run_token(run_id: str) -> str:
    """Six hex characters shared by all job names of a run, to list them in one call."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:6]


def training_job_request(
    settings: SageMakerSettings,
    *,
    name: str,
    arguments: list[str],
    instance_type: str,
    volume_gb: int,
    max_runtime: int,
    output_path: str,
    tags: dict[str, str],
) -> dict[str, Any]:
    """The ``CreateTrainingJob`` request (API field names), shared by this adapter and Step Functions."""
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": settings.role,
        "AlgorithmSpecification": {
            "TrainingImage": settings.image,
            "TrainingInputMode": "File",
            "ContainerEntrypoint": [settings.python, "-m", ENTRY_MODULE],
            "ContainerArguments": (["--secrets", settings.secrets_arn] if settings.secrets_arn else [])
            + arguments,
        },
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": settings.instance_count,
            "VolumeSizeInGB": volume_gb,
        },
        "OutputDataConfig": {"S3OutputPath": output_path},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        "Tags": [{"Key": k, "Value": v} for k, v in {**settings.tags, **tags}.items()],
    }
    if settings.environment:
        request["Environment"] = dict(settings.environment)
    if settings.subnets or settings.security_group_ids:
        request["VpcConfig"] = {"Subnets": settings.subnets, "SecurityGroupIds": settings.security_group_ids}
    return request


def default_output_path(settings: SageMakerSettings, stack: dict[str, Any]) -> str:
    """``output_path``, else ``s3://<versioning bucket>/<prefix>/sagemaker`` when versioning is S3.

    :raises LaminaError: neither is available.
    """
    if settings.output_path:
        return settings.output_path.rstrip("/")
    versioning = remote_snapshot(stack).get("layers", {}).get("versioning", {})
    if versioning.get("adapter") == "s3" and versioning.get("bucket"):
        prefix = str(versioning.get("prefix", "lamina")).strip("/")
        return f"s3://{versioning['bucket']}/{prefix + '/' if prefix else ''}sagemaker"
    raise LaminaError(
        "the sagemaker compute needs an S3 location for SageMaker's own output: set `output_path` "
        "(s3://bucket/prefix) in the profile's [compute] table, or use the s3 versioning adapter."
    )


class SageMakerCompute:
    """Compute-layer plugin: see the module docstring."""

    def __init__(self, settings: SageMakerSettings, context: AdapterContext) -> None:
        self.settings = settings
        self.context = context
        self._jobs: dict[str, TaskSpec] = {}
        self._done: dict[str, TaskStatus] = {}
        self._last_poll = 0.0
        self._lock = threading.Lock()
        self._session: Any = None

    # -- clients ---------------------------------------------------------------------------

    @property
    def boto_session(self) -> Any:
        if self._session is None:
            self._session = _aws.session(self.settings.region)
        return self._session

    @property
    def region(self) -> str:
        region = self.settings.region or self.boto_session.region_name
        if not region:
            raise LaminaError(
                "no AWS region for SageMaker: set `region` in the profile's [compute] table or export AWS_DEFAULT_REGION."
            )
        return str(region)

    def _client(self, service: str) -> Any:
        return _aws.client(service, self.region, endpoint_url=self.settings.endpoint_url)

    @staticmethod
    def _sdk() -> Any:
        """The SDK v3 resource layer, imported on first use (it takes a few seconds)."""
        try:
            from sagemaker.core import resources
        except ImportError as exc:
            raise LaminaError(
                f"the sagemaker compute adapter needs the SageMaker Python SDK v3 ({exc}): pip install 'lamina[aws]'"
            ) from exc
        for name in ("sagemaker", "sagemaker.core", "sagemaker_core"):
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)
        return resources

    # -- resources -------------------------------------------------------------------------

    @hookimpl
    def compute_validate(self, step: str, resources: Resources) -> str:
        """The instance type and volume the step gets. :raises ResourceUnsatisfiable: no type fits."""
        chosen = pick_instance_type(step, resources, self.settings.instance_type)
        return f"{chosen.describe()}, {volume_size(resources, self.settings.volume_size_gb)} GiB volume"

    # -- running ---------------------------------------------------------------------------

    @hookimpl
    def compute_start(self, run_id: str, flow_file: str, stack: dict[str, Any], max_workers: int) -> None:
        """Check what every job of the run needs (an output location); nothing is created."""
        default_output_path(self.settings, stack)

    def container_spec(self, task: TaskSpec) -> TaskSpec:
        """The spec as the container sees it: the flow file inside the code package, env refs resolved."""
        if not task.code_key:
            raise LaminaError(
                f"task {task.pathspec}: the sagemaker compute runs tasks from the code package in the blob "
                "store, but the task carries none (TaskSpec.code_key)."
            )
        import os

        return task.model_copy(
            update={
                "flow_file": os.path.basename(task.flow_file),
                "stack": remote_snapshot(task.stack),
            }
        )

    def request_for(self, task: TaskSpec) -> dict[str, Any]:
        """The ``CreateTrainingJob`` request of one task (no call is made)."""
        chosen = pick_instance_type(task.step, task.resources, self.settings.instance_type)
        runtime = int(task.timeout) + 300 if task.timeout else self.settings.max_runtime_seconds
        return training_job_request(
            self.settings,
            name=job_name(self.settings.job_name_prefix, task),
            arguments=["spec", *pack_spec(self.container_spec(task).model_dump_json())],
            instance_type=chosen.name,
            volume_gb=volume_size(task.resources, self.settings.volume_size_gb),
            max_runtime=max(60, runtime),
            output_path=default_output_path(self.settings, task.stack),
            tags={
                "lamina:flow": task.flow_name,
                "lamina:run": task.run_id,
                "lamina:step": task.step,
                "lamina:task": task.task_id,
            },
        )

    @hookimpl
    def compute_submit(self, task: TaskSpec) -> str:
        """Create the task's training job; the handle is the job name.

        A job of that name that exists already (a resubmission after a lost answer) is reused.
        """
        from botocore.exceptions import ClientError

        request = self.request_for(task)
        name = request["TrainingJobName"]
        resources = self._sdk()
        from sagemaker.core.shapes import (
            AlgorithmSpecification,
            OutputDataConfig,
            ResourceConfig,
            StoppingCondition,
            VpcConfig,
        )

        algo = request["AlgorithmSpecification"]
        res = request["ResourceConfig"]
        kwargs: dict[str, Any] = {
            "training_job_name": name,
            "role_arn": request["RoleArn"],
            "algorithm_specification": AlgorithmSpecification(
                training_image=algo["TrainingImage"],
                training_input_mode=algo["TrainingInputMode"],
                container_entrypoint=algo["ContainerEntrypoint"],
                container_arguments=algo["ContainerArguments"],
            ),
            "resource_config": ResourceConfig(
                instance_type=res["InstanceType"],
                instance_count=res["InstanceCount"],
                volume_size_in_gb=res["VolumeSizeInGB"],
            ),
            "output_data_config": OutputDataConfig(
                s3_output_path=request["OutputDataConfig"]["S3OutputPath"]
            ),
            "stopping_condition": StoppingCondition(
                max_runtime_in_seconds=request["StoppingCondition"]["MaxRuntimeInSeconds"]
            ),
            "tags": [{"key": t["Key"], "value": t["Value"]} for t in request["Tags"]],
            "session": self.boto_session,
            "region": self.region,
        }
        if "Environment" in request:
            kwargs["environment"] = request["Environment"]
        if "VpcConfig" in request:
            kwargs["vpc_config"] = VpcConfig(
                subnets=request["VpcConfig"]["Subnets"],
                security_group_ids=request["VpcConfig"]["SecurityGroupIds"],
            )
        from pydantic import ValidationError

        try:
            with _aws.translated(f"creating the SageMaker training job for {task.pathspec}"):
                resources.TrainingJob.create(**kwargs)
        except ValidationError as exc:
            raise LaminaError(
                f"the SageMaker SDK refused the training job for {task.pathspec} ({name}) before sending it: "
                f"{exc}. Check the profile's [compute] settings."
            ) from exc
        except ClientError as exc:
            if _aws.error_code(exc) != "ResourceInUse":
                raise LaminaError(
                    f"SageMaker refused the training job for {task.pathspec} ({name}): {_aws.error_message(exc)}. "
                    f"{self._fix_for(exc)}"
                ) from exc
        with self._lock:
            self._jobs[name] = task
        return name

    @hookimpl
    def compute_default_workers(self) -> int | None:
        """The profile's ``max_parallel_jobs``: a run is paced by the account's quota, not by the
        cores of the machine that submits it."""
        return self.settings.max_parallel_jobs

    @hookimpl
    def compute_queue_depth(self) -> int:
        """0: SageMaker starts every submitted job at once; the scheduler paces submissions."""
        return 0

    def _fix_for(self, exc: BaseException) -> str:
        code, text = _aws.error_code(exc), _aws.error_message(exc)
        if code == "ResourceLimitExceeded":
            return (
                "Raise the account's SageMaker quota for this instance type, or pick another with @resources."
            )
        if code in ("AccessDeniedException", "AccessDenied") or "PassRole" in text:
            return (
                f"The caller needs sagemaker:CreateTrainingJob and iam:PassRole on {self.settings.role}; "
                "`lamina stack check` probes both."
            )
        if code == "ValidationException":
            return "Check the [compute] settings (role, image, instance_type, subnets) against the message."
        return "Run `lamina stack check` to probe the compute layer."

    def _poll(self, wanted: set[str]) -> None:
        """One round of status: list the run's jobs (one paginated call), describe the finished ones."""
        if not wanted:
            return
        client = self._client("sagemaker")
        tokens = {run_token(self._jobs[h].run_id) for h in wanted if h in self._jobs}
        statuses: dict[str, str] = {}
        for token in tokens:
            with _aws.translated("polling SageMaker training jobs"):
                paginator = client.get_paginator("list_training_jobs")
                for page in paginator.paginate(NameContains=token, MaxResults=100):
                    for summary in page.get("TrainingJobSummaries", []):
                        statuses[summary["TrainingJobName"]] = summary["TrainingJobStatus"]
        for handle in wanted:
            status = statuses.get(handle)
            if status is None and handle in self._jobs:  # listing lags behind creation: ask directly
                status = self._describe(handle).get("TrainingJobStatus")
            if status in _TERMINAL:
                detail = self._describe(handle) if status != "Completed" else {}
                state = _TERMINAL[status]
                message = (
                    "" if state == "succeeded" else f"{status}: {detail.get('FailureReason', '')}".strip(": ")
                )
                self._done[handle] = TaskStatus(
                    handle=handle,
                    state=state,  # type: ignore[arg-type]
                    exit_code=0 if state == "succeeded" else 1,
                    message=message,
                )

    def _describe(self, handle: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        client = self._client("sagemaker")
        try:
            with _aws.translated(f"describing the training job {handle}"):
                return dict(client.describe_training_job(TrainingJobName=handle))
        except ClientError as exc:
            return {
                "TrainingJobStatus": "Failed",
                "FailureReason": f"cannot describe the job: {_aws.error_message(exc)}",
            }

    @hookimpl
    def compute_wait(self, handles: list[str], timeout: float) -> list[TaskStatus]:
        """Poll (every ``poll_interval`` seconds at most) until one of ``handles`` ends or ``timeout``."""
        wanted = set(handles)
        deadline = time.monotonic() + timeout
        while True:
            finished = [self._done.pop(h) for h in list(self._done) if h in wanted]
            if finished:
                for status in finished:
                    self._jobs.pop(status.handle, None)
                return finished
            now = time.monotonic()
            if now - self._last_poll >= self.settings.poll_interval:
                self._last_poll = now
                self._poll(wanted - set(self._done))
                continue
            remaining = deadline - now
            if remaining <= 0:
                return []
            time.sleep(min(remaining, self.settings.poll_interval - (now - self._last_poll)))

    @hookimpl
    def compute_cancel(self, handle: str) -> None:
        """Stop the job (idempotent: a finished or stopping job is left alone)."""
        from botocore.exceptions import ClientError

        client = self._client("sagemaker")
        try:
            with _aws.translated(f"stopping the training job {handle}"):
                client.stop_training_job(TrainingJobName=handle)
        except ClientError as exc:
            if _aws.error_code(exc) not in ("ValidationException", "ResourceNotFound"):
                raise LaminaError(
                    f"cannot stop the training job {handle}: {_aws.error_message(exc)}"
                ) from exc

    @hookimpl
    def compute_logs(self, handle: str) -> str:
        """The job's CloudWatch log streams; else its failure reason (the scheduler shows stored logs)."""
        from botocore.exceptions import BotoCoreError, ClientError

        lines: list[str] = []
        try:
            logs = self._client("logs")
            streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{handle}/").get(
                "logStreams", []
            )
            for stream in streams:
                kwargs: dict[str, Any] = {
                    "logGroupName": LOG_GROUP,
                    "logStreamName": stream["logStreamName"],
                    "startFromHead": True,
                }
                while True:
                    page = logs.get_log_events(**kwargs)
                    lines.extend(event["message"] for event in page.get("events", []))
                    if not page.get("events") or page.get("nextForwardToken") == kwargs.get("nextToken"):
                        break
                    kwargs["nextToken"] = page["nextForwardToken"]
        except (ClientError, BotoCoreError):
            lines = []
        if lines:
            return "\n".join(lines)
        return str(self._describe(handle).get("FailureReason", ""))

    @hookimpl
    def compute_shutdown(self) -> None:
        """Nothing runs on this machine; finished jobs need no cleanup."""

    @hookimpl
    def compute_check(self) -> CheckResult:
        """Credentials (STS), the role (IAM), the SageMaker API, the image setting. Never raises."""
        from botocore.exceptions import BotoCoreError, ClientError

        def verdict(ok: bool, message: str, fix: str = "") -> CheckResult:
            return CheckResult(layer="compute", adapter=ADAPTER_NAME, ok=ok, message=message, fix=fix)

        identity, failure = _aws.check_identity(self.settings.region, self.settings.endpoint_url)
        if failure:
            return verdict(False, failure, _aws.CREDENTIALS_FIX)
        role = _aws.role_name(self.settings.role) or ""
        try:
            with _aws.translated("reading the SageMaker role"):
                self._client("iam").get_role(RoleName=role)
        except ClientError as exc:
            code = _aws.error_code(exc)
            if code == "NoSuchEntity":
                return verdict(
                    False,
                    f"the role {self.settings.role} does not exist",
                    "create a role SageMaker can assume (trust sagemaker.amazonaws.com) with access to the "
                    "versioning bucket, and set LAMINA_SAGEMAKER_ROLE (or `role` in [compute]) to its ARN",
                )
            if code not in ("AccessDenied", "AccessDeniedException"):
                return verdict(False, f"cannot read the role {self.settings.role}: {_aws.error_message(exc)}")
        except (LaminaError, BotoCoreError) as exc:
            return verdict(False, f"cannot read the role {self.settings.role}: {exc}", _aws.CREDENTIALS_FIX)
        try:
            with _aws.translated("listing SageMaker training jobs"):
                self._client("sagemaker").list_training_jobs(MaxResults=1)
        except (ClientError, BotoCoreError, LaminaError) as exc:
            return verdict(
                False,
                f"{identity} cannot use SageMaker in {self.region}: {_aws.describe_failure(exc)}",
                "grant sagemaker:CreateTrainingJob/DescribeTrainingJob/ListTrainingJobs/StopTrainingJob and "
                f"iam:PassRole on {self.settings.role}",
            )
        return verdict(
            True,
            f"SageMaker in {self.region} as {identity}; jobs run as {self.settings.role} on {self.settings.image} "
            f"({self.settings.instance_type} by default)",
        )

    @hookimpl
    def compute_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Throttled API calls (translated to ``AwsThrottled``) and dropped connections."""
        return _aws.transient_errors()


ADAPTER = AdapterInfo(
    layer="compute",
    name=ADAPTER_NAME,
    settings=SageMakerSettings,
    factory=SageMakerCompute,
    extra="aws",
    requires=("boto3", "sagemaker.core"),
    description="one SageMaker training job per task; @resources picks an ml.* instance type",
)
