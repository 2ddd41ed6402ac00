"""Flows written for Metaflow on the emulated ``aws-sagemaker`` stack: every task is a SageMaker
training job that the emulator's job runner executes from the job's definition, so included
files, artifacts and step environments move through the emulated bucket and the job's own
cache, as in the cloud."""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

for _module in ("moto", "fakesnow", "boto3", "snowflake.connector"):
    if importlib.util.find_spec(_module.split(".")[0]) is None:
        pytest.skip(f"the aws tests need {_module}: pip install 'lamina[test]'", allow_module_level=True)

from lamina.models import RunOutcome  # noqa: E402
from lamina.runtime.api import run_flow  # noqa: E402
from lamina.stack import resolve_stack  # noqa: E402
from lamina.testing.aws import AwsEmulator  # noqa: E402 - aws_emulator comes from tests/conftest.py
from lamina.versioning.artifacts import ArtifactStore  # noqa: E402
from lamina.versioning.runstore import RunStore  # noqa: E402
from mf_helpers import FLOWS, movies  # noqa: E402

BINARY = bytes(range(256)) * 64 + b"\x00\xff"


def artifacts(flow: str, run_id: str, step: str, cache: Path) -> dict:
    with resolve_stack("aws-sagemaker") as stack:
        store = ArtifactStore(stack.versioning, cache_dir=cache)
        record = RunStore(stack.versioning).record(flow, run_id, step, "0", 0)
        assert record is not None, f"{flow}/{run_id}/{step} stored no record"
        return {name: store.load(ref) for name, ref in record.artifacts.items()}


def failure(flow: str, outcome: RunOutcome) -> str:
    """The failed task's error and traceback, for an assertion message."""
    if outcome.ok or not outcome.failed_step:
        return outcome.message
    with resolve_stack("aws-sagemaker") as stack:
        record = RunStore(stack.versioning).record(flow, outcome.run_id, outcome.failed_step, "0", 0)
    if record is None:
        return outcome.message
    return f"{record.error}\n{record.traceback or ''}"


@pytest.fixture(scope="module")
def remote(
    aws_emulator: AwsEmulator,  # noqa: F811 - the fixture imported above
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, RunOutcome]]:
    tmp = tmp_path_factory.mktemp("mf-aws")
    project = tmp / "project"
    (project / ".lamina").mkdir(parents=True)
    (project / "data.bin").write_bytes(BINARY)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        mp.setenv("LAMINA_CONFIG_DIR", str(tmp / "user-config"))
        mp.setenv("LAMINA_CODE_DIR", str(tmp / "code"))
        mp.setenv("LAMINA_CACHE_DIR", str(tmp / "cache"))
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "LAMINA_STACK"):
            mp.delenv(key, raising=False)
        for key, value in aws_emulator.env.items():
            mp.setenv(key, value)
        outcomes = {
            "include": run_flow(
                FLOWS / "include_flow.py", {"blob": "data.bin"}, stack="aws-sagemaker", echo=False
            ),
            "hello": run_flow(FLOWS / "hello_cloud.py", stack="aws-sagemaker", echo=False),
            "pypi": run_flow(FLOWS / "pypi_flow.py", stack="aws-sagemaker", echo=False),
            "playlist": run_flow(
                FLOWS / "playlist.py", {"recommendations": 2}, stack="aws-sagemaker", echo=False
            ),
        }
        mp.setenv("LAMINA_CACHE_DIR", str(tmp / "cache-read"))
        yield outcomes


def test_an_included_file_reaches_a_training_job_byte_for_byte(remote, tmp_path: Path) -> None:
    outcome = remote["include"]
    assert outcome.ok, failure("IncludeFlow", outcome)
    got = artifacts("IncludeFlow", outcome.run_id, "remote", tmp_path)
    assert got["blob_copy"] == BINARY
    assert got["kinds"] == ("str", "bytes")


