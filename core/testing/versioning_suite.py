"""Conformance tests for versioning adapters (the ``VersioningSpec`` layer), in fsspec's style.

Every versioning adapter, first-party or third-party, runs the same suite: subclass
:class:`VersioningSuite` and provide a ``versioning_adapter`` fixture that returns a constructed
adapter plugin object (the object whose ``@hookimpl`` methods implement ``VersioningSpec``)
over a writable store::

    from lamina.testing import VersioningSuite

    class TestMyBucket(VersioningSuite):
        @pytest.fixture
        def versioning_adapter(self, tmp_path):
            return MyBucketVersioning(MyBucketSettings(...), context)

The suite calls the hook methods directly. Every key it writes lives under a root unique to the
test (:attr:`VersioningSuite.root`), so a store shared with other tests or earlier runs is fine;
the suite never lists outside that root.

What the suite promises users of every backend: create-only puts keep the first value (for small
objects: no emulator of resumable or multipart uploads enforces preconditions on them), readers
never see a partial object, missing keys raise ``KeyError``, listings are sorted and match any
prefix (not only "directories"), large blobs come back byte-exact, and the metadata URL never
holds a password. A subclass tunes it with class attributes:

* ``large_blob_mb``: the size of the large-blob round trip (default 64 MiB);
* ``torn_read_blob_mb``: the size of the blob that a writer replaces while a reader reads it.

The pytest plugin registers this module for assertion rewriting.
"""

from __future__ import annotations

import hashlib
import random
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from lamina.models import CheckResult

KeyMaker = Callable[[str], str]


def _payload(seed: int, size: int) -> bytes:
    """``size`` bytes that differ from every other seed's in every 64 KiB window."""
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


