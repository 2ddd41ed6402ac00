"""Turning artifact values into bytes and back, chosen by type.

A :class:`Serializer` writes a value into a :class:`Sink` (which hashes and spools what it is
given) and reads it back from a local file (memory-mapped where the format allows it) or from
bytes. The registry tries serializers by descending priority, latest registration first among
equals; the pickle fallback (priority 0) takes anything that pickles. Plugins add their own with
:func:`register_serializer` (a higher priority overrides a built-in for the types it accepts).

Built-ins, and why:

==============  =========================================================================
``arrow``       ``pyarrow.Table`` as an uncompressed Arrow IPC file: loads zero-copy from a
                memory map (the table's buffers point into the mapped blob).
``numpy``       ``numpy.ndarray`` without object fields as ``.npy``: loads as a copy-on-write
                ``numpy.memmap`` (writable; writes never reach the stored blob).
``pandas``      ``pandas.DataFrame`` whose columns Arrow represents exactly, via Arrow IPC.
                Frames with object columns, duplicate or non-scalar labels go to pickle.
``pickle``      anything else: pickle protocol 5 with large buffers out-of-band (aligned in
                the blob, mapped on load), cloudpickle when stdlib pickle cannot (lambdas,
                classes defined in ``__main__``), zstd only when it saves 10% or more.
==============  =========================================================================

Every format is self-describing, so a blob loads without its ``ArtifactRef.meta``; ``meta`` says
what was chosen (``compression``, ``pickler``) for people and tools, and ``meta["preview"]`` holds
a small safe summary of the value (:mod:`.previews`) that tools show without loading it. Heavy libraries are
imported only when a value of their type shows up.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import pickle
import struct
import sys
import tempfile
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import LaminaError, StoreError
from . import previews
from .integrity import new_fast_hash
from .layout import OWNED_TEMP_SUFFIX

CHUNK = 16 << 20
"""Write size for large buffers: bounds the transient memory of a save."""
MMAP_MIN = 64 << 10
"""Files smaller than this are read, not mapped (a mapping costs a descriptor and a VMA)."""


class CannotSerialize(Exception):
    """Raised by :meth:`Serializer.dump` to hand the value to the next serializer."""


class UnserializableArtifact(LaminaError, TypeError):
    """No serializer could turn a value into bytes (e.g. it holds a lock or an open socket)."""


@dataclass(frozen=True)
class SinkResult:
    """What a :class:`Sink` holds once finished: the SHA-256 and either bytes or a file."""

    digest: str
    size: int
    data: bytes | None
    path: str | None
    fast_digest: str | None = None
    """The xxh3-128 of the bytes (``None`` without ``xxhash``): what loads check a mapped blob by."""


_PARALLEL_HASH_AT = 4 << 20


class Sink:
    """A write-only binary stream that hashes everything written to it.

    Bytes stay in memory until ``spill_at`` bytes were written, then move to a temporary file in
    ``tmp_dir`` (named with :data:`OWNED_TEMP_SUFFIX`, so a local blob store may link it into
    place). With ``expected_size`` above ``spill_at`` the file is used from the first byte, so a
    large array is never buffered. With ``keep=False`` it only hashes and counts (to learn a
    value's key before deciding to store it). Use as a context manager: leaving it removes the
    temp file.
    """

    closed = False

    def __init__(
        self,
        tmp_dir: str | os.PathLike[str],
        spill_at: int,
        expected_size: int | None = None,
        *,
        keep: bool = True,
    ) -> None:
        self._tmp_dir = Path(tmp_dir)
        self._keep = keep
        self._spill_at = spill_at
        self._expected = expected_size
        self._path: str | None = None
        self.reset()

    def reset(self) -> None:
        """Forget everything written so far (a serializer changing its mind)."""
        self._hash = hashlib.sha256()
        self._fast = new_fast_hash()
        self._size = 0
        self._mem: io.BytesIO | None = io.BytesIO() if self._keep else None
        self._file: io.BufferedWriter | None = None
        self._discard_file()
        if self._keep and self._expected is not None and self._expected > self._spill_at:
            self._spill()

    def _spill(self) -> None:
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, self._path = tempfile.mkstemp(dir=self._tmp_dir, prefix="artifact-", suffix=OWNED_TEMP_SUFFIX)
        self._file = os.fdopen(fd, "wb")
        if self._mem is not None:
            self._file.write(self._mem.getbuffer())
            self._mem = None

    def write(self, data: Any) -> int:
        view = data if isinstance(data, memoryview) else memoryview(data)
        n = view.nbytes
        if self._keep and self._file is None and self._size + n > self._spill_at:
            self._spill()
        if self._file is not None and n >= _PARALLEL_HASH_AT:
            # hashing and writing both release the GIL: overlap them instead of paying twice
            hasher = threading.Thread(target=self._hash.update, args=(view,))
            hasher.start()
            try:
                self._file.write(view)
                if self._fast is not None:
                    self._fast.update(view)
            finally:
                hasher.join()
        else:
            self._hash.update(view)
            if self._fast is not None:
                self._fast.update(view)
            if self._file is not None:
                self._file.write(view)
            elif self._mem is not None:
                self._mem.write(view)
        self._size += n
        return n

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def writable(self) -> bool:
        return True

    def finish(self) -> SinkResult:
        """Close the stream; the result's ``path`` stays valid until the sink is left."""
        if self._file is not None:
            self._file.close()
            return SinkResult(self._hash.hexdigest(), self._size, None, self._path, self._fast_hex())
        data = self._mem.getvalue() if self._mem is not None else None
        return SinkResult(self._hash.hexdigest(), self._size, data, None, self._fast_hex())

    def _fast_hex(self) -> str | None:
        return None if self._fast is None else str(self._fast.hexdigest())

    def _discard_file(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self._path is not None:
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                pass  # a local store may have moved it into place
            self._path = None

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self._discard_file()
        self._mem = None


class Serializer(ABC):
    """One way of storing values. Subclasses set :attr:`name` (recorded in ``ArtifactRef``)."""

    name: ClassVar[str]

    @abstractmethod
    def accepts(self, value: Any) -> bool:
        """Cheap type test; :meth:`dump` may still decline with :class:`CannotSerialize`."""

    def size_hint(self, value: Any) -> int | None:
        """Expected size in bytes, if cheaply known (large values then spool to disk at once)."""
        return None

    def type_name(self, value: Any) -> str:
        """The type recorded in ``ArtifactRef.type``: what :meth:`load_bytes` gives back."""
        return f"{type(value).__module__}.{type(value).__qualname__}"

    def probably_stored(self, value: Any) -> bool:
        """Whether ``value`` likely came from the store unchanged (e.g. a mapped array).

        The store then hashes it first and writes nothing when the key exists; for new values
        that first pass would be wasted, so the default is ``False``.
        """
        return False

    @abstractmethod
    def dump(self, value: Any, out: Sink) -> dict[str, Any]:
        """Write ``value`` to ``out``; return ``meta`` for the ``ArtifactRef``.

        :raises CannotSerialize: to pass the value to the next serializer.
        :raises UnserializableArtifact: when no serializer can do better.
        """

    @abstractmethod
    def load_bytes(self, data: bytes, meta: dict[str, Any]) -> Any:
        """Rebuild a value from the stored bytes."""

    def load_path(self, path: str, meta: dict[str, Any]) -> Any:
        """Rebuild a value from a local file; override to memory-map it."""
        with open(path, "rb") as f:
            return self.load_bytes(f.read(), meta)


# ----------------------------------------------------------------------------------- registry

_registry: list[tuple[int, int, Serializer]] = []
_seq = 0


def register_serializer(serializer: Serializer, priority: int = 100) -> None:
    """Add ``serializer``; replaces a registered one of the same name.

    Higher ``priority`` is tried first; among equals the latest registration wins. Built-ins use
    100 (arrow, numpy), 90 (pandas) and 0 (pickle, the fallback).
    """
    global _seq
    unregister_serializer(serializer.name)
    _seq += 1
    _registry.append((priority, _seq, serializer))
    _registry.sort(key=lambda e: (-e[0], -e[1]))


def unregister_serializer(name: str) -> None:
    """Remove the serializer called ``name``, if registered."""
    _registry[:] = [e for e in _registry if e[2].name != name]


def serializers() -> list[Serializer]:
    """Registered serializers in the order they are tried."""
    return [e[2] for e in _registry]


def get_serializer(name: str) -> Serializer:
    """The serializer recorded in an ``ArtifactRef``.

    :raises StoreError: none of that name is registered (its plugin is probably not installed).
    """
    for _, _, s in _registry:
        if s.name == name:
            return s
    known = ", ".join(sorted(s.name for s in serializers()))
    raise StoreError(
        f"artifact was stored with serializer {name!r}, which is not registered here (known: {known}); "
        "install and import the plugin that provides it"
    )


def candidates(value: Any) -> list[Serializer]:
    """Serializers that accept ``value``, in the order to try them."""
    return [s for s in serializers() if s.accepts(value)]


def _with_preview(meta: dict[str, Any], preview: dict[str, Any] | None) -> dict[str, Any]:
    if preview is not None:
        meta["preview"] = preview
    return meta


def _module(name: str) -> Any:
    """An already-imported module, or None: a value of its type cannot exist otherwise."""
    return sys.modules.get(name)


# -------------------------------------------------------------------------------- built-ins


class ArrowSerializer(Serializer):
    name = "arrow"

    def accepts(self, value: Any) -> bool:
        pa = _module("pyarrow")
        return pa is not None and isinstance(value, pa.Table)

    def size_hint(self, value: Any) -> int | None:
        return int(value.nbytes)

    def dump(self, value: Any, out: Sink) -> dict[str, Any]:
        import pyarrow as pa

        with pa.ipc.new_file(out, value.schema) as writer:  # buffers reach `out` without copies
            writer.write_table(value)
        return _with_preview({"rows": value.num_rows}, previews.safely(previews.table, value))

    def load_bytes(self, data: bytes, meta: dict[str, Any]) -> Any:
        import pyarrow as pa

        return pa.ipc.open_file(pa.py_buffer(data)).read_all()

    def load_path(self, path: str, meta: dict[str, Any]) -> Any:
        import pyarrow as pa

        return pa.ipc.open_file(pa.memory_map(path, "r")).read_all()


class PandasSerializer(ArrowSerializer):
    name = "pandas"

    def accepts(self, value: Any) -> bool:
        pd = _module("pandas")
        return pd is not None and type(value) is pd.DataFrame

    def size_hint(self, value: Any) -> int | None:
        return int(value.memory_usage(index=True, deep=False).sum())

    def dump(self, value: Any, out: Sink) -> dict[str, Any]:
        import pyarrow as pa

        # Arrow would silently change some object columns (lists into arrays, NaN into None,
        # object strings into the string dtype under pandas 3); those go through pickle.
        cols = value.columns
        if (
            value.attrs
            or cols.nlevels != 1
            or not cols.is_unique
            or any(not isinstance(c, (str, int)) for c in cols)
            or not all(_arrow_exact(value[c]) for c in cols)
            or not all(_arrow_exact(value.index.get_level_values(i)) for i in range(value.index.nlevels))
        ):
            raise CannotSerialize("not exactly representable in Arrow")
        try:
            table = pa.Table.from_pandas(value, preserve_index=None)
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise CannotSerialize(str(e)) from e
        meta = super().dump(table, out)
        meta["rows"] = len(value)
        return meta

    def load_bytes(self, data: bytes, meta: dict[str, Any]) -> Any:
        return _writable_frame(super().load_bytes(data, meta).to_pandas())

    def load_path(self, path: str, meta: dict[str, Any]) -> Any:
        return _writable_frame(super().load_path(path, meta).to_pandas())


def _writable_frame(frame: Any) -> Any:
    """``to_pandas`` copies columns into pandas blocks, except categorical codes, which stay
    read-only views of the blob; copy those (small integers) so the frame is mutable."""
    import pandas as pd

    for i, dtype in enumerate(frame.dtypes):
        if isinstance(dtype, pd.CategoricalDtype):
            frame.isetitem(i, frame.iloc[:, i].copy())
    return frame


def _arrow_exact(values: Any) -> bool:
    """Whether a column or index level comes back from Arrow with the same dtype and values."""
    import numpy as np
    import pandas as pd

    if not (isinstance(values.dtype, np.dtype) and values.dtype.kind == "O"):
        return True
    # object strings come back as object only while pandas does not infer its string dtype
    infers_str = bool(getattr(pd.options.future, "infer_string", False))
    return (
        not infers_str
        and pd.api.types.infer_dtype(values, skipna=False) == "string"
        and not bool(pd.isna(values).any())
    )


class NumpySerializer(Serializer):
    name = "numpy"

    def accepts(self, value: Any) -> bool:
        np = _module("numpy")
        return np is not None and type(value) in (np.ndarray, np.memmap) and not value.dtype.hasobject

    def size_hint(self, value: Any) -> int | None:
        return int(value.nbytes)

    def type_name(self, value: Any) -> str:
        return "numpy.ndarray"  # also for a memmap: that is how it was loaded, not what it is

    def probably_stored(self, value: Any) -> bool:
        import numpy as np

        return isinstance(value, np.memmap)  # loaded artifacts are re-saved in case they changed

    def dump(self, value: Any, out: Sink) -> dict[str, Any]:
        import numpy as np

        fmt = np.lib.format
        header = fmt.header_data_from_array_1_0(value)
        try:
            fmt.write_array_header_1_0(out, header)
        except ValueError:  # header too long for format 1.0
            fmt.write_array_header_2_0(out, header)
        if value.flags.c_contiguous or value.flags.f_contiguous:
            flat = (value if value.flags.c_contiguous else value.T).reshape(-1).view(np.uint8)
            for start in range(0, flat.size, CHUNK):
                out.write(flat[start : start + CHUNK])
        else:  # strided: copy a bounded block of rows at a time, in C order
            rows = max(1, CHUNK // max(1, value[0].nbytes))
            for start in range(0, value.shape[0], rows):
                out.write(np.ascontiguousarray(value[start : start + rows]).reshape(-1).view(np.uint8))
        meta = {"dtype": str(value.dtype), "shape": list(value.shape)}
        return _with_preview(meta, previews.safely(previews.array, value))

    def load_bytes(self, data: bytes, meta: dict[str, Any]) -> Any:
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)

    def load_path(self, path: str, meta: dict[str, Any]) -> Any:
        import numpy as np

        if os.path.getsize(path) < MMAP_MIN:
            return np.load(path, allow_pickle=False)
        # copy-on-write: writable and zero-copy, and writes stay private to this process
        return np.load(path, mmap_mode="c", allow_pickle=False)


# ---------------------------------------------------------------------------- pickle fallback

_MAGIC = b"LPK\x01"
_FLAG_ZSTD = 1
_FLAG_CLOUDPICKLE = 2
_OUTER = struct.Struct("<4sB3xQ")  # magic, flags, body length
_ALIGN = 64
_INBAND_MAX = 4096  # buffers smaller than this stay inside the pickle stream
_COMPRESS_MIN = 512
_KEEP_RATIO = 0.9

_by_value_modules: set[str] = {"__main__"}


def register_pickle_by_value(module: Any) -> None:
    """Store objects defined in ``module`` by value (with cloudpickle), not by import path.

    Classes and functions from a flow file are then loadable where the flow is not importable
    (a notebook reading the run). ``__main__`` is always treated so.
    """
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    _by_value_modules.add(module.__name__)


def _pad(pos: int) -> int:
    return -pos % _ALIGN


class PickleSerializer(Serializer):
    """Pickle protocol 5; the body is ``[nbuf, pickle_len, buf_lens...] pickle buf0 buf1 ...``
    with every part 64-byte aligned in the file, so out-of-band buffers map zero-copy."""

    name = "pickle"

    def accepts(self, value: Any) -> bool:
        return True

    def dump(self, value: Any, out: Sink) -> dict[str, Any]:
        stream, buffers, cloud = _pickle(value)
        parts: list[memoryview] = [memoryview(stream)] + [b.raw() for b in buffers]
        head = struct.pack(
            f"<IIQ{len(buffers)}Q", len(buffers), 0, len(stream), *(p.nbytes for p in parts[1:])
        )
        segments: list[memoryview] = [memoryview(head)]
        pos = _OUTER.size + len(head)
        for p in parts:
            segments.append(memoryview(bytes(_pad(pos))))
            segments.append(p)
            pos += _pad(pos) + p.nbytes
        body_len = pos - _OUTER.size
        flags = _FLAG_CLOUDPICKLE if cloud else 0
        meta: dict[str, Any] = {"pickler": "cloudpickle" if cloud else "pickle", "buffers": len(buffers)}
        _with_preview(meta, previews.safely(previews.value, value, sum(p.nbytes for p in parts)))
        if body_len >= _COMPRESS_MIN and _worth_compressing(segments, body_len):
            out.write(_OUTER.pack(_MAGIC, flags | _FLAG_ZSTD, body_len))
            _zstd_write(segments, body_len, out)
            if out.tell() < _KEEP_RATIO * (body_len + _OUTER.size):
                meta["compression"] = "zstd"
                return meta
            out.reset()
        out.write(_OUTER.pack(_MAGIC, flags, body_len))
        for s in segments:
            for start in range(0, s.nbytes, CHUNK):
                out.write(s[start : start + CHUNK])
        return meta

    def load_bytes(self, data: bytes, meta: dict[str, Any]) -> Any:
        return self._load(memoryview(data))

    def load_path(self, path: str, meta: dict[str, Any]) -> Any:
        if os.path.getsize(path) < MMAP_MIN:
            return super().load_path(path, meta)
        with open(path, "rb") as f:
            # ACCESS_COPY: buffers are writable and zero-copy; writes never reach the blob
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        return self._load(memoryview(mapped))

    def _load(self, view: memoryview) -> Any:
        magic, flags, body_len = _OUTER.unpack_from(view)
        if magic != _MAGIC:
            raise StoreError("artifact blob is not a Lamina pickle (bad magic); the store may be corrupt")
        if flags & _FLAG_ZSTD:
            import zstandard

            body = bytearray(body_len)
            with zstandard.ZstdDecompressor().stream_reader(view[_OUTER.size :]) as reader:
                got = 0
                while got < body_len:
                    n = reader.readinto(memoryview(body)[got:])
                    if not n:
                        raise StoreError("compressed artifact blob is truncated")
                    got += n
            view, base = memoryview(body), 0
        else:
            base = _OUTER.size
        nbuf, _, stream_len = struct.unpack_from("<IIQ", view, base)
        lens = struct.unpack_from(f"<{nbuf}Q", view, base + 16)
        pos = _OUTER.size + 16 + 8 * nbuf  # offsets as laid out in the file
        slices = []
        for n in (stream_len, *lens):
            pos += _pad(pos)
            start = pos - _OUTER.size + base
            slices.append(view[start : start + n])
            pos += n
        return pickle.loads(slices[0], buffers=slices[1:])


def _pickle(value: Any) -> tuple[bytes, list[pickle.PickleBuffer], bool]:
    buffers: list[pickle.PickleBuffer] = []

    def keep(buf: pickle.PickleBuffer) -> bool:
        try:
            if buf.raw().nbytes < _INBAND_MAX:
                return True  # in-band
        except BufferError:  # not contiguous: cannot be written as one raw region
            return True
        buffers.append(buf)
        return False

    try:
        import cloudpickle
    except ImportError:
        cloudpickle = None
    stream: bytes | None = None
    try:
        stream = pickle.dumps(value, protocol=5, buffer_callback=keep)
        if cloudpickle is None or not any(m.encode() in stream for m in _by_value_modules):
            return stream, buffers, False
        # refers to a by-value module (e.g. __main__): loadable elsewhere only by value
        stdlib = (stream, list(buffers))
    except (pickle.PicklingError, AttributeError, TypeError) as e:
        if cloudpickle is None:
            raise UnserializableArtifact(
                f"a value of type {type(value).__qualname__} cannot be pickled ({e}); "
                "`pip install cloudpickle` stores lambdas and local classes"
            ) from e
    buffers.clear()
    try:
        return cloudpickle.dumps(value, protocol=5, buffer_callback=keep), buffers, True
    except Exception as e:
        if stream is not None:
            return stdlib[0], stdlib[1], False
        raise UnserializableArtifact(
            f"a value of type {type(value).__qualname__} cannot be pickled, even with cloudpickle ({e}); "
            "keep such objects (connections, locks, open files) off `self`"
        ) from e


def _worth_compressing(segments: list[memoryview], total: int) -> bool:
    """Large bodies: compress a ~1 MiB sample first, so incompressible data costs little."""
    if total <= 8 << 20:
        return True
    import zstandard

    sample = b"".join(bytes(s[: 256 << 10]) for s in sorted(segments, key=lambda s: -s.nbytes)[:4])
    return len(zstandard.ZstdCompressor(level=3).compress(sample)) < _KEEP_RATIO * len(sample)


def _zstd_write(segments: list[memoryview], body_len: int, out: Sink) -> None:
    import zstandard

    cctx = zstandard.ZstdCompressor(level=3, threads=-1 if body_len > 8 << 20 else 0)
    with cctx.stream_writer(out, size=body_len, closefd=False) as writer:  # type: ignore[arg-type]
        for s in segments:
            for start in range(0, s.nbytes, CHUNK):
                writer.write(s[start : start + CHUNK])


for _s, _p in (
    (PickleSerializer(), 0),
    (PandasSerializer(), 90),
    (NumpySerializer(), 100),
    (ArrowSerializer(), 100),
):
    register_serializer(_s, _p)
del _s, _p
