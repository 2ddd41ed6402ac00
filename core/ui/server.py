"""``lamina ui [--stack NAME] [--host 127.0.0.1] [--port PORT]``: serve the UI over a stack.

Bound to a loopback address by default. Any other ``--host`` prints a warning and a random token
that every request must carry (the printed URL has it), since the UI then answers to the network.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import socket
import sys
from typing import Any

from ..errors import AdapterNotInstalled, LaminaError

DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def ui_cmd(args: argparse.Namespace) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise AdapterNotInstalled(
            f"`lamina ui` needs the ui extra ({e.name} is missing): pip install 'lamina[ui]'"
        ) from None
    from ..stack import resolve_stack
    from ..versioning.artifacts import ArtifactStore
    from ..versioning.metadata import MetadataStore
    from .app import build_app
    from .queries import UIData

    host, port = args.host, args.port
    token: str | None = None
    if not is_loopback(host):
        token = secrets.token_urlsafe(24)
        sys.stderr.write(
            f"lamina ui: warning: binding {host}, not 127.0.0.1: anyone who can reach this machine "
            "can read your runs with the token below. Prefer an SSH tunnel to a loopback server.\n"
        )
    stack = resolve_stack(args.stack)
    data = UIData(
        MetadataStore(stack.versioning.metadata_url()),
        ArtifactStore(stack.versioning, cache_dir=stack.project_dir / ".lamina" / "cache"),
        stack_name=stack.name,
    )
    app = build_app(data, token=token)
    sock = _bind(host, port)
    shown_host = socket.gethostname() if host in ("0.0.0.0", "::") else host  # reachable by name
    shown_host = f"[{shown_host}]" if ":" in shown_host and not shown_host.startswith("[") else shown_host
    url = f"http://{shown_host}:{sock.getsockname()[1]}/" + (f"?token={token}" if token else "")
    print(f"lamina ui: serving the runs of stack {stack.name} at {url}", flush=True)
    print("lamina ui: press Ctrl+C to stop", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        data.meta.close()
        stack.close()
    return 0


def _bind(host: str, port: int) -> Any:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise LaminaError(
            f"lamina ui cannot listen on {host}:{port}: {e.strerror}. Pick another port with --port "
            "(0 chooses a free one)."
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
