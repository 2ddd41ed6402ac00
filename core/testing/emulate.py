"""``lamina emulate STACK -- COMMAND...``: run a command against local stand-ins of a cloud stack.

For ``aws-sagemaker`` (the only emulated stack so far) it starts fakesnow, moto and the
SageMaker job runner on 127.0.0.1 (see :mod:`lamina.testing.aws`), runs ``COMMAND`` with the
environment pointed at them, and stops them all when the command ends, however it ends.
Nothing is left running and the emulator's files are removed: what the command stored (tables,
artifacts) lives only as long as the command. Run several steps inside one emulated session
with a shell: ``lamina emulate aws-sagemaker -- sh -c 'python flow.py run && lamina runs'``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from ..errors import LaminaError

EMULATED = ("aws-sagemaker",)


def emulate_cmd(args: argparse.Namespace) -> int:
    """Entry point of ``lamina emulate``: returns the command's exit status.

    :raises LaminaError: an unknown stack, no command, or an emulator that would not start.
    """
    stack = args.stack_name
    command = list(args.cmd or [])
    if command and command[0] == "--":
        command = command[1:]
    if stack not in EMULATED:
        raise LaminaError(
            f"there is no emulator for the stack {stack!r}; emulated stacks: {', '.join(EMULATED)}. "
            "Example: lamina emulate aws-sagemaker -- python flow.py run --stack aws-sagemaker"
        )
    if not command:
        raise LaminaError(
            f"give the command to run after '--', e.g. lamina emulate {stack} -- python flow.py run --stack {stack}"
        )
    from .aws import AwsEmulator

    emulator = AwsEmulator()
    print(
        f"lamina: starting the emulated {stack} stack (fakesnow, moto, SageMaker job runner)...",
        file=sys.stderr,
    )
    emulator.start()
    child: subprocess.Popen[bytes] | None = None
    received: list[int] = []
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        print(
            f"lamina: AWS at {emulator.endpoint}, Snowflake at 127.0.0.1:{emulator.snowflake_port}, "
            f"bucket s3://{emulator.bucket}; running: {' '.join(command)}",
            file=sys.stderr,
        )
        env = {**os.environ, **emulator.env, "LAMINA_STACK": os.environ.get("LAMINA_STACK", stack)}
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            env.pop(key, None)
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
        emulator.stop()
        print(f"lamina: the emulated {stack} stack stopped", file=sys.stderr)
