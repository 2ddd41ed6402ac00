"""End to end: the same flow file on ``local`` and on the emulated ``aws-sagemaker`` stack.

On the emulated stack every task is a SageMaker training job that the job runner executes from
the job's own definition; code, artifacts, logs and records move through the emulated bucket,
tables live in the emulated Snowflake, and the results equal the local run's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lamina.models import RunOutcome, TaskRecord
from lamina.runtime.api import run_flow
from lamina.stack import resolve_stack
from lamina.testing.aws import AwsEmulator
from lamina.versioning.artifacts import ArtifactStore
from lamina.versioning.runstore import RunStore

FLOW = Path(__file__).parent / "flows" / "aws_train_flow.py"
PARAMS = {"alphas": [0.0, 10.0]}
STEPS = ["start", "features", "summary", "fit", "fit", "choose", "merge", "end"]


def end_artifacts(stack_name: str, run_id: str, cache: Path) -> dict[str, Any]:
    """The ``end`` task's artifacts, read from the stack's blob store."""
    with resolve_stack(stack_name) as stack:
        store = ArtifactStore(stack.versioning, cache_dir=cache)
        record = RunStore(stack.versioning).record("AwsTrainFlow", run_id, "end", "0", 0)
        assert record is not None
        return {name: store.load(ref) for name, ref in record.artifacts.items()}


@dataclass
class Runs:
    """The same flow run once on ``local`` and once on the emulated ``aws-sagemaker`` stack."""

    local: RunOutcome
    remote: RunOutcome
    jobs: list[str]
    expected: dict[str, Any]
    got: dict[str, Any]


@pytest.fixture(scope="module")
def runs(aws_emulator: AwsEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Run the flow on both stacks once for this module (each run takes seconds per task)."""
    tmp = tmp_path_factory.mktemp("e2e")
    project = tmp / "project"
    (project / ".lamina").mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        mp.setenv("LAMINA_CONFIG_DIR", str(tmp / "user-config"))
        mp.setenv("LAMINA_CODE_DIR", str(tmp / "code"))
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "LAMINA_STACK"):
            mp.delenv(key, raising=False)
        for key, value in aws_emulator.env.items():
            mp.setenv(key, value)
        local = run_flow(FLOW, PARAMS, stack="local", echo=False)
        assert local.ok, local.message
        assert aws_emulator.runner is not None
        before = len(aws_emulator.runner.ran)
        remote = run_flow(FLOW, PARAMS, stack="aws-sagemaker", echo=False)
        assert remote.ok, remote.message
        jobs = aws_emulator.runner.ran[before:]
        expected = end_artifacts("local", local.run_id, tmp / "cache-local")
        got = end_artifacts("aws-sagemaker", remote.run_id, tmp / "cache-aws")
        yield Runs(local, remote, jobs, expected, got)


def test_results_equal_the_local_run(runs: Runs) -> None:
    assert runs.got == runs.expected
    assert runs.got["tables"] == ["iris", "models"] and runs.got["rows"] == 150
    assert [m["alpha"] for m in runs.got["models"]] == PARAMS["alphas"]


def test_every_task_ran_as_a_training_job(runs: Runs, aws_emulator: AwsEmulator) -> None:
    sagemaker = aws_emulator.client("sagemaker")
    described = [sagemaker.describe_training_job(TrainingJobName=n) for n in runs.jobs]
    steps = sorted(
        next(
            t["Value"]
            for t in sagemaker.list_tags(ResourceArn=d["TrainingJobArn"])["Tags"]
            if t["Key"] == "lamina:step"
        )
        for d in described
    )
    assert steps == sorted(STEPS)
    assert all(d["TrainingJobStatus"] == "Completed" for d in described)
    entry = {tuple(d["AlgorithmSpecification"]["ContainerEntrypoint"]) for d in described}
    assert entry == {("python", "-m", "lamina.plugins.aws")}
    assert {d["ResourceConfig"]["InstanceType"] for d in described} == {"ml.m5.large"}  # cpu=2 fits


def test_code_artifacts_and_records_are_in_the_bucket(runs: Runs, aws_emulator: AwsEmulator) -> None:
    s3 = aws_emulator.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="lamina-emulated", Prefix="lamina/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert any(k.startswith("lamina/code/sha256/") for k in keys)
    assert any(k.startswith("lamina/artifacts/sha256/") for k in keys)
    run_prefix = f"lamina/runs/AwsTrainFlow/{runs.remote.run_id}/"
    assert len([k for k in keys if k.startswith(run_prefix) and k.endswith("record.json")]) == len(STEPS)
    logs = [k for k in keys if k.startswith(run_prefix) and k.endswith("stdout.log")]
    assert logs and all(k.endswith("/0/stdout.log") for k in logs)  # the tasks that printed kept their output


