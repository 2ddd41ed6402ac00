"""End to end: the same flow file on ``local`` and on the emulated ``aws-sagemaker`` stack.

On the emulated stack every task is a SageMaker training job that the job runner executes from
the job's own definition; code, artifacts, logs and records move through the emulated bucket,
tables live in the emulated Snowflake, and the results equal the local run's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lamina.models import TaskRecord
from lamina.runtime.api import run_flow
from lamina.stack import resolve_stack
from lamina.testing.aws import AwsEmulator
from lamina.versioning import layout
from lamina.versioning.artifacts import ArtifactStore

FLOW = Path(__file__).parent / "flows" / "aws_train_flow.py"
PARAMS = {"alphas": [0.0, 10.0]}
STEPS = ["start", "features", "summary", "fit", "fit", "choose", "merge", "end"]


def end_artifacts(stack_name: str, run_id: str, cache: Path) -> dict[str, Any]:
    """The ``end`` task's artifacts, read from the stack's blob store."""
    with resolve_stack(stack_name) as stack:
        store = ArtifactStore(stack.versioning, cache_dir=cache)
        key = layout.task_record_key("AwsTrainFlow", run_id, "end", "0", 0)
        record = TaskRecord.model_validate_json(stack.versioning.get(key))
        return {name: store.load(ref) for name, ref in record.artifacts.items()}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = tmp_path / "project"
    (project / ".lamina").mkdir(parents=True)
    monkeypatch.chdir(project)
    monkeypatch.setenv("LAMINA_CONFIG_DIR", str(tmp_path / "user-config"))
    monkeypatch.setenv("LAMINA_CODE_DIR", str(tmp_path / "code"))
    return project


def test_a_flow_runs_as_sagemaker_jobs_and_matches_local(
    project: Path, aws_env: dict[str, str], aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    local = run_flow(FLOW, PARAMS, stack="local", echo=False)
    assert local.ok, local.message
    assert aws_emulator.runner is not None
    jobs_before = len(aws_emulator.runner.ran)

    remote = run_flow(FLOW, PARAMS, stack="aws-sagemaker", echo=False)
    assert remote.ok, remote.message

    # the same results on both stacks
    expected = end_artifacts("local", local.run_id, tmp_path / "cache-local")
    got = end_artifacts("aws-sagemaker", remote.run_id, tmp_path / "cache-aws")
    assert got == expected
    assert got["tables"] == ["iris", "models"] and got["rows"] == 150

    # every task was a SageMaker training job, run by the job runner from the job's definition
    sagemaker = aws_emulator.client("sagemaker")
    names = aws_emulator.runner.ran[jobs_before:]
    described = [sagemaker.describe_training_job(TrainingJobName=n) for n in names]
    steps = sorted(next(t["Value"] for t in sagemaker.list_tags(ResourceArn=d["TrainingJobArn"])["Tags"]
                        if t["Key"] == "lamina:step") for d in described)  # fmt: skip
    assert steps == sorted(STEPS)
    assert all(d["TrainingJobStatus"] == "Completed" for d in described)
    entry = described[0]["AlgorithmSpecification"]["ContainerEntrypoint"]
    assert entry == ["python", "-m", "lamina.plugins.aws"]
    assert {d["ResourceConfig"]["InstanceType"] for d in described} == {"ml.m5.large"}  # cpu=2 fits

    # code, artifacts and records are in the emulated bucket
    s3 = aws_emulator.client("s3")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="lamina-emulated", Prefix="lamina/")
            for o in page.get("Contents", [])]  # fmt: skip
    assert any(k.startswith("lamina/code/sha256/") for k in keys)
    assert any(k.startswith("lamina/artifacts/sha256/") for k in keys)
    records = [
        k
        for k in keys
        if k.startswith(f"lamina/runs/AwsTrainFlow/{remote.run_id}/") and k.endswith("record.json")
    ]
    assert len(records) == len(STEPS)

    # the tables are in the emulated Snowflake
    conn = aws_emulator.snowflake_connect(database="LAMINA", schema="PUBLIC")
    try:
        cursor = conn.cursor()
        assert cursor.execute("SELECT COUNT(*) FROM IRIS").fetchone()[0] == 150
        assert cursor.execute("SELECT ALPHA FROM MODELS ORDER BY ALPHA").fetchall() == [(0.0,), (10.0,)]
    finally:
        conn.close()

    # the driver recorded the run, and each Snowflake read with its query id for time travel
    from lamina.versioning.metadata import MetadataStore

    with resolve_stack("aws-sagemaker") as stack:
        metadata = MetadataStore(stack.versioning.metadata_url())
        assert metadata.get_run(remote.run_id).status == "succeeded"
        features = metadata.tasks(remote.run_id, "features")
        reads = [r for rs in metadata.data_reads([t.pk for t in features]).values() for r in rs]
        metadata.close()
    assert [(r.adapter, r.kind, r.target) for r in reads] == [("snowflake", "table", "iris")]
    assert reads[0].handle["query_id"] and reads[0].handle["at"]


def _lamina_processes() -> set[int]:
    """Processes of this user that an emulated stack starts: fakesnow and task containers."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "fakesnow" in cmdline or "lamina.plugins.aws" in cmdline:
            found.add(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find leftover processes")
def test_lamina_emulate_runs_a_command_and_leaves_nothing_behind(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".lamina").mkdir(parents=True)
    before = _lamina_processes()
    workdirs_before = set(Path(tempfile_dir()).glob("lamina-emulate-*"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNOWFLAKE_", "LAMINA_"))}
    env["LAMINA_CONFIG_DIR"] = str(tmp_path / "user-config")
    script = (
        "import boto3, os; from lamina.stack import resolve_stack;"
        "s = resolve_stack('aws-sagemaker');"
        "print('check', [s.layer(l).check().ok for l in ('data', 'versioning', 'compute', 'orchestration')]);"
        "print('bucket', os.environ['LAMINA_S3_BUCKET'])"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "lamina", "emulate", "aws-sagemaker", "--", sys.executable, "-c", script],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "check [True, True, True, True]" in proc.stdout
    assert "bucket lamina-emulated" in proc.stdout
    assert _lamina_processes() <= before  # fakesnow and every job process are gone
    assert set(Path(tempfile_dir()).glob("lamina-emulate-*")) <= workdirs_before  # files too


def test_lamina_emulate_returns_the_command_status_and_refuses_unknown_stacks(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lamina", "emulate", "gcp-vertex", "--", "true"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "emulated stacks: aws-sagemaker" in proc.stderr


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()
