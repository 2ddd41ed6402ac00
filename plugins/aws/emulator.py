"""An emulated AWS stack: fakesnow, moto and a SageMaker job runner, all on 127.0.0.1.

:class:`AwsEmulator` starts

* **fakesnow** in server mode (a child process; the real Snowflake connector talks HTTP to it),
  with a ``LAMINA`` database and ``PUBLIC`` schema;
* **moto** in server mode (a thread: S3, SageMaker, Step Functions, STS, IAM, Secrets Manager,
  CloudWatch Logs, EventBridge), with the bucket, the two IAM roles and a secret holding the
  Snowflake password;
* a **job runner** thread that polls moto for new SageMaker training jobs and runs each job's
  command (``ContainerEntrypoint`` + ``ContainerArguments``) in a subprocess with the job's
  environment, as SageMaker would run the container: its own working directory, AWS pointed at
  moto, the job's ``Environment``, and nothing of the driver's (no Snowflake password: the task
  reads it from the emulated Secrets Manager). The job's status follows the process (moto alone
  reports every job ``Completed`` at once), its output goes to the emulated CloudWatch Logs, and
  ``StopTrainingJob`` (which moto does not implement) stops it.

:attr:`AwsEmulator.env` is the environment that points a driver at all of this; the built-in
``aws-sagemaker`` profile reads it. ``lamina emulate aws-sagemaker -- CMD`` runs a command with
it (this plugin contributes the emulator through the ``lamina_emulators`` hook); the pytest
fixtures of :mod:`lamina.testing.aws` give tests the same. ``pip install 'lamina[aws-emulator]'``
installs what it needs; no test tool is needed.

Services: ``snowflake`` (fakesnow) serves the ``snowflake`` data adapter, ``s3`` (moto) the ``s3``
versioning and ``step-functions`` orchestration adapters, ``sagemaker`` (moto plus the job runner)
the ``sagemaker`` compute. ``AwsEmulator(services=...)`` starts only those asked for, so a mixed
stack (Snowflake data with another cloud's compute) is emulated too.

Stopping kills every job process and fakesnow, stops moto and removes the temporary directory
(fakesnow's ``fakesnow_bucket_*`` folders included: its ``TMPDIR`` points inside it).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lamina.adapter import Job, free_port, start_group, stop_group, wait_for_port
from lamina.adapter import JobRunner as BaseJobRunner
from lamina.errors import LaminaError

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "lamina-emulated"
SAGEMAKER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/lamina-sagemaker"
SFN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/lamina-stepfunctions"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/lamina:emulated"
SNOWFLAKE_PASSWORD = "emulated-password"
EMULATOR_KEY = "emulator"
"""The access key id and secret of the emulated AWS (moto takes any)."""
WAREHOUSE = "FAKESNOW_WAREHOUSE"
SERVICES = ("snowflake", "s3", "sagemaker", "step-functions")
"""fakesnow knows one warehouse, this one; ``SHOW WAREHOUSES`` lists it."""

log = logging.getLogger("lamina.plugins.aws.emulator")
_ACTIVE = threading.Lock()
"""Held by the emulator running in this process."""


def emulator_client(endpoint: str, service: str) -> Any:
    """A boto3 client for ``service`` on the moto server at ``endpoint``, with the emulator's keys."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=EMULATOR_KEY,
        aws_secret_access_key=EMULATOR_KEY,
    )


# -- moto's SageMaker, made to behave like the service for the job runner -------------------


