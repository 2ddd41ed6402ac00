"""The ``step-functions`` orchestration adapter: deployed flows run as AWS Step Functions state machines.

``python flow.py deploy --stack aws-sagemaker`` compiles the flow (see :mod:`.asl`), stores the
deploy template (what each task needs: input rules, resources, code package, stack) in the
versioning bucket, and creates the state machine ``{name_prefix}{FlowName}``, or updates it
when it exists, so deploying twice is safe. With ``--schedule`` an EventBridge rule starts it;
without, an existing schedule is removed (the deployment is the desired state).
``lamina trigger FLOW`` starts an execution whose name is the new run id.

Interactive runs (``python flow.py run``) are walked by the built-in scheduler on the user's
machine; each task still runs on the stack's compute (SageMaker).

A deployed run's tasks store their artifacts, logs and records in the bucket, but nothing
records the run in the metadata database (the tasks cannot reach a laptop's SQLite file).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from lamina.adapter import (
    check_trigger_parameters,
    current_user,
    deploy_template,
    deployment_name,
    new_run_id,
    remote_snapshot,
    run_key_template,
    task_arguments,
)
from lamina.errors import LaminaError, NotFound, ParameterError
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import (
    AdapterInfo,
    AdapterSettings,
    CheckResult,
    Deployment,
    DeployResult,
    RunState,
    RunStatusName,
)
from pydantic import Field, field_validator

from . import _aws
from .asl import Compiler, to_aws_schedule

ADAPTER_NAME = "step-functions"
TEMPLATE_TAG = "lamina:template"
EVENT_SOURCE = "lamina"
EVENT_TYPE = "lamina.event"
PROJECT_TAG = "lamina:project"
BRANCH_TAG = "lamina:branch"
SCHEDULE_TAG = "lamina:schedule"


class StepFunctionsSettings(AdapterSettings):
    """Settings of the ``step-functions`` orchestration adapter (the ``[orchestration]`` table)."""

    role: str = Field(description="IAM role ARN the state machine runs as (SageMaker, S3, iam:PassRole)")
    region: str | None = None
    endpoint_url: str | None = None
    name_prefix: str = Field(default="lamina-", description="state machine names are prefix + flow name")
    events_role: str | None = Field(default=None, description="role EventBridge uses to start schedules")
    max_concurrency: int = Field(default=0, ge=0, description="parallel foreach tasks (0: no limit)")
    wait: Literal["sync", "poll"] = Field(
        default="sync",
        description="how a state waits for a task's job: 'sync' (the .sync integration, the default on AWS) "
        "or 'poll' (a create, wait, describe, choice loop with @retry compiled in; the emulated stack's)",
    )
    poll_seconds: int = Field(default=10, ge=1, le=3600, description="'poll': seconds between job status checks")


    @field_validator("role")
    @classmethod
    def _role_arn(cls, value: str) -> str:
        if _aws.role_name(value) is None:
            raise ValueError(
                f"{value!r} is not an IAM role ARN: name the role the state machine runs as "
                "(LAMINA_SFN_ROLE for the built-in aws-sagemaker profile)"
            )
        return value


class StepFunctionsOrchestration:
    """Orchestration-layer plugin; see the module docstring."""

    def __init__(self, settings: StepFunctionsSettings, context: AdapterContext) -> None:
        self.settings = settings
        self.context = context

    def _client(self, service: str) -> Any:
        return _aws.client(service, self.settings.region, endpoint_url=self.settings.endpoint_url)

    def machine_name(self, flow_name: str, project: str | None = None, branch: str | None = None) -> str:
        """The state machine of a deployment (80 characters at most, by Lamina's one naming rule)."""
        return deployment_name(flow_name, project, branch, prefix=self.settings.name_prefix, max_length=80)

    # -- compiling -------------------------------------------------------------------------

    def compile(self, flow: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """``(definition, the deploy template's S3 URI)`` for a flow descriptor; no calls are made.

        Lamina's deploy stored the template already (``flow["template_key"]``, in the run store)."""
        from .sagemaker_compute import SageMakerSettings, default_output_path, job_slug, training_job_request

        stack = flow["stack"]
        resolved = remote_snapshot(stack)
        layers = resolved["layers"]
        compute = dict(layers["compute"])
        if compute.pop("adapter") != "sagemaker":
            raise LaminaError(
                f"the step-functions orchestrator runs each task as a SageMaker training job, but stack "
                f"{stack.get('name')!r} uses the compute adapter {layers['compute']['adapter']!r}: set "
                '[compute] adapter = "sagemaker".'
            )
        versioning = layers["versioning"]
        if versioning.get("adapter") != "s3":
            raise LaminaError(
                "the step-functions orchestrator needs the s3 versioning adapter: deployed tasks find their "
                f"inputs and the deploy template in S3, but stack {stack.get('name')!r} uses "
                f"{versioning.get('adapter')!r}."
            )
        sm = SageMakerSettings.model_validate(compute)
        bucket, prefix = versioning["bucket"], str(versioning.get("prefix", "lamina")).strip("/")
        template_key = flow.get("template_key") or "deploy/(dry run)"
        uri = f"s3://{bucket}/{prefix + '/' if prefix else ''}{template_key}"
        steps = deploy_template(flow)["steps"]
        output = default_output_path(sm, stack)

        from lamina.models import Resources

        from .instance_types import pick_instance_type, volume_size

        def parameters(step: str) -> dict[str, Any]:
            res = Resources(**steps[step]["resources"])
            chosen = pick_instance_type(step, res, sm.instance_type)
            timeout = steps[step]["timeout"]
            return training_job_request(
                sm,
                name="(set per execution)",
                arguments=[],
                instance_type=chosen.name,
                volume_gb=volume_size(res, sm.volume_size_gb),
                max_runtime=int(timeout) + 300 if timeout else sm.max_runtime_seconds,
                output_path=output,
                tags={"lamina:flow": flow["name"], "lamina:step": step},
            )

        def stem(step: str) -> str:  # 26 characters leave room for '-' and a UUID in 63
            return job_slug(sm.job_name_prefix, flow["name"], step)[:26].rstrip("-")

        compiler = Compiler(
            flow,
            bucket=bucket,
            prefix=prefix,
            task_parameters=parameters,
            task_arguments=lambda step: task_arguments(flow, step)[3:],  # after `-m lamina task`
            key_template=run_key_template,
            job_name_stem=stem,
            secrets_arn=sm.secrets_arn,
            max_concurrency=self.settings.max_concurrency,
            wait=self.settings.wait,
            poll_seconds=self.settings.poll_seconds,
        )
        definition = compiler.definition()
        return definition, uri

    # -- hooks -----------------------------------------------------------------------------

    @hookimpl
    def orchestration_deploy(self, flow: dict[str, Any], schedule: str | None, dry_run: bool) -> DeployResult:
        """Create or update the flow's state machine (and its schedule), one per ``@project``
        branch. Idempotent.

        :param flow: the flow descriptor (see :func:`lamina.runtime.deploy.deploy_flow`).
        :raises LaminaError: the stack cannot run deployed flows, or AWS refused (what and why).
        """
        from botocore.exceptions import ClientError

        aws_schedule = None
        if schedule:
            try:
                aws_schedule = to_aws_schedule(schedule)
            except ValueError as exc:
                raise LaminaError(str(exc)) from None
            required = [n for n, p in flow.get("parameters", {}).items() if not p.get("has_default", True)]
            if required:
                raise ParameterError(
                    f"{flow['name']} cannot run on a schedule: parameter(s) {', '.join(required)} have no default "
                    "and a scheduled run cannot give them. Give them defaults, or trigger runs with `lamina trigger`."
                )
        definition, uri = self.compile(flow)
        project, branch = flow.get("project"), flow.get("branch")
        name = self.machine_name(flow["name"], project, branch)
        rules = self._trigger_rules(flow)
        creates = [f"Step Functions state machine {name}"]
        if aws_schedule:
            creates.append(f"EventBridge rule {self.rule_name(flow['name'], project, branch)} ({aws_schedule})")
        creates += [f"EventBridge rule {rule} ({what})" for rule, (what, _, _) in rules.items()]
        if dry_run:
            return DeployResult(
                flow_name=flow["name"], target=f"(dry run) state machine {name}", definition=definition,
                schedule=aws_schedule, dry_run=True, creates=creates,
            )  # fmt: skip
        sfn = self._client("stepfunctions")
        body = json.dumps(definition)
        arn = self._find(flow["name"], branch)
        tags = {"lamina:flow": flow["name"], TEMPLATE_TAG: uri, SCHEDULE_TAG: aws_schedule or "-"}
        if project:
            tags.update({PROJECT_TAG: project, BRANCH_TAG: branch or ""})
        tag_list = [{"key": k, "value": v} for k, v in tags.items()]
        try:
            with _aws.translated(f"deploying the state machine {name}"):
                if arn is None:
                    arn = sfn.create_state_machine(
                        name=name, definition=body, roleArn=self.settings.role, type="STANDARD", tags=tag_list
                    )["stateMachineArn"]
                else:
                    sfn.update_state_machine(stateMachineArn=arn, definition=body, roleArn=self.settings.role)
                    sfn.tag_resource(resourceArn=arn, tags=tag_list)
        except ClientError as exc:
            raise LaminaError(
                f"Step Functions refused the state machine {name}: {_aws.error_message(exc)}. Check that "
                f"{self.settings.role} exists and may be passed (iam:PassRole), and run `lamina stack check`."
            ) from exc
        self._schedule(self.rule_name(flow["name"], project, branch), arn, aws_schedule, flow)
        self._apply_triggers(flow, arn, self._trigger_rules(flow, arn))
        return DeployResult(
            flow_name=flow["name"], target=arn, definition=definition, schedule=aws_schedule, creates=creates
        )

    def _trigger_rules(
        self, flow: dict[str, Any], arn: str = "arn:aws:states:REGION:ACCOUNT:stateMachine:x"
    ) -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
        """``{rule name: (what, event pattern, trigger)}`` for the flow's @trigger and
        @trigger_on_finish: a business event on the bus, or an upstream state machine (same branch)
        succeeding, as Step Functions itself reports it to EventBridge."""
        project, branch = flow.get("project"), flow.get("branch")
        triggers = flow.get("triggers") or {}
        out: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
        for event in triggers.get("events", []):
            rule = deployment_name(f"{flow['name']}-on-{event}", project, branch, prefix=self.settings.name_prefix, max_length=64)
            pattern = {"source": [EVENT_SOURCE], "detail-type": [EVENT_TYPE], "detail": {"name": [event]}}
            out[rule] = (f"event {event}", pattern, {"type": "event", "name": event})
        for upstream in triggers.get("flows", []):
            rule = deployment_name(f"{flow['name']}-after-{upstream}", project, branch, prefix=self.settings.name_prefix, max_length=64)
            machine = self.machine_name(upstream, project, branch)
            pattern = {
                "source": ["aws.states"],
                "detail-type": ["Step Functions Execution Status Change"],
                "detail": {"status": ["SUCCEEDED"], "stateMachineArn": [arn.rsplit(":", 1)[0] + f":{machine}"]},
            }
            out[rule] = (f"a run of {upstream} succeeding", pattern, {"type": "run", "name": upstream})
        return out

    def _apply_triggers(self, flow: dict[str, Any], arn: str, rules: dict[str, Any]) -> None:
        """Create the trigger rules (their target starts the state machine with the event in the
        run's input) and remove the deployment's rules that no longer trigger it."""
        events = self._client("events")
        defaults = {n: p.get("default") for n, p in flow.get("parameters", {}).items()}
        owner = f"deployment:{flow.get('branch') or flow['name']}"
        stem = self.machine_name(flow["name"], flow.get("project"), flow.get("branch"))
        with _aws.translated(f"wiring the triggers of {flow['name']}"):
            for rule, (what, pattern, trigger) in rules.items():
                events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED",
                                Description=f"Lamina: starts {stem} on {what}")  # fmt: skip
                template = json.dumps({"parameters": defaults, "user": owner, "trigger": trigger}, default=str)
                template = template[:-2] + ', "detail": <detail>}}'  # the event's own detail, verbatim
                events.put_targets(Rule=rule, Targets=[{
                    "Id": "lamina", "Arn": arn, "RoleArn": self.settings.events_role or self.settings.role,
                    "InputTransformer": {"InputPathsMap": {"detail": "$.detail"}, "InputTemplate": template},
                }])  # fmt: skip
            for name in self._rules_targeting(arn):
                if name not in rules and not name.endswith("-schedule"):
                    events.remove_targets(Rule=name, Ids=["lamina"])
                    events.delete_rule(Name=name)

    def _rules_targeting(self, arn: str) -> list[str]:
        """Names of the EventBridge rules (of ours) whose target is the state machine ``arn``."""
        events = self._client("events")
        names = []
        for rule in events.list_rules(NamePrefix=self.settings.name_prefix).get("Rules", []):
            targets = events.list_targets_by_rule(Rule=rule["Name"]).get("Targets", [])
            if any(t.get("Arn") == arn for t in targets):
                names.append(rule["Name"])
        return names

    @hookimpl
    def orchestration_publish(self, name: str, payload: dict[str, Any]) -> str:
        """Put a business event on the default EventBridge bus (source ``lamina``)."""
        import datetime as dt

        detail = {"name": name, "payload": payload, "at": dt.datetime.now(dt.UTC).isoformat()}
        answer = _aws.call(
            f"publishing the event {name}", self._client("events").put_events,
            Entries=[{"Source": EVENT_SOURCE, "DetailType": EVENT_TYPE, "Detail": json.dumps(detail, default=str)}],
        )  # fmt: skip
        entry = (answer.get("Entries") or [{}])[0]
        if entry.get("ErrorCode"):
            raise LaminaError(f"EventBridge refused the event {name}: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
        return str(entry.get("EventId", ""))

    def rule_name(self, flow_name: str, project: str | None, branch: str | None) -> str:
        """The EventBridge rule of a deployment's schedule (64 characters at most)."""
        return deployment_name(flow_name, project, branch, prefix=self.settings.name_prefix, max_length=55) + "-schedule"

    def _machines(self) -> list[dict[str, Any]]:
        """Every state machine Lamina deployed here: ``{"name", "arn", "tags"}``."""
        sfn = self._client("stepfunctions")
        found = []
        with _aws.translated("listing state machines"):
            for page in sfn.get_paginator("list_state_machines").paginate():
                for machine in page.get("stateMachines", []):
                    if not machine["name"].startswith(self.settings.name_prefix):
                        continue
                    arn = str(machine["stateMachineArn"])
                    tags = {t["key"]: t["value"] for t in sfn.list_tags_for_resource(resourceArn=arn).get("tags", [])}
                    if "lamina:flow" in tags:
                        found.append({"name": machine["name"], "arn": arn, "tags": tags})
        return found

    def _find(self, flow_name: str, branch: str | None) -> str | None:
        for machine in self._machines():
            tags = machine["tags"]
            if tags["lamina:flow"] == flow_name and (tags.get(BRANCH_TAG) or None) == (branch or None):
                return str(machine["arn"])
        return None

    def _require(self, flow_name: str, branch: str | None) -> str:
        arn = self._find(flow_name, branch)
        if arn is None:
            where = f" on branch {branch}" if branch else ""
            deployed = sorted(
                f"{m['tags']['lamina:flow']}" + (f" (branch {m['tags'][BRANCH_TAG]})" if m["tags"].get(BRANCH_TAG) else "")
                for m in self._machines()
            )
            raise LaminaError(
                f"{flow_name} is not deployed{where} on this stack "
                f"({self.settings.region or 'the default region'}; deployed: {', '.join(deployed) or 'nothing'}): "
                "deploy it with `python flow.py deploy`."
            )
        return arn

    def _schedule(self, rule: str, arn: str, schedule: str | None, flow: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        events = self._client("events")
        with _aws.translated(f"scheduling {flow['name']}"):
            if schedule is None:
                try:
                    events.remove_targets(Rule=rule, Ids=["lamina"])
                    events.delete_rule(Name=rule)
                except ClientError as exc:
                    if _aws.error_code(exc) != "ResourceNotFoundException":
                        raise
                return
            defaults = {n: p.get("default") for n, p in flow.get("parameters", {}).items()}
            events.put_rule(
                Name=rule,
                ScheduleExpression=schedule,
                State="ENABLED",
                Description=f"Lamina: runs the flow {flow['name']} on {schedule}",
            )
            owner = f"deployment:{flow.get('branch') or flow['name']}"  # a scheduled run is the deployment's
            events.put_targets(
                Rule=rule,
                Targets=[
                    {
                        "Id": "lamina",
                        "Arn": arn,
                        "RoleArn": self.settings.events_role or self.settings.role,
                        "Input": json.dumps(
                            {"parameters": defaults, "user": owner, "trigger": {"type": "schedule", "name": schedule}},
                            default=str,
                        ),
                    }
                ],
            )

    def _template(self, arn: str) -> dict[str, Any]:
        sfn = self._client("stepfunctions")
        tags = _aws.call("reading the state machine's tags", sfn.list_tags_for_resource, resourceArn=arn)
        uri = next((t["value"] for t in tags.get("tags", []) if t["key"] == TEMPLATE_TAG), None)
        if not uri:
            raise LaminaError(f"the state machine {arn} was not deployed by Lamina (no {TEMPLATE_TAG} tag)")
        return self._read_json(uri)

    def _read_json(self, uri: str) -> dict[str, Any]:
        bucket, _, key = uri[len("s3://") :].partition("/")
        body = _aws.call(f"reading {uri}", self._client("s3").get_object, Bucket=bucket, Key=key)["Body"]
        with body:
            return dict(json.loads(body.read()))

    @hookimpl
    def orchestration_trigger(self, flow_name: str, parameters: dict[str, Any], branch: str | None) -> str:
        """Start an execution named by a new run id; ``parameters`` (strings from the command
        line, or values) are checked and converted against the deployed flow's parameters. The
        run belongs to the user who triggers it.

        :return: the run id (the execution's name).
        :raises LaminaError: the flow is not deployed (on that branch), or a parameter is invalid.
        """
        arn = self._require(flow_name, branch)
        values = check_trigger_parameters(flow_name, self._template(arn).get("parameters", {}), parameters)
        run_id = new_run_id()
        sfn = self._client("stepfunctions")
        _aws.call(
            f"starting {flow_name}",
            sfn.start_execution,
            stateMachineArn=arn,
            name=run_id,
            input=json.dumps({"parameters": values, "user": current_user(), "trigger": None}, default=str),
        )
        return run_id

    @hookimpl
    def orchestration_status(self, flow_name: str, run_id: str, branch: str | None) -> RunState:
        """The execution named ``run_id`` of the flow's (branch's) state machine."""
        from botocore.exceptions import ClientError

        arn = self._find(flow_name, branch)
        if arn is None:
            raise NotFound(f"{flow_name} is not deployed on this stack (no state machine)")
        execution = arn.replace(":stateMachine:", ":execution:", 1) + f":{run_id}"
        try:
            found = _aws.call(
                f"reading the execution {run_id}", self._client("stepfunctions").describe_execution,
                executionArn=execution,
            )  # fmt: skip
        except ClientError as exc:
            if _aws.error_code(exc) == "ExecutionDoesNotExist":
                raise NotFound(f"no execution {run_id} of {flow_name} on Step Functions") from None
            raise
        status: RunStatusName = {"RUNNING": "running", "SUCCEEDED": "succeeded", "ABORTED": "interrupted"}.get(
            found["status"], "failed"
        )  # type: ignore[assignment]
        return RunState(run_id=run_id, status=status, message=str(found.get("error") or found.get("cause") or ""))

    @hookimpl
    def orchestration_deployments(self) -> list[Deployment]:
        """Every state machine Lamina deployed in this region, with its branch and schedule."""
        out = []
        for machine in self._machines():
            tags = machine["tags"]
            schedule = tags.get(SCHEDULE_TAG)
            out.append(
                Deployment(
                    flow_name=tags["lamina:flow"], project=tags.get(PROJECT_TAG) or None,
                    branch=tags.get(BRANCH_TAG) or None, target=machine["arn"],
                    schedule=None if schedule in (None, "-") else schedule,
                )
            )  # fmt: skip
        return sorted(out, key=lambda d: (d.flow_name, d.branch or ""))

    @hookimpl
    def orchestration_delete(self, flow_name: str, branch: str | None) -> str:
        """Delete the state machine of ``flow_name`` (on ``branch``) and its schedule rule."""
        arn = self._require(flow_name, branch)
        events = self._client("events")
        with _aws.translated(f"removing the rules of {flow_name}"):
            for rule in self._rules_targeting(arn):  # its schedule and its triggers
                events.remove_targets(Rule=rule, Ids=["lamina"])
                events.delete_rule(Name=rule)
        _aws.call(f"deleting {arn}", self._client("stepfunctions").delete_state_machine, stateMachineArn=arn)
        return f"the state machine {arn}" + (f" (branch {branch})" if branch else "")

    @hookimpl
    def orchestration_check(self) -> CheckResult:
        """Credentials, the state machine role, and access to Step Functions. Never raises."""
        from botocore.exceptions import BotoCoreError, ClientError

        def verdict(ok: bool, message: str, fix: str = "") -> CheckResult:
            return CheckResult(layer="orchestration", adapter=ADAPTER_NAME, ok=ok, message=message, fix=fix)

        identity, failure = _aws.check_identity(self.settings.region, self.settings.endpoint_url)
        if failure:
            return verdict(False, failure, _aws.CREDENTIALS_FIX)
        try:
            with _aws.translated("reading the state machine role"):
                self._client("iam").get_role(RoleName=_aws.role_name(self.settings.role))
        except ClientError as exc:
            if _aws.error_code(exc) == "NoSuchEntity":
                return verdict(
                    False,
                    f"the role {self.settings.role} does not exist",
                    "create a role Step Functions can assume (trust states.amazonaws.com) allowed to run "
                    "SageMaker training jobs, pass the SageMaker role and read/write the bucket; set "
                    "LAMINA_SFN_ROLE (or `role` in [orchestration]) to its ARN",
                )
        except (LaminaError, BotoCoreError) as exc:
            return verdict(False, f"cannot read the role {self.settings.role}: {exc}", _aws.CREDENTIALS_FIX)
        try:
            with _aws.translated("listing state machines"):
                self._client("stepfunctions").list_state_machines(maxResults=1)
        except (ClientError, BotoCoreError, LaminaError) as exc:
            return verdict(
                False,
                f"{identity} cannot use Step Functions: {_aws.describe_failure(exc)}",
                "grant states:CreateStateMachine/UpdateStateMachine/StartExecution/ListStateMachines",
            )
        return verdict(True, f"Step Functions as {identity}; state machines run as {self.settings.role}")

    @hookimpl
    def orchestration_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Throttled API calls and dropped connections."""
        return _aws.transient_errors()


ADAPTER = AdapterInfo(
    layer="orchestration",
    name=ADAPTER_NAME,
    settings=StepFunctionsSettings,
    factory=StepFunctionsOrchestration,
    extra="aws",
    requires=("boto3",),
    description="deploy flows as Step Functions state machines (SageMaker job per task), schedules via EventBridge",
    contract=2,
    features=frozenset({"schedule", "status", "branches", "list", "delete", "triggers"}),
)
