"""``IncludeFile``: a file's contents, read once when the run starts, reach every task as an
artifact from the blob store, byte for byte."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from lamina import Run
from lamina.errors import ParameterError
from lamina.flow.includefile import INCLUDED
from lamina.stack import resolve_stack
from lamina.stack.catalog import register_profile
from lamina.versioning.runstore import RunStore
from mf_helpers import FLOWS, flow_cli

BINARY = bytes(range(256)) * 40 + b"\x00\r\n\xff"


@pytest.fixture
def blob_file(lamina_project: Path) -> Path:
    path = lamina_project / "data.bin"
    path.write_bytes(BINARY)
    return path


def test_text_and_binary_contents_reach_every_task_exactly(run_flow, blob_file: Path) -> None:
    outcome = run_flow(FLOWS / "include_flow.py", {"blob": str(blob_file)})
    assert outcome.ok, outcome.message
    run = Run(outcome.run_id)
    notes = (FLOWS / "notes.txt").read_text(encoding="utf-8")
    assert run["start"].task.data.notes_seen == notes
    assert run["remote"].task.data.blob_copy == BINARY
    assert run["remote"].task.data.kinds == ("str", "bytes")
    assert f"notes: {len(notes)} characters, blob: 10244 bytes" in run["end"].task.stdout


def test_tasks_get_a_reference_to_the_stored_contents_not_the_bytes(run_flow, blob_file: Path) -> None:
    """What a task receives (the run's parameters, as every TaskSpec carries them) is a small
    reference; the bytes are an artifact in the blob store, so any stack's task reads them."""
    outcome = run_flow(FLOWS / "include_flow.py", {"blob": str(blob_file)})
    assert outcome.ok, outcome.message
    with resolve_stack("local") as stack:
        manifest = RunStore(stack.versioning).load_manifest("IncludeFlow", outcome.run_id)
        included = manifest["params"]["blob"][INCLUDED]
        assert included["path"] == str(blob_file)
        assert len(json.dumps(manifest["params"])) < 1000  # no file contents inline
        assert stack.versioning.get(included["ref"]["key"])  # the contents are a stored artifact
    assert Run(outcome.run_id).params["blob"] == manifest["params"]["blob"]


def test_each_task_in_its_own_process_reads_the_same_bytes(run_flow, blob_file: Path) -> None:
    """With a fresh ``python -m lamina task`` process per task (as a remote compute runs it),
    nothing but the blob store carries the contents."""
    profile = Path("process.toml")
    profile.write_text(
        '[data]\nadapter = "duckdb"\n[compute]\nadapter = "local"\nmode = "process"\n'
        '[orchestration]\nadapter = "local"\n[versioning]\nadapter = "local"\n'
    )
    register_profile("process", profile, Path.cwd(), user=False)
    outcome = run_flow(FLOWS / "include_flow.py", {"blob": str(blob_file)}, stack="process")
    assert outcome.ok, outcome.message
    assert Run(outcome.run_id)["remote"].task.data.blob_copy == BINARY


def test_command_line_path_and_resume_keep_the_contents_read_at_start(lamina_project: Path) -> None:
    other = lamina_project / "other.bin"
    other.write_bytes(b"first version")
    done = flow_cli("include_flow.py", "run", "--blob", str(other), "--run-id-file", "rid")
    assert done.returncode == 0, done.stderr
    run_id = Path("rid").read_text()
    other.write_bytes(b"changed later")
    resumed = flow_cli("include_flow.py", "resume", "end", "--origin-run-id", run_id, "--run-id-file", "rid2")
    assert resumed.returncode == 0, resumed.stderr
    assert Run(Path("rid2").read_text())["remote"].task.data.blob_copy == b"first version"


def test_a_missing_file_or_a_required_one_not_given_is_a_clear_error(run_flow, lamina_project: Path) -> None:
    with pytest.raises(ParameterError, match="--blob"):
        run_flow(FLOWS / "include_flow.py", {})
    with pytest.raises(ParameterError, match=r"--blob \(IncludeFile\): cannot read 'nope.bin'"):
        run_flow(FLOWS / "include_flow.py", {"blob": "nope.bin"})
    done = flow_cli("include_flow.py", "run", "--blob", "nope.bin")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cannot read 'nope.bin'" in done.stderr


def test_text_that_does_not_decode_names_the_parameter(run_flow, lamina_project: Path) -> None:
    bad = lamina_project / "notes.bin"
    bad.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ParameterError, match="--notes.*not text in utf-8.*is_text=False"):
        run_flow(FLOWS / "include_flow.py", {"blob": str(bad), "notes": str(bad)})
    assert os.path.exists(bad)


def test_deploying_a_flow_with_an_included_file_is_refused_with_the_reason(lamina_project: Path) -> None:
    done = flow_cli("include_flow.py", "deploy", "--dry-run")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "IncludeFile parameter(s) notes, blob" in done.stderr and "python flow.py run" in done.stderr
