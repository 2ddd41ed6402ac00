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
    from .branches import Branch


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
    branch: Branch | None = None,
) -> DeployResult:
    """Deploy ``flow_cls`` (defined in ``flow_file``) to the stack's orchestrator; an ``@project``
    flow deploys under ``branch`` (see :mod:`lamina.runtime.branches`), beside its other branches.

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
        if branch is not None:
            resolved.orchestration.require("branches", f"deploy {graph.name} --branch {branch.name}")
            descriptor.update(project=branch.project, branch=branch.name, tags=branch.tags)
        descriptor["triggers"] = {
            "events": list(getattr(flow_cls, "_lamina_events", [])),
            "flows": list(getattr(flow_cls, "_lamina_upstream", [])),
        }
        schedule = schedule or getattr(flow_cls, "_lamina_schedule", None)  # --schedule wins
        descriptor = prepare(descriptor, RunStore(resolved.versioning), store=not dry_run)
        result = resolved.orchestration.deploy(descriptor, schedule, dry_run)
    if result is None:
        raise LaminaError(f"the stack's orchestrator did not deploy {graph.name} and gave no reason")
    return result


def delete_deployment(flow_name: str, branch: Branch | None, *, stack: str | None = None) -> str:
    """Remove a flow's deployment (of one branch) and its schedule; return what was removed."""
    from ..stack import resolve_stack

    with resolve_stack(stack) as resolved:
        resolved.orchestration.require("delete", f"deploy {flow_name} --delete")
        removed = resolved.orchestration.delete(flow_name, branch.name if branch else None)
    return f"deleted {removed}"


def event_cmd(args: argparse.Namespace) -> int:
    """``lamina event publish NAME [--payload JSON] [--stack S]``."""
    import json

    from ..stack import resolve_stack

    try:
        payload = json.loads(args.payload) if args.payload else {}
    except ValueError as exc:
        raise ParameterError(f"--payload must be a JSON object, e.g. '{{\"rows\": 10}}': {exc}") from None
    if not isinstance(payload, dict):
        raise ParameterError("--payload must be a JSON object, e.g. '{\"rows\": 10}'")
    with resolve_stack(args.stack) as stack:
        event_id = stack.orchestration.publish(args.name, payload)
    print(f"published {args.name} on stack {stack.name} (event {event_id})")
    return 0


def deployments_cmd(args: argparse.Namespace) -> int:
    """``lamina deployments [--stack S] [--json]``: what is deployed, per flow and branch."""
    from ..cli.common import print_json, table
    from ..stack import resolve_stack

    with resolve_stack(args.stack) as stack:
        stack.orchestration.require("list", "lamina deployments")
        found = stack.orchestration.deployments()
    if args.json:
        print_json([d.model_dump(mode="json") for d in found])
        return 0
    if not found:
        print(f"nothing is deployed on stack {stack.name}")
        return 0
    rows = [(d.flow_name, d.project or "", d.branch or "", d.schedule or "", d.target) for d in found]
    print(table(rows, ["FLOW", "PROJECT", "BRANCH", "SCHEDULE", "TARGET"]))
    return 0


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
    """``lamina trigger FLOW [--stack S] [--param NAME=VALUE ...] [--wait]``: start a run of a
    deployed flow. The orchestrator checks and converts the parameters against the deployed flow's.

    With ``--wait`` it follows the run: each task as it finishes (with what it printed), then the
    final status; it indexes the run in the metadata store (so ``lamina runs``, ``lamina show``
    and ``Flow(...).latest_run`` see it) and exits non-zero when the run did not succeed.
    """
    from ..stack import resolve_stack

    params = parse_params(list(args.param or []))
    branch = getattr(args, "branch", None)
    with resolve_stack(args.stack) as stack:
        if branch:
            stack.orchestration.require("branches", f"lamina trigger {args.flow} --branch {branch}")
        run_id = stack.orchestration.trigger(args.flow, params, branch)
        print(f"started {args.flow} run {run_id} on stack {stack.name}", flush=True)
        if not getattr(args, "wait", False):
            print(
                f"it runs on the orchestrator, without this machine; once it is done, index it with: "
                f"lamina sync {args.flow}/{run_id} (or trigger with --wait to follow it)"
            )
            return 0
        return follow_run(stack, args.flow, run_id, timeout=getattr(args, "timeout", None), branch=branch)


def follow_run(
    stack: Stack,
    flow: str,
    run_id: str,
    *,
    timeout: float | None = None,
    interval: float = 1.0,
    branch: str | None = None,
) -> int:
    """Follow a deployed run to its end, printing each task as its record appears; index it.

    :return: 0 when the run succeeded, 1 otherwise.
    """
    import sys
    import time

    from ..errors import LaminaError
    from ..versioning.runstore import RunStore
    from .sync import sync_run

    runs = RunStore(stack.versioning)
    shown: set[str] = set()
    deadline = None if timeout is None else time.monotonic() + timeout
    quiet = bool(os.environ.get("LAMINA_QUIET"))

    def show_new() -> None:
        for key, record in runs.records(flow, run_id):
            if key in shown:
                continue
            shown.add(key)
            prefix = f"[{record.step}/{record.task_id}{f' attempt {record.attempt}' if record.attempt else ''}] "
            if not quiet:
                for log_key, stream in ((record.stdout_key, sys.stdout), (record.stderr_key, sys.stderr)):
                    text = runs.text(log_key) if log_key else ""
                    if record.traceback and stream is sys.stderr:
                        text = text.replace(record.traceback, "")  # shown once, on the failure line
                    if text:
                        stream.write("".join(prefix + line + "\n" for line in text.splitlines()))
            took = (record.finished_at - record.started_at).total_seconds()
            mark = "✓" if record.ok else "✗"
            print(f"{mark} {record.step}/{record.task_id}  {took:.2f}s" + ("" if record.ok else f": {record.error}"))
            sys.stdout.flush()

    while True:
        state = stack.orchestration.status(flow, run_id, branch)
        show_new()
        if state.status != "running":
            break
        if deadline is not None and time.monotonic() > deadline:
            raise LaminaError(
                f"{flow}/{run_id} still runs after {timeout:g} s; it goes on. Follow it later, or index it "
                f"with: lamina sync {flow}/{run_id}"
            )
        time.sleep(interval)
    show_new()
    sync_run(stack, flow, run_id, user=_trigger_user())
    ok = state.status == "succeeded"
    print(
        f"{'✓' if ok else '✗'} run {run_id} {state.status}"
        + (f": {state.message}" if state.message and not ok else "")
        + f". Inspect it with: lamina show {flow}/{run_id}"
    )
    return 0 if ok else 1


def _trigger_user() -> str:
    from .scheduler import current_user

    return current_user()
