"""``lamina emulate STACK -- COMMAND...``: run a command against local stand-ins of a stack's services.

The stand-ins come from plugins (the ``lamina_emulators`` hook): each emulates one service and
says which adapters it serves, so for a stack this starts, once each, the emulators its
profile's adapters need (a mixed stack, Snowflake data with another cloud's compute, is emulated
service by service), runs ``COMMAND`` with the environment pointed at them, and stops them all
when the command ends, however it ends. Nothing is left listening, and the emulators' files are
removed: what the command stored lives only as long as the command. Run several steps inside one
emulated session with a shell: ``lamina emulate aws-sagemaker -- sh -c 'python flow.py run && lamina runs'``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from ..errors import LaminaError

if TYPE_CHECKING:
    from ..hookspecs import EmulatorInfo


def emulators() -> list[EmulatorInfo]:
    """Every emulator the installed plugins offer."""
    from ..discovery import get_registry

    return [info for found in get_registry().hook().lamina_emulators() for info in (found or [])]


def emulated_stacks() -> dict[str, list[EmulatorInfo]]:
    """Known stacks whose every non-local adapter some installed emulator serves, with those
    emulators (what ``lamina emulate --help`` lists)."""
    from ..stack.catalog import all_profiles, load_profile
    from ..stack.config import find_project_dir

    project = find_project_dir()
    out: dict[str, list[EmulatorInfo]] = {}
    for name in all_profiles(project):
        try:
            profile = load_profile(name, project)
            needed = _needed(profile)
        except LaminaError:
            continue
        if needed:
            out[name] = needed
    return out


def _needed(profile: Any) -> list[EmulatorInfo]:
    """The emulators a profile needs; ``[]`` when it needs none or one adapter has none."""
    offered = emulators()
    chosen: list[EmulatorInfo] = []
    for layer, cfg in profile.layers.items():
        serving = [e for e in offered if (layer, cfg.adapter) in e.serves]
        if serving:
            if serving[0] not in chosen:
                chosen.append(serving[0])
        elif cfg.adapter not in ("local", "duckdb", "sqlite", "dask", "sqlalchemy"):
            raise LaminaError(
                f"no installed plugin emulates the {layer} adapter {cfg.adapter!r} of stack {profile.name!r}"
            )
    return chosen


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stack_name", metavar="STACK", nargs="?")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")


def describe_stacks() -> str:
    try:
        stacks = emulated_stacks()
    except LaminaError as exc:
        return f"(cannot list the emulated stacks: {exc})"
    if not stacks:
        return "no installed plugin offers an emulator (pip install 'lamina[aws-emulator]')"
    return "stacks the installed plugins can emulate:\n" + "\n".join(
        f"  {name}: {', '.join(e.name for e in found)}" for name, found in sorted(stacks.items())
    )


def emulate_cmd(args: argparse.Namespace) -> int:
    """Entry point of ``lamina emulate``: returns the command's exit status.

    :raises LaminaError: an unknown stack, no command, or an emulator that would not start.
    """
    from ..stack.catalog import load_profile
    from ..stack.config import find_project_dir

    stack = args.stack_name
    command = list(args.cmd or [])
    if command and command[0] == "--":
        command = command[1:]
    if not stack:
        print(describe_stacks())
        return 0
    try:
        needed = _needed(load_profile(stack, find_project_dir()))
    except LaminaError as exc:
        raise LaminaError(f"{exc}. {describe_stacks()}") from None
    if not needed:
        raise LaminaError(f"stack {stack!r} runs locally already; it needs no emulator. {describe_stacks()}")
    if not command:
        raise LaminaError(
            f"give the command to run after '--', e.g. lamina emulate {stack} -- python flow.py run --stack {stack}"
        )
    for info in needed:
        missing = [m for m in info.requires if m not in sys.modules and not _installed(m)]
        if missing:
            raise LaminaError(
                f"the {info.name} emulator needs {', '.join(missing)}: pip install 'lamina[{info.extra}]'"
            )
    groups: dict[str, list[str]] = {}
    for info in needed:
        groups.setdefault(info.factory, []).append(info.name)
    print(f"lamina: starting the emulated {stack} stack ({', '.join(e.name for e in needed)})...", file=sys.stderr)
    running: list[Any] = []
    env = dict(os.environ)
    child: subprocess.Popen[bytes] | None = None
    received: list[int] = []
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        for factory, services in groups.items():
            module, _, attr = factory.partition(":")
            emulator = getattr(importlib.import_module(module), attr)(services)
            running.append(emulator)
            env.update(emulator.start())
            describe = getattr(emulator, "describe", None)
            if describe:
                print(f"lamina: {describe()}", file=sys.stderr)
        env["LAMINA_STACK"] = os.environ.get("LAMINA_STACK", stack)
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            env.pop(key, None)
        print(f"lamina: running: {' '.join(command)}", file=sys.stderr)
        try:
            child = subprocess.Popen(command, env=env)
        except FileNotFoundError:
            raise LaminaError(f"cannot run {command[0]!r}: no such program") from None
        try:
            return child.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached the command too (same process group): give it time to stop its
            # jobs; a SIGTERM is passed on. Then insist.
            first = received[-1] if received else None
            for sig, grace in ((first, 10.0), (signal.SIGTERM, 5.0)):
                if sig is not None:
                    child.send_signal(sig)
                try:
                    return child.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    continue
            child.kill()
            return child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        for emulator in reversed(running):
            emulator.stop()
        if running:
            print(f"lamina: the emulated {stack} stack stopped", file=sys.stderr)


def _installed(module: str) -> bool:
    from ..discovery import module_installed

    return module_installed(module)
