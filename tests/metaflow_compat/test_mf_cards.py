"""``@card``: components appended in a step are stored with the task as one HTML document,
read back with the client and ``lamina card view|get``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lamina import Run, Task
from lamina.cards import LineChart, Markdown, Table
from mf_helpers import flow_cli


def test_markdown_escapes_html_and_renders_the_common_syntax() -> None:
    rendered = Markdown("# Title\n\nSome **bold** and `code` <script>.\n\n- a\n- b").render()
    assert "<h1>Title</h1>" in rendered
    assert "<strong>bold</strong>" in rendered and "<code>code</code>" in rendered
    assert "&lt;script&gt;" in rendered and "<script>" not in rendered
    assert "<ul><li>a</li><li>b</li></ul>" in rendered


def test_table_and_chart_render_their_values() -> None:
    assert "<td>&lt;b&gt;</td>" in Table([["<b>"]]).render()
    svg = LineChart([0, 1, 2], [3, 1, 2], title="loss").render()
    assert svg.startswith("<svg") and "<polyline" in svg and ">loss<" in svg
    with pytest.raises(ValueError, match="3 points, x has 2"):
        LineChart([0, 1], [1, 2, 3])


@pytest.fixture
def card_run(lamina_project: Path) -> str:
    done = flow_cli("card_flow.py", "run", "--run-id-file", "rid")
    assert done.returncode == 0, done.stderr
    return Path("rid").read_text()


def test_a_step_card_holds_its_components_and_the_artifacts(card_run: str) -> None:
    document = Task(f"CardFlow/{card_run}/start/0").card
    assert document is not None and document.startswith("<!DOCTYPE html>")
    assert "<h1>Training report</h1>" in document and "&lt;run&gt;" in document
    assert "<th>optimizer</th>" in document and "<em>0.3</em>" in document
    assert 'src="data:image/png;base64,' in document and "a pixel" in document
    assert "<polyline" in document
    assert "Artifacts" in document and "<td>best</td>" in document and "<td>0.125</td>" in document
    assert "<script" not in document  # self-contained, nothing to run or fetch
    blank = Run(card_run)["end"].task.card
    assert blank is not None and "just this" in blank and "Artifacts" not in blank


def test_card_get_and_view_from_the_command_line(card_run: str, lamina_project: Path) -> None:
    lamina = [sys.executable, "-m", "lamina", "card"]
    got = subprocess.run(
        [*lamina, "get", f"CardFlow/{card_run}/start/0", "card.html"], capture_output=True, text=True
    )
    assert got.returncode == 0, got.stderr
    assert "<h1>Training report</h1>" in Path("card.html").read_text()
    viewed = subprocess.run(
        [*lamina, "view", f"CardFlow/{card_run}/end", "--no-open"], capture_output=True, text=True
    )
    assert viewed.returncode == 0, viewed.stderr
    path = Path(viewed.stdout.strip())
    assert "just this" in path.read_text()
    path.unlink()


def test_a_task_without_a_card_says_how_to_get_one(lamina_project: Path) -> None:
    done = flow_cli("helloworld.py", "run", "--run-id-file", "rid")
    assert done.returncode == 0, done.stderr
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "lamina",
            "card",
            "view",
            f"HelloFlow/{Path('rid').read_text()}/hello/0",
            "--no-open",
        ],
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "add @card to step 'hello'" in missing.stderr


def test_with_card_gives_every_step_the_default_card(lamina_project: Path) -> None:
    done = flow_cli("helloworld.py", "run", "--with", "card", "--run-id-file", "rid")
    assert done.returncode == 0, done.stderr
    run = Run(Path("rid").read_text())
    cards = [step.task.card for step in run]
    assert all(c is not None and "<h2>Artifacts</h2>" in c for c in cards)
    assert f"HelloFlow/{run.id}/hello/0" in (cards[1] or "")
