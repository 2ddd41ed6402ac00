"""`lamina ui --stack aws-sagemaker` over runs made on the emulated AWS stack: every task a
SageMaker training job (moto + the job runner), every blob (manifest, records, logs, artifacts,
code) in the emulated S3 bucket. The UI reads them from there, and shows them in the browser."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import Any

import pytest
from ui_helpers import FLOWS, Project, Server, screenshot, start_server, stop_server

for _module in ("moto", "fakesnow", "boto3", "snowflake"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"the aws tests need {_module}: pip install 'lamina[test]'", allow_module_level=True)

from lamina.testing.aws import AwsEmulator  # noqa: E402 - aws_emulator comes from tests/conftest.py

WAIT = 30_000


@pytest.fixture(scope="module")
def aws_ui(
    aws_emulator: AwsEmulator,  # noqa: F811 - the session fixture imported above
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Project, Server]]:
    """Two flows run on the emulated stack (in this process, beside the job runner), then the UI
    serving that stack from a subprocess."""
    import shutil

    from lamina.runtime.api import run_flow

    tmp = tmp_path_factory.mktemp("ui-aws")
    root = tmp / "project"
    (root / ".lamina").mkdir(parents=True)
    for name in ("train_flow.py", "failing_flow.py"):
        shutil.copy(FLOWS / name, root / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("LAMINA_CONFIG_DIR", str(tmp / "user-config"))
        mp.setenv("LAMINA_CODE_DIR", str(tmp / "code"))
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "LAMINA_STACK"):
            mp.delenv(key, raising=False)
        for key, value in aws_emulator.env.items():
            mp.setenv(key, value)
        project = Project(root, dict(os.environ))
        trained = run_flow(root / "train_flow.py", {"alpha": 0.5}, stack="aws-sagemaker", echo=False)
        assert trained.ok, trained.message
        failed = run_flow(root / "failing_flow.py", stack="aws-sagemaker", echo=False)
        assert not failed.ok
        project.runs.update(main=trained.run_id, failed=failed.run_id)
    server = start_server(project, "--stack", "aws-sagemaker")
    try:
        yield project, server
    finally:
        stop_server(server)


def test_the_api_reads_runs_dags_previews_logs_and_code_from_the_emulated_bucket(aws_ui: tuple[Project, Server]) -> None:
    project, server = aws_ui
    assert server.json("/api/flows")["stack"] == "aws-sagemaker"
    assert [r["id"] for r in server.json("/api/runs")["runs"]] == [project.runs["failed"], project.runs["main"]]
    run = server.json(f"/api/runs/{project.runs['main']}")
    assert run["stack_name"] == "aws-sagemaker" and run["dag"]["from_manifest"]  # the manifest came from S3
    assert [(d["kind"], d["adapter"]) for d in run["data_reads"]] == [("write", "snowflake"), ("table", "snowflake")]
    nodes = {n["name"]: n for n in run["dag"]["nodes"]}
    assert nodes["fit"]["expected"] == 3 and nodes["fit"]["counts"]["succeeded"] == 3
    merge = server.json(f"/api/runs/{project.runs['main']}/tasks/merge/0")
    table = next(a for a in merge["artifacts"] if a["name"] == "predictions")
    assert table["preview"]["rows"] == 25
    status, blob = server.get(table["download"])
    assert status == 200 and blob[:6] == b"ARROW1"  # the stored Arrow IPC file, from S3
    logs = server.json(f"/api/runs/{project.runs['failed']}/tasks/explode/0/logs")
    assert "about to divide rows by zero" in logs["stdout"]
    assert "train_flow.py" in [f["path"] for f in server.json(f"/api/runs/{project.runs['main']}/code")["files"]]
    metrics = server.json(f"/api/runs/{project.runs['main']}/metrics")["metrics"]
    assert [s["task"] for s in metrics["loss"]] == ["fit/0", "fit/1", "fit/2"]


def test_the_pages_show_the_emulated_runs(aws_ui: tuple[Project, Server], page: Any) -> None:
    from playwright.sync_api import expect

    project, server = aws_ui
    page.goto(server.url + f"#/run/{project.runs['main']}")
    expect(page.locator('svg#dag g.node[data-step="end"]')).to_have_attribute("data-status", "succeeded", timeout=WAIT)
    expect(page.locator('svg.plot[data-metric="loss"] path.series')).to_have_count(3, timeout=WAIT)
    expect(page.locator("#stack")).to_contain_text("s3")
    screenshot(page, "aws-run")
    page.goto(server.url + f"#/task/{project.runs['failed']}/explode/0")
    expect(page.locator("#traceback")).to_contain_text("ZeroDivisionError", timeout=WAIT)
    screenshot(page, "aws-task-failed")