def test_the_cloud_hello_world_runs_its_kubernetes_step_as_a_job(remote, tmp_path: Path) -> None:
    outcome = remote["hello"]
    assert outcome.ok, failure("HelloCloudFlow", outcome)
    assert artifacts("HelloCloudFlow", outcome.run_id, "hello", tmp_path)["message"] == "Hi from the cloud!"


def test_a_pypi_step_gets_its_package_inside_the_job_and_only_there(remote, tmp_path: Path) -> None:
    outcome = remote["pypi"]
    assert outcome.ok, failure("PypiFlow", outcome)
    assert artifacts("PypiFlow", outcome.run_id, "start", tmp_path)["start_has_it"] is False
    writer = artifacts("PypiFlow", outcome.run_id, "writer", tmp_path)
    assert writer["document"] == "answer = 42\n" and writer["version"] == "1.0.0"
    assert "/jobs/" in writer["prefix"]  # built in the job's own cache, not the driver's
    assert artifacts("PypiFlow", outcome.run_id, "end", tmp_path)["end_has_it"] is False


def test_the_playlist_tutorial_prints_what_it_prints_locally(remote, tmp_path: Path) -> None:
    outcome = remote["playlist"]
    assert outcome.ok, failure("PlayListFlow", outcome)
    with resolve_stack("aws-sagemaker") as stack:
        lines = (
            RunStore(stack.versioning)
            .log("PlayListFlow", outcome.run_id, "end", "0", 0, "stdout")
            .splitlines()
        )
    scifi = {m["movie_title"] for m in movies() if "Sci-Fi" in m["genres"]}
    assert lines[0] == "Playlist for movies in genre 'Sci-Fi'"
    assert [line.split("'")[1] in scifi for line in lines[1:3]] == [True, True]
    assert lines[1].startswith("Pick 1: '") and lines[2].startswith("Pick 2: '")
    assert lines[3].startswith("Bonus Pick: '") and len(lines) == 4


PG_URL = os.environ.get("LAMINA_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def team_metadata(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A PostgreSQL metadata store (a fresh schema) that training jobs reach, as a team's is."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    schema = f"lamina_mf_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sqlalchemy.exc.OperationalError as e:
        engine.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}: {e}")
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    monkeypatch.setenv("LAMINA_METADATA_URL", url)
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


def test_the_playlist_sequel_reads_the_statistics_run_from_a_training_job(
    aws_emulator: AwsEmulator,  # noqa: F811 - the fixture imported above
    team_metadata: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client inside a remote task reads another flow's runs when the stack's metadata store
    is one the task can reach (a team's PostgreSQL, not a laptop's SQLite file)."""
    project = tmp_path / "project"
    (project / ".lamina").mkdir(parents=True)
    monkeypatch.chdir(project)
    monkeypatch.setenv("LAMINA_CONFIG_DIR", str(tmp_path / "user-config"))
    monkeypatch.setenv("LAMINA_CODE_DIR", str(tmp_path / "code"))
    monkeypatch.setenv("LAMINA_CACHE_DIR", str(tmp_path / "cache"))
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "LAMINA_STACK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in aws_emulator.env.items():
        monkeypatch.setenv(key, value)
    stats = run_flow(FLOWS / "stats.py", stack="aws-sagemaker", echo=False)
    assert stats.ok, failure("MovieStatsFlow", stats)
    sequel = run_flow(FLOWS / "playlist_redux.py", {"recommendations": 1}, stack="aws-sagemaker", echo=False)
    assert sequel.ok, failure("PlayListFlow", sequel)
    with resolve_stack("aws-sagemaker") as stack:
        runs = RunStore(stack.versioning)
        start = runs.log("PlayListFlow", sequel.run_id, "start", "0", 0, "stdout").splitlines()
        end = runs.log("PlayListFlow", sequel.run_id, "end", "0", 0, "stdout").splitlines()
    assert start[0].startswith("Using metadata provider: aws-sagemaker@postgresql+psycopg://")
    assert start[1] == f"Using analysis from 'Run('MovieStatsFlow/{stats.run_id}')'"
    assert end[0] == "Playlist for movies in genre 'Sci-Fi'" and end[1].startswith("Pick 1: '")