class _MotoSageMakerPatch:
    """Make moto's training jobs start ``InProgress``, keep their ``Environment``, and stop.

    Installed while an emulator runs (moto runs in this process); removed when it stops.
    """

    def __init__(self, on_stop: Callable[[str], None]) -> None:
        self.on_stop = on_stop
        self._saved: dict[str, Any] = {}

    def install(self) -> None:
        from moto.core.responses import ActionResult
        from moto.sagemaker.exceptions import ValidationError
        from moto.sagemaker.responses import SageMakerResponse

        original_create = SageMakerResponse.create_training_job
        self._saved = {
            "create_training_job": original_create,
            "stop_training_job": SageMakerResponse.__dict__.get("stop_training_job"),
        }
        patch = self

        def create_training_job(response: Any) -> Any:
            result = original_create(response)
            job = response.sagemaker_backend.training_jobs.get(response._get_param("TrainingJobName"))
            if job is not None:
                job.training_job_status = "InProgress"
                job.secondary_status = "Starting"
                job.training_end_time = None
                job.environment = response._get_param("Environment") or {}
            return result

        def stop_training_job(response: Any) -> Any:
            name = response._get_param("TrainingJobName")
            job = response.sagemaker_backend.training_jobs.get(name)
            if job is None:
                raise ValidationError(message=f"Could not find training job '{name}'.")
            if job.training_job_status != "InProgress":
                raise ValidationError(
                    message=f"The training job {name} is in status {job.training_job_status} and cannot be stopped."
                )
            job.training_job_status = "Stopping"
            job.secondary_status = "Stopping"
            patch.on_stop(name)
            return ActionResult({})

        SageMakerResponse.create_training_job = create_training_job  # type: ignore[method-assign,assignment]
        SageMakerResponse.stop_training_job = stop_training_job  # type: ignore[attr-defined]

    def uninstall(self) -> None:
        from moto.sagemaker.responses import SageMakerResponse

        if not self._saved:
            return
        SageMakerResponse.create_training_job = self._saved["create_training_job"]  # type: ignore[method-assign]
        if self._saved["stop_training_job"] is None:
            delattr(SageMakerResponse, "stop_training_job")
        else:
            SageMakerResponse.stop_training_job = self._saved["stop_training_job"]  # type: ignore[attr-defined]
        self._saved = {}


class _MotoSdkBodyPatch:
    """Step Functions returns an ``aws-sdk:s3:getObject`` Body as a string; moto's interpreter hands
    states the raw stream, which ``States.StringToJson`` cannot read. Read it, as the service does."""

    def __init__(self) -> None:
        self._saved: Any = None

    def install(self) -> None:
        from botocore.response import StreamingBody
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_aws_sdk as sdk,
        )

        cls = sdk.StateTaskServiceAwsSdk
        original = cls._eval_service_task
        self._saved = (cls, original)

        def _eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(self, env, *args, **kwargs)
            response = env.stack[-1] if env.stack else None
            if isinstance(response, dict):
                for key, value in list(response.items()):
                    if isinstance(value, StreamingBody):
                        response[key] = value.read().decode("utf-8", errors="replace")
            return result

        cls._eval_service_task = _eval_service_task  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._saved is not None:
            cls, original = self._saved
            cls._eval_service_task = original
            self._saved = None


