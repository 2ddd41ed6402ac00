"""The ``s3`` versioning adapter against moto.

:class:`TestS3VersioningConformance` runs the promises every versioning adapter makes
(``lamina.testing.VersioningSuite``: create-only puts, no torn reads, missing keys, listing,
64 MiB blobs through multipart); the tests below it are S3's own: objects under the profile's
prefix, multipart ETags, batch deletes, the bucket check and the metadata URL."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from lamina.errors import StoreError, TransientError
from lamina.hookspecs import AdapterContext
from lamina.plugins.aws.s3_versioning import S3Versioning, S3VersioningSettings
from lamina.testing import VersioningSuite
from lamina.testing.aws import AwsEmulator


def make(project: Path, **settings: Any) -> S3Versioning:
    settings.setdefault("bucket", "lamina-emulated")
    settings.setdefault("prefix", f"test-{uuid.uuid4().hex[:8]}")
    context = AdapterContext(project_dir=project, stack_name="aws-sagemaker", adapter_name="s3")
    return S3Versioning(S3VersioningSettings(**settings), context)


@pytest.fixture
def s3(aws_env: dict[str, str], tmp_path: Path) -> S3Versioning:
    return make(tmp_path)


@pytest.mark.slow
class TestS3VersioningConformance(VersioningSuite):
    @pytest.fixture
    def versioning_adapter(self, aws_env: dict[str, str], tmp_path: Path) -> S3Versioning:
        # a part size below the large blob's, so the 64 MiB round trip goes multipart
        return make(tmp_path, multipart_threshold_mb=16, multipart_chunk_mb=16)


def test_put_get_roundtrip_under_the_prefix(s3: S3Versioning, aws_emulator: AwsEmulator) -> None:
    assert s3.versioning_put("runs/F/1/start/0/0/record.json", b'{"ok": true}', None, True) is True
    assert s3.versioning_get("runs/F/1/start/0/0/record.json") == b'{"ok": true}'
    # the object really is in the bucket, under the profile's prefix
    body = (
        aws_emulator.client("s3")
        .get_object(Bucket="lamina-emulated", Key=f"{s3.settings.prefix}/runs/F/1/start/0/0/record.json")[
            "Body"
        ]
        .read()
    )
    assert body == b'{"ok": true}'


def test_large_blobs_go_multipart_and_come_back_whole(
    aws_env: dict[str, str], tmp_path: Path, aws_emulator: AwsEmulator
) -> None:
    s3 = make(tmp_path, multipart_threshold_mb=5, multipart_chunk_mb=5)
    data = bytes(range(256)) * (12 * 4096 + 7)  # ~12 MiB: three parts
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    assert s3.versioning_put("artifacts/big", None, str(source), False) is True
    assert s3.versioning_put("artifacts/big-bytes", data, None, False) is True
    assert s3.versioning_put("artifacts/big", None, str(source), False) is False  # exists: not re-sent
    head = aws_emulator.client("s3").head_object(
        Bucket="lamina-emulated", Key=f"{s3.settings.prefix}/artifacts/big"
    )
    assert "-" in head["ETag"]  # a multipart ETag: "<md5>-<parts>"
    target = tmp_path / "fetched.bin"
    s3.versioning_fetch("artifacts/big", str(target))
    assert target.read_bytes() == data
    assert s3.versioning_get("artifacts/big-bytes") == data


def test_exists_list_and_delete(s3: S3Versioning) -> None:
    keys = [f"runs/F/r/s/{i}/0/record.json" for i in range(25)]
    for key in keys:
        s3.versioning_put(key, b"x", None, True)
    s3.versioning_put("runs/G/r/s/0/0/record.json", b"x", None, True)
    assert s3.versioning_exists([*keys[:3], "runs/F/r/s/99/0/record.json"]) == [True, True, True, False]
    assert s3.versioning_list("runs/F/") == sorted(keys)
    assert s3.versioning_list("runs/nothing/") == []
    s3.versioning_delete([*keys[:20], "never/existed"])
    assert s3.versioning_list("runs/F/") == sorted(keys[20:])


def test_local_path_is_none_and_keys_are_checked(s3: S3Versioning) -> None:
    s3.versioning_put("a/b", b"1", None, True)
    assert s3.versioning_local_path("a/b") is None
    for bad in ("", "/abs", "a/../b", "a//b"):
        with pytest.raises(ValueError):
            s3.versioning_put(bad, b"1", None, True)


def test_metadata_url_relative_sqlite_lives_in_the_project(aws_env: dict[str, str], tmp_path: Path) -> None:
    s3 = make(tmp_path, metadata_url="sqlite:///.lamina/metadata.db")
    assert s3.versioning_metadata_url() == f"sqlite:///{tmp_path}/.lamina/metadata.db"
    with pytest.raises(ValueError, match="password"):
        S3VersioningSettings(bucket="b-1", metadata_url="postgresql://u:secret@db/lamina")


def test_missing_bucket_is_a_clear_store_error(aws_env: dict[str, str], tmp_path: Path) -> None:
    s3 = make(tmp_path, bucket="no-such-bucket-here")
    with pytest.raises(StoreError, match="no-such-bucket-here.*does not exist"):
        s3.versioning_put("k", b"1", None, True)


def test_throttling_is_declared_transient(s3: S3Versioning) -> None:
    from botocore.exceptions import EndpointConnectionError
    from lamina.plugins.aws._aws import AwsThrottled

    errors = s3.versioning_transient_errors()
    assert issubclass(AwsThrottled, TransientError) and AwsThrottled in errors
    assert any(issubclass(EndpointConnectionError, e) for e in errors)


def test_check_reports_ok_with_the_bucket(s3: S3Versioning) -> None:
    result = s3.versioning_check()
    assert result.ok, result.message
    assert "s3://lamina-emulated/" in result.message
