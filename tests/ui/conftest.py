"""Fixtures of the UI tests: a project with real runs, `lamina ui` serving it, and a browser.

- ``ui_project`` (module): a temporary project where real flows ran on the ``local`` stack: two
  runs of a training flow (a foreach with metrics, a branch and its join, a table, an array, an
  image, a data write and read) on two branches, and a run whose step fails. The server's
  environment holds a secret the pages must mask.
- ``ui_server`` (module): ``python -m lamina ui --port 0`` in that project, as a user starts it.
- ``browser`` (module): Debian's chromium driven by Playwright, with a fresh profile; skipped
  when either is missing. ``page``: a tab in it that fails the test on a JavaScript error or a
  request to another origin. Screenshots go to ``build/ui-screenshots/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the UI tests need the ui extra: pip install 'lamina[ui]'")
pytest.importorskip("uvicorn", reason="the UI tests need the ui extra: pip install 'lamina[ui]'")

from ui_helpers import (  # noqa: E402
    CHROMIUM,
    FLOWS,
    SCREENSHOTS,
    Project,
    Server,
    project_env,
    run_flow_cli,
    start_server,
    stop_server,
)


@pytest.fixture(scope="module")
def ui_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("ui") / "project"
    (root / ".lamina").mkdir(parents=True)
    for flow in FLOWS.glob("*.py"):
        shutil.copy(flow, root / flow.name)
    project = Project(root, project_env(root))
    project.runs["main"] = run_flow_cli(project, "train_flow.py", "--alpha", "0.5", "--tag", "branch:main")
    project.runs["candidate"] = run_flow_cli(project, "train_flow.py", "--alpha", "0.9", "--tag", "branch:candidate")
    # this run's tasks do not know the secret as one, so it reaches the stored log unmasked
    unaware = {k: v for k, v in project.env.items() if k != "UI_DEMO_PASSWORD"}
    project.runs["failed"] = run_flow_cli(project, "failing_flow.py", env=unaware)
    return project


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