class EventRouter:
    """What moto's EventBridge does not do: deliver to a state machine target, report Step
    Functions executions' status changes to the bus (as the service does natively), and fire
    schedules. Events then reach the same entry point the cloud would call: StartExecution on the
    rule's target, with the rule's input transformer applied to the event."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.started: list[str] = []
        """Executions this router started (tests read it)."""
        self.errors: list[str] = []
        self._saved: Any = None
        self._stop = threading.Event()
        self._seen: set[str] = set()
        self._fired: dict[str, float] = {}
        self._thread = threading.Thread(target=self._loop, name="lamina-event-router", daemon=True)

    def install(self) -> None:
        from moto.events.models import Rule
        from moto.events.utils import EventTemplateParser

        original = Rule.send_to_targets
        self._saved = (Rule, original)
        router = self

        def send_to_targets(rule: Any, original_event: Any, transform_input: bool = True) -> None:
            states = [t for t in rule.targets if ":states:" in t["Arn"]]
            scheduled = getattr(rule, "scheduled_expression", None)  # fired by time, not by events
            if states and not scheduled and rule.event_pattern.matches_event(original_event):
                for target in states:
                    transformer = target.get("InputTransformer") or {}
                    if transformer:
                        event: Any = EventTemplateParser.parse(
                            input_template=str(transformer.get("InputTemplate") or ""),
                            input_paths_map=transformer.get("InputPathsMap", {}),
                            event=original_event,
                        )
                    else:
                        event = json.loads(target["Input"]) if target.get("Input") else original_event
                    router.start(target["Arn"], event)
            others = [t for t in rule.targets if ":states:" not in t["Arn"]]
            if others:
                saved, rule.targets = rule.targets, others
                try:
                    original(rule, original_event, transform_input)
                finally:
                    rule.targets = saved

        Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]
        self._sfn = emulator_client(self.endpoint, "stepfunctions")
        self._thread.start()

    def uninstall(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self._saved is not None:
            cls, original = self._saved
            cls.send_to_targets = original
            self._saved = None

    def start(self, machine_arn: str, event: Any) -> None:
        """StartExecution, off the thread that serves moto's request."""
        from lamina.adapter import new_run_id

        payload = event if isinstance(event, str) else json.dumps(event, default=str)

        def go() -> None:
            try:
                name = new_run_id()
                self._sfn.start_execution(stateMachineArn=machine_arn, name=name, input=payload)
                self.started.append(name)
            except Exception as exc:
                self.errors.append(f"starting {machine_arn}: {type(exc).__name__}: {exc}")

        threading.Thread(target=go, daemon=True).start()

    def _rules(self) -> list[Any]:
        from moto.events.models import events_backends

        bus = events_backends[ACCOUNT][REGION].event_buses.get("default")
        return list(bus.rules.values()) if bus is not None else []

    def tick(self, rule_name: str) -> None:
        """Fire a schedule rule now, as its schedule would."""
        for rule in self._rules():
            if rule.name == rule_name:
                for target in rule.targets:
                    if ":states:" in target["Arn"]:
                        self.start(target["Arn"], json.loads(target.get("Input") or "{}"))
                return
        raise LaminaError(f"no EventBridge rule {rule_name!r}")

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self._report_executions()
                self._fire_schedules()
            except Exception as exc:
                if not self._stop.is_set():
                    self.errors.append(f"{type(exc).__name__}: {exc}")

    def _report_executions(self) -> None:
        for machine in self._sfn.list_state_machines().get("stateMachines", []):
            for execution in self._sfn.list_executions(stateMachineArn=machine["stateMachineArn"]).get("executions", []):
                key = f"{execution['executionArn']}:{execution['status']}"
                if execution["status"] == "RUNNING" or key in self._seen:
                    continue
                self._seen.add(key)
                detail = {
                    "executionArn": execution["executionArn"], "stateMachineArn": machine["stateMachineArn"],
                    "name": execution["name"], "status": execution["status"],
                    "stopDate": str(execution.get("stopDate") or ""),
                }  # fmt: skip
                message = {
                    "version": "0", "id": key, "detail-type": "Step Functions Execution Status Change",
                    "source": "aws.states", "account": ACCOUNT, "time": dt.datetime.now(dt.UTC).isoformat(),
                    "region": REGION, "resources": [execution["executionArn"]], "detail": detail,
                    "ingestion-time": time.time(),
                }  # fmt: skip
                for rule in self._rules():
                    rule.send_to_targets(message)

    def _fire_schedules(self) -> None:
        now = time.time()
        for rule in self._rules():
            expression = getattr(rule, "scheduled_expression", None)
            if not expression or getattr(rule, "state", "ENABLED") != "ENABLED":
                continue
            last = self._fired.setdefault(rule.name, now)
            if _due(expression, last, now):
                self._fired[rule.name] = now
                self.tick(rule.name)


def _due(expression: str, last: float, now: float) -> bool:
    """Whether a ``rate(...)`` or ``cron(...)`` schedule fires between ``last`` and ``now``."""
    import re as _re

    rate = _re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if rate:
        unit = {"minute": 60, "hour": 3600, "day": 86400}[rate.group(2).rstrip("s")]
        return now - last >= int(rate.group(1)) * unit
    cron = _re.fullmatch(r"cron\((.+)\)", expression.strip())
    if not cron or int(now // 60) == int(last // 60):
        return False
    fields = cron.group(1).split()
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    values = [when.minute, when.hour, when.day, when.month, when.isoweekday() % 7 + 1]

    def matches(field: str, value: int) -> bool:
        if field in ("*", "?"):
            return True
        for part in field.split(","):
            base, _, step = part.partition("/")
            lo, _, hi = base.partition("-")
            low = 0 if lo == "*" else int(lo)
            high = 10**6 if lo == "*" else int(hi or lo)
            if low <= value <= high and (value - low) % int(step or 1) == 0:
                return True
        return False

    return all(matches(f, v) for f, v in zip(fields[:5], values, strict=False))


def _moto_job(name: str) -> Any:
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][REGION].training_jobs.get(name)


# -- the job runner ------------------------------------------------------------------------


