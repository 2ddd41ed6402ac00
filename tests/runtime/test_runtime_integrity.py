"""A damaged blob store is an error that says what is damaged and how to recover, never a wrong
value: one flipped byte, a truncated blob, a garbled task record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from lamina import Flow, Run
from lamina.versioning.integrity import DamagedBlob
from runtime_helpers import FLOWS, flow_cli

pytestmark = pytest.mark.usefixtures("lamina_project")

FLOW = FLOWS / "integrity.py"


def lamina(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamina", *args], capture_output=True, text=True, timeout=120
    )


def _blob(project: Path, artifact: str) -> Path:
    key = Flow("IntegrityFlow").latest_run["start"].task.artifacts[artifact].key
    path = project / ".lamina" / "blobs" / key
    os.chmod(path, 0o644)
    return path


def flip_one(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(b"K\x01") + 1 if b"K\x01" in data else len(data) // 2  # pickle's BININT1 1
    data[at] ^= 0x06  # {'a': 1} would read back as {'a': 7}
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE: dict[str, Callable[[Path], None]] = {"flipped": flip_one, "truncated": truncate}


@pytest.fixture
def run_id(run_flow) -> str:
    outcome = run_flow(FLOW)
    assert outcome.ok, outcome.message
    return outcome.run_id


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("artifact", ["x", "big"])
def test_the_client_refuses_a_damaged_blob_naming_run_task_and_artifact(
    run_id: str, lamina_project: Path, damage: str, artifact: str
) -> None:
    DAMAGE[damage](_blob(lamina_project, artifact))
    # a fresh process: nothing verified or cached yet
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import lamina; print(lamina.Flow('IntegrityFlow').latest_run.data.{artifact})",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode != 0
    assert "{'a': 7}" not in probe.stdout and "{'a': 1}" not in probe.stdout
    assert "DamagedBlob: the blob store is damaged" in probe.stderr
    assert f"artifact '{artifact}' of task IntegrityFlow/{run_id}/end/0" in probe.stderr
    assert ("is truncated" if damage == "truncated" else "does not match") in probe.stderr
    assert "UnpicklingError" not in probe.stderr and "struct.error" not in probe.stderr
    with pytest.raises(DamagedBlob, match="lamina verify"):
        Flow("IntegrityFlow").latest_run.data[artifact]


@pytest.mark.parametrize("damage", DAMAGE)
def test_show_reports_the_damage_instead_of_a_value(run_id: str, lamina_project: Path, damage: str) -> None:
    DAMAGE[damage](_blob(lamina_project, "x"))
    for target in (f"IntegrityFlow/{run_id}", f"{run_id}/start"):
        shown = lamina("show", target)
        assert shown.returncode == 1
        assert "DAMAGED" in shown.stdout and "{'a': 7}" not in shown.stdout
        assert "lamina: error: the blob store is damaged: artifact 'x'" in shown.stderr
        assert "Traceback" not in shown.stderr


def test_verify_lists_damage_and_the_runs_it_affects_and_remove_then_resume_repairs(
    run_id: str, lamina_project: Path
) -> None:
    assert lamina("verify").returncode == 0
    flip_one(_blob(lamina_project, "x"))
    report = lamina("verify")
    assert report.returncode == 1
    assert "1 damaged blob(s)" in report.stdout
    assert f"IntegrityFlow/{run_id}/start/0 (x)" in report.stdout
    assert f"resume --origin-run-id {run_id} start" in report.stdout
    as_json = json.loads(lamina("verify", f"IntegrityFlow/{run_id}", "--json").stdout)
    assert not as_json["ok"]
    [damaged] = as_json["damaged"]
    assert damaged["kind"] == "artifact" and "does not match" in damaged["problem"]
    assert {(u["step"], u["artifact"]) for u in damaged["uses"]} == {("start", "x"), ("end", "x")}
    assert as_json["affected_runs"] == {f"IntegrityFlow/{run_id}": ["start"]}

    assert f"IntegrityFlow/{run_id}/start/0 (x)" in lamina("verify", run_id).stdout  # a bare run id
    assert lamina("verify", "--remove-damaged").returncode == 1
    resumed = flow_cli("integrity.py", "resume", "--origin-run-id", run_id, "start")
    assert resumed.returncode == 0, resumed.stderr
    assert lamina("verify").returncode == 0
    assert Run(run_id).data.x == {"a": 1}  # the old run reads again too


def test_verify_reports_a_garbled_task_record(run_id: str, lamina_project: Path) -> None:
    record = next(
        (lamina_project / ".lamina" / "blobs" / "runs" / "IntegrityFlow" / run_id / "end").rglob(
            "record.json"
        )
    )
    os.chmod(record, 0o644)
    record.write_text(record.read_text()[:40])
    report = json.loads(lamina("verify", "IntegrityFlow", "--json").stdout)
    assert [(d["kind"], d["problem"]) for d in report["damaged"]] == [
        ("record", "is not a valid task record")
    ]
    assert report["affected_runs"] == {f"IntegrityFlow/{run_id}": ["end"]}
