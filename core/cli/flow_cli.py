"""``python flow.py run | resume | show | check | deploy``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from ..errors import LaminaError, ParameterError
from .common import guarded, print_json

if TYPE_CHECKING:
    from ..flow.spec import FlowSpec


def flow_main(flow_cls: type[FlowSpec], argv: list[str] | None = None) -> None:
    if os.environ.get("_LAMINA_LOADING_FLOW"):
        return  # a task or the driver is importing the file: not a command line
    code = guarded(lambda: _dispatch(flow_cls, sys.argv[1:] if argv is None else argv))
    sys.exit(code)


BUILTIN_OPTIONS = (
    "stack",
    "max-workers",
    "max-splits",
    "tag",
    "run-id-file",
    "quiet",
    "origin-run-id",
    "help",
)
"""Options of ``run``/``resume`` that a parameter may not be named like (``_`` counts as ``-``)."""


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {value!r}")
    return number


def _check_parameter_names(flow_cls: type[FlowSpec]) -> None:
    for attr, param in flow_cls.parameters().items():
        if param.name.replace("_", "-") in BUILTIN_OPTIONS or param.name == "h":
            raise ParameterError(
                f"flow {flow_cls.__name__}: Parameter({param.name!r}) (attribute {attr!r}) would be the "
                f"option --{param.name}, which `run` and `resume` already have "
                f"({', '.join('--' + o for o in BUILTIN_OPTIONS)}); rename the parameter, "
                f"e.g. Parameter({param.name.replace('-', '_') + '_value'!r})."
            )


def _parser(flow_cls: type[FlowSpec]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python {os.path.basename(sys.argv[0]) if sys.argv else 'flow.py'}",
        description=(flow_cls.__doc__ or f"The flow {flow_cls.__name__}.").strip().splitlines()[0],
    )
    parser.add_argument(
        "--environment",
        choices=["local", "pypi", "conda", "uv"],
        help="accepted for Metaflow's command lines: Lamina builds a step's environment whenever "
        "@pypi or @conda asks for one, with or without this option",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    params = flow_cls.parameters()

    def branch_options(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--branch", help=f"@project flows: {what} (default: user.YOU)")
        p.add_argument("--production", action="store_true", help="@project flows: the production branch, prod")

    def run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--stack", help="stack to run on (default: LAMINA_STACK, the project's, the user's, then 'local')"
        )
        p.add_argument("--max-workers", type=_positive, help="tasks at once (default: the number of cores)")
        p.add_argument(
            "--max-splits", type=_positive, help="largest foreach fan-out allowed (default 100000)"
        )
        p.add_argument("--tag", action="append", default=[], help="tag the run (repeatable)")
        branch_options(p, "tag the run with this @project branch")
        p.add_argument("--run-id-file", help="write the run id to this file")
        p.add_argument("--quiet", action="store_true", help="show only failures and the final result")
        p.add_argument(
            "--with",
            dest="with_decorators",
            action="append",
            default=[],
            metavar="DECORATOR[:KEY=VALUE,...]",
            help="add a decorator to every step, e.g. --with retry, --with kubernetes:cpu=2 (repeatable)",
        )
        group = p.add_argument_group("parameters")
        for param in params.values():
            req = "required" if not param.has_default else f"default {param.default!r}"
            group.add_argument(
                f"--{param.name}",
                dest=f"param:{param.name}",
                metavar=param.type_name.upper(),
                help=f"{param.help} ({param.type_name}, {req})".strip(),
            )

    run = sub.add_parser("run", help="run the flow")
    run_options(run)
    resume = sub.add_parser(
        "resume", help="run again from a failed (or the named) step, reusing finished tasks"
    )
    resume.add_argument("step", nargs="?", help="re-run from this step (default: the failed ones)")
    resume.add_argument("--origin-run-id", help="the run to resume (default: the latest run of this flow)")
    run_options(resume)
    sub.add_parser("show", help="print the flow's DAG")
    check = sub.add_parser(
        "check", help="validate the flow's graph, parameters and resources against a stack"
    )
    check.add_argument("--stack")
    deploy = sub.add_parser("deploy", help="hand the flow to the stack's orchestrator")
    deploy.add_argument("--stack")
    deploy.add_argument("--schedule", help="a cron expression")
    deploy.add_argument("--dry-run", action="store_true", help="print the definition, create nothing")
    branch_options(deploy, "deploy this branch, beside the others")
    deploy.add_argument("--delete", action="store_true", help="remove the deployment (of this branch)")
    return parser


def _dispatch(flow_cls: type[FlowSpec], argv: list[str]) -> int:
    from ..flow.spec import check_flow_names

    check_flow_names(flow_cls)
    _check_parameter_names(flow_cls)
    args = _parser(flow_cls).parse_args(argv)
    flow_file = os.path.abspath(sys.modules[flow_cls.__module__].__file__ or sys.argv[0])
    if args.command == "show":
        graph = flow_cls.graph()
        print(graph.render())
        problems = graph.problems()
        if problems:
            print("\nproblems:\n  - " + "\n  - ".join(problems))
        return 0
    if args.command == "check":
        return _check(flow_cls, args.stack)
    if args.command == "deploy":
        from ..runtime.branches import resolve_branch
        from ..runtime.deploy import delete_deployment, deploy_flow

        branch = resolve_branch(flow_cls, args.branch, args.production)
        if args.delete:
            print(delete_deployment(flow_cls.graph().name, branch, stack=args.stack))
            return 0
        result = deploy_flow(
            flow_cls, flow_file, stack=args.stack, schedule=args.schedule, dry_run=args.dry_run, branch=branch
        )
        if args.dry_run:
            for item in result.creates:
                print(f"# deploy would create or update: {item}", file=sys.stderr)
            print_json(result.definition)
        else:
            print(
                f"deployed {result.flow_name} to {result.target}"
                + (f" on schedule {result.schedule}" if result.schedule else "")
            )
        return 0
    given: dict[str, Any] = {}
    params = {p.name: p for p in flow_cls.parameters().values()}
    for key, value in vars(args).items():
        if key.startswith("param:") and value is not None:
            name = key[len("param:") :]
            given[name] = params[name].convert(value)
    from ..runtime.api import run_flow
    from ..runtime.branches import resolve_branch

    branch = resolve_branch(flow_cls, args.branch, args.production)
    if args.quiet:
        os.environ["LAMINA_QUIET"] = "1"  # tasks inherit it: their output is stored, not shown
    outcome = run_flow(
        flow_cls,
        given,
        stack=args.stack,
        max_workers=args.max_workers,
        max_splits=args.max_splits,
        tags=[*args.tag, *(branch.tags if branch else [])],
        echo=not args.quiet,
        resume=args.command == "resume",
        origin_run_id=getattr(args, "origin_run_id", None),
        resume_step=getattr(args, "step", None),
        with_decorators=args.with_decorators,
    )
    if args.run_id_file:
        with open(args.run_id_file, "w") as fh:
            fh.write(outcome.run_id)
    if not outcome.ok:
        sys.stderr.write(outcome.message + "\n")
        return 1
    return 0


def _check(flow_cls: type[FlowSpec], stack_name: str | None) -> int:
    from ..models import Resources
    from ..stack import resolve_stack

    graph = flow_cls.graph()
    graph.validate()
    names = {p.name for p in flow_cls.parameters().values()}
    clash = names & set(graph.nodes)
    if clash:
        raise ParameterError(f"parameter(s) {', '.join(sorted(clash))} have the name of a step; rename them.")
    with resolve_stack(stack_name) as stack:
        lines = []
        for node in graph:
            spec = node.decorations.get("resources")
            if spec:
                offer = stack.compute.validate(node.name, Resources(**spec))
                lines.append(f"  {node.name}: {offer}")
    print(
        f"{graph.name}: the graph is valid ({len(graph.nodes)} steps, {len(names)} parameters) on stack {stack.name}."
    )
    if lines:
        print("resources:\n" + "\n".join(lines))
    return 0


__all__ = ["flow_main", "LaminaError"]
