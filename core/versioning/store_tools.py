"""What versioning adapters (blob stores) share: atomic local files and the self-check probes.

Lamina's ``local`` and ``s3`` versioning adapters use it; another adapter may too. Importing it
is cheap: SQLAlchemy is imported by :func:`ping_database` only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import StoreError

PROBE_PREFIX = "check/"
"""Keys under which :func:`round_trip` writes (and then deletes) its probe blobs."""


def temp_sibling(path: Path) -> Path:
    """A new hidden temporary next to ``path``: ``.{name}.{uuid}.tmp`` (stores never list dot-names)."""
    return path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary to write in place of ``path``: it replaces ``path`` atomically when the block
    succeeds and is removed whatever happens, so ``path`` is either untouched or complete."""
    target = Path(path)
    tmp = temp_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def round_trip(store: Any) -> None:
    """Write, read back and delete a probe blob through a versioning adapter's own hooks.

    :raises StoreError: the bytes read back differ; anything the hooks raise passes through.
    """
    probe = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    store.versioning_put(probe, b"ok", None, True)
    if store.versioning_get(probe) != b"ok":
        raise StoreError("read back different bytes")
    store.versioning_delete([probe])


def ping_database(url: str) -> None:
    """Connect to the metadata database at ``url`` and run ``SELECT 1``; raises what SQLAlchemy raises."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
