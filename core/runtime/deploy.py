"""``python flow.py deploy`` and ``lamina trigger``: hand a flow to the stack's orchestrator.

:func:`deploy_flow` validates the flow and its ``@resources`` against the stack's compute (so
an unsatisfiable request fails before anything is created), stores the code package, and passes
the orchestrator a descriptor: ``FlowGraph.describe()`` plus ``code_key``, ``flow_file`` (its
path inside the code package), ``stack`` (the profile snapshot, without secrets),
``parameters`` (``{name: {type, default, has_default, help}}``) and ``user``. With ``dry_run``
nothing is stored or created; the orchestrator only compiles its definition.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FlowDefinitionError, LaminaError, ParameterError
from ..models import DeployResult, Resources

if TYPE_CHECKING:
    from ..flow.spec import FlowSpec
    from ..stack import Stack


def flow_descriptor(flow_cls: type[FlowSpec], flow_file: str, stack: Stack, code_key: str) -> dict[str, Any]:
    """What an orchestrator needs to deploy ``flow_cls`` (see the module docstring)."""
    from .scheduler import current_user

    graph = flow_cls.graph()
    graph.validate()  # also links each split to its join (``matching_join``), which describe() reports
    descriptor = graph.describe()
    parameters = {}
    for param in flow_cls.parameters().values():
        parameters[param.name] = {
            "type": param.type_name,
            "default": param.default if param.has_default else None,
            "has_default": param.has_default,
            "help": param.help,
        }
    from ..flow.packages import step_environment

    environments = {}
    for node in graph:
        env = step_environment(flow_cls, node.name, node.decorations)
        if env is not None:
            environments[node.name] = env.model_dump(mode="json")
    if environments:  # each deployed task builds (or finds cached) its step's environment
        descriptor["environments"] = environments
    descriptor.update(
        code_key=code_key,
        flow_file=os.path.basename(flow_file),
        stack=stack.snapshot(),
        parameters=parameters,
        user=current_user(),
    )
    return descriptor


def deploy_flow(
    flow_cls: type[FlowSpec],
    flow_file: str,
    *,
    stack: str | None = None,
    schedule: str | None = None,
    dry_run: bool = False,
) -> DeployResult:
    """Deploy ``flow_cls`` (defined in ``flow_file``) to the stack's orchestrator.

    Idempotent: deploying again updates what the first deployment created.

    :raises FlowDefinitionError: the graph is invalid.
    :raises ResourceUnsatisfiable: a step's ``@resources`` cannot be met by the stack's compute.
    :raises LaminaError: the orchestrator cannot deploy (the local one never can), or refused.
    """
    from ..stack import resolve_stack
    from ..versioning.artifacts import ArtifactStore
    from ..versioning.codepkg import code_key_of, package_code, store_code
    from ..versioning.runstore import RunStore
    from .deployed import prepare

    graph = flow_cls.graph()
    graph.validate()
    clash = {p.name for p in flow_cls.parameters().values()} & set(graph.nodes)
    if clash:
        raise ParameterError(f"parameter(s) {', '.join(sorted(clash))} have the name of a step; rename them.")
    from ..flow.includefile import IncludeFile

    included = [p.name for p in flow_cls.parameters().values() if isinstance(p, IncludeFile)]
    if included:
        raise FlowDefinitionError(
            f"{graph.name} has IncludeFile parameter(s) {', '.join(included)}: a file is read on the "
            "machine that starts a run, and a deployed flow is started by its orchestrator, which has "
            "no such file. Run it with `python flow.py run`, or read the data in a step (a table of "
            "the stack's data layer) before deploying."
        )
    flow_dir = Path(flow_file).resolve().parent
    with resolve_stack(stack) as resolved:
        for node in graph:
            spec = node.decorations.get("resources")
            res = Resources(**spec) if spec else Resources()
            if not res.is_empty():
                resolved.compute.validate(node.name, res)
        if dry_run:
            with package_code(flow_dir) as pkg:  # the key the package would have; nothing stored
                code_key = code_key_of(pkg)
        else:
            code_key = store_code(ArtifactStore(resolved.versioning), flow_dir)
        descriptor = flow_descriptor(flow_cls, flow_file, resolved, code_key)
        descriptor = prepare(descriptor, RunStore(resolved.versioning), store=not dry_run)
        result = resolved.orchestration.deploy(descriptor, schedule, dry_run)
    if result is None:
        raise LaminaError(f"the stack's orchestrator did not deploy {graph.name} and gave no reason")
    return result


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``. :raises ParameterError: no ``=``."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"--param {pair!r}: write NAME=VALUE, e.g. --param alpha=0.5")
        out[name.strip()] = value
    return out


def trigger_cmd(args: argparse.Namespace) -> int:
    """``lamina trigger FLOW [--stack S] [--param NAME=VALUE ...]``: start a run of a deployed flow.

    The orchestrator checks and converts the parameters against the deployed flow's.
    """
    from ..stack import resolve_stack

    params = parse_params(list(args.param or []))
    with resolve_stack(args.stack) as stack:
        execution = stack.orchestration.trigger(args.flow, params)
    print(f"started {args.flow} run {execution} on stack {stack.name}; once it has run, index it with: lamina sync {args.flow}/{execution}")
    return 0
