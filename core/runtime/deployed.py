"""Tasks of a deployed flow: what every deployer (Step Functions, Vertex AI Pipelines, Azure ML
pipelines) shares, so that none of them copies another.

A deployed flow runs with no scheduler of ours: the orchestrator starts each task's container,
which cannot know the run's task ids and input paths in advance. So ``deploy`` stores a *deploy
template* (per step: its input rule, resources, timeout, attempts; the flow's code package and
stack) in the run store, and each deployed task runs::

    python -m lamina task deployed --boot CHUNK [CHUNK ...] --step STEP --run-id RUN \\
        [--attempt N] [--frame STEP:INDEX:COUNT ...]

``--boot`` carries the stack snapshot (its non-secret ``${VAR}`` resolved, see
:func:`lamina.stack.profile.remote_snapshot`) and the template's key, packed into chunks short
enough for any platform's argument limits. The task rebuilds its stack, reads the template and
its parents' records from the run store, computes its id and inputs with the flow graph's one
input rule (:class:`lamina.flow.graph.InputRule`) and runs :func:`lamina.runtime.task.run_task`,
exactly as under the built-in scheduler.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import TYPE_CHECKING, Any

from ..errors import LaminaError, ParameterError
from ..models import ForeachFrame, Resources, StepEnvironment, TaskSpec

if TYPE_CHECKING:
    from ..versioning.runstore import RunStore

CHUNK = 250
"""Characters per packed argument: SageMaker accepts at most 256 per ``ContainerArguments`` item."""


def pack(value: dict[str, Any]) -> list[str]:
    """A JSON object as argument-sized chunks (zlib, then base64: no chunk starts with ``-``)."""
    data = base64.b64encode(
        zlib.compress(json.dumps(value, sort_keys=True, default=str).encode(), 9)
    ).decode()
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def unpack(chunks: list[str]) -> dict[str, Any]:
    """The JSON object that :func:`pack` packed."""
    value = json.loads(zlib.decompress(base64.b64decode("".join(chunks).encode())))
    if not isinstance(value, dict):
        raise ValueError("not a packed JSON object")
    return value


def deploy_template(descriptor: dict[str, Any]) -> dict[str, Any]:
    """What each deployed task needs besides its run id, attempt and foreach frames.

    :param descriptor: the flow descriptor a deployer gets (see :mod:`lamina.runtime.deploy`).
    """
    steps: dict[str, Any] = {}
    for name, info in descriptor["steps"].items():
        deco = info.get("decorators", {})
        retry = deco.get("retry") or {}
        rule = info["inputs"]
        steps[name] = {
            "inputs": rule,
            "first_in_foreach": rule["kind"] == "foreach-parent",
            "resources": {k: v for k, v in (deco.get("resources") or {}).items() if v is not None},
            "timeout": deco.get("timeout"),
            "max_attempts": 1 + int(retry.get("times", 0)) if retry else 1,
        }
        environment = (descriptor.get("environments") or {}).get(name)
        if environment:
            steps[name]["environment"] = environment
    return {
        "flow_name": descriptor["name"],
        "flow_file": descriptor["flow_file"],
        "code_key": descriptor["code_key"],
        "stack": descriptor["stack"],
        "user": descriptor.get("user", ""),
        "tags": descriptor.get("tags", []),
        "parameters": descriptor.get("parameters", {}),
        "steps": steps,
    }


def prepare(descriptor: dict[str, Any], runs: RunStore, *, store: bool = True) -> dict[str, Any]:
    """Store the flow's deploy template in ``runs`` (unless ``store`` is false: a dry run) and
    return the descriptor with ``template_key`` and ``task_boot`` (what :func:`task_arguments`
    puts on each deployed task's command line) added."""
    from ..stack.profile import remote_snapshot

    template = deploy_template({**descriptor, "stack": remote_snapshot(descriptor["stack"])})
    flow = descriptor["name"]
    key = runs.save_deploy_template(flow, template) if store else runs.deploy_template_key(flow, template)
    return {
        **descriptor,
        "template_key": key,
        "task_boot": pack({"stack": template["stack"], "template": key}),
    }


def task_arguments(descriptor: dict[str, Any], step: str) -> list[str]:
    """The static part of a deployed task's command after the interpreter: ``-m lamina task
    deployed --boot ... --step STEP``. The deployer appends ``--run-id``, ``--attempt`` and one
    ``--frame STEP:INDEX:COUNT`` per foreach level, from its own run-time values."""
    boot = descriptor.get("task_boot")
    if not boot:
        raise LaminaError(
            "the flow descriptor carries no task_boot: deployers get it from lamina's deploy "
            "(lamina.runtime.deploy.deploy_flow), which stores the deploy template first."
        )
    return ["-m", "lamina", "task", "deployed", "--boot", *boot, "--step", step]


def parse_frame(text: str) -> ForeachFrame:
    """``STEP:INDEX:COUNT`` (as a deployer passes ``--frame``) as a :class:`ForeachFrame`."""
    step, index, count = text.rsplit(":", 2)
    return ForeachFrame(step=step, index=int(index), count=int(count))


def deployed_task_spec(
    template: dict[str, Any], step: str, run_id: str, frames: list[ForeachFrame], attempt: int, runs: RunStore
) -> TaskSpec:
    """The :class:`TaskSpec` of one task of a deployed run, its inputs found in ``runs``.

    :raises LaminaError: the step is not in the template, or an input stored no record.
    """
    from ..flow.graph import InputRule

    info = template["steps"].get(step)
    if info is None:
        raise LaminaError(
            f"the deploy template of {template['flow_name']} has no step {step!r} "
            f"(steps: {', '.join(template['steps'])}); deploy the flow again."
        )
    flow = template["flow_name"]
    task_id = ".".join(str(f.index) for f in frames) or "0"

    def attempt_of(parent: str, parent_task: str) -> int:
        found = runs.attempts(flow, run_id, parent, parent_task)
        if not found:
            raise LaminaError(
                f"run {flow}/{run_id}: the input task {parent}/{parent_task} of {step}/{task_id} "
                "stored no completion record."
            )
        return found[-1]

    def count_of(split: str, split_task: str) -> int:
        record = runs.record(flow, run_id, split, split_task, attempt_of(split, split_task))
        return (record.foreach_count if record else 0) or 0

    inputs = InputRule.from_dict(info["inputs"]).paths(task_id, len(frames), attempt_of, count_of)
    parameters = runs.load_params(flow, run_id)
    if parameters is None:
        parameters = {n: p.get("default") for n, p in template.get("parameters", {}).items()}
    return TaskSpec(
        run_id=run_id,
        flow_name=flow,
        step=step,
        task_id=task_id,
        attempt=attempt,
        input_paths=inputs,
        foreach_stack=frames,
        split_index=frames[-1].index if frames and info.get("first_in_foreach") else None,
        flow_file=template["flow_file"],
        code_key=template["code_key"],
        stack=template["stack"],
        resources=Resources.model_validate(info.get("resources") or {}),
        timeout=info.get("timeout"),
        max_attempts=info.get("max_attempts", 1),
        user=template.get("user", ""),
        parameters=parameters,
        tags=template.get("tags", []),
        environment=StepEnvironment.model_validate(info["environment"]) if info.get("environment") else None,
    )


def check_trigger_parameters(
    flow_name: str, declared: dict[str, dict[str, Any]], given: dict[str, Any]
) -> dict[str, Any]:
    """Check and convert a trigger's parameters against the deployed flow's declared ones.

    :param declared: ``{name: {type, default, has_default, help}}`` as the descriptor has them.
    :param given: strings from the command line, or values.
    :return: every declared parameter's value, defaults filled in.
    :raises ParameterError: an unknown parameter, a bad value, or a required one missing.
    """
    from ..flow.spec import JSONType, Parameter

    types = {"str": str, "int": int, "float": float, "bool": bool, "json": JSONType}
    values: dict[str, Any] = {}
    for key, raw in given.items():
        info = declared.get(key)
        if info is None:
            known = ", ".join(declared) or "none"
            raise ParameterError(f"{flow_name} has no parameter {key!r} (parameters: {known}).")
        values[key] = Parameter(key, type=types.get(info.get("type", "str"), str)).check(raw)
    for key, info in declared.items():
        if key not in values:
            if not info.get("has_default", True):
                raise ParameterError(
                    f"{flow_name}: required parameter {key!r} is missing: --param {key}=VALUE"
                )
            values[key] = info.get("default")
    return values


def main(argv: list[str]) -> int:
    """``python -m lamina task deployed ...`` (see the module docstring)."""
    import argparse

    from ..stack import stack_from_snapshot
    from ..versioning.runstore import RunStore
    from .task import EXIT_INFRA, run_supervised

    parser = argparse.ArgumentParser(prog="python -m lamina task deployed")
    parser.add_argument("--boot", nargs="+", required=True)
    parser.add_argument("--step", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--attempt", type=int, default=0)
    parser.add_argument("--frame", action="append", default=[])
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        boot = unpack(args.boot)
        stack = stack_from_snapshot(boot["stack"], role="task")
        runs = RunStore(stack.versioning)
        template = runs.load_deploy_template(boot["template"])
        frames = [parse_frame(f) for f in args.frame]
        spec = deployed_task_spec(template, args.step, args.run_id, frames, args.attempt, runs)
    except (LaminaError, ValueError, KeyError) as exc:
        import sys

        print(f"lamina: error: cannot start the deployed task: {exc}", file=sys.stderr)
        return EXIT_INFRA
    return run_supervised(spec, echo=not args.quiet)  # its output is kept even if it dies
