"""The content-addressed artifact store: dedup and the lazy artifact namespace."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from lamina.errors import ArtifactNotFound, StoreError
from lamina.versioning import layout
from lamina.versioning.artifacts import ArtifactNamespace, ArtifactStore
from vers_helpers import RemoteBlobs, make_blobs

MB = 1 << 20


def _blob_bytes(project: Path) -> int:
    root = project / ".lamina" / "blobs"
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


class CountingBlobs:
    """Wraps a facade and counts uploads."""

    def __init__(self, inner):
        self.inner, self.puts = inner, 0

    def put(self, *args, **kwargs):
        self.puts += 1
        return self.inner.put(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_the_key_is_the_sha256_of_the_stored_bytes(store, blobs):
    ref = store.save({"a": 1})
    import hashlib

    assert ref.key == layout.artifact_key(hashlib.sha256(blobs.get(ref.key)).hexdigest())
    assert ref.size == len(blobs.get(ref.key))
    assert ref.type == "builtins.dict"


def test_saving_an_equal_value_again_stores_and_uploads_nothing(blobs, project):
    counting = CountingBlobs(blobs)
    store = ArtifactStore(counting, cache_dir=project / "cache")
    value = np.random.default_rng(0).random(MB // 8)
    first = store.save(value)
    size, puts = _blob_bytes(project), counting.puts
    second = store.save(value.copy())
    assert second == first
    assert _blob_bytes(project) == size and counting.puts == puts


def test_re_saving_a_large_stored_value_only_hashes_it(blobs, project, monkeypatch):
    """A loaded array is re-saved after each step in case it was mutated: that must write nothing."""
    from lamina.versioning import serializers

    counting = CountingBlobs(blobs)
    store = ArtifactStore(counting, cache_dir=project / "cache", spill_at=MB)
    value = np.random.default_rng(5).random(4 * MB // 8)
    ref = store.save(value)
    temp_files: list[str] = []
    real_mkstemp = serializers.tempfile.mkstemp
    monkeypatch.setattr(
        serializers.tempfile, "mkstemp", lambda **kw: (temp_files.append("x"), real_mkstemp(**kw))[1]
    )
    puts = counting.puts
    again = store.save(store.load(ref))
    assert again == ref
    assert counting.puts == puts and temp_files == [], (
        "an unchanged large value is neither uploaded nor spooled"
    )
    changed = store.load(ref)
    changed[0] += 1.0
    assert store.save(changed).key != ref.key and counting.puts == puts + 1


def test_another_run_storing_the_same_large_value_adds_under_a_megabyte(project, blobs):
    value = np.random.default_rng(1).random(20 * MB // 8)
    run_a = ArtifactStore(blobs, cache_dir=project / "cache-a")
    ref_a = run_a.save(value)
    before = _blob_bytes(project)
    run_b = ArtifactStore(make_blobs(project), cache_dir=project / "cache-b")  # another process/run
    ref_b = run_b.save(run_a.load(ref_a))  # e.g. a resumed run re-saving a loaded (mapped) value
    assert ref_b.key == ref_a.key
    assert _blob_bytes(project) - before < MB


def test_large_artifacts_leave_no_temporary_files_behind(store, project):
    store.save(np.zeros(3 * MB))  # over spill_at: goes through a temp file
    store.save(np.ones(3 * MB // 8))
    leftovers = [p for p in (project / ".lamina" / "cache" / "tmp").iterdir()]
    assert leftovers == []


def test_remote_stores_fetch_large_blobs_once_into_the_cache_and_map_them(project):
    remote = RemoteBlobs(make_blobs(project).adapter)
    counting = CountingBlobs(remote)
    fetched: list[str] = []
    counting.fetch = lambda key, path: (fetched.append(key), remote.fetch(key, path))[1]
    store = ArtifactStore(counting, cache_dir=project / "cache")
    value = np.arange(2 * MB // 8, dtype=np.float64)
    ref = store.save(value)
    out = store.load(ref)
    assert isinstance(out, np.memmap)
    np.testing.assert_array_equal(store.load(ref), value)
    assert fetched == [ref.key], "a cached blob is content-addressed: it is never fetched twice"
    assert (project / "cache" / "blobs" / ref.key).stat().st_size == ref.size


def test_a_missing_blob_is_reported_with_its_key(store, blobs):
    ref = store.save("value")
    blobs.delete([ref.key])
    with pytest.raises(StoreError, match=ref.key):
        store.load(ref)


def test_the_namespace_loads_only_the_artifact_touched_and_only_once(store):
    refs = {"small": store.save(1), "big": store.save(np.zeros(10)), "other": store.save("x")}
    loads: list[str] = []
    original = store.load
    store.load = lambda ref, **kw: (loads.append(ref.key), original(ref, **kw))[1]  # type: ignore[method-assign]
    ns = ArtifactNamespace(store, refs, where="task F/r1/train/1")
    assert ns.small == 1 and ns.small == 1 and ns["small"] == 1
    assert loads == [refs["small"].key]
    assert "big" in ns and "nope" not in ns
    assert list(ns) == ["big", "other", "small"] and len(ns) == 3
    assert set(dir(ns)) >= {"big", "other", "small"}
    assert loads == [refs["small"].key], "membership, listing and completion load nothing"


def test_a_missing_artifact_names_itself_the_task_and_what_exists(store):
    ns = ArtifactNamespace(store, {"model": store.save(1), "alpha": store.save(2)}, where="task F/r1/train/1")
    with pytest.raises(
        ArtifactNotFound, match=r"task F/r1/train/1 has no artifact 'modle'; its artifacts: alpha, model"
    ):
        _ = ns.modle
    assert not hasattr(ns, "modle")  # ArtifactNotFound is an AttributeError
    assert ns.alpha == 2


def test_the_artifact_store_needs_no_local_filesystem_access_to_blobs(project):
    """Against a remote store, small values come back through get() with no cache file."""
    store = ArtifactStore(RemoteBlobs(make_blobs(project).adapter), cache_dir=project / "cache")
    ref = store.save({"k": "v"})
    assert store.load(ref) == {"k": "v"}
    assert not (project / "cache" / "blobs").exists()


def test_the_cache_dir_defaults_to_the_user_cache(monkeypatch, tmp_path, blobs):
    monkeypatch.setenv("LAMINA_CACHE_DIR", str(tmp_path / "c"))
    assert ArtifactStore(blobs).cache_dir == tmp_path / "c"
    monkeypatch.delenv("LAMINA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ArtifactStore(blobs).cache_dir == tmp_path / "xdg" / "lamina"
    assert os.fspath(ArtifactStore(blobs, cache_dir=tmp_path).cache_dir) == str(tmp_path)


def test_stored_bytes_are_read_only_by_content_address_and_checked(store, blobs):
    ref = store.save({"a": 1})
    assert store.stored_bytes(ref.key) == blobs.get(ref.key)
    assert store.is_content_key(ref.key) and not store.is_content_key("runs/F/1/params.json")
    with pytest.raises(ValueError, match="not a content-addressed key"):
        store.stored_bytes("../../etc/passwd")
    other = store.save({"b": 2})
    blobs.put(ref.key, data=blobs.get(other.key), overwrite=True)  # damage: the wrong bytes
    with pytest.raises(StoreError, match="does not match its content address"):
        store.stored_bytes(ref.key)
    with pytest.raises(StoreError, match="missing"):
        store.stored_bytes(layout.artifact_key("0" * 64))