class VersioningSuite:
    """The behaviour every versioning adapter promises. Subclass it and provide ``versioning_adapter``."""

    large_blob_mb: ClassVar[int] = 64
    """Size of the blob that goes through ``put(path=...)`` and ``fetch`` (MiB)."""

    torn_read_blob_mb: ClassVar[int] = 8
    """Size of the blob a writer replaces while a reader reads it (MiB)."""

    @pytest.fixture
    def versioning_adapter(self) -> Any:
        """The adapter plugin object under test; subclasses must override this fixture."""
        pytest.fail(f"{type(self).__name__} must provide a 'versioning_adapter' fixture")

    @pytest.fixture
    def root(self) -> str:
        """A key prefix unique to this test, ending in ``/``."""
        return f"suite-{uuid.uuid4().hex[:10]}/"

    @pytest.fixture
    def key(self, root: str) -> KeyMaker:
        """Make keys under this test's root."""
        return lambda name: root + name

    # -- put and get ------------------------------------------------------------------------

    def test_put_then_get_returns_the_bytes(self, versioning_adapter: Any, key: KeyMaker) -> None:
        assert versioning_adapter.versioning_put(key("a/b/c.bin"), b"hello", None, False) is True
        assert versioning_adapter.versioning_get(key("a/b/c.bin")) == b"hello"

    def test_put_accepts_a_memoryview_and_empty_bytes(self, versioning_adapter: Any, key: KeyMaker) -> None:
        data = _payload(1, 1 << 20)
        assert versioning_adapter.versioning_put(key("view"), memoryview(data), None, False) is True
        assert versioning_adapter.versioning_get(key("view")) == data
        assert versioning_adapter.versioning_put(key("empty"), b"", None, False) is True
        assert versioning_adapter.versioning_get(key("empty")) == b""

    def test_create_only_put_keeps_the_first_value(self, versioning_adapter: Any, key: KeyMaker) -> None:
        assert versioning_adapter.versioning_put(key("k"), b"first", None, False) is True
        assert versioning_adapter.versioning_put(key("k"), b"second", None, False) is False
        assert versioning_adapter.versioning_get(key("k")) == b"first"

    def test_overwrite_replaces_the_value(self, versioning_adapter: Any, key: KeyMaker) -> None:
        versioning_adapter.versioning_put(key("k"), b"first", None, False)
        assert versioning_adapter.versioning_put(key("k"), b"third", None, True) is True
        assert versioning_adapter.versioning_get(key("k")) == b"third"

    def test_put_is_idempotent(self, versioning_adapter: Any, key: KeyMaker) -> None:
        for overwrite in (True, True, False):
            versioning_adapter.versioning_put(key("k"), b"same", None, overwrite)
        assert versioning_adapter.versioning_get(key("k")) == b"same"

    def test_put_from_a_local_file_stores_a_copy(
        self, versioning_adapter: Any, key: KeyMaker, tmp_path: Path
    ) -> None:
        source = tmp_path / "source.bin"
        source.write_bytes(b"from a file")
        assert versioning_adapter.versioning_put(key("file"), None, str(source), False) is True
        source.write_bytes(b"changed later")  # the user's file is theirs: the stored object stays
        assert versioning_adapter.versioning_get(key("file")) == b"from a file"
        assert versioning_adapter.versioning_put(key("file"), None, str(source), False) is False
        assert versioning_adapter.versioning_get(key("file")) == b"from a file"

    def test_concurrent_create_only_writers_never_clobber(
        self, versioning_adapter: Any, key: KeyMaker
    ) -> None:
        """Writers race to create one small key: exactly one wins, and its bytes are stored."""
        payloads = [_payload(seed, 64 << 10) for seed in range(8)]
        results: dict[int, bool] = {}
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(payloads))

        def write(index: int) -> None:
            try:
                barrier.wait()
                results[index] = versioning_adapter.versioning_put(key("race"), payloads[index], None, False)
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(len(payloads))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        winners = [i for i, written in results.items() if written]
        assert len(winners) == 1, f"{len(winners)} writers reported that they created the key"
        assert versioning_adapter.versioning_get(key("race")) == payloads[winners[0]]

    def test_no_reader_sees_a_partial_write(self, versioning_adapter: Any, key: KeyMaker) -> None:
        """A writer replaces a large blob again and again; every read is one whole version."""
        size = self.torn_read_blob_mb << 20
        versions = [_payload(seed, size) for seed in range(3)]
        digests = {hashlib.sha256(v).hexdigest(): i for i, v in enumerate(versions)}
        versioning_adapter.versioning_put(key("blob"), versions[0], None, True)
        done = threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                for version in versions[1:] * 2:
                    versioning_adapter.versioning_put(key("blob"), version, None, True)
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        seen: list[int | None] = []
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            while not done.is_set() or not seen:
                data = versioning_adapter.versioning_get(key("blob"))
                seen.append(digests.get(hashlib.sha256(data).hexdigest()))
        finally:
            thread.join()
        assert not errors, errors
        assert None not in seen, (
            f"a read returned bytes of no written version ({seen.count(None)} of {len(seen)})"
        )
        assert versioning_adapter.versioning_get(key("blob")) == versions[-1]

    # -- missing keys -----------------------------------------------------------------------

    def test_missing_keys_raise_key_error(
        self, versioning_adapter: Any, key: KeyMaker, tmp_path: Path
    ) -> None:
        with pytest.raises(KeyError):
            versioning_adapter.versioning_get(key("missing"))
        target = tmp_path / "fetched.bin"
        with pytest.raises(KeyError):
            versioning_adapter.versioning_fetch(key("missing"), str(target))
        assert not target.exists(), "a failed fetch must not leave a file behind"

    def test_exists_answers_each_key_in_order(self, versioning_adapter: Any, key: KeyMaker) -> None:
        versioning_adapter.versioning_put(key("one"), b"1", None, False)
        versioning_adapter.versioning_put(key("three"), b"3", None, False)
        answer = versioning_adapter.versioning_exists([key("one"), key("two"), key("three"), key("one/x")])
        assert answer == [True, False, True, False]
        assert versioning_adapter.versioning_exists([]) == []

    def test_keys_that_could_escape_the_store_are_refused(self, versioning_adapter: Any) -> None:
        for bad in ("", "/absolute", "a/../b", "a//b"):
            with pytest.raises(ValueError):
                versioning_adapter.versioning_put(bad, b"x", None, True)

    # -- listing and deleting ---------------------------------------------------------------

    def test_list_is_sorted_and_matches_any_prefix(
        self, versioning_adapter: Any, root: str, key: KeyMaker
    ) -> None:
        names = ["runs/F/r1/a", "runs/F/r12/b", "runs/F/r2/c", "runs/F/r1/sub/d", "runs/G/r1/e", "top"]
        for name in random.Random(7).sample(names, len(names)):
            versioning_adapter.versioning_put(key(name), b"", None, False)
        assert versioning_adapter.versioning_list(root) == sorted(key(n) for n in names)
        assert versioning_adapter.versioning_list(key("runs/F/")) == [
            key("runs/F/r1/a"), key("runs/F/r1/sub/d"), key("runs/F/r12/b"), key("runs/F/r2/c"),
        ]  # fmt: skip
        # a prefix that is not a "directory" boundary matches the start of names
        assert versioning_adapter.versioning_list(key("runs/F/r1")) == [
            key("runs/F/r1/a"), key("runs/F/r1/sub/d"), key("runs/F/r12/b"),
        ]  # fmt: skip
        assert versioning_adapter.versioning_list(key("runs/F/r1/")) == [
            key("runs/F/r1/a"),
            key("runs/F/r1/sub/d"),
        ]
        assert versioning_adapter.versioning_list(key("to")) == [key("top")]
        assert versioning_adapter.versioning_list(key("nothing/")) == []

    def test_delete_removes_keys_and_ignores_missing_ones(
        self, versioning_adapter: Any, root: str, key: KeyMaker
    ) -> None:
        for name in ("a", "b", "c"):
            versioning_adapter.versioning_put(key(name), name.encode(), None, False)
        assert versioning_adapter.versioning_delete([key("a"), key("never-there"), key("c")]) is None
        assert versioning_adapter.versioning_exists([key("a"), key("b"), key("c")]) == [False, True, False]
        assert versioning_adapter.versioning_list(root) == [key("b")]
        versioning_adapter.versioning_delete([key("a")])  # deleting twice is fine
        versioning_adapter.versioning_delete([])
        with pytest.raises(KeyError):
            versioning_adapter.versioning_get(key("a"))
        assert versioning_adapter.versioning_put(key("a"), b"again", None, False) is True

    # -- large blobs and local paths --------------------------------------------------------

    def test_a_large_blob_round_trips_through_files(
        self, versioning_adapter: Any, key: KeyMaker, tmp_path: Path
    ) -> None:
        source = tmp_path / "large.bin"
        size = (self.large_blob_mb << 20) + 12345  # not a multiple of any part size
        with source.open("wb") as out:
            for start in range(0, size, 8 << 20):
                out.write(_payload(start, min(8 << 20, size - start)))
        expected = hashlib.sha256(source.read_bytes()).hexdigest()
        assert versioning_adapter.versioning_put(key("large"), None, str(source), False) is True
        assert versioning_adapter.versioning_put(key("large"), None, str(source), False) is False
        target = tmp_path / "sub" / "fetched.bin"
        target.parent.mkdir()
        assert versioning_adapter.versioning_fetch(key("large"), str(target)) is None
        assert target.stat().st_size == size
        assert hashlib.sha256(target.read_bytes()).hexdigest() == expected
        local = versioning_adapter.versioning_local_path(key("large"))
        if local is not None:
            assert hashlib.sha256(Path(local).read_bytes()).hexdigest() == expected

    def test_fetch_replaces_an_existing_file(
        self, versioning_adapter: Any, key: KeyMaker, tmp_path: Path
    ) -> None:
        versioning_adapter.versioning_put(key("k"), b"payload", None, False)
        target = tmp_path / "copy"
        target.write_bytes(b"an older, longer file that must be replaced whole")
        versioning_adapter.versioning_fetch(key("k"), str(target))
        assert target.read_bytes() == b"payload"

    def test_local_path_is_a_readable_file_or_none(self, versioning_adapter: Any, key: KeyMaker) -> None:
        versioning_adapter.versioning_put(key("k"), b"mapped", None, False)
        local = versioning_adapter.versioning_local_path(key("k"))
        assert local is None or Path(local).read_bytes() == b"mapped"
        assert versioning_adapter.versioning_local_path(key("missing")) is None

    # -- metadata, health -------------------------------------------------------------------

    def test_metadata_url_is_a_database_url_without_a_password(self, versioning_adapter: Any) -> None:
        from sqlalchemy.engine import make_url

        url = make_url(versioning_adapter.versioning_metadata_url())
        assert url.drivername
        assert url.password is None, "metadata URLs are recorded and shown: a password belongs elsewhere"

    def test_check_reports_ok(self, versioning_adapter: Any) -> None:
        result = versioning_adapter.versioning_check()
        assert isinstance(result, CheckResult)
        assert result.layer == "versioning"
        assert result.ok, f"{result.message} (fix: {result.fix})"
        assert result.message

    def test_transient_errors_are_exception_types(self, versioning_adapter: Any) -> None:
        errors = versioning_adapter.versioning_transient_errors()
        assert isinstance(errors, tuple)
        assert all(isinstance(e, type) and issubclass(e, BaseException) for e in errors)