class JobRunner(BaseJobRunner):
    """Runs the training jobs submitted to moto, as SageMaker runs their containers: the job's
    ``ContainerEntrypoint`` + ``ContainerArguments``, with its ``Environment`` and AWS pointed at
    moto. The job's status follows the process, its output goes to the emulated CloudWatch Logs."""

    def __init__(self, endpoint: str, workdir: Path, job_env: dict[str, str], max_parallel: int = 8) -> None:
        super().__init__(workdir, job_env, self._discover, self._finished, max_parallel=max_parallel)
        self.endpoint = endpoint
        self.seen: set[str] = set()

    def start(self) -> None:
        self._sagemaker = emulator_client(self.endpoint, "sagemaker")
        self._logs = emulator_client(self.endpoint, "logs")
        super().start()

    def _discover(self) -> list[Job]:
        found = []
        for page in self._sagemaker.get_paginator("list_training_jobs").paginate(MaxResults=100):
            for summary in page.get("TrainingJobSummaries", []):
                name = summary["TrainingJobName"]
                if name in self.seen or summary["TrainingJobStatus"] != "InProgress":
                    continue
                self.seen.add(name)
                spec = self._sagemaker.describe_training_job(TrainingJobName=name)
                algo = spec.get("AlgorithmSpecification", {})
                env = dict(getattr(_moto_job(name), "environment", None) or {})
                env.update({"TRAINING_JOB_NAME": name, "SM_CURRENT_HOST": "algo-1"})
                command = list(algo.get("ContainerEntrypoint") or []) + list(algo.get("ContainerArguments") or [])
                found.append(Job(name=name, command=command, env=env))
        return found

    def _finished(self, job: Job) -> None:
        moto_job = _moto_job(job.name)
        if moto_job is not None:
            moto_job.training_end_time = dt.datetime.now(dt.UTC)
            if job.stopped:
                moto_job.training_job_status = moto_job.secondary_status = "Stopped"
            elif job.exit_code == 0:
                moto_job.training_job_status = moto_job.secondary_status = "Completed"
            else:
                tail = job.output.decode(errors="replace").strip().splitlines()[-3:]
                moto_job.training_job_status = moto_job.secondary_status = "Failed"
                moto_job.failure_reason = (
                    f"AlgorithmError: the container exited with status {job.exit_code}: " + " | ".join(tail)
                )[:1024]
        self._write_logs(job.name, job.output)

    def _write_logs(self, name: str, output: bytes) -> None:
        lines = [line for line in output.decode(errors="replace").splitlines() if line.strip()]
        if not lines:
            return
        group = "/aws/sagemaker/TrainingJobs"
        stream = f"{name}/algo-1-{int(time.time())}"
        try:
            try:
                self._logs.create_log_group(logGroupName=group)
            except self._logs.exceptions.ResourceAlreadyExistsException:
                pass
            self._logs.create_log_stream(logGroupName=group, logStreamName=stream)
            stamp = int(time.time() * 1000)
            for start in range(0, len(lines), 5000):
                self._logs.put_log_events(
                    logGroupName=group,
                    logStreamName=stream,
                    logEvents=[{"timestamp": stamp, "message": line} for line in lines[start : start + 5000]],
                )
        except Exception as exc:
            self.errors.append(f"logs of {name}: {type(exc).__name__}: {exc}")


# -- the emulator --------------------------------------------------------------------------


