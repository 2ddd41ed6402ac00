"""Versioning core: the content-addressed artifact store, the metadata store, code packages.

Submodules are imported on first use so that ``import lamina`` stays fast (SQLAlchemy and the
serializers' libraries load only when a run or the client needs them):

- :mod:`.layout` -- blob keys (pure functions), ``new_run_id``
- :mod:`.serializers` -- the serializer registry (``register_serializer``)
- :mod:`.artifacts` -- ``ArtifactStore``, ``ArtifactNamespace``
- :mod:`.metadata` -- ``MetadataStore``
- :mod:`.codepkg` -- ``package_code``, ``store_code``, ``restore_code``
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ArtifactStore": "artifacts",
    "ArtifactNamespace": "artifacts",
    "BlobStore": "artifacts",
    "MetadataStore": "metadata",
    "new_run_id": "layout",
    "register_serializer": "serializers",
    "package_code": "codepkg",
    "store_code": "codepkg",
    "restore_code": "codepkg",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lamina.versioning' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
