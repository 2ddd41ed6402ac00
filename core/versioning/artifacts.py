"""The content-addressed store above every blob backend: artifacts.

Backends only move bytes (:class:`BlobStore`, the versioning layer facade); this module owns
hashing, dedup and serialization, the same way for every backend. An artifact's key is the
SHA-256 of its serialized bytes (:func:`lamina.versioning.layout.artifact_key`), so a value
stored by many tasks, runs or flows is kept, and uploaded, once.

Saving streams the serializer's output through a hashing :class:`~.serializers.Sink`: small
values stay in memory, large ones go straight to a temporary file (linked into place by a local
store, uploaded by a remote one) with no full in-memory copy. Loading maps the blob from
``local_path`` when the store is local; otherwise a large blob is fetched once into the local
cache and mapped from there, and a small one is read as bytes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ..errors import ArtifactNotFound, LaminaError, StoreError
from ..models import ArtifactRef
from . import integrity, layout
from .integrity import DamagedBlob
from .serializers import CannotSerialize, Serializer, Sink, UnserializableArtifact, candidates, get_serializer


class BlobStore(Protocol):
    """The versioning layer facade: byte primitives over ``/``-separated keys.

    The contract of each method is the matching ``versioning_*`` hook of
    :class:`lamina.hookspecs.VersioningSpec`.
    """

    def put(
        self,
        key: str,
        data: bytes | memoryview | None = None,
        path: str | None = None,
        overwrite: bool = False,
    ) -> bool: ...
    def get(self, key: str) -> bytes: ...
    def local_path(self, key: str) -> str | None: ...
    def fetch(self, key: str, path: str) -> None: ...
    def exists(self, keys: list[str]) -> list[bool]: ...
    def delete(self, keys: list[str]) -> None: ...
    def metadata_url(self) -> str: ...
    def list(self, prefix: str) -> list[str]: ...  # last: it shadows `list` in the class body


def default_cache_dir() -> Path:
    """``$LAMINA_CACHE_DIR``, else ``$XDG_CACHE_HOME/lamina``, else ``~/.cache/lamina``."""
    if os.environ.get("LAMINA_CACHE_DIR"):
        return Path(os.environ["LAMINA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lamina"


class ArtifactStore:
    """Saves and loads artifacts through ``blobs``; a run's other records go through
    :class:`lamina.versioning.runstore.RunStore`.

    :param blobs: the versioning layer facade (see :class:`BlobStore`).
    :param cache_dir: where temporary files and fetched blobs go. For a local blob store, pass a
        directory on the same filesystem (e.g. ``<project>/.lamina/cache``): large artifacts are
        then hard-linked into the store instead of copied.
    :param spill_at: serialized sizes above this go through a temporary file, not memory.
    :param map_at: blobs of at least this size are fetched to the cache and memory-mapped when
        the store has no local path; smaller ones are read as bytes.
    """

    def __init__(
        self,
        blobs: BlobStore,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        spill_at: int = 8 << 20,
        map_at: int = 1 << 20,
    ) -> None:
        self.blobs = blobs
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.spill_at = spill_at
        self.map_at = map_at

    # ------------------------------------------------------------------------------ artifacts

    def save(self, value: Any, name: str | None = None) -> ArtifactRef:
        """Serialize ``value``, store it under its content hash, and return its reference.

        Idempotent, and cheap for a value already stored: the upload is skipped when the key
        exists. ``name`` only improves error messages.

        :raises UnserializableArtifact: no registered serializer can store ``value``.
        """
        for serializer in candidates(value):
            try:
                return self._save_with(serializer, value, serializer.type_name(value))
            except CannotSerialize:
                continue
            except UnserializableArtifact as e:
                what = f"artifact {name!r}" if name else "a value"
                raise UnserializableArtifact(f"cannot store {what}: {e}") from e
        raise UnserializableArtifact(f"no serializer accepts {type(value).__qualname__} (artifact {name!r})")

    def _save_with(self, serializer: Serializer, value: Any, type_name: str) -> ArtifactRef:
        hint = serializer.size_hint(value)
        tmp = self.cache_dir / "tmp"
        if hint is not None and hint > self.spill_at and serializer.probably_stored(value):
            # A loaded array is saved again in case it was mutated: a hash-only pass finds its
            # key without writing a byte when it was not.
            with Sink(tmp, self.spill_at, keep=False) as probe:
                meta = serializer.dump(value, probe) or {}
                known = probe.finish()
            key = layout.artifact_key(known.digest)
            if self.blobs.exists([key])[0]:
                return ArtifactRef(
                    key=key,
                    serializer=serializer.name,
                    size=known.size,
                    type=type_name,
                    meta=_with_checksum(meta, known.fast_digest),
                )
        with Sink(tmp, self.spill_at, hint) as sink:
            meta = serializer.dump(value, sink) or {}
            result = sink.finish()
            key = layout.artifact_key(result.digest)
            if not self.blobs.exists([key])[0]:
                self.blobs.put(key, data=result.data, path=result.path, overwrite=False)
        return ArtifactRef(
            key=key,
            serializer=serializer.name,
            size=result.size,
            type=type_name,
            meta=_with_checksum(meta, result.fast_digest),
        )

    def load(self, ref: ArtifactRef, *, what: str | None = None) -> Any:
        """Rebuild the value of ``ref``, memory-mapped where the format and the store allow.

        The bytes are checked first (see :mod:`lamina.versioning.integrity`): a damaged blob is
        an error, never a wrong value. ``what`` names the artifact in errors (e.g. ``"artifact
        'x' of task Flow/run/step/1"``).

        :raises DamagedBlob: the blob's bytes are not the ones written (flipped, truncated).
        :raises StoreError: the blob is missing, or its serializer is not registered.
        """
        what = what or f"the artifact stored under {ref.key!r}"
        serializer = get_serializer(ref.serializer)
        digest = layout.digest_of(ref.key)
        fast = ref.meta.get(integrity.CHECKSUM_META)
        path = self.blobs.local_path(ref.key)
        if path is None and ref.size >= self.map_at and _maps(serializer):
            path = self._cached(ref.key, ref.size)
            if integrity.check_file(path, digest, ref.size, fast) is not None:
                os.unlink(path)  # a damaged cached copy, not the store: fetch it again
                path = self._cached(ref.key, ref.size)
        if path is not None:
            try:
                problem = integrity.check_file(path, digest, ref.size, fast)
            except FileNotFoundError:
                raise StoreError(_missing(ref.key)) from None
            if problem is not None:
                raise DamagedBlob(integrity.damaged_message(ref.key, problem, what), key=ref.key)
            return self._deserialize(ref, what, lambda: serializer.load_path(path, ref.meta))
        try:
            data = self.blobs.get(ref.key)
        except KeyError:
            raise StoreError(_missing(ref.key)) from None
        problem = integrity.check_bytes(data, digest, ref.size)
        if problem is not None:
            raise DamagedBlob(integrity.damaged_message(ref.key, problem, what), key=ref.key)
        return self._deserialize(ref, what, lambda: serializer.load_bytes(data, ref.meta))

    @staticmethod
    def _deserialize(ref: ArtifactRef, what: str, load: Callable[[], Any]) -> Any:
        try:
            return load()
        except LaminaError:
            raise
        except MemoryError:
            raise
        except Exception as e:
            # The bytes are the ones written, so this is not damage: the value's type cannot be
            # rebuilt here (a class that moved, a library missing or of another version).
            raise StoreError(
                f"{what} ({ref.type or ref.serializer}, blob {ref.key!r}) is intact but cannot be "
                f"rebuilt here: {type(e).__name__}: {e}. Install the libraries and versions the run "
                "used (`lamina show RUN --json` lists its packages), or load it where the flow's "
                "code is importable"
            ) from e

    def stored_bytes(self, key: str) -> bytes:
        """The bytes under a content-addressed key (an artifact's, a code package's), checked
        against their address, for tools that read blobs without loading them (``lamina ui``).

        :raises ValueError: ``key`` is not a content address (it may point anywhere).
        :raises StoreError: the blob is missing or does not match its address.
        """
        import hashlib

        digest = layout.digest_of(key)
        try:
            data = self.blobs.get(key)
        except KeyError:
            raise StoreError(_missing(key)) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise StoreError(f"the blob {key!r} does not match its content address: the store is damaged")
        return data

    @staticmethod
    def is_content_key(key: str) -> bool:
        """Whether ``key`` is a content address (of an artifact or a code package)."""
        try:
            layout.digest_of(key)
        except ValueError:
            return False
        return True

    def _cached(self, key: str, size: int) -> str:
        """A local copy of ``key`` in the cache (content-addressed, so valid forever)."""
        target = self.cache_dir / "blobs" / key
        if target.is_file() and target.stat().st_size == size:
            return str(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".fetch-")
        os.close(fd)
        try:
            self.blobs.fetch(key, tmp)
            os.replace(tmp, target)
        except KeyError:
            raise StoreError(_missing(key)) from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return str(target)


def _with_checksum(meta: dict[str, Any], fast_digest: str | None) -> dict[str, Any]:
    return meta if fast_digest is None else {**meta, integrity.CHECKSUM_META: fast_digest}


def _maps(serializer: Serializer) -> bool:
    return type(serializer).load_path is not Serializer.load_path


def _missing(key: str) -> str:
    return (
        f"the blob {key!r} is missing from the blob store although metadata refers to it; "
        "it may have been deleted, or the stack points at another bucket than the run used"
    )


class ArtifactNamespace:
    """The artifacts of one task, loaded lazily: ``ns.model`` loads only ``model``, once.

    ``name in ns``, ``list(ns)`` (names, sorted), ``ns["name"]`` (for names that clash with
    Python syntax) and tab completion work without loading anything.
    """

    __slots__ = ("_store", "_refs", "_values", "_where")

    def __init__(self, store: ArtifactStore, refs: dict[str, ArtifactRef], where: str = "this task") -> None:
        self._store = store
        self._refs = dict(refs)
        self._values: dict[str, Any] = {}
        self._where = where

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            ref = self._refs.get(name)
            if ref is None:
                existing = ", ".join(sorted(self._refs)) or "none"
                raise ArtifactNotFound(f"{self._where} has no artifact {name!r}; its artifacts: {existing}")
            self._values[name] = self._store.load(ref, what=f"artifact {name!r} of {self._where}")
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._refs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._refs))

    def __len__(self) -> int:
        return len(self._refs)

    def __dir__(self) -> list[str]:
        return sorted(self._refs)

    def __repr__(self) -> str:
        return f"<artifacts of {self._where}: {', '.join(sorted(self._refs))}>"