class AwsEmulator:
    """fakesnow + moto + the job runner; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        bucket: str = BUCKET,
        max_parallel_jobs: int = 8,
        poll_interval: float = 0.1,
        services: Iterable[str] = SERVICES,
    ) -> None:
        unknown = set(services) - set(SERVICES)
        if unknown:
            raise LaminaError(f"no emulated AWS service {', '.join(sorted(unknown))}; services: {', '.join(SERVICES)}")
        self.services = frozenset(services)
        self.aws = bool(self.services - {"snowflake"})
        self.bucket = bucket
        self.max_parallel_jobs = max_parallel_jobs
        self.poll_interval = poll_interval
        self.workdir: Path | None = None
        self.endpoint = ""
        self.snowflake_port = 0
        self.env: dict[str, str] = {}
        self.secret_arn = ""
        self.runner: JobRunner | None = None
        self._moto: Any = None
        self._fakesnow: subprocess.Popen[bytes] | None = None
        self._patch: _MotoSageMakerPatch | None = None
        self._sdk_patch: _MotoSdkBodyPatch | None = None
        self.events: EventRouter | None = None
        self._owns_slot = False

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> AwsEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> AwsEmulator:
        """Start everything; on any failure, stop what started and raise a ``LaminaError``.

        One emulator runs per process at a time: moto keeps its state in the process, and the
        emulator patches moto's SageMaker while it runs.
        """
        if not _ACTIVE.acquire(blocking=False):
            raise LaminaError(
                "an emulated AWS stack already runs in this process: stop it first, or share it "
                "(the pytest fixture aws_emulator is session-scoped for this reason)"
            )
        self._owns_slot = True
        try:
            needed = (["moto", "boto3"] if self.aws else []) + (
                ["fakesnow", "snowflake.connector"] if "snowflake" in self.services else []
            )
            missing = [m for m in needed if not _importable(m)]
            if missing:
                raise LaminaError(
                    f"the emulated AWS services need {', '.join(missing)}: pip install 'lamina[aws-emulator]'"
                )
            self.workdir = Path(tempfile.mkdtemp(prefix="lamina-emulate-"))
            if "snowflake" in self.services:
                self._start_fakesnow()
            if self.aws:
                self._start_moto()
                self._sdk_patch = _MotoSdkBodyPatch()
                self._sdk_patch.install()
                self.events = EventRouter(self.endpoint)
                self.events.install()
            self.env = self._environment()
            self._provision()
            if "sagemaker" in self.services:
                self.runner = JobRunner(self.endpoint, self.workdir, self._job_env(), self.max_parallel_jobs)
                self._patch = _MotoSageMakerPatch(self.runner.stop_job)
                self._patch.install()
                self.runner.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_fakesnow(self) -> None:
        assert self.workdir is not None
        tmp = self.workdir / "fakesnow-tmp"
        tmp.mkdir()
        self.snowflake_port = free_port()
        logfile = open(self.workdir / "fakesnow.log", "wb")  # noqa: SIM115 - owned by the process
        self._fakesnow = start_group(
            [sys.executable, "-m", "fakesnow", "-s", "--host", "127.0.0.1", "-p", str(self.snowflake_port)],
            env={**os.environ, "TMPDIR": str(tmp)},
            stdout=logfile,
            stderr=subprocess.STDOUT,
        )
        logfile.close()
        try:
            wait_for_port(self.snowflake_port, timeout=60, proc=self._fakesnow, what="fakesnow")
        except LaminaError as exc:
            raise LaminaError(
                f"{exc}:\n" + (self.workdir / "fakesnow.log").read_text(errors="replace")[-2000:]
            ) from None

    def _start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # moto's state machine interpreter logs every integration it forwards: noise to a flow's user
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        # moto keeps its state in the process: an earlier emulator's buckets and jobs must go
        import urllib.request

        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=30
        )
        # moto's Step Functions interpreter (in this process) executes state machines, calling its
        # own services at localhost:$MOTO_PORT
        os.environ["MOTO_PORT"] = str(port)
        urllib.request.urlopen(
            urllib.request.Request(
                f"{self.endpoint}/moto-api/config",
                data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            ),
            timeout=30,
        )

    def _environment(self) -> dict[str, str]:
        env = self._all_environment()
        if not self.aws:
            env = {k: v for k, v in env.items() if k.startswith("SNOWFLAKE_") or k == "LAMINA_EMULATED_STACK"}
        if "snowflake" not in self.services:
            env = {k: v for k, v in env.items() if not k.startswith("SNOWFLAKE_")}
        return env

    def _all_environment(self) -> dict[str, str]:
        assert self.workdir is not None
        nowhere = str(self.workdir / "no-aws-config")
        port = self.endpoint.rsplit(":", 1)[-1] if self.endpoint else ""
        return {
            "MOTO_PORT": port,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": EMULATOR_KEY,
            "AWS_SECRET_ACCESS_KEY": EMULATOR_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": nowhere,
            "AWS_SHARED_CREDENTIALS_FILE": nowhere,
            "SAGEMAKER_VALIDATE_ROLE": "false",
            "SNOWFLAKE_ACCOUNT": "fakesnow",
            "SNOWFLAKE_USER": "lamina",
            "SNOWFLAKE_PASSWORD": SNOWFLAKE_PASSWORD,
            "SNOWFLAKE_HOST": "127.0.0.1",
            "SNOWFLAKE_PORT": str(self.snowflake_port),
            "SNOWFLAKE_PROTOCOL": "http",
            "SNOWFLAKE_WAREHOUSE": WAREHOUSE,
            "SNOWFLAKE_DATABASE": "LAMINA",
            "SNOWFLAKE_SCHEMA": "PUBLIC",
            "SNOWFLAKE_NETWORK_TIMEOUT": "30",
            "LAMINA_S3_BUCKET": self.bucket,
            "LAMINA_SAGEMAKER_ROLE": SAGEMAKER_ROLE,
            "LAMINA_SAGEMAKER_IMAGE": IMAGE,
            "LAMINA_SAGEMAKER_POLL_INTERVAL": str(self.poll_interval),
            "LAMINA_SAGEMAKER_SECRETS_ARN": self.secret_arn,
            "LAMINA_SFN_ROLE": SFN_ROLE,
            "LAMINA_SFN_WAIT": "poll",  # moto cannot execute the .sync integration; it runs the loop form
            "LAMINA_SFN_POLL_SECONDS": "1",
            "LAMINA_EMULATED_STACK": "aws-sagemaker",
        }

    def _job_env(self) -> dict[str, str]:
        """What a job's container has: AWS (its role's credentials) pointed at moto, nothing else."""
        keep = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                    "AWS_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):  # fmt: skip
            env[key] = self.env[key]
        return env

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on the emulated AWS."""
        return emulator_client(self.endpoint, service)

    def snowflake_connect(self, **overrides: Any) -> Any:
        """A connection of the real Snowflake connector to the emulated Snowflake."""
        import snowflake.connector

        args: dict[str, Any] = {
            "account": "fakesnow",
            "user": "lamina",
            "password": SNOWFLAKE_PASSWORD,
            "host": "127.0.0.1",
            "port": self.snowflake_port,
            "protocol": "http",
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
            "network_timeout": 30,
            **overrides,
        }
        return snowflake.connector.connect(**args)

    def _provision(self) -> None:
        """The bucket, the roles, the secret; the Snowflake database and schema."""
        if self.aws:
            self._provision_aws()
        if "snowflake" in self.services:
            self._provision_snowflake()

    def _provision_aws(self) -> None:
        s3 = self.client("s3")
        s3.create_bucket(Bucket=self.bucket)
        iam = self.client("iam")
        for arn, service in ((SAGEMAKER_ROLE, "sagemaker"), (SFN_ROLE, "states")):
            trust = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": f"{service}.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
            iam.create_role(RoleName=arn.rsplit("/", 1)[1], AssumeRolePolicyDocument=json.dumps(trust))
        secrets = self.client("secretsmanager")
        self.secret_arn = secrets.create_secret(
            Name="lamina/snowflake", SecretString=json.dumps({"SNOWFLAKE_PASSWORD": SNOWFLAKE_PASSWORD})
        )["ARN"]
        self.env["LAMINA_SAGEMAKER_SECRETS_ARN"] = self.secret_arn

    def _provision_snowflake(self) -> None:
        conn = self.snowflake_connect()
        try:
            cursor = conn.cursor()
            cursor.execute("CREATE DATABASE IF NOT EXISTS LAMINA")
            cursor.execute("CREATE SCHEMA IF NOT EXISTS LAMINA.PUBLIC")
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop the jobs, the job runner, moto and fakesnow; remove the working directory."""
        if self.runner is not None:
            self.runner.stop()
        if self._patch is not None:
            self._patch.uninstall()
            self._patch = None
        if self._sdk_patch is not None:
            self._sdk_patch.uninstall()
            self._sdk_patch = None
        if self.events is not None:
            self.events.uninstall()
            self.events = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self._fakesnow is not None:
            stop_group(self._fakesnow)
            self._fakesnow = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        if self._owns_slot:
            self._owns_slot = False
            _ACTIVE.release()


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class AwsServices:
    """The ``lamina_emulators`` protocol over :class:`AwsEmulator`: ``start()`` returns the
    environment that points clients at the services, ``stop()`` stops them."""

    def __init__(self, services: Iterable[str]) -> None:
        self.emulator = AwsEmulator(services=services)

    def start(self) -> dict[str, str]:
        self.emulator.start()
        return dict(self.emulator.env)

    def describe(self) -> str:
        e = self.emulator
        parts = []
        if e.aws:
            parts.append(f"AWS at {e.endpoint} (bucket s3://{e.bucket})")
        if "snowflake" in e.services:
            parts.append(f"Snowflake at 127.0.0.1:{e.snowflake_port}")
        return ", ".join(parts)

    def stop(self) -> None:
        self.emulator.stop()
