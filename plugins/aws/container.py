"""What a SageMaker training job's container runs: Lamina's one task entry point.

SageMaker limits each ``ContainerArguments`` item to 256 characters, and a
:class:`~lamina.models.TaskSpec` (it carries the run's stack profile) is a few kilobytes. So the
compute adapter sends the spec as zlib-compressed, base64url-encoded chunks, and the container
runs::

    python -m lamina.plugins.aws spec CHUNK [CHUNK ...]

which joins the chunks and calls ``lamina.runtime.task.main(["--spec-b64", ...])``, exactly what
``python -m lamina task --spec-b64`` runs. Everything travels in the arguments, which SageMaker
(and moto) keep, rather than in the job's ``Environment``.

A flow deployed to Step Functions cannot know run ids and foreach indices in advance, so its
jobs run::

    python -m lamina.plugins.aws deployed --template s3://B/K --step S --run-id R \\
        [--frame STEP:INDEX:COUNT ...] [--attempt N]

which reads the flow's deploy template (stored by ``deploy``), computes the task's id and input
paths from the frames and the parents' records in the blob store, and builds the same TaskSpec.

Secrets: with ``--secrets ARN`` (the compute profile's ``secrets_arn``), the keys of that AWS
Secrets Manager secret (a JSON object, e.g. ``{"SNOWFLAKE_PASSWORD": "..."}``) are exported into
the task's environment first, so no secret is ever written into a job definition.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import zlib
from typing import Any

from lamina.redaction import is_secret_name

CHUNK = 250
"""Characters per argument; SageMaker accepts at most 256."""

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def pack_spec(spec_json: str) -> list[str]:
    """A TaskSpec's JSON as argument-sized chunks (zlib, then base64: no chunk starts with '-')."""
    data = base64.b64encode(zlib.compress(spec_json.encode(), 9)).decode()
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def unpack_spec(chunks: list[str]) -> str:
    """The TaskSpec JSON that :func:`pack_spec` packed."""
    return zlib.decompress(base64.b64decode("".join(chunks).encode())).decode()


