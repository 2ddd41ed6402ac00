"""Small, safe summaries of artifact values, recorded in ``ArtifactRef.meta["preview"]`` at save.

Loading a pickled artifact runs code, so tools that only look at runs (``lamina ui``) never load
one: they show what was summarised here, in the task that produced the value, as plain JSON.
Each summary stays within a few KB and costs little to compute: large arrays are sampled, wide
tables cut, long reprs truncated. Every kind has ``"kind"``:

- ``table``: ``rows``, ``columns``, ``schema`` (``[{"name", "type"}]``), ``head`` (first rows,
  each cell a string)
- ``array``: ``shape``, ``dtype``, ``head`` (first values, as strings) and for numbers ``min``,
  ``max``, ``mean`` (``sampled`` when computed over a sample of a large array)
- ``image``: ``format``, ``width``, ``height``, and ``data`` (a small base64 PNG/JPEG thumbnail) when
  cheap
- ``value``: ``repr`` (truncated; ``truncated`` says so)

A summary that fails to compute is left out: it must never fail a save.
"""

from __future__ import annotations

import base64
import json
import math
import reprlib
import struct
import sys
from typing import Any

HEAD_ROWS = 10
MAX_COLUMNS = 40
CELL_CHARS = 80
REPR_CHARS = 1000
MAX_PREVIEW_BYTES = 12 << 10
"""No summary's JSON is larger (an image's thumbnail is the largest part)."""
TABLE_PREVIEW_BYTES = 6000
"""A table's first rows are cut until its summary fits in this."""
STATS_FULL_MAX = 8 << 20
"""Arrays up to this many bytes get exact statistics; larger ones a strided sample."""
SAMPLE_ELEMENTS = 1 << 18
REPR_MAX_PICKLED = 64 << 10
"""Pickled values larger than this get no repr (it would be long and may be slow to make)."""
IMAGE_INLINE_MAX = 8 << 10
THUMBNAIL_PX = 96


def safely(make: Any, *args: Any) -> dict[str, Any] | None:
    """``make(*args)``, or ``None`` if summarising failed (a preview never fails a save)."""
    try:
        preview = make(*args)
    except Exception:
        return None
    return preview if preview is None or _fits(preview, MAX_PREVIEW_BYTES) else None


def _fits(preview: dict[str, Any], limit: int) -> bool:
    return len(json.dumps(preview, default=str)) <= limit


