"""What the UI tests share besides fixtures: the test project, the server under test, screenshots.

A module of its own (not conftest.py): test folders have no ``__init__.py``, so
``from conftest import ...`` would find whichever conftest was imported last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLOWS = Path(__file__).parent / "flows"
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "ui-screenshots"
CHROMIUM = "/usr/bin/chromium"
SECRET = "hunter2-do-not-show-7f3a"
"""The server knows it as UI_DEMO_PASSWORD (a secret's name). The training flow's tasks know it
so too (their capture masks it); the failing flow's do not, and print it as UI_LEAKED, so it is
stored unmasked and only the UI's own masking keeps it off the pages."""


@dataclass
class Project:
    root: Path
    env: dict[str, str]
    runs: dict[str, str] = field(default_factory=dict)
    """Run ids by role: ``main``, ``candidate``, ``failed``."""


def project_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")}
    env.update(
        LAMINA_CONFIG_DIR=str(root.parent / "user-config"),
        LAMINA_CODE_DIR=str(root.parent / "code-cache"),
        UI_DEMO_PASSWORD=SECRET,
        UI_LEAKED=SECRET,
    )
    return env


def run_flow_cli(project: Project, flow: str, *args: str, env: dict[str, str] | None = None) -> str:
    """``python flow.py run ...`` in the project, as a user runs it; the new run's id."""
    id_file = project.root / f".run-id-{len(project.runs)}"
    result = subprocess.run(
        [sys.executable, flow, "run", "--quiet", "--run-id-file", str(id_file), *args],
        cwd=project.root,
        env=env or project.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert id_file.exists(), f"{flow} run wrote no run id:\n{result.stdout}{result.stderr}"
    return id_file.read_text().strip()


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """``GET path`` over the socket; ``(status, parsed JSON or raw bytes)``."""
        request = urllib.request.Request(self.url.rstrip("/") + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, body, kind = response.status, response.read(), response.headers.get("content-type", "")
        except urllib.error.HTTPError as e:
            status, body, kind = e.code, e.read(), e.headers.get("content-type", "")
        return status, json.loads(body) if kind.startswith("application/json") else body

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body)
        return body


def start_server(project: Project, *args: str) -> Server:
    process = subprocess.Popen(
        [sys.executable, "-m", "lamina", "ui", "--port", "0", *args],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # the first lines say where it serves
        seen.append(line)
        if "serving the runs" in line:
            return Server(line.split(" at ", 1)[1].strip(), process)
    process.wait(timeout=10)
    raise AssertionError("lamina ui did not start:\n" + "".join(seen))


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=5)


def screenshot(page: Any, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
