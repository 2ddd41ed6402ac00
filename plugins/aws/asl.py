"""Compile a flow's graph into an Amazon States Language state machine.

Each step is one ``arn:aws:states:::sagemaker:createTrainingJob.sync`` Task, whose container runs
Lamina's deployed-task entry point (``python -m lamina.plugins.aws deployed --boot ... --step S
--run-id R [--frame ...]``, see :mod:`lamina.runtime.deployed`). A static branch becomes a
``Parallel`` state, a foreach a ``Map`` state over the indices ``0..count-1``, where ``count``
comes from the foreach task's completion record in S3 (an ``aws-sdk:s3:getObject`` Task). Before
the first step, the run's parameters are written to the run store (an ``aws-sdk:s3:putObject``
Task), where every task reads them. Both keys come from the run store's key templates; the
execution's name is the run id.

Every state carries ``$.lamina``: the run id, the task id ``t`` ("0", "3", "3.1") and, inside
foreach bodies, one frame string per level (``f0``, ``f1``: ``"step:index:count"``).

The functions here are pure: they build dictionaries and make no calls.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable
from typing import Any

SAGEMAKER_SYNC = "arn:aws:states:::sagemaker:createTrainingJob.sync"
SAGEMAKER_CREATE = "arn:aws:states:::sagemaker:createTrainingJob"
SAGEMAKER_DESCRIBE = "arn:aws:states:::aws-sdk:sagemaker:describeTrainingJob"
POLL_SECONDS = 2
S3_GET = "arn:aws:states:::aws-sdk:s3:getObject"
S3_PUT = "arn:aws:states:::aws-sdk:s3:putObject"
MAX_FOREACH = 1000
"""``States.ArrayRange`` makes at most 1000 items: the largest fan-out of a deployed foreach."""


def lit(text: str) -> str:
    """A string literal for an intrinsic function (``'...'`` with ``' { } \\`` escaped)."""
    return "'" + re.sub(r"([\\'{}])", r"\\\1", text) + "'"


def fmt(*parts: str | tuple[str]) -> str:
    """``States.Format`` over literal ``str`` parts and ``(path,)`` placeholders."""
    template = "".join(re.sub(r"([\\'{}])", r"\\\1", p) if isinstance(p, str) else "{}" for p in parts)
    paths = [p[0] for p in parts if isinstance(p, tuple)]
    return f"States.Format('{template}'{''.join(', ' + p for p in paths)})"


def array(*items: str) -> str:
    return f"States.Array({', '.join(items)})"


class Compiler:
    """Builds the state machine; ``task_parameters(step)`` gives the static part of each job request."""

    def __init__(
        self,
        flow: dict[str, Any],
        *,
        bucket: str,
        prefix: str,
        task_parameters: Callable[[str], dict[str, Any]],
        task_arguments: Callable[[str], list[str]],
        key_template: Callable[..., str],
        job_name_stem: Callable[[str], str],
        secrets_arn: str | None = None,
        max_concurrency: int = 0,
        wait: str = "sync",
        poll_seconds: int = POLL_SECONDS,
    ) -> None:
        """:param task_arguments: a step's static container arguments (``deployed --boot ...``).
        :param key_template: the run store's ``key_template(kind, flow, step)``.
        :param wait: ``sync`` (Step Functions' ``.sync`` integration waits for each job) or
            ``poll`` (a create, wait, describe, choice loop, with ``@retry`` compiled into it)."""
        self.wait = wait
        self.poll_seconds = poll_seconds
        self.flow = flow
        self.steps: dict[str, Any] = flow["steps"]
        self.name = flow["name"]
        self.task_arguments = task_arguments
        self.key_template = key_template
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.task_parameters = task_parameters
        self.job_name_stem = job_name_stem
        self.secrets_arn = secrets_arn
        self.max_concurrency = max_concurrency

    # -- pieces ----------------------------------------------------------------------------

    def _arguments(self, step: str, depth: int, attempt: str = "$$.State.RetryCount") -> tuple[str, int]:
        """``ContainerArguments.$`` and the index of the attempt argument in it."""
        items: list[str] = []
        if self.secrets_arn:
            items += [lit("--secrets"), lit(self.secrets_arn)]
        items += [lit(arg) for arg in self.task_arguments(step)]
        items += [lit("--run-id"), "$.lamina.run_id", lit("--attempt")]
        attempt_index = len(items)
        items.append(fmt((attempt,)))
        for level in range(depth):
            items += [lit("--frame"), f"$.lamina.f{level}"]
        return array(*items), attempt_index

    def task(self, step: str, depth: int) -> tuple[dict[str, dict[str, Any]], str]:
        """The states that run one task of ``step`` (the first is named ``step``) and the name of
        the last, which the caller links onward."""
        if self.wait == "poll":
            return self._poll_task(step, depth)
        return {step: self._sync_task(step, depth)}, step

    def _poll_task(self, step: str, depth: int) -> tuple[dict[str, dict[str, Any]], str]:
        """create job -> wait -> describe -> choice: done, still running, or failed; a failed
        attempt starts the next one while ``@retry`` allows (Step Functions' own ``Retry`` never
        sees a job fail in this form)."""
        params = json.loads(json.dumps(self.task_parameters(step)))
        params.pop("TrainingJobName", None)
        params["TrainingJobName.$"] = "$.job.name"
        algo = params["AlgorithmSpecification"]
        algo.pop("ContainerArguments", None)
        arguments, _ = self._arguments(step, depth, attempt="$.try.n")
        algo["ContainerArguments.$"] = arguments
        retry = self.steps[step].get("decorators", {}).get("retry") or {}
        attempts = 1 + int(retry.get("times", 0) or 0)
        pause = max(1, int(60 * float(retry.get("minutes_between_retries", 0) or 0)))
        n = {k: f"{step}: {k}" for k in ("name", "create", "wait", "describe", "check", "again", "retry", "failed", "done")}
        states: dict[str, dict[str, Any]] = {
            step: {"Type": "Pass", "Comment": f"step {step}: attempt 0", "Result": {"n": 0},
                   "ResultPath": "$.try", "Next": n["name"]},
            n["name"]: {"Type": "Pass", "Parameters": {"name.$": fmt(f"{self.job_name_stem(step)}-", ("States.UUID()",))},
                        "ResultPath": "$.job", "Next": n["create"]},
            n["create"]: {"Type": "Task", "Comment": f"step {step}: one SageMaker training job per attempt",
                          "Resource": SAGEMAKER_CREATE, "Parameters": params, "ResultPath": None, "Next": n["wait"]},
            n["wait"]: {"Type": "Wait", "Seconds": self.poll_seconds, "Next": n["describe"]},
            n["describe"]: {"Type": "Task", "Resource": SAGEMAKER_DESCRIBE,
                            "Parameters": {"TrainingJobName.$": "$.job.name"},
                            "ResultSelector": {"status.$": "$.TrainingJobStatus"}, "ResultPath": "$.job_status",
                            "Next": n["check"]},
            n["check"]: {"Type": "Choice", "Choices": [
                {"Variable": "$.job_status.status", "StringEquals": "Completed", "Next": n["done"]},
                {"Or": [{"Variable": "$.job_status.status", "StringEquals": "InProgress"},
                        {"Variable": "$.job_status.status", "StringEquals": "Stopping"}], "Next": n["wait"]},
            ], "Default": n["retry"]},
            n["retry"]: {"Type": "Choice", "Comment": f"@retry: {attempts} attempt(s) in all",
                         "Choices": [{"Variable": "$.try.n", "NumericLessThan": attempts - 1, "Next": n["again"]}],
                         "Default": n["failed"]},
            n["again"]: {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.try.n, 1)"}, "ResultPath": "$.try",
                         "Next": f"{step}: pause"},
            f"{step}: pause": {"Type": "Wait", "Seconds": pause, "Next": n["name"]},
            n["failed"]: {"Type": "Fail", "Error": "LaminaTaskFailed",
                          "Cause": f"step {step}: the task's last attempt failed (see its record and logs)"},
            n["done"]: {"Type": "Pass", "Parameters": {"attempt.$": fmt(("$.try.n",))}, "ResultPath": "$.split"},
        }  # fmt: skip
        return states, n["done"]

    def _sync_task(self, step: str, depth: int) -> dict[str, Any]:
        params = json.loads(json.dumps(self.task_parameters(step)))
        params.pop("TrainingJobName", None)
        params["TrainingJobName.$"] = fmt(f"{self.job_name_stem(step)}-", ("States.UUID()",))
        algo = params["AlgorithmSpecification"]
        algo.pop("ContainerArguments", None)
        arguments, attempt_index = self._arguments(step, depth)
        algo["ContainerArguments.$"] = arguments
        state: dict[str, Any] = {
            "Type": "Task",
            "Comment": f"step {step}: one SageMaker training job per task",
            "Resource": SAGEMAKER_SYNC,
            "Parameters": params,
            "ResultPath": None,
        }
        retry = self.steps[step].get("decorators", {}).get("retry")
        if retry and retry.get("times"):
            state["Retry"] = [
                {
                    "ErrorEquals": ["States.TaskFailed"],
                    "MaxAttempts": int(retry["times"]),
                    "IntervalSeconds": max(1, int(60 * float(retry.get("minutes_between_retries", 0)))),
                    "BackoffRate": 1.0,
                }
            ]
        if self.steps[step]["foreach"]:
            state["ResultSelector"] = {
                "attempt.$": f"States.ArrayGetItem($.AlgorithmSpecification.ContainerArguments, {attempt_index})"
            }
            state["ResultPath"] = "$.split"
        return state

    def _key(self, template: str, **paths: str) -> str:
        """A run store key template as ``States.Format``, placeholders bound to state paths."""
        parts: list[str | tuple[str]] = [self.prefix]
        for literal, field, _, _ in string.Formatter().parse(template):
            parts.append(literal)
            if field is not None:
                parts.append((paths[field],))
        return fmt(*parts)

    def _record_key(self, step: str) -> str:
        return self._key(
            self.key_template("record", self.name, step),
            run_id="$.lamina.run_id",
            task_id="$.lamina.t",
            attempt="$.split.attempt",
        )

    # -- walking the graph -----------------------------------------------------------------

    def emit(self, name: str, stop: str | None, depth: int, states: dict[str, Any]) -> None:
        """Add the states of ``name`` and what follows it, up to ``stop`` (a join, exclusive)."""
        node = self.steps[name]
        task_states, last = self.task(name, depth)
        states.update(task_states)
        state = task_states[last]

        def link(source: dict[str, Any], target: str) -> None:
            if target == stop:
                source["End"] = True
            else:
                source["Next"] = target
                self.emit(target, stop, depth, states)

        if not node["next"]:
            state["End"] = True
            return
        if node["foreach"]:
            body, join = node["next"][0], node["matching_join"]
            count, fan, each = f"{name}: count", f"{name}: fan-out", f"{name}: foreach"
            state["Next"] = count
            states[count] = {
                "Type": "Task",
                "Comment": f"how many tasks {name} fans out to (its completion record's foreach_count)",
                "Resource": S3_GET,
                "Parameters": {"Bucket": self.bucket, "Key.$": self._record_key(name)},
                "ResultSelector": {"record.$": "States.StringToJson($.Body)"},
                "ResultPath": "$.split",
                "Next": fan,
            }
            states[fan] = {
                "Type": "Pass",
                "Parameters": {
                    "lamina.$": "$.lamina",
                    "count.$": "$.split.record.foreach_count",
                    "items.$": "States.ArrayRange(0, States.MathAdd($.split.record.foreach_count, -1), 1)",
                },
                "Next": each,
            }
            selector: dict[str, Any] = {"run_id.$": "$.lamina.run_id"}
            for level in range(depth):
                selector[f"f{level}.$"] = f"$.lamina.f{level}"
            selector["t.$"] = (
                fmt(("$$.Map.Item.Value",))
                if depth == 0
                else fmt(("$.lamina.t",), ".", ("$$.Map.Item.Value",))
            )
            selector[f"f{depth}.$"] = fmt(f"{name}:", ("$$.Map.Item.Value",), ":", ("$.count",))
            inner: dict[str, Any] = {}
            self.emit(body, join, depth + 1, inner)
            states[each] = {
                "Type": "Map",
                "Comment": f"foreach of step {name}: one iteration per item, at most {MAX_FOREACH}",
                "ItemsPath": "$.items",
                "ItemSelector": {"lamina": selector},
                "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": body, "States": inner},
                "MaxConcurrency": self.max_concurrency,
                "ResultPath": None,
            }
            link(states[each], join)
            return
        if len(node["next"]) > 1:
            join = node["matching_join"]
            parallel = f"{name}: branches"
            state["Next"] = parallel
            branches = []
            for target in node["next"]:
                inner = {}
                self.emit(target, join, depth, inner)
                branches.append({"StartAt": target, "States": inner})
            states[parallel] = {
                "Type": "Parallel",
                "Comment": f"static branch of step {name}",
                "Branches": branches,
                "ResultPath": None,
            }
            link(states[parallel], join)
            return
        link(state, node["next"][0])

    def definition(self) -> dict[str, Any]:
        """The whole state machine (a dict; ``json.dumps`` it for the API)."""
        deployment = "deployment:" + (self.flow.get("branch") or self.name)
        manifest = {
            "flow_name": self.name,
            "run_id.$": "$.lamina.run_id",
            "params.$": "$.parameters",
            "user.$": "$.user",
            "trigger.$": "$.trigger",
            "tags": list(self.flow.get("tags", [])),
            "code_key": self.flow.get("code_key"),
            "stack": self.flow.get("stack", {}),
            "deployed": True,
        }
        states: dict[str, Any] = {
            "Input": {
                "Type": "Choice",
                "Comment": "executions take {'parameters': {...}, 'user': ..., 'trigger': ...}; without them "
                "the deployed defaults apply and the run is the deployment's",
                "Choices": [
                    {"And": [{"Variable": "$.parameters", "IsPresent": True},
                             {"Variable": "$.user", "IsPresent": True},
                             {"Variable": "$.trigger", "IsPresent": True}], "Next": "Init"},
                    {"Variable": "$.parameters", "IsPresent": True, "Next": "Deployment's run"},
                ],
                "Default": "Default parameters",
            },
            "Deployment's run": {
                "Type": "Pass",
                "Parameters": {"parameters.$": "$.parameters", "user": deployment, "trigger": None},
                "Next": "Init",
            },
            "Default parameters": {
                "Type": "Pass",
                "Parameters": {"parameters": self.default_parameters(), "user": deployment, "trigger": None},
                "Next": "Init",
            },
            "Init": {
                "Type": "Pass",
                "Comment": "the execution name is the run id",
                "Parameters": {
                    "lamina": {"run_id.$": "$$.Execution.Name", "t": "0"},
                    "parameters.$": "$.parameters",
                    "user.$": "$.user",
                    "trigger.$": "$.trigger",
                },
                "Next": "Save parameters",
            },
            "Save parameters": {
                "Type": "Task",
                "Resource": S3_PUT,
                "Parameters": {
                    "Bucket": self.bucket,
                    "Key.$": self._key(self.key_template("params", self.name), run_id="$.lamina.run_id"),
                    "Body.$": "States.JsonToString($.parameters)",
                    "ContentType": "application/json",
                },
                "ResultPath": None,
                "Next": "Manifest",
            },
            "Manifest": {
                "Type": "Pass",
                "Comment": "what indexes the run in any metadata store (lamina sync, trigger --wait)",
                "Parameters": manifest,
                "ResultPath": "$.manifest",
                "Next": "Save manifest",
            },
            "Save manifest": {
                "Type": "Task",
                "Resource": S3_PUT,
                "Parameters": {
                    "Bucket": self.bucket,
                    "Key.$": self._key(self.key_template("manifest", self.name), run_id="$.lamina.run_id"),
                    "Body.$": "States.JsonToString($.manifest)",
                    "ContentType": "application/json",
                },
                "ResultPath": None,
                "Next": "Run",
            },
            "Run": {"Type": "Pass", "Parameters": {"lamina.$": "$.lamina"}, "Next": "start"},
        }  # fmt: skip
        self.emit("start", None, 0, states)
        return {
            "Comment": f"Lamina flow {self.name}: each task is a SageMaker training job",
            "StartAt": "Input",
            "States": states,
        }

    def default_parameters(self) -> dict[str, Any]:
        return {
            name: info.get("default")
            for name, info in self.flow.get("parameters", {}).items()
            if info.get("has_default", True)
        }


