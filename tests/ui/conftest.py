"""Fixtures of the UI tests: a project with real runs, `lamina ui` serving it, and a browser.

- ``ui_project`` (module): a temporary project where real flows ran on the ``local`` stack: two
  runs of a training flow (a foreach with metrics, a branch and its join, a table, an array) on
  two branches, and a run whose step fails. Its environment holds a secret the pages must mask.
- ``ui_server`` (module): ``python -m lamina ui --port 0`` in that project, as a user starts it.
- ``browser`` (module): Debian's chromium driven by Playwright, with a fresh profile; skipped
  when either is missing. Screenshots go to ``build/ui-screenshots/`` (kept as test artifacts).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the UI tests need the ui extra: pip install 'lamina[ui]'")
pytest.importorskip("uvicorn", reason="the UI tests need the ui extra: pip install 'lamina[ui]'")

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


def _env(root: Path) -> dict[str, str]:
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


@pytest.fixture(scope="module")
def ui_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("ui") / "project"
    (root / ".lamina").mkdir(parents=True)
    for flow in FLOWS.glob("*.py"):
        shutil.copy(flow, root / flow.name)
    project = Project(root, _env(root))
    project.runs["main"] = run_flow_cli(project, "train_flow.py", "--alpha", "0.5", "--tag", "branch:main")
    project.runs["candidate"] = run_flow_cli(project, "train_flow.py", "--alpha", "0.9", "--tag", "branch:candidate")
    # this run's tasks do not know the secret as one, so it reaches the stored log unmasked
    unaware = {k: v for k, v in project.env.items() if k != "UI_DEMO_PASSWORD"}
    project.runs["failed"] = run_flow_cli(project, "failing_flow.py", env=unaware)
    return project


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


@pytest.fixture(scope="module")
def ui_server(ui_project: Project) -> Iterator[Server]:
    server = start_server(ui_project)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"the browser tests need Debian's chromium at {CHROMIUM} (.ci/run installs it)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            viewport={"width": 1300, "height": 900},
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh tab that fails the test on a JavaScript error or a request to another origin."""
    tab = browser.new_page()
    errors: list[str] = []
    foreign: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:")) else foreign.append(r.url))
    yield tab
    tab.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not foreign, f"the page fetched from elsewhere: {foreign}"


def screenshot(page: Any, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