def _cell(value: Any) -> str:
    text = str(value)  # a cell or element as people read it: 0.5, 2024-01-01, None
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def table(value: Any) -> dict[str, Any]:
    """A ``pyarrow.Table``: its schema and first rows."""
    fields = list(value.schema)[:MAX_COLUMNS]
    head = value.select([f.name for f in fields]).slice(0, HEAD_ROWS).to_pylist()
    preview: dict[str, Any] = {
        "kind": "table",
        "rows": value.num_rows,
        "columns": value.num_columns,
        "schema": [{"name": f.name, "type": str(f.type)} for f in fields],
        "head": [[_cell(row[f.name]) for f in fields] for row in head],
    }
    while not _fits(preview, TABLE_PREVIEW_BYTES) and preview["head"]:
        preview["head"] = preview["head"][: len(preview["head"]) // 2]
    return preview


def array(value: Any) -> dict[str, Any]:
    """A ``numpy.ndarray`` (not of objects): shape, dtype, first values and summary statistics."""
    import numpy as np

    preview: dict[str, Any] = {"kind": "array", "shape": list(value.shape), "dtype": str(value.dtype)}
    if value.size == 0:
        preview["head"] = []
        return preview
    flat = _flat_view(value)
    preview["head"] = [_cell(v) for v in (flat[:HEAD_ROWS] if flat is not None else value.flat[:HEAD_ROWS])]
    if value.dtype.kind not in "biuf":
        return preview
    sample = value
    if value.nbytes > STATS_FULL_MAX:
        if flat is None:
            return preview  # strided and large: a sample would cost a copy
        sample = flat[:: max(1, flat.size // SAMPLE_ELEMENTS)]
        preview["sampled"] = True
    with np.errstate(all="ignore"):
        numbers = sample.astype(np.float64, copy=False) if sample.dtype.kind == "b" else sample
        finite = bool(np.isfinite(numbers).all()) if numbers.dtype.kind == "f" else True
        if finite:
            lo, hi, mean = numbers.min(), numbers.max(), numbers.mean(dtype=np.float64)
        else:
            lo, hi, mean = np.nanmin(numbers), np.nanmax(numbers), np.nanmean(numbers, dtype=np.float64)
            preview["nan"] = int(np.isnan(numbers).sum())
    preview.update(min=_number(lo), max=_number(hi), mean=_number(mean))
    return preview


def _flat_view(value: Any) -> Any:
    """A 1-d view of a contiguous array (no copy), or ``None``."""
    if value.flags.c_contiguous:
        return value.reshape(-1)
    if value.flags.f_contiguous:
        return value.T.reshape(-1)
    return None


def _number(x: Any) -> float | int | str:
    """JSON-safe: NaN and infinities become strings (strict JSON has no such numbers)."""
    v = x.item() if hasattr(x, "item") else x
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v  # type: ignore[no-any-return]


_REPR = reprlib.Repr()
_REPR.maxstring = REPR_CHARS + 10  # above the cut, so a cut repr is seen as one
_REPR.maxother = REPR_CHARS + 10
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 30
_REPR.maxlevel = 4


def value(obj: Any, pickled_size: int) -> dict[str, Any] | None:
    """Any other value: an image's thumbnail, else its (bounded) repr when it is small."""
    image = _image(obj)
    if image is not None:
        return image
    if pickled_size > REPR_MAX_PICKLED:
        return None
    text = _REPR.repr(obj)
    preview: dict[str, Any] = {"kind": "value", "repr": text[:REPR_CHARS]}
    if len(text) > REPR_CHARS:
        preview["truncated"] = True
    return preview


_PNG = b"\x89PNG\r\n\x1a\n"


def _image(obj: Any) -> dict[str, Any] | None:
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(obj, pil.Image):
        return _pil_thumbnail(obj, "PIL")
    if isinstance(obj, bytes | bytearray):
        data = bytes(obj)
        if data.startswith(_PNG) and len(data) >= 24:
            width, height = struct.unpack(">II", data[16:24])
            return _encoded_image(data, "png", width, height)
        if data.startswith(b"\xff\xd8\xff"):
            return _encoded_image(data, "jpeg", None, None)
    return None


def _encoded_image(data: bytes, fmt: str, width: int | None, height: int | None) -> dict[str, Any]:
    preview: dict[str, Any] = {"kind": "image", "format": fmt, "width": width, "height": height}
    if len(data) <= IMAGE_INLINE_MAX:
        preview["data"] = base64.b64encode(data).decode()
        return preview
    pil = sys.modules.get("PIL.Image")
    if pil is not None:  # only when the step already uses Pillow: never import it for a preview
        import io

        with pil.open(io.BytesIO(data)) as img:
            thumb = _pil_thumbnail(img, fmt)
        thumb["width"], thumb["height"] = width or thumb["width"], height or thumb["height"]
        return thumb
    return preview


def _pil_thumbnail(img: Any, fmt: str) -> dict[str, Any]:
    import io

    preview: dict[str, Any] = {"kind": "image", "format": fmt, "width": img.width, "height": img.height}
    thumb = img.copy()
    thumb.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    if thumb.mode not in ("RGB", "RGBA", "L"):
        thumb = thumb.convert("RGBA")
    buf = io.BytesIO()
    thumb.save(buf, format="PNG", optimize=True)
    if buf.tell() <= IMAGE_INLINE_MAX // 4 * 3:
        preview["data"] = base64.b64encode(buf.getvalue()).decode()
        preview["thumbnail"] = True
    return preview
