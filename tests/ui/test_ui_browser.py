"""The UI in a real headless browser (Debian's chromium, driven by Playwright) over real runs:
the runs list, a run's DAG while it runs and after, a failed task's traceback and logs, a table
preview, a metric plot, a comparison of two runs, the code browser. A screenshot of each page is
kept in build/ui-screenshots/. No page shows the secret the server knows."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from ui_helpers import SECRET, Project, Server, screenshot

pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright")
from playwright.sync_api import expect  # noqa: E402

WAIT = 30_000  # ms a page may take to show what a test waits for (a wait, not a timing assert)


def visit(page: Any, server: Server, route: str) -> None:
    page.goto(server.url.rstrip("/") + "/" + route)


def assert_no_secret(page: Any) -> None:
    assert SECRET not in page.content(), "the page shows a secret"


def test_the_runs_list_shows_every_run_and_filters_and_pages(page: Any, ui_server: Server, ui_project: Project) -> None:
    visit(page, ui_server, "#/")
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(3, timeout=WAIT)
    expect(page.locator("#runs-total")).to_have_text("1–3 of 3 runs")
    main = page.locator(f'tr[data-run-id="{ui_project.runs["main"]}"]')
    expect(main).to_contain_text("UITrainFlow")
    expect(main).to_contain_text("alpha=0.5")
    expect(main).to_contain_text("branch main")
    expect(main.locator(".badge")).to_have_text("succeeded")
    expect(page.locator(f'tr[data-run-id="{ui_project.runs["failed"]}"] .badge')).to_have_text("failed")
    assert_no_secret(page)
    screenshot(page, "runs")

    page.select_option("#filters select[name=status]", "failed")
    page.click("#filters button[type=submit]")
    expect(rows).to_have_count(1, timeout=WAIT)
    expect(rows.first).to_have_attribute("data-run-id", ui_project.runs["failed"])

    visit(page, ui_server, "#/runs?limit=2")
    expect(rows).to_have_count(2, timeout=WAIT)
    page.click("#next")
    expect(page.locator("#runs-total")).to_have_text("3–3 of 3 runs", timeout=WAIT)
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", ui_project.runs["main"])


def test_a_run_shows_its_dag_tasks_metrics_and_parameters(page: Any, ui_server: Server, ui_project: Project) -> None:
    visit(page, ui_server, f"#/run/{ui_project.runs['main']}")
    nodes = page.locator("svg#dag g.node")
    expect(nodes).to_have_count(7, timeout=WAIT)
    for step in ("start", "fit", "gather", "table", "weights", "merge", "end"):
        expect(page.locator(f'svg#dag g.node[data-step="{step}"]')).to_have_attribute("data-status", "succeeded")
    expect(page.locator('svg#dag g.node[data-step="fit"]')).to_contain_text("3/3 tasks")
    expect(page.locator("svg#dag text.edge-label")).to_have_text("foreach ×3")
    expect(page.locator("svg#dag path.edge")).to_have_count(7)
    expect(page.locator('#tasks-table tr[data-step="fit"]')).to_have_count(3)
    plot = page.locator('svg.plot[data-metric="loss"]')
    expect(plot).to_be_visible(timeout=WAIT)
    expect(plot.locator("path.series")).to_have_count(3)
    expect(page.locator("#params")).to_contain_text("alpha")
    expect(page.locator("#stack")).to_contain_text("local")
    expect(page.locator("#data-reads tbody tr")).to_have_count(2)
    expect(page.locator("#data-reads")).to_contain_text("ui_predictions@")
    expect(page.locator('#stack details[data-layer="versioning"]')).to_contain_text("versioning: local")
    assert_no_secret(page)
    screenshot(page, "run")

    page.click('svg#dag g.node[data-step="fit"]')
    expect(page.locator("#tasks-table tbody tr")).to_have_count(3)
    expect(page.locator('svg#dag g.node[data-step="fit"]')).to_have_class("node selected")


def test_a_running_run_updates_its_dag_live(page: Any, ui_server: Server, ui_project: Project) -> None:
    gate = ui_project.root / "gate"
    run = subprocess.Popen(
        [sys.executable, "waiting_flow.py", "run", "--quiet", "--gate", str(gate)],
        cwd=ui_project.root,
        env=ui_project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        visit(page, ui_server, "#/runs?flow=UIWaitFlow")
        link = page.locator("#runs-table tbody tr a").first
        for _ in range(60):  # the run appears once its driver opened it
            if link.count():
                break
            page.wait_for_timeout(500)
            page.reload()
        link.click()
        wait = page.locator('svg#dag g.node[data-step="wait"]')
        expect(wait).to_have_attribute("data-status", "running", timeout=WAIT)
        expect(page.locator('svg#dag g.node[data-step="start"]')).to_have_attribute("data-status", "succeeded")
        expect(page.locator('svg#dag g.node[data-step="end"]')).to_have_attribute("data-status", "pending")
        expect(page.locator("h1 .badge")).to_have_text("running")
        screenshot(page, "run-live")
        gate.touch()  # the step finishes; the page follows without a reload
        expect(page.locator('svg#dag g.node[data-step="end"]')).to_have_attribute(
            "data-status", "succeeded", timeout=WAIT
        )
        expect(wait).to_have_attribute("data-status", "succeeded")
        expect(page.locator("h1 .badge")).to_have_text("succeeded", timeout=WAIT)
        screenshot(page, "run-live-done")
        assert run.wait(timeout=60) == 0
    finally:
        gate.touch()
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)


def test_a_failed_task_shows_its_traceback_and_logs_with_the_secret_masked(
    page: Any, ui_server: Server, ui_project: Project
) -> None:
    visit(page, ui_server, f"#/run/{ui_project.runs['failed']}")
    explode = page.locator('svg#dag g.node[data-step="explode"]')
    expect(explode).to_have_attribute("data-status", "failed", timeout=WAIT)
    expect(page.locator('svg#dag g.node[data-step="end"]')).to_have_attribute("data-status", "skipped")
    page.locator('#tasks-table tr[data-step="explode"] a').click()
    expect(page.locator("#traceback")).to_contain_text("ZeroDivisionError: division by zero", timeout=WAIT)
    expect(page.locator("#traceback")).to_contain_text("self.ratio = self.rows / 0")
    expect(page.locator("#stdout")).to_contain_text("about to divide rows by zero")
    expect(page.locator("#stdout")).to_contain_text("the leaked value is ***")
    expect(page.locator("#stderr")).to_contain_text("a warning on stderr")
    assert_no_secret(page)
    screenshot(page, "task-failed")


def test_artifacts_show_table_array_and_value_previews(page: Any, ui_server: Server, ui_project: Project) -> None:
    visit(page, ui_server, f"#/task/{ui_project.runs['main']}/merge/0")
    table = page.locator('.artifact[data-name="predictions"] table.preview')
    expect(table).to_be_visible(timeout=WAIT)
    expect(table.locator("thead th")).to_have_text(["idint64", "labelstring", "pdouble"])
    expect(table.locator("tbody tr")).to_have_count(10)
    expect(table.locator("tbody tr").nth(2)).to_have_text("2class-20.08")
    expect(page.locator('.artifact[data-name="predictions"]')).to_contain_text("25 rows × 3 columns")
    weights = page.locator('.artifact[data-name="weights"]')
    expect(weights).to_contain_text("(10, 100)")
    expect(weights).to_contain_text("float64")
    expect(page.locator('.artifact[data-name="scores"] .value-preview')).to_have_text("[0.55, 0.65, 0.75]")
    chart = page.locator('.artifact[data-name="chart"] img.thumb')
    expect(chart).to_be_visible()
    assert chart.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [4, 3]  # the PNG decoded
    expect(page.locator('.artifact[data-name="chart"]')).to_contain_text("png image, 4×3")
    download = page.locator('.artifact[data-name="predictions"] a[download]')
    assert "/artifacts/predictions" in (download.get_attribute("href") or "")
    screenshot(page, "task-artifacts")


def test_a_task_plots_its_metric(page: Any, ui_server: Server, ui_project: Project) -> None:
    visit(page, ui_server, f"#/task/{ui_project.runs['main']}/fit/1")
    plot = page.locator('svg.plot[data-metric="loss"]')
    expect(plot).to_be_visible(timeout=WAIT)
    expect(plot.locator("path.series")).to_have_count(1)
    expect(plot.locator("circle")).to_have_count(5)
    box = plot.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 150
    screenshot(page, "task-metric")


def test_two_runs_compare_side_by_side(page: Any, ui_server: Server, ui_project: Project) -> None:
    main, candidate = ui_project.runs["main"], ui_project.runs["candidate"]
    visit(page, ui_server, "#/runs?flow=UITrainFlow")
    expect(page.locator("#runs-table tbody tr")).to_have_count(2, timeout=WAIT)
    page.check(f'input.pick[data-run-id="{main}"]')
    expect(page.locator("#compare-selected")).to_be_disabled()
    page.check(f'input.pick[data-run-id="{candidate}"]')
    page.click("#compare-selected")
    params = page.locator('#compare-params tr[data-name="alpha"]')
    expect(params).to_have_class("differs", timeout=WAIT)
    expect(params.locator("td")).to_have_text(["alpha", "0.5", "0.9"])
    expect(page.locator('#compare-metrics tr[data-name="best"]')).to_have_class("differs")
    expect(page.locator('#compare-artifacts tr[data-name="predictions"]')).not_to_have_class("differs")
    expect(page.locator('#compare-artifacts tr[data-name="weights"]')).to_have_class("differs")
    expect(page.locator('#compare-plots svg.plot[data-metric="loss"] path.series')).to_have_count(6)
    assert_no_secret(page)
    screenshot(page, "compare")

    visit(page, ui_server, "#/compare?flow=UITrainFlow&branches=main,candidate")
    expect(page.locator("#compare-runs tbody tr")).to_have_count(2, timeout=WAIT)
    expect(page.locator("#compare-runs tbody tr").first).to_contain_text(main)


def test_the_code_package_can_be_browsed(page: Any, ui_server: Server, ui_project: Project) -> None:
    visit(page, ui_server, f"#/run/{ui_project.runs['main']}")
    page.click("#browse-code", timeout=WAIT)
    expect(page.locator("#code-files")).to_contain_text("train_flow.py", timeout=WAIT)
    expect(page.locator("#code-file")).to_contain_text("class UITrainFlow(FlowSpec)", timeout=WAIT)
    screenshot(page, "code")
