"""The ``lamina`` command. Subcommands import what they need only when they run, so
``lamina --help`` and ``lamina stack list`` stay fast and never import a cloud SDK."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from .common import guarded

if TYPE_CHECKING:
    from ..hookspecs import CommandInfo


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="lamina",
        description="Lamina: write a machine-learning flow once, run it unchanged on any infrastructure stack.",
    )
    parser.add_argument("--version", action="version", version=f"lamina {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    stack = sub.add_parser("stack", help="list, show, switch, register and check stack profiles")
    ssub = stack.add_subparsers(dest="stack_command", metavar="ACTION")
    ssub.required = True
    p = ssub.add_parser("list", help="known stacks; * marks the one in use")
    p.add_argument("--json", action="store_true")
    p = ssub.add_parser("show", help="a stack's adapters and settings, and whether they are installed")
    p.add_argument("name", nargs="?")
    p.add_argument("--json", action="store_true")
    p = ssub.add_parser("use", help="switch this project (or, with --user, your default) to a stack")
    p.add_argument("name")
    p.add_argument("--user", action="store_true", help="set the default for every project of yours")
    p = ssub.add_parser("register", help="add a stack profile from a TOML file")
    p.add_argument("name")
    p.add_argument("--file", required=True)
    p.add_argument("--user", action="store_true", help="register for every project of yours")
    p = ssub.add_parser("remove", help="remove a registered stack profile")
    p.add_argument("name")
    p = ssub.add_parser("check", help="probe each layer of a stack (credentials, bucket, warehouse...)")
    p.add_argument("name", nargs="?")

    plugins = sub.add_parser("plugins", help="installed plugins and the adapters they offer")
    psub = plugins.add_subparsers(dest="plugins_command", metavar="ACTION")
    psub.required = True
    p = psub.add_parser("list", help="plugins, versions, adapters per layer, and whether each is installed")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("runs", help="list runs")
    p.add_argument("flow", nargs="?")
    from ..models import RUN_STATUSES

    p.add_argument("--status", choices=list(RUN_STATUSES), help="only runs with this status")
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--project", help="runs of this @project")
    p.add_argument("--branch", help="runs of this @project branch (user.NAME, prod...)")
    p.add_argument("--all", action="store_true", help="every user's runs, not only yours")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--stack")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("show", help="a run, step or task: status, parameters, artifacts, metrics")
    p.add_argument("pathspec", help="RUN, RUN/STEP or RUN/STEP/TASK (optionally prefixed with FLOW/)")
    p.add_argument("--stack")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("logs", help="stored stdout and stderr of tasks")
    p.add_argument("pathspec", help="RUN, RUN/STEP or RUN/STEP/TASK")
    p.add_argument("--stream", choices=["stdout", "stderr", "both"], default="both")
    p.add_argument("--stack")

    card = sub.add_parser("card", help="a task's @card: open it in a browser, or write it to a file")
    csub = card.add_subparsers(dest="card_command", metavar="ACTION")
    csub.required = True
    p = csub.add_parser("view", help="open the card in a browser (a temporary HTML file)")
    p.add_argument("pathspec", help="FLOW/RUN/STEP/TASK (or RUN/STEP when the step has one task)")
    p.add_argument("--no-open", action="store_true", help="print the HTML file's path, open nothing")
    p.add_argument("--stack")
    p = csub.add_parser("get", help="write the card's HTML to a file")
    p.add_argument("pathspec", help="FLOW/RUN/STEP/TASK (or RUN/STEP when the step has one task)")
    p.add_argument("file")
    p.add_argument("--stack")

    p = sub.add_parser(
        "compare",
        help="parameters, metrics and artifacts that differ between two runs, or the latest runs of two branches",
    )
    p.add_argument("run_a", help="RUN, FLOW/RUN, or FLOW@BRANCH (the latest run of that @project branch)")
    p.add_argument("run_b")
    p.add_argument("--stack")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("code", help="restore the code a run ran with")
    p.add_argument("run")
    p.add_argument("dest")
    p.add_argument("--stack")

    p = sub.add_parser("sync", help="index runs in the metadata store from the blob store (deployed flows)")
    p.add_argument("target", help="FLOW (every run of it) or FLOW/RUN")
    p.add_argument("--stack")

    from .verify_cmd import add_parser as add_verify

    add_verify(sub)

    p = sub.add_parser("trigger", help="start a run of a deployed flow")
    p.add_argument("flow")
    p.add_argument("--stack")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--branch", help="@project flows: start this branch's deployment")
    p.add_argument("--wait", action="store_true", help="follow the run to its end, print it, and index it")
    p.add_argument("--timeout", type=float, help="with --wait: give up following after this many seconds")

    p = sub.add_parser("event", help="publish a business event that starts @trigger flows")
    esub = p.add_subparsers(dest="event_command", metavar="ACTION")
    esub.required = True
    e = esub.add_parser("publish", help="publish an event on the stack's event bus")
    e.add_argument("name")
    e.add_argument("--payload", help="a JSON object the triggered runs see as current.trigger.payload")
    e.add_argument("--stack")

    p = sub.add_parser("deployments", help="what is deployed on a stack, per flow and branch")
    p.add_argument("--stack")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("ui", help="a local web UI over the stack's runs (needs lamina[ui])")
    p.add_argument("--stack", help="the stack whose runs to show (default: the project's)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")

    p = sub.add_parser(
        "emulate",
        help="run a command against local stand-ins of a stack's services",
        description="Start the emulators a stack needs (from installed plugins), run COMMAND "
        "pointed at them, stop them. Without STACK: list the stacks that can be emulated.",
        add_help=False,
    )
    p.add_argument("-h", "--help", action="store_true", dest="emulate_help", help="show this help")
    p.add_argument("stack_name", metavar="STACK", nargs="?")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")

    for info in plugin_commands():  # added by plugins; their code loads only when they run
        p = sub.add_parser(info.name, help=info.help, add_help=False, prefix_chars="\0")
        p.add_argument("plugin_args", nargs=argparse.REMAINDER)
    return parser


def plugin_commands() -> list[CommandInfo]:
    """Commands plugins add through ``lamina_cli_commands`` (cheap: nothing of theirs is imported)."""
    from ..discovery import get_registry

    found: list[CommandInfo] = []
    for impl in get_registry().pm.hook.lamina_cli_commands.get_hookimpls():
        offered: Any = impl.function()
        found.extend(offered or [])
    return found


def _run_plugin_command(info: CommandInfo, argv: list[str]) -> int:
    import importlib

    module = importlib.import_module(info.module)
    parser = argparse.ArgumentParser(prog=f"lamina {info.name}", description=info.help)
    module.configure(parser)
    return int(module.run(parser.parse_args(argv)) or 0)


def main(argv: list[str] | None = None) -> int:
    from ..errors import LaminaError
    from .common import fail

    try:
        parser = build_parser()  # plugins' commands: a plugin that fails to load is reported here
    except LaminaError as exc:
        return fail(exc)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help()
        return 0

    def dispatch() -> int | None:
        if args.command == "stack":
            from . import stack_cmds

            return stack_cmds.run(args)
        if args.command == "plugins":
            from . import plugin_cmds

            return plugin_cmds.run(args)
        if args.command in ("runs", "show", "logs", "compare", "code"):
            from . import inspect_cmds

            return inspect_cmds.run(args)
        if args.command == "card":
            from . import card_cmds

            return card_cmds.run(args)
        if args.command == "sync":
            from ..runtime.sync import sync_cmd

            return sync_cmd(args)
        if args.command == "verify":
            from . import verify_cmd

            return verify_cmd.run(args)
        if args.command == "trigger":
            from ..runtime.deploy import trigger_cmd

            return trigger_cmd(args)
        if args.command == "event":
            from ..runtime.deploy import event_cmd

            return event_cmd(args)
        if args.command == "deployments":
            from ..runtime.deploy import deployments_cmd

            return deployments_cmd(args)
        if args.command == "ui":  # the optional extra loads only here
            from ..ui.server import ui_cmd

            return ui_cmd(args)
        if args.command == "emulate":
            from .emulate_cmd import describe_stacks, emulate_cmd

            if args.emulate_help:
                emulate: Any = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
                emulate["emulate"].print_help()
                print("\n" + describe_stacks())
                return 0
            return emulate_cmd(args)
        for info in plugin_commands():
            if info.name == args.command:
                return _run_plugin_command(info, list(args.plugin_args))
        return 0

    return guarded(dispatch)


if __name__ == "__main__":
    sys.exit(main())