def test_tables_are_in_the_emulated_snowflake(runs: Runs, aws_emulator: AwsEmulator) -> None:
    conn = aws_emulator.snowflake_connect(database="LAMINA", schema="PUBLIC")
    try:
        cursor = conn.cursor()
        assert cursor.execute("SELECT COUNT(*) FROM IRIS").fetchone()[0] == 150
        assert cursor.execute("SELECT ALPHA FROM MODELS ORDER BY ALPHA").fetchall() == [(0.0,), (10.0,)]
    finally:
        conn.close()


def test_snowflake_reads_are_recorded_with_their_query_id(runs: Runs, aws_env: dict[str, str]) -> None:
    from lamina.versioning.metadata import MetadataStore

    with resolve_stack("aws-sagemaker") as stack:
        metadata = MetadataStore(stack.versioning.metadata_url())
        try:
            assert metadata.get_run(runs.remote.run_id).status == "succeeded"
            features = metadata.tasks(runs.remote.run_id, "features")
            reads = [r for rs in metadata.data_reads([t.pk for t in features]).values() for r in rs]
        finally:
            metadata.close()
    assert [(r.adapter, r.kind, r.target) for r in reads] == [("snowflake", "table", "iris")]
    assert reads[0].handle["query_id"] and reads[0].handle["at"]


def test_deployed_tasks_find_the_inputs_the_scheduler_gave(runs: Runs, aws_env: dict[str, str]) -> None:
    """Under Step Functions each task builds its own spec from the deploy template; it must match
    the scheduler's (both follow the flow graph's one input rule)."""
    from lamina.runtime.deploy import flow_descriptor
    from lamina.runtime.deployed import deploy_template, deployed_task_spec
    from lamina.runtime.task import load_flow_class

    flow_cls = load_flow_class(str(FLOW), as_main=False)
    with resolve_stack("aws-sagemaker") as stack:
        template = deploy_template(flow_descriptor(flow_cls, str(FLOW), stack, "code/sha256/00/00.tar.gz"))
        store = RunStore(stack.versioning)
        records = [record for _, record in store.records("AwsTrainFlow", runs.remote.run_id)]
        assert len(records) == len(STEPS)
        for record in records:
            spec = deployed_task_spec(template, record.step, runs.remote.run_id, record.foreach_stack, 0, store)
            assert (spec.task_id, spec.input_paths) == (record.task_id, record.input_paths), record.step
            assert spec.split_index == (record.foreach_stack[-1].index if record.step == "fit" else None)


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
    assert "no installed plugin emulates the data adapter 'bigquery'" in proc.stderr
    assert "stacks the installed plugins can emulate:\n  aws-sagemaker: " in proc.stderr


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


def _intrinsic(expression: str, data: dict[str, Any]) -> Any:
    """Evaluate the intrinsic functions Lamina's state machines use (States.Array, States.Format,
    States.UUID, string literals, $ and $$ paths), as Step Functions would."""
    import re
    import uuid

    pos = 0

    def skip() -> None:
        nonlocal pos
        while pos < len(expression) and expression[pos] in " ,":
            pos += 1

    def value() -> Any:
        nonlocal pos
        skip()
        if expression[pos] == "'":
            out, pos = [], pos + 1
            while expression[pos] != "'":
                if expression[pos] == "\\":
                    pos += 1
                out.append(expression[pos])
                pos += 1
            pos += 1
            return "".join(out)
        if expression[pos] == "$":
            match = re.match(r"\$\$?[\w.]*", expression[pos:])
            assert match
            pos += match.end()
            node: Any = data
            for part in match.group(0).lstrip("$").strip(".").split("."):
                node = node[part]
            return node
        match = re.match(r"States\.(\w+)\(", expression[pos:])
        assert match, expression[pos:]
        pos += match.end()
        args = []
        while True:
            skip()
            if expression[pos] == ")":
                pos += 1
                break
            args.append(value())
        name = match.group(1)
        if name == "Array":
            return args
        if name == "UUID":
            return str(uuid.uuid4())
        if name == "Format":
            template, rest = args[0], iter(args[1:])
            return re.sub(r"\{\}", lambda _: str(next(rest)), template)
        raise AssertionError(f"unexpected intrinsic {name}")

    return value()


