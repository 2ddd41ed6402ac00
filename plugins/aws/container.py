"""What a SageMaker training job's container runs: Lamina's one task entry point.

SageMaker limits each ``ContainerArguments`` item to 256 characters, and a
:class:`~lamina.models.TaskSpec` (it carries the run's stack profile) is a few kilobytes. So the
compute adapter sends the spec packed into argument-sized chunks (:func:`lamina.adapter.pack`),
and the container runs::

    python -m lamina.plugins.aws spec CHUNK [CHUNK ...]

which unpacks them and runs ``python -m lamina task`` on the spec. Everything travels in the
arguments, which SageMaker (and moto) keep, rather than in the job's ``Environment``.

A task of a flow deployed to Step Functions runs::

    python -m lamina.plugins.aws deployed --boot CHUNK ... --step S --run-id R [--frame ...]

which is Lamina's deployed-task entry point (:mod:`lamina.runtime.deployed` builds the spec from
the deploy template and the run store).

Secrets: with ``--secrets ARN`` (the compute profile's ``secrets_arn``), the keys of that AWS
Secrets Manager secret (a JSON object, e.g. ``{"SNOWFLAKE_PASSWORD": "..."}``) are exported into
the task's environment first, so no secret is ever written into a job definition.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from lamina.adapter import EXIT_INFRA, pack, run_task_command, unpack


def pack_spec(spec_json: str) -> list[str]:
    """A TaskSpec's JSON as argument-sized chunks."""
    return pack(json.loads(spec_json))


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


def main(argv: list[str] | None = None) -> int:
    """Run one task as a SageMaker job's container does; returns the task's exit status."""
    from lamina.errors import LaminaError

    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m lamina.plugins.aws")
    parser.add_argument("--secrets", help="a Secrets Manager secret whose keys become environment variables")
    parser.add_argument("mode", choices=["spec", "deployed"])
    known, rest = parser.parse_known_args(args)
    try:
        if known.secrets:
            export_secrets(known.secrets)
        if known.mode == "spec":
            spec_json = json.dumps(unpack(rest))
            return run_task_command(["--spec", spec_json])
    except (LaminaError, ValueError, KeyError) as exc:
        print(f"lamina: error: cannot start the task: {exc}", file=sys.stderr)
        return EXIT_INFRA
    return run_task_command(["deployed", *rest])