def resolve_stack_snapshot(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The stack snapshot with its non-secret ``${VAR}`` references resolved here, in the driver.

    A job's container does not have the driver's environment (``SNOWFLAKE_ACCOUNT``,
    ``LAMINA_S3_BUCKET``...), so the values travel with the task. Keys that name secrets keep
    their references: the container resolves them from its own environment, never from the job.
    (``*_arn`` keys name where a secret is kept, not the secret, and are resolved.)
    """
    from lamina.stack.profile import resolve_env_refs

    out = dict(snapshot)
    layers: dict[str, Any] = {}
    for layer, table in snapshot.get("layers", {}).items():
        resolved = {}
        for key, value in table.items():
            if key == "adapter" or is_secret_name(key):
                resolved[key] = value
            else:
                resolved[key] = resolve_env_refs(value, snapshot.get("source", "profile"), layer, key)
        layers[layer] = resolved
    out["layers"] = layers
    return out


def export_secrets(arn: str) -> list[str]:
    """Export the keys of the Secrets Manager secret ``arn`` (a JSON object) into ``os.environ``.

    :return: the names exported (never the values).
    """
    from lamina.errors import LaminaError

    from . import _aws

    region = arn.split(":")[3] if arn.count(":") >= 6 else None
    client = _aws.client("secretsmanager", region or None)
    value = _aws.call(f"reading the secret {arn}", client.get_secret_value, SecretId=arn)
    try:
        secrets = json.loads(value.get("SecretString") or "{}")
    except ValueError:
        secrets = None
    if not isinstance(secrets, dict):
        raise LaminaError(
            f"the secret {arn} must hold a JSON object of environment variables, e.g. "
            '{"SNOWFLAKE_PASSWORD": "..."}'
        )
    for name, secret in secrets.items():
        os.environ[str(name)] = str(secret)
    return sorted(secrets)


# -- Step Functions: building a task from the deploy template ---------------------------------


def _parse_frame(text: str) -> dict[str, Any]:
    step, index, count = text.rsplit(":", 2)
    return {"step": step, "index": int(index), "count": int(count)}


def _latest_attempt(blobs: Any, flow: str, run_id: str, step: str, task_id: str) -> int:
    """The highest attempt of a parent task that stored a completion record."""
    from lamina.errors import LaminaError
    from lamina.versioning import layout

    prefix = layout.task_prefix(flow, run_id, step, task_id)
    attempts = [
        int(key[len(prefix) :].split("/")[0])
        for key in blobs.list(prefix)
        if key.endswith("/" + layout.RECORD_NAME) and key[len(prefix) :].split("/")[0].isdigit()
    ]
    if not attempts:
        raise LaminaError(f"run {run_id}: the input task {step}/{task_id} stored no record under {prefix}")
    return max(attempts)


def deployed_spec(
    template: dict[str, Any], step: str, run_id: str, frames: list[dict[str, Any]], attempt: int
) -> str:
    """The TaskSpec JSON of one task of a deployed flow (see the module docstring)."""
    from lamina.models import ForeachFrame, Resources, TaskRecord, TaskSpec
    from lamina.stack import stack_from_snapshot
    from lamina.versioning import layout

    info = template["steps"][step]
    flow = template["flow_name"]
    stack = stack_from_snapshot(template["stack"], role="task")
    blobs = stack.versioning
    task_id = ".".join(str(f["index"]) for f in frames) or "0"
    outer = ".".join(str(f["index"]) for f in frames[:-1]) or "0"

    def path(parent: str, parent_task: str) -> str:
        return f"{parent}/{parent_task}/{_latest_attempt(blobs, flow, run_id, parent, parent_task)}"

    rule = info["inputs"]
    kind = rule["kind"]
    if kind == "none":
        inputs: list[str] = []
    elif kind == "parent":
        inputs = [path(rule["step"], task_id)]
    elif kind == "foreach-parent":
        inputs = [path(rule["step"], outer)]
    elif kind == "branches":
        inputs = [path(parent, task_id) for parent in rule["steps"]]
    elif kind == "foreach-join":
        split_task = task_id
        record_key = layout.task_record_key(
            flow,
            run_id,
            rule["foreach"],
            split_task,
            _latest_attempt(blobs, flow, run_id, rule["foreach"], split_task),
        )
        count = TaskRecord.model_validate_json(blobs.get(record_key)).foreach_count or 0
        prefix = f"{task_id}." if frames else ""
        inputs = [path(rule["step"], f"{prefix}{i}") for i in range(count)]
    else:
        raise ValueError(f"unknown input rule {kind!r} in the deploy template of {flow}")
    try:
        parameters = json.loads(blobs.get(layout.run_params_key(flow, run_id)))
    except KeyError:
        parameters = {}
    spec = TaskSpec(
        run_id=run_id,
        flow_name=flow,
        step=step,
        task_id=task_id,
        attempt=attempt,
        input_paths=inputs,
        foreach_stack=[ForeachFrame.model_validate(frame) for frame in frames],
        split_index=frames[-1]["index"] if frames and info.get("first_in_foreach") else None,
        flow_file=template["flow_file"],
        code_key=template["code_key"],
        stack=template["stack"],
        resources=Resources.model_validate(info.get("resources") or {}),
        timeout=info.get("timeout"),
        max_attempts=info.get("max_attempts", 1),
        user=template.get("user", ""),
        parameters=parameters,
        tags=template.get("tags", []),
    )
    return spec.model_dump_json()


def _read_s3_json(uri: str) -> dict[str, Any]:
    from . import _aws

    match = re.match(r"^s3://([^/]+)/(.+)$", uri)
    if not match:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    s3 = _aws.client("s3")
    body = _aws.call(f"reading {uri}", s3.get_object, Bucket=match.group(1), Key=match.group(2))["Body"]
    with body:
        return json.loads(body.read())


def main(argv: list[str] | None = None) -> int:
    """Run one task as a SageMaker job's container does; returns the task's exit status."""
    from lamina.errors import LaminaError
    from lamina.runtime import task

    parser = argparse.ArgumentParser(prog="python -m lamina.plugins.aws")
    parser.add_argument("--secrets", help="a Secrets Manager secret whose keys become environment variables")
    sub = parser.add_subparsers(dest="mode", required=True)
    spec = sub.add_parser("spec", help="a TaskSpec packed by the sagemaker compute adapter")
    spec.add_argument("chunks", nargs="+")
    deployed = sub.add_parser("deployed", help="a task of a flow deployed to Step Functions")
    deployed.add_argument("--template", required=True)
    deployed.add_argument("--step", required=True)
    deployed.add_argument("--run-id", required=True)
    deployed.add_argument("--frame", action="append", default=[])
    deployed.add_argument("--attempt", type=int, default=0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.secrets:
            export_secrets(args.secrets)
        if args.mode == "spec":
            spec_json = unpack_spec(args.chunks)
        else:
            template = _read_s3_json(args.template)
            frames = [_parse_frame(f) for f in args.frame]
            spec_json = deployed_spec(template, args.step, args.run_id, frames, args.attempt)
    except (LaminaError, ValueError, KeyError) as exc:
        print(f"lamina: error: cannot start the task: {exc}", file=sys.stderr)
        return task.EXIT_INFRA
    encoded = base64.b64encode(spec_json.encode()).decode()
    return task.main(["--spec-b64", encoded])