def test_a_deployed_task_runs_from_the_state_machine_definition(
    runs: Runs,
    aws_env: dict[str, str],
    aws_emulator: AwsEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Run the ``merge`` Task of the deployed state machine as Step Functions would: its job
    definition, with the run id and retry count filled in, executed by the job runner."""
    import time

    from lamina.plugins.aws.asl import task_states
    from lamina.runtime.deploy import deploy_flow
    from lamina.runtime.task import load_flow_class

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAMINA_SFN_WAIT", "sync")  # one Task per step, as on real AWS
    flow_cls = load_flow_class(str(FLOW), as_main=False)
    deployed = deploy_flow(flow_cls, str(FLOW), stack="aws-sagemaker")
    sfn = aws_emulator.client("stepfunctions")
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=deployed.target)["definition"])
    params = json.loads(json.dumps(task_states(definition)["merge"]["Parameters"]))
    data = {"lamina": {"run_id": runs.remote.run_id, "t": "0"}, "State": {"RetryCount": 0}}
    algo = params["AlgorithmSpecification"]
    algo["ContainerArguments"] = _intrinsic(algo.pop("ContainerArguments.$"), data)
    params["TrainingJobName"] = _intrinsic(params.pop("TrainingJobName.$"), data)
    assert "--secrets" in algo["ContainerArguments"]  # the Snowflake password comes from Secrets Manager

    record_key = f"lamina/runs/AwsTrainFlow/{runs.remote.run_id}/merge/0/0/record.json"
    s3 = aws_emulator.client("s3")
    submitted = dt.datetime.now(dt.UTC)
    sagemaker = aws_emulator.client("sagemaker")
    sagemaker.create_training_job(**params)
    deadline = time.monotonic() + 120
    status = "InProgress"
    while status == "InProgress" and time.monotonic() < deadline:
        time.sleep(0.2)
        status = sagemaker.describe_training_job(TrainingJobName=params["TrainingJobName"])[
            "TrainingJobStatus"
        ]
    assert status == "Completed", sagemaker.describe_training_job(
        TrainingJobName=params["TrainingJobName"]
    ).get("FailureReason")
    record = TaskRecord.model_validate_json(
        s3.get_object(Bucket="lamina-emulated", Key=record_key)["Body"].read()
    )
    assert record.ok and record.input_paths == ["choose/0/0", "summary/0/0"]
    assert record.started_at >= submitted  # written by this job, not by the interactive run
    with resolve_stack("aws-sagemaker") as stack:
        store = ArtifactStore(stack.versioning, cache_dir=tmp_path / "cache")
        assert store.load(record.artifacts["best"]) == runs.expected["best"]


TRAIN_EXAMPLE = Path(__file__).parents[2] / "examples" / "train" / "flow.py"


@pytest.mark.skipif(not TRAIN_EXAMPLE.exists(), reason="examples/train/flow.py is not in this tree")
def test_the_train_example_runs_unchanged_and_matches_local(
    aws_env: dict[str, str], aws_emulator: AwsEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("sklearn")
    project = tmp_path / "project"
    (project / ".lamina").mkdir(parents=True)
    monkeypatch.chdir(project)
    monkeypatch.setenv("LAMINA_CONFIG_DIR", str(tmp_path / "user-config"))
    local = run_flow(TRAIN_EXAMPLE, stack="local", echo=False)
    remote = run_flow(TRAIN_EXAMPLE, stack="aws-sagemaker", echo=False)
    assert local.ok and remote.ok, (local.message, remote.message)

    def results(stack_name: str, run_id: str) -> dict[str, Any]:
        with resolve_stack(stack_name) as stack:
            store = ArtifactStore(stack.versioning, cache_dir=tmp_path / f"cache-{stack_name}")
            out = {}
            for step in ("pick", "end"):
                record = RunStore(stack.versioning).record("TrainFlow", run_id, step, "0", 0)
                assert record is not None
                for name in ("best_c", "score", "scores", "accuracy_all"):
                    if name in record.artifacts:
                        out[name] = store.load(record.artifacts[name])
            return out

    expected = results("local", local.run_id)
    assert set(expected) == {"best_c", "score", "scores", "accuracy_all"}
    assert results("aws-sagemaker", remote.run_id) == expected
    conn = aws_emulator.snowflake_connect(database="LAMINA", schema="PUBLIC")
    try:
        assert conn.cursor().execute("SELECT COUNT(*) FROM IRIS_PREDICTIONS").fetchone()[0] == 150
    finally:
        conn.close()


def test_a_second_emulator_in_the_same_process_is_refused(aws_emulator: AwsEmulator) -> None:
    from lamina.errors import LaminaError

    with pytest.raises(LaminaError, match="already runs in this process"):
        AwsEmulator().start()
    assert aws_emulator.client("s3").head_bucket(Bucket="lamina-emulated")  # the running one is untouched