def task_states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state of a definition by name, nested ``Parallel`` branches and ``Map`` bodies included."""
    found: dict[str, dict[str, Any]] = {}

    def walk(states: dict[str, Any]) -> None:
        for name, state in states.items():
            found[name] = state
            for branch in state.get("Branches", []):
                walk(branch["States"])
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                walk(processor["States"])

    walk(definition["States"])
    return found


def to_aws_schedule(expression: str) -> str:
    """A schedule for EventBridge: ``rate(...)``/``cron(...)`` as given, or a 5-field cron converted.

    Standard cron numbers weekdays 0-6 from Sunday; AWS 1-7, and wants ``?`` in one of
    day-of-month and day-of-week.

    :raises ValueError: not a schedule expression (the message shows the accepted forms).
    """
    text = expression.strip()
    if re.fullmatch(r"(rate|cron)\(.+\)", text):
        return text
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"schedule {expression!r} is not a cron expression: give five fields "
            "'MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK' (e.g. '0 3 * * *'), or 'rate(1 day)' / 'cron(0 3 * * ? *)'"
        )
    minute, hour, dom, month, dow = fields

    def shift(match: re.Match[str]) -> str:
        return str(int(match.group(0)) % 7 + 1)

    if dow != "*":
        dow = re.sub(r"(?<![#/])\b\d\b", shift, dow)
    if dow == "*":
        dow = "?"
    elif dom == "*":
        dom = "?"
    else:
        raise ValueError(
            f"schedule {expression!r}: AWS cannot restrict both day-of-month and day-of-week; use '*' in one"
        )
    return f"cron({minute} {hour} {dom} {month} {dow} *)"
