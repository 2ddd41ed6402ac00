"""Loads check the bytes they read: local files (mapped) and remote bytes alike, old references
without a recorded checksum too, and a file that changes after its first check."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from lamina.models import ArtifactRef
from lamina.versioning.artifacts import ArtifactStore
from lamina.versioning.integrity import CHECKSUM_META, DamagedBlob
from vers_helpers import RemoteBlobs, make_blobs

MB = 1 << 20


def _file(project: Path, ref: ArtifactRef) -> Path:
    path = project / ".lamina" / "blobs" / ref.key
    os.chmod(path, 0o644)
    return path


def _flip(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_saves_record_the_fast_checksum_of_the_bytes(store: ArtifactStore) -> None:
    ref = store.save(np.arange(10))
    assert len(ref.meta[CHECKSUM_META]) == 32


@pytest.mark.parametrize("value", [{"a": 1}, np.arange(2 * MB // 8)], ids=["small", "mapped"])
def test_a_flipped_byte_is_caught_with_or_without_a_recorded_checksum(store, project, value) -> None:
    ref = store.save(value)
    _flip(_file(project, ref))
    without = ref.model_copy(update={"meta": {k: v for k, v in ref.meta.items() if k != CHECKSUM_META}})
    for r in (ref, without):  # older references are checked against the SHA-256 of the key
        with pytest.raises(DamagedBlob, match="does not match"):
            store.load(r, what="artifact 'v' of task F/r/s/1")


def test_a_remote_blob_read_as_bytes_is_checked_against_its_address(project: Path) -> None:
    remote = RemoteBlobs(make_blobs(project).adapter)
    store = ArtifactStore(remote, cache_dir=project / "cache")
    ref = store.save({"a": 1})
    _flip(_file(project, ref), at=-3)
    with pytest.raises(DamagedBlob, match=r"artifact 'x' of task F/r/start/0 cannot be read"):
        store.load(ref, what="artifact 'x' of task F/r/start/0")


def test_a_damaged_cached_copy_is_fetched_again_but_a_damaged_store_is_an_error(project: Path) -> None:
    remote = RemoteBlobs(make_blobs(project).adapter)
    store = ArtifactStore(remote, cache_dir=project / "cache")
    value = np.arange(2 * MB // 8, dtype=np.float64)
    ref = store.save(value)
    np.testing.assert_array_equal(store.load(ref), value)
    cached = project / "cache" / "blobs" / ref.key
    _flip(cached)  # the local cache only: the store is fine
    np.testing.assert_array_equal(ArtifactStore(remote, cache_dir=project / "cache").load(ref), value)
    _flip(_file(project, ref))
    cached.unlink()
    with pytest.raises(DamagedBlob):
        ArtifactStore(remote, cache_dir=project / "cache").load(ref)


def test_a_file_changed_after_its_first_check_is_checked_again(store, project) -> None:
    value = np.arange(2 * MB // 8, dtype=np.float64)
    ref = store.save(value)
    np.testing.assert_array_equal(store.load(ref), value)  # checked once, then trusted...
    path = _file(project, ref)
    _flip(path)
    os.utime(path, ns=(1, 1))  # ... until the file is not the one that was checked
    with pytest.raises(DamagedBlob):
        store.load(ref)


def test_a_truncated_blob_is_a_damaged_blob_not_a_decoding_error(store, project) -> None:
    for value in ({"a": list(range(100))}, np.arange(2 * MB // 8)):
        ref = store.save(value)
        path = _file(project, ref)
        path.write_bytes(path.read_bytes()[:100])
        with pytest.raises(DamagedBlob, match=r"is truncated \(100 of \d+ bytes\)"):
            store.load(ref)
