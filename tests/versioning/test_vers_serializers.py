"""Serializers: values survive the round trip, big ones load zero-copy, compression only pays."""

from __future__ import annotations

import datetime as dt
import os
import pickle
from collections import OrderedDict
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from lamina.errors import StoreError
from lamina.versioning import serializers as ser
from lamina.versioning.artifacts import ArtifactStore
from vers_helpers import RemoteBlobs, make_blobs, run_python

MB = 1 << 20


def _mapped_from(path: str, address: int) -> bool:
    """Whether ``address`` lies in a memory mapping of the file ``path`` (Linux /proc)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs /proc/self/maps")
    real = os.path.realpath(path)
    for line in maps.read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == real:
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return True
    return False


@pytest.fixture(params=["local", "remote-fetch", "remote-bytes"])
def any_store(request, project):
    """The same blobs read as a local store (mmap), a remote one (fetch to cache) and via get()."""
    if request.param == "local":
        return ArtifactStore(make_blobs(project), cache_dir=project / "cache")
    map_at = 1 if request.param == "remote-fetch" else 1 << 40
    return ArtifactStore(make_blobs(project, RemoteBlobs), cache_dir=project / "cache", map_at=map_at)


def _local_class():
    class Local:
        def __init__(self):
            self.x = 1

        def __eq__(self, other):
            return type(other).__name__ == "Local" and other.x == 1

    return Local()


SCALARS = [
    0,
    -(2**70),
    3.5,
    float("inf"),
    "naïve ✓",
    "",
    None,
    True,
    b"\x00\xff" * 3,
    (1, "a"),
    [1, [2, 3]],
    {"a": {"b": [1.5]}},
    {1, 2, 3},
    frozenset({"x"}),
    OrderedDict(z=1, a=2),
    Decimal("1.10"),
    Fraction(1, 3),
    dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    np.float32(1.5),
    np.int64(7),
    list(range(50_000)),
    "text " * 100_000,
]


@pytest.mark.parametrize("value", SCALARS, ids=lambda v: type(v).__name__)
def test_python_values_round_trip_through_pickle(any_store, value):
    ref = any_store.save(value)
    assert ref.serializer == "pickle"
    out = any_store.load(ref)
    assert out == value and type(out) is type(value)


def test_functions_and_local_classes_round_trip_with_cloudpickle(store):
    pytest.importorskip("cloudpickle")
    ref = store.save(lambda x: x * 2)
    assert ref.meta["pickler"] == "cloudpickle"
    assert store.load(ref)(21) == 42
    assert store.load(store.save(_local_class())) == _local_class()


def test_values_that_cannot_be_pickled_raise_a_clear_error(store):
    import threading

    with pytest.raises(ser.UnserializableArtifact, match=r"artifact 'lock'.*lock"):
        store.save(threading.Lock(), name="lock")


ARRAYS = {
    "float64": np.arange(1000, dtype=np.float64),
    "int8-2d": np.arange(120, dtype=np.int8).reshape(10, 12),
    "fortran": np.asfortranarray(np.arange(200.0).reshape(10, 20)),
    "strided": np.arange(1000.0).reshape(100, 10)[::3, ::2],
    "0d": np.array(3.25),
    "empty": np.zeros((0, 4)),
    "datetime64": np.array(["2024-01-01", "2024-06-30"], dtype="datetime64[D]"),
    "structured": np.array([(1, 2.5), (3, 4.5)], dtype=[("a", "<i4"), ("b", "<f8")]),
    "big-endian": np.arange(10, dtype=">u4"),
    "bool": np.array([True, False]),
    "unicode": np.array(["ab", "çd"]),
    "large": np.random.default_rng(0).random(300_000),
}


@pytest.mark.parametrize("name", ARRAYS)
def test_numpy_arrays_round_trip_exactly(any_store, name):
    value = ARRAYS[name]
    ref = any_store.save(value)
    assert ref.serializer == "numpy"
    out = any_store.load(ref)
    assert out.dtype == value.dtype and out.shape == value.shape
    np.testing.assert_array_equal(out, value)


def test_object_arrays_fall_back_to_pickle(store):
    value = np.array([{"a": 1}, None], dtype=object)
    ref = store.save(value)
    assert ref.serializer == "pickle"
    assert list(store.load(ref)) == list(value)


def test_large_arrays_load_as_writable_copy_on_write_memory_maps(store):
    value = np.random.default_rng(1).random(50 * MB // 8)
    ref = store.save(value)
    out = store.load(ref)
    assert isinstance(out, np.memmap), "a local blob must be memory-mapped, not read"
    assert _mapped_from(store.blobs.local_path(ref.key), out.ctypes.data)
    out[:10] = -1.0  # users may mutate what they load ...
    again = store.load(ref)
    np.testing.assert_array_equal(again[:10], value[:10])  # ... without touching the stored artifact
    assert store.save(again).key == ref.key


def test_arrow_tables_round_trip_and_load_zero_copy(store):
    rng = np.random.default_rng(2)
    table = pa.table(
        {
            "x": rng.random(6 * MB // 8),
            "s": pa.array([f"row{i}" for i in range(6 * MB // 8)]),
            "n": pa.array([None if i % 3 else i for i in range(6 * MB // 8)], type=pa.int64()),
        }
    )
    ref = store.save(table)
    assert ref.serializer == "arrow" and ref.meta["rows"] == table.num_rows
    before = pa.total_allocated_bytes()
    out = store.load(ref)
    assert pa.total_allocated_bytes() - before < MB, "loading must not copy into Arrow memory"
    path = store.blobs.local_path(ref.key)
    for column in ("x", "s", "n"):
        data_buffer = out.column(column).chunk(0).buffers()[-1]
        assert _mapped_from(path, data_buffer.address), f"column {column} does not point into the blob"
    assert out.equals(table)


def test_arrow_tables_round_trip_from_bytes_and_cache(any_store):
    table = pa.table({"a": [1, 2, None], "b": ["x", None, "z"], "c": [[1], [], [2, 3]]})
    assert any_store.load(any_store.save(table)).equals(table)


FRAMES = {
    "numeric": pd.DataFrame({"a": np.arange(5.0), "b": np.arange(5)}),
    "named-index": pd.DataFrame({"a": [1, 2]}, index=pd.Index(["p", "q"], name="k")),
    "int-labels": pd.DataFrame({1: [1.0], 2: [2.0]}),
    "categorical": pd.DataFrame({"c": pd.Categorical(["x", "y", "x"])}),
    "tz-datetime": pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3, tz="UTC")}),
    "nullable-int": pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int64")}),
    "multiindex": pd.DataFrame({"a": [1, 2]}, index=pd.MultiIndex.from_tuples([(1, "a"), (2, "b")])),
    "strings": pd.DataFrame({"s": ["x", "y"], "f": [1.0, 2.0]}),
}
if pd.options.future.infer_string:  # pandas 3: object string columns would come back as str
    del FRAMES["named-index"], FRAMES["multiindex"]


@pytest.mark.parametrize("name", FRAMES)
def test_dataframes_arrow_can_represent_go_through_arrow(any_store, name):
    frame = FRAMES[name]
    ref = any_store.save(frame)
    assert ref.serializer == "pandas"
    out = any_store.load(ref)
    pd.testing.assert_frame_equal(out, frame)
    out.iloc[0, 0] = out.iloc[-1, 0]  # loaded frames are ordinary, mutable frames


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"mixed": [1, "x"]}),
        pd.DataFrame({"lists": [[1], [2, 3]]}),
        pd.DataFrame({"obj": pd.Series(["a", None, float("nan")], dtype=object)}),
        pd.DataFrame([[1, 2]], columns=["a", "a"]),
    ],
    ids=["mixed", "lists", "object-strings-with-nulls", "duplicate-columns"],
)
def test_dataframes_arrow_would_alter_keep_their_exact_types_through_pickle(store, frame):
    ref = store.save(frame)
    assert ref.serializer == "pickle"
    out = store.load(ref)
    pd.testing.assert_frame_equal(out, frame)
    assert list(out.dtypes) == list(frame.dtypes)


def test_pickled_containers_keep_large_buffers_out_of_band_and_mapped(store):
    value = {"weights": np.random.default_rng(3).random(2 * MB), "name": "model"}
    ref = store.save(value)
    assert ref.serializer == "pickle" and ref.meta["buffers"] == 1
    assert "compression" not in ref.meta, "random floats do not compress: storing them raw is cheaper"
    out = store.load(ref)
    weights = out["weights"]
    assert weights.flags.writeable and _mapped_from(store.blobs.local_path(ref.key), weights.ctypes.data)
    assert weights.ctypes.data % 64 == 0, "out-of-band buffers are 64-byte aligned in the blob"
    np.testing.assert_array_equal(weights, value["weights"])


def test_zstd_is_used_only_when_it_saves_space(store):
    compressible = {"zeros": np.zeros(MB), "text": "abc" * 100_000}
    ref = store.save(compressible)
    assert ref.meta.get("compression") == "zstd"
    raw = len(pickle.dumps(compressible, protocol=5))
    assert ref.size < 0.1 * raw
    out = store.load(ref)
    assert out["text"] == compressible["text"] and not out["zeros"].any()
    noise = os.urandom(MB)
    ref = store.save(noise)
    assert "compression" not in ref.meta and store.load(ref) == noise


def test_equal_values_serialize_to_equal_bytes():
    """Determinism is what makes content addressing deduplicate across runs and processes."""
    code = """
        import json, numpy as np, pandas as pd, pyarrow as pa, tempfile
        from lamina.versioning.serializers import Sink, candidates
        values = [np.arange(1e5), pa.table({"a": list(range(1000))}), pd.DataFrame({"a": np.arange(1e4)}),
                  {"k": [1, 2.5, "x"]}, np.asfortranarray(np.ones((30, 40)))]
        out = []
        for v in values:
            with Sink(tempfile.mkdtemp(), 1 << 30) as sink:
                candidates(v)[0].dump(v, sink)
                out.append(sink.finish().digest)
        print(json.dumps(out))
    """
    assert run_python(code) == run_python(code)


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


class PointSerializer(ser.Serializer):
    name = "test-point"

    def accepts(self, value):
        return isinstance(value, Point)

    def dump(self, value, out):
        if value.x < 0:
            raise ser.CannotSerialize("negative")
        out.write(str(value.x).encode())
        return {"x": value.x}

    def load_bytes(self, data, meta):
        return Point(int(data))


def test_plugins_register_serializers_that_take_precedence_and_may_decline(store):
    ser.register_serializer(PointSerializer(), priority=200)
    try:
        assert ser.serializers()[0].name == "test-point"
        ref = store.save(Point(5))
        assert ref.serializer == "test-point" and ref.meta["x"] == 5 and ref.size == 1
        assert store.load(ref).x == 5
        declined = store.save(Point(-1))  # handed to the next serializer that accepts it
        assert declined.serializer == "pickle" and store.load(declined).x == -1
    finally:
        ser.unregister_serializer("test-point")
    assert "test-point" not in [s.name for s in ser.serializers()]
    with pytest.raises(StoreError, match="test-point.*not registered.*known: arrow, numpy, pandas, pickle"):
        store.load(ref)


def test_registering_a_name_again_replaces_the_serializer():
    before = sorted(s.name for s in ser.serializers())
    replacement = ser.NumpySerializer()
    ser.register_serializer(replacement, priority=100)
    assert sorted(s.name for s in ser.serializers()) == before
    assert ser.get_serializer("numpy") is replacement


def test_saving_a_large_array_or_table_stays_near_one_copy_of_memory():
    """Peak RSS of saving 50 MB must not grow by a second copy (serialized straight to a file)."""
    result = run_python(
        """
        import json, resource, tempfile, numpy as np, pyarrow as pa
        from pathlib import Path
        from lamina.hookspecs import AdapterContext
        from lamina.plugins.local_versioning import LocalVersioning, LocalVersioningSettings
        from lamina.versioning.artifacts import ArtifactStore

        class Blobs:
            def __init__(self, a): self.a = a
            def exists(self, keys): return self.a.versioning_exists(keys)
            def put(self, key, data=None, path=None, overwrite=False):
                return self.a.versioning_put(key, data, path, overwrite)
            def local_path(self, key): return self.a.versioning_local_path(key)

        root = Path(tempfile.mkdtemp())
        blobs = Blobs(LocalVersioning(LocalVersioningSettings(), AdapterContext(root, "local", "local")))
        store = ArtifactStore(blobs, cache_dir=root / ".lamina" / "cache")
        store.save(np.arange(10.0)); store.save(pa.table({"a": [1]}))  # warm up imports
        rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        array = np.random.default_rng(0).random(50 * 2**20 // 8)
        before = rss(); store.save(array); grew_array = rss() - before
        table = pa.table({"x": array + 1.0}); del array
        before = rss(); store.save(table); grew_table = rss() - before
        print(json.dumps({"array": grew_array, "table": grew_table}))
        """
    )
    assert result["array"] < 20 * MB, (
        f"saving a 50 MB array grew the peak RSS by {result['array'] / MB:.0f} MB"
    )
    assert result["table"] < 20 * MB, (
        f"saving a 50 MB table grew the peak RSS by {result['table'] / MB:.0f} MB"
    )


# -- previews: small safe summaries in ArtifactRef.meta, shown by tools that never unpickle ----


def _preview_size(ref) -> int:
    import json

    return len(json.dumps(ref.meta["preview"]))


def test_a_table_records_its_schema_and_first_rows(store):
    table = pa.table({"id": list(range(1000)), "name": [f"n{i}" for i in range(1000)], "x": [0.5] * 1000})
    preview = store.save(table).meta["preview"]
    assert preview["kind"] == "table" and preview["rows"] == 1000 and preview["columns"] == 3
    assert preview["schema"] == [
        {"name": "id", "type": "int64"},
        {"name": "name", "type": "string"},
        {"name": "x", "type": "double"},
    ]
    assert preview["head"][:2] == [["0", "n0", "0.5"], ["1", "n1", "0.5"]]
    assert len(preview["head"]) == 10


def test_a_wide_table_with_long_cells_keeps_a_small_preview(store):
    table = pa.table({f"c{i}": ["x" * 5000] * 20 for i in range(100)})
    ref = store.save(table)
    assert _preview_size(ref) <= 6000
    assert ref.meta["preview"]["columns"] == 100 and len(ref.meta["preview"]["schema"]) == 40


def test_a_dataframe_records_a_table_preview(store):
    frame = pd.DataFrame({"a": [1.5, 2.5], "b": [3, 4]})
    ref = store.save(frame)
    assert ref.serializer == "pandas" and ref.meta["rows"] == 2
    preview = ref.meta["preview"]
    assert preview["kind"] == "table" and preview["head"] == [["1.5", "3"], ["2.5", "4"]]


def test_an_array_records_shape_dtype_and_statistics(store):
    preview = store.save(np.arange(12, dtype=np.int32).reshape(3, 4)).meta["preview"]
    assert preview == {
        "kind": "array",
        "shape": [3, 4],
        "dtype": "int32",
        "head": [str(i) for i in range(10)],
        "min": 0,
        "max": 11,
        "mean": 5.5,
    }


def test_a_large_array_is_summarised_from_a_sample(store):
    value = np.ones(3 * MB, dtype=np.float64)  # 24 MiB: above the exact-statistics size
    value[-1] = 7.0
    preview = store.save(value).meta["preview"]
    assert preview["sampled"] is True and preview["shape"] == [3 * MB]
    assert preview["min"] == 1.0 and 1.0 <= preview["mean"] < 1.01


def test_nan_and_strided_and_text_arrays_give_json_safe_previews(store):
    import json

    nan = store.save(np.array([1.0, np.nan, np.inf])).meta["preview"]
    assert nan["nan"] == 1 and nan["max"] == "inf" and nan["min"] == 1.0
    strided = store.save(np.arange(100.0).reshape(10, 10)[::2, ::3]).meta["preview"]
    assert strided["shape"] == [5, 4] and strided["max"] == 89.0
    text = store.save(np.array(["ab", "çd"])).meta["preview"]
    assert text["head"] == ["ab", "çd"] and "min" not in text
    json.dumps([nan, strided, text], allow_nan=False)


def test_a_plain_value_records_its_truncated_repr(store):
    assert store.save({"alpha": 0.5}).meta["preview"] == {"kind": "value", "repr": "{'alpha': 0.5}"}
    long = store.save("y" * 5000).meta["preview"]
    assert long["truncated"] and len(long["repr"]) <= 1000
    assert "preview" not in store.save(list(range(50_000))).meta  # too large to describe by repr


def test_png_bytes_record_an_image_preview(store):
    import base64
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 3, 2, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" + b"\xff\x00\x00" * 3 + b"\x00" + b"\x00\x00\xff" * 3))
        + chunk(b"IEND", b"")
    )
    preview = store.save(png).meta["preview"]
    assert preview["kind"] == "image" and (preview["width"], preview["height"]) == (3, 2)
    assert base64.b64decode(preview["data"]) == png


def test_a_pillow_image_records_a_small_thumbnail(store):
    image_mod = pytest.importorskip("PIL.Image")
    ref = store.save(image_mod.new("RGB", (640, 480), (200, 30, 30)))
    preview = ref.meta["preview"]
    assert preview["kind"] == "image" and (preview["width"], preview["height"]) == (640, 480)
    assert preview["thumbnail"] and _preview_size(ref) < 12 << 10


def test_a_value_whose_repr_fails_is_stored_and_previewed_by_its_type(store):
    ref = store.save(_BadRepr())
    assert ref.serializer == "pickle" and ref.meta["preview"]["repr"].startswith("<_BadRepr instance")
    assert isinstance(store.load(ref), _BadRepr)


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")
